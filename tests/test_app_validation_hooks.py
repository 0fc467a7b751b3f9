"""Vetoes and failing hooks on every store: what is left in the tables, the audit and the plugins.

The "done means" of the plugin issue: a hook raising inside a transaction
leaves 0 rows, 0 audit entries and 0 notifications; a notification hook
raising after commit leaves the data committed and the other plugins notified.
"""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa

import crmkit
from crmkit import CRM, Contact, HookError, Organization, ValidationError, hookimpl
from crmkit.stores.memory import MemoryStore
from crmkit.stores.sql import SqlStore
from crmkit.testing import RecordingPlugin
from tests.conftest import record_counts


class Boom(Exception):
    """Raised by a test to abandon a block."""


class RefuseName:
    """Vetoes organizations and contacts whose name is ``name``; or fails with ``error``."""

    def __init__(self, name: str, error: Exception | None = None) -> None:
        self.name = name
        self.error = error

    def _check(self, name: str) -> None:
        if name == self.name:
            raise self.error or ValidationError("name", "is on the blocklist", code="policy")

    @hookimpl
    def crmkit_validate_organization(self, organization: Organization) -> None:
        self._check(organization.name)

    @hookimpl
    def crmkit_validate_contact(self, contact: Contact) -> None:
        self._check(contact.first_name)


class FailingNotifications:
    """Notifications that raise, counting their calls."""

    def __init__(self) -> None:
        self.calls = 0

    @hookimpl
    def crmkit_organization_created(self) -> None:
        self.calls += 1
        raise ConnectionError("ERP unreachable")

    @hookimpl
    def crmkit_case_opened(self) -> None:
        self.calls += 1
        raise ConnectionError("pager down")


def audit_rows(crm: CRM) -> int:
    """How many audit entries the store holds, whatever records they are about."""
    store = crm.store
    if isinstance(store, SqlStore):
        with store.engine.connect() as conn:
            return int(conn.execute(sa.text("SELECT count(*) FROM audit_log")).scalar_one())
    assert isinstance(store, MemoryStore)
    return len(store._state.audit)  # the memory store has no public count of its audit


def state(crm: CRM) -> dict[str, Any]:
    """Every count a veto must leave alone: records of each kind and audit entries."""
    return {
        **record_counts(crm),
        "interactions": crm.interactions.count(archived=None),
        "leads": crm.leads.count(archived=None),
        "cases": crm.cases.count(archived=None),
        "audit": audit_rows(crm),
    }


def notifications(recorder: RecordingPlugin) -> list[str]:
    """The notifications recorded (validation and registration hooks left out)."""
    return [
        name
        for name in recorder.names()
        if not name.startswith(("crmkit_validate_", "crmkit_register_"))
    ]


@pytest.fixture
def recorder(any_crm: CRM) -> RecordingPlugin:
    """A recording plugin registered on ``any_crm``."""
    plugin = RecordingPlugin()
    any_crm.plugins.register(plugin)
    return plugin


@pytest.mark.parametrize(
    "error",
    [ValidationError("name", "is on the blocklist", code="policy"), RuntimeError("rules down")],
    ids=["veto", "hook-error"],
)
def test_a_hook_raising_inside_a_transaction_leaves_no_row_audit_or_notification(
    any_crm: CRM, recorder: RecordingPlugin, error: Exception
) -> None:
    """Three records written, the fourth refused: the block leaves nothing at all."""
    any_crm.plugins.register(RefuseName("Intruder", error))
    before = state(any_crm)
    recorder.clear()

    def work() -> None:
        with any_crm.transaction():
            acme = any_crm.organizations.create(name="Acme")
            any_crm.contacts.create(first_name="Ana", organization=acme)
            any_crm.cases.open(subject="Broken", case_type="claim", organization=acme)
            any_crm.organizations.create(name="Intruder")

    with pytest.raises((ValidationError, HookError)) as info:
        work()

    assert before == state(any_crm)
    assert [] == notifications(recorder)
    if isinstance(error, ValidationError):
        assert info.value is error
    else:
        assert isinstance(info.value, HookError)
        assert ("crmkit_validate_organization", False) == (info.value.hook, info.value.committed)


