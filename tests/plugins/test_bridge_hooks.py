"""The ERP bridge's mapping hook: crmkit_organization_from_customer.

The sync it drives (creation, updates, races on every store) is tested in
``tests/test_app_sync.py``; ``crmkit_create_sales_order`` in
``test_opportunity_hooks.py``.
"""

from __future__ import annotations

import pytest

import crmkit
from crmkit import (
    CRM,
    ContactDraft,
    HookError,
    OrganizationDraft,
    ValidationError,
    hookimpl,
)
from crmkit.testing import RecordingPlugin
from tests.conftest import FixedClock


class Customer:
    """A host's customer record."""

    def __init__(self, number: str, name: str) -> None:
        self.number = number
        self.name = name


class Mapper:
    """Maps ``Customer`` objects; answers None for anything else."""

    def __init__(self, tag: str = "") -> None:
        self.tag = tag
        self.seen: list[object] = []

    @hookimpl
    def crmkit_organization_from_customer(self, customer: object) -> OrganizationDraft | None:
        self.seen.append(customer)
        if not isinstance(customer, Customer):
            return None
        return OrganizationDraft(
            external_ref=customer.number,
            fields={"name": f"{customer.name}{self.tag}"},
            contacts=[ContactDraft(f"{customer.number}-1", {"first_name": "Reception"})],
        )


class Returns:
    """Answers ``result`` for every customer."""

    def __init__(self, result: object) -> None:
        self.result = result

    @hookimpl
    def crmkit_organization_from_customer(self) -> object:
        return self.result


class Raises:
    """Fails with ``error`` for every customer."""

    def __init__(self, error: Exception) -> None:
        self.error = error

    @hookimpl
    def crmkit_organization_from_customer(self) -> object:
        raise self.error


def open_crm(*plugins: object, clock: FixedClock) -> CRM:
    """A memory CRM with ``plugins``."""
    return crmkit.open(":memory:", plugins=plugins, clock=clock)


def test_organization_from_customer_receives_crm_and_the_hosts_object(clock: FixedClock) -> None:
    """The hook gets crm and the object exactly as sync_customer was given it, once."""
    recorder = RecordingPlugin()
    customer = Customer("C-1", "Acme")
    with open_crm(Mapper(), recorder, clock=clock) as crm:
        crm.sync_customer(customer)

        assert [{"crm": crm, "customer": customer}] == [
            c.kwargs for c in recorder.calls_to("crmkit_organization_from_customer")
        ]


def test_organization_from_customer_draft_becomes_the_organization(clock: FixedClock) -> None:
    """The draft's external_ref, fields and contacts are what sync_customer writes."""
    with open_crm(Mapper(), clock=clock) as crm:
        result = crm.sync_customer(Customer("C-1", "Acme"))

        assert ("C-1", "Acme") == (result.organization.external_ref, result.organization.name)
        assert [("C-1-1", "Reception", result.organization.id)] == [
            (c.external_ref, c.first_name, c.organization_id) for c in result.contacts
        ]


def test_organization_from_customer_stops_at_the_first_answer(clock: FixedClock) -> None:
    """The most recently registered plugin answering wins; a None answer passes the turn."""
    older, newer = Mapper(" (older)"), Mapper(" (newer)")
    with open_crm(older, newer, Returns(None), clock=clock) as crm:
        result = crm.sync_customer(Customer("C-1", "Acme"))

        assert "Acme (newer)" == result.organization.name
        assert [] == older.seen


def test_organization_from_customer_with_no_answer_is_a_validation_error(
    clock: FixedClock,
) -> None:
    """Nobody maps the object: ValidationError on customer, code unmapped, nothing written."""
    mapper = Mapper()
    with open_crm(mapper, clock=clock) as crm:
        with pytest.raises(ValidationError) as info:
            crm.sync_customer("not a customer")

        assert ("customer", "unmapped", "not a customer") == (
            info.value.field,
            info.value.code,
            info.value.value,
        )
        assert ["not a customer"] == mapper.seen
        assert 0 == crm.organizations.count(archived=None)


@pytest.mark.parametrize(
    "result",
    [{"external_ref": "C-1", "name": "Acme"}, "C-1", [OrganizationDraft("C-1", {"name": "A"})]],
    ids=["dict", "str", "list"],
)
def test_organization_from_customer_returning_something_else_is_a_hook_error(
    clock: FixedClock, result: object
) -> None:
    """Anything but an OrganizationDraft is a HookError naming the plugin."""
    with open_crm(Returns(result), clock=clock) as crm:
        with pytest.raises(HookError) as info:
            crm.sync_customer(object())

        assert "crmkit_organization_from_customer" == info.value.hook
        assert info.value.reason.startswith("Returns: returned ")
        assert 0 == crm.organizations.count(archived=None)


def test_organization_from_customer_raising_is_a_hook_error(clock: FixedClock) -> None:
    """An exception in the mapping is a HookError (not committed) with the cause."""
    with open_crm(Raises(AttributeError("no attribute 'vat'")), clock=clock) as crm:
        with pytest.raises(HookError) as info:
            crm.sync_customer(object())

        assert (False, "Raises: AttributeError: no attribute 'vat'") == (
            info.value.committed,
            info.value.reason,
        )
        assert isinstance(info.value.__cause__, AttributeError)


def test_organization_from_customer_raising_a_validation_error_passes_it_through(
    clock: FixedClock,
) -> None:
    """A plugin may refuse a customer with a ValidationError of its own."""
    error = ValidationError("customer", "has no tax id", code="required")
    with open_crm(Raises(error), clock=clock) as crm:
        with pytest.raises(ValidationError) as info:
            crm.sync_customer(object())

        assert info.value is error


def test_recording_plugin_maps_nothing(clock: FixedClock) -> None:
    """RecordingPlugin answers None: alone, it leaves the customer unmapped."""
    with open_crm(RecordingPlugin(), clock=clock) as crm, pytest.raises(ValidationError):
        crm.sync_customer(Customer("C-1", "Acme"))