def test_a_veto_of_a_single_write_leaves_no_row_audit_or_notification(
    any_crm: CRM, recorder: RecordingPlugin
) -> None:
    """Outside a transaction, a refused create and a refused update change nothing."""
    any_crm.plugins.register(RefuseName("Intruder"))
    acme = any_crm.organizations.create(name="Acme")
    before = state(any_crm)
    recorder.clear()

    with pytest.raises(ValidationError):
        any_crm.organizations.create(name="Intruder")
    with pytest.raises(ValidationError):
        any_crm.organizations.update(acme.id, expected_version=1, name="Intruder")
    with pytest.raises(ValidationError):
        any_crm.contacts.bulk_create([{"first_name": "Ana"}, {"first_name": "Intruder"}])

    assert before == state(any_crm)
    assert acme == any_crm.organizations.get(acme.id)
    assert [] == notifications(recorder)


def test_a_veto_caught_inside_a_transaction_undoes_only_that_write(
    any_crm: CRM, recorder: RecordingPlugin
) -> None:
    """The refused write is a savepoint: the rest of the block commits and is announced."""
    any_crm.plugins.register(RefuseName("Intruder"))
    before = state(any_crm)
    recorder.clear()

    with any_crm.transaction():
        any_crm.organizations.create(name="Acme")
        with pytest.raises(ValidationError):
            any_crm.organizations.create(name="Intruder")
        any_crm.organizations.create(name="Bolt")

    assert ["Acme", "Bolt"] == [o.name for o in any_crm.organizations.find(order_by="name")]
    assert before["audit"] + 2 == audit_rows(any_crm)
    assert ["crmkit_organization_created"] * 2 == notifications(recorder)


def test_a_notification_raising_after_commit_keeps_the_data_and_notifies_the_others(
    any_crm: CRM,
) -> None:
    """The write returns; rows and audit stay; every other plugin heard every change."""
    failing = FailingNotifications()
    any_crm.plugins.register(failing)
    recorder = RecordingPlugin()  # registered after: pluggy calls it first
    any_crm.plugins.register(recorder)
    before = state(any_crm)

    with any_crm.transaction() as tx:
        acme = any_crm.organizations.create(name="Acme")
        case = any_crm.cases.open(subject="Broken", case_type="claim", organization=acme)

    after = state(any_crm)
    assert (before["organizations"] + 1, before["cases"] + 1) == (
        after["organizations"],
        after["cases"],
    )
    assert before["audit"] + 2 == after["audit"]
    assert ["crmkit_organization_created", "crmkit_case_opened"] == notifications(recorder)
    assert 2 == failing.calls
    assert tx.delivery is not None
    assert [
        ("crmkit_organization_created", "FailingNotifications"),
        ("crmkit_case_opened", "FailingNotifications"),
    ] == [(f.hook, f.plugin) for f in tx.delivery.failures]
    assert case == any_crm.cases.get(case.id)


def test_plugins_registered_before_a_failing_notification_are_notified(any_crm: CRM) -> None:
    """Order does not matter: a plugin pluggy calls after the failing one still hears."""
    recorder = RecordingPlugin()
    any_crm.plugins.register(recorder)
    any_crm.plugins.register(FailingNotifications())

    acme = any_crm.organizations.create(name="Acme")

    assert [acme] == [
        c.kwargs["organization"] for c in recorder.calls_to("crmkit_organization_created")
    ]
    assert ["crmkit_organization_created"] == [f.hook for f in any_crm.last_delivery.failures]


def test_a_hook_error_inside_a_transaction_can_be_caught_and_the_rest_committed(
    any_crm: CRM,
) -> None:
    """A validator failing with a non-crmkit error is a HookError the block may catch."""
    any_crm.plugins.register(RefuseName("Intruder", KeyError("rules")))

    with any_crm.transaction():
        any_crm.organizations.create(name="Acme")
        with pytest.raises(HookError):
            any_crm.organizations.create(name="Intruder")

    assert ["Acme"] == [o.name for o in any_crm.organizations.find()]


def test_strict_notification_errors_on_a_store_keep_the_data(backend_url: str) -> None:
    """notification_errors="raise": the caller gets HookError(committed=True), rows stay."""
    with crmkit.open(
        backend_url, plugins=[FailingNotifications()], notification_errors="raise"
    ) as crm:
        with pytest.raises(HookError) as info:
            crm.organizations.create(name="Acme", external_ref="C-1")

        assert info.value.committed
        assert "Acme" == crm.organizations.get_by_external_ref("C-1").name
