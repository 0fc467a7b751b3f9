"""crm.sync_customer: a host customer becomes an organization with contacts, idempotently.

On every store: the first call creates, later calls update only what changed,
and concurrent calls for the same new customer end with one organization.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest

import crmkit
from crmkit import (
    CRM,
    ContactDraft,
    DuplicateError,
    OrganizationDraft,
    SyncResult,
    ValidationError,
    hookimpl,
)
from crmkit.core.entities import Organization
from crmkit.stores.memory import MemoryStore
from crmkit.testing import RecordingPlugin
from tests.conftest import FixedClock


@attrs.define
class Customer:
    """The host's customer: a row of its own ``customers`` table."""

    number: str
    name: str
    vat: str | None = None
    email: str | None = None
    people: list[tuple[str, str, str | None]] = attrs.Factory(list)  # (id, name, e-mail)


class Erp:
    """The host's plugin: maps its Customer rows to drafts."""

    def __init__(self) -> None:
        self.mapped = 0

    @hookimpl
    def crmkit_organization_from_customer(self, customer: object) -> OrganizationDraft | None:
        if not isinstance(customer, Customer):
            return None
        self.mapped += 1
        return OrganizationDraft(
            external_ref=f"ERP-{customer.number}",
            fields={
                "name": customer.name,
                "tax_id": customer.vat,
                "emails": [customer.email] if customer.email else [],
                "kinds": ["customer"],
            },
            contacts=[
                ContactDraft(f"ERP-P-{pid}", {"first_name": name, "email": email})
                for pid, name, email in customer.people
            ],
        )


def acme() -> Customer:
    """A customer with two people."""
    return Customer(
        "1001",
        "Acme S.A.",
        vat="A12345678",
        email="ventas@acme.es",
        people=[("1", "Ana", "ana@acme.es"), ("2", "Luis", None)],
    )


@pytest.fixture
def recorder() -> RecordingPlugin:
    """A recording plugin."""
    return RecordingPlugin()


@pytest.fixture
def crm(backend_url: str, clock: FixedClock, recorder: RecordingPlugin) -> Iterator[CRM]:
    """A CRM with the ERP plugin and a recorder, on each store in turn."""
    with crmkit.open(backend_url, clock=clock, plugins=[Erp(), recorder]) as crm:
        yield crm


def created_names(recorder: RecordingPlugin) -> list[str]:
    """The created notifications recorded, as ``kind:name``."""
    names = []
    for call in recorder.calls:
        if call.name == "crmkit_organization_created":
            names.append(f"organization:{call.kwargs['organization'].name}")
        elif call.name == "crmkit_contact_created":
            names.append(f"contact:{call.kwargs['contact'].first_name}")
    return names


def versions(crm: CRM, result: SyncResult) -> list[int]:
    """The stored versions of the result's organization and contacts."""
    return [
        crm.organizations.get(result.organization.id).version,
        *[crm.contacts.get(c.id).version for c in result.contacts],
    ]


# ------------------------------------------------------------------ creation


def test_the_first_sync_creates_the_organization_and_its_contacts(
    crm: CRM, recorder: RecordingPlugin
) -> None:
    """Organization and contacts are created with the draft's values and external refs."""
    result = crm.sync_customer(acme())

    org = result.organization
    assert (True, True) == (result.created, result.changed)
    assert ("ERP-1001", "Acme S.A.", "A12345678") == (org.external_ref, org.name, org.tax_id)
    assert ["ventas@acme.es"] == [e.value for e in org.emails]
    assert [("ERP-P-1", "Ana", org.id), ("ERP-P-2", "Luis", org.id)] == [
        (c.external_ref, c.first_name, c.organization_id) for c in result.contacts
    ]
    assert org == crm.organizations.get_by_external_ref("ERP-1001")
    assert list(result.contacts) == crm.contacts.at(org)
    assert ["organization:Acme S.A.", "contact:Ana", "contact:Luis"] == created_names(recorder)


def test_a_second_sync_of_the_same_customer_changes_nothing(
    crm: CRM, recorder: RecordingPlugin
) -> None:
    """Same draft again: created and changed false, no new version, no audit, no notification."""
    first = crm.sync_customer(acme())
    history = len(crm.history(first.organization.id))
    recorder.clear()

    again = crm.sync_customer(acme())

    assert (False, False) == (again.created, again.changed)
    assert (first.organization, first.contacts) == (again.organization, again.contacts)
    assert [1, 1, 1] == versions(crm, again)
    assert history == len(crm.history(first.organization.id))
    assert [] == created_names(recorder)
    assert 1 == crm.organizations.count(archived=None)


def test_a_later_sync_updates_only_what_changed(crm: CRM) -> None:
    """A new name touches the organization alone; its audit entry lists that field only."""
    first = crm.sync_customer(acme())
    renamed = attrs.evolve(acme(), name="Acme Iberia S.A.")

    result = crm.sync_customer(renamed)

    assert (False, True) == (result.created, result.changed)
    assert ("Acme Iberia S.A.", 2) == (result.organization.name, result.organization.version)
    assert [2, 1, 1] == versions(crm, result)
    last = crm.history(first.organization.id)[-1]
    assert ["name"] == [change.field for change in last.changes]


def test_a_later_sync_adds_new_contacts_and_leaves_unlisted_ones(crm: CRM) -> None:
    """A person added in the host is created; one no longer listed stays as it was."""
    first = crm.sync_customer(acme())
    luis = first.contacts[1]
    changed = attrs.evolve(acme(), people=[("1", "Ana", "ana@acme.es"), ("3", "Eva", None)])

    result = crm.sync_customer(changed)

    assert ["Ana", "Eva"] == [c.first_name for c in result.contacts]
    assert [1, 1, 1] == versions(crm, result)
    assert luis == crm.contacts.get(luis.id)
    assert 3 == len(crm.contacts.at(result.organization))


def test_a_contact_matched_by_external_ref_moves_to_the_organization(crm: CRM) -> None:
    """A contact the CRM already had (same external ref) is linked, not duplicated."""
    ana = crm.contacts.create(first_name="Ana", external_ref="ERP-P-1")

    result = crm.sync_customer(acme())

    assert ana.id == result.contacts[0].id
    assert (result.organization.id, "ana@acme.es", 2) == (
        result.contacts[0].organization_id,
        result.contacts[0].email.value if result.contacts[0].email else None,
        result.contacts[0].version,
    )
    assert 2 == crm.contacts.count(archived=None)


def test_an_archived_organization_is_updated_and_stays_archived(crm: CRM) -> None:
    """external_ref matches archived records too: no duplicate appears."""
    first = crm.sync_customer(acme())
    crm.organizations.archive(first.organization.id, expected_version=1)

    result = crm.sync_customer(attrs.evolve(acme(), vat="A87654321"))

    assert (False, True, "A87654321") == (
        result.created,
        result.organization.archived,
        result.organization.tax_id,
    )
    assert 1 == crm.organizations.count(archived=None)


def test_sync_joins_an_enclosing_transaction(crm: CRM, recorder: RecordingPlugin) -> None:
    """Inside crm.transaction() the sync commits with the block, or not at all."""

    class Abandon(Exception):
        pass

    def work() -> None:
        with crm.transaction():
            crm.sync_customer(acme())
            raise Abandon

    with pytest.raises(Abandon):
        work()

    assert (0, 0) == (crm.organizations.count(archived=None), crm.contacts.count(archived=None))
    assert [] == created_names(recorder)


# ------------------------------------------------------------------ errors


def test_an_invalid_contact_leaves_nothing_written(crm: CRM, recorder: RecordingPlugin) -> None:
    """The organization and the first contact are undone when a later contact is invalid."""
    bad = attrs.evolve(acme(), people=[("1", "Ana", "ana@acme.es"), ("2", "Luis", "not-mail")])

    with pytest.raises(ValidationError) as info:
        crm.sync_customer(bad)

    assert "email" == info.value.field
    assert (0, 0) == (crm.organizations.count(archived=None), crm.contacts.count(archived=None))
    assert [] == created_names(recorder)


def test_a_validation_hook_veto_applies_to_the_sync(crm: CRM) -> None:
    """crmkit_validate_organization sees the synced organization and may refuse it."""

    class NoVat:
        @hookimpl
        def crmkit_validate_organization(self, organization: Organization) -> None:
            if organization.tax_id is None:
                raise ValidationError("tax_id", "customers need a VAT number", code="policy")

    crm.plugins.register(NoVat())

    with pytest.raises(ValidationError) as info:
        crm.sync_customer(attrs.evolve(acme(), vat=None))

    assert ("tax_id", "policy") == (info.value.field, info.value.code)
    assert 0 == crm.organizations.count(archived=None)


class Fixed:
    """Answers one fixed draft."""

    def __init__(self, draft: OrganizationDraft) -> None:
        self.draft = draft

    @hookimpl
    def crmkit_organization_from_customer(self) -> OrganizationDraft:
        return self.draft


@pytest.mark.parametrize(
    ("draft", "field", "code"),
    [
        (
            OrganizationDraft("C-1", {"name": "Acme", "colour": "red"}),
            "fields.colour",
            "unknown_field",
        ),
        (OrganizationDraft("C-1", {"tax_id": "A1"}), "fields.name", "required"),
        (
            OrganizationDraft("C-1", {"name": "Acme"}, [ContactDraft("P-1", {"last_name": "P"})]),
            "contacts[0].fields.first_name",
            "required",
        ),
        (
            OrganizationDraft(
                "C-1",
                {"name": "Acme"},
                [ContactDraft("P-1", {"first_name": "A", "organization": None})],
            ),
            "contacts[0].fields.organization",
            "conflict",
        ),
        (
            OrganizationDraft(
                "C-1", {"name": "Acme"}, [ContactDraft("P-1", {"first_name": "A", "x": 1})]
            ),
            "contacts[0].fields.x",
            "unknown_field",
        ),
    ],
    ids=[
        "unknown-field",
        "no-name",
        "contact-no-first-name",
        "contact-organization",
        "contact-unknown",
    ],
)
def test_a_draft_the_services_cannot_take_is_refused_before_writing(
    clock: FixedClock, draft: OrganizationDraft, field: str, code: str
) -> None:
    """Unknown, missing or sync-owned arguments are ValidationErrors naming the draft's path."""
    with crmkit.open(":memory:", clock=clock, plugins=[Fixed(draft)]) as crm:
        with pytest.raises(ValidationError) as info:
            crm.sync_customer(object())

        assert (field, code) == (info.value.field, info.value.code)
        assert 0 == crm.organizations.count(archived=None)


# ------------------------------------------------------------------ drafts


def test_drafts_normalize_their_external_ref_and_freeze_their_fields() -> None:
    """external_ref is stripped; fields are a read-only copy; contacts a tuple."""
    fields: dict[str, Any] = {"name": "Acme"}
    draft = OrganizationDraft(" C-1 ", fields, [ContactDraft("P-1", {"first_name": "Ana"})])
    fields["name"] = "Changed"

    assert ("C-1", "Acme", 1) == (draft.external_ref, draft.fields["name"], len(draft.contacts))
    assert isinstance(draft.contacts, tuple)
    with pytest.raises(TypeError):
        draft.fields["name"] = "Other"  # type: ignore[index]


@pytest.mark.parametrize(
    ("build", "field", "code"),
    [
        (lambda: OrganizationDraft("", {"name": "A"}), "external_ref", "required"),
        (lambda: OrganizationDraft(7, {"name": "A"}), "external_ref", "type"),
        (lambda: OrganizationDraft("C-1", ["name"]), "fields", "type"),
        (
            lambda: OrganizationDraft("C-1", {"external_ref": "X"}),
            "fields.external_ref",
            "conflict",
        ),
        (lambda: OrganizationDraft("C-1", {}, ["P-1"]), "contacts[0]", "type"),
        (lambda: OrganizationDraft("C-1", {}, ContactDraft("P-1")), "contacts", "type"),
        (
            lambda: OrganizationDraft("C-1", {}, [ContactDraft("P-1"), ContactDraft("P-1")]),
            "contacts[1].external_ref",
            "conflict",
        ),
        (lambda: ContactDraft("  "), "external_ref", "required"),
    ],
    ids=[
        "empty-ref",
        "int-ref",
        "list-fields",
        "ref-in-fields",
        "str-contact",
        "bare-contact",
        "twice",
        "blank-contact-ref",
    ],
)
def test_drafts_refuse_bad_values(build: Any, field: str, code: str) -> None:
    """A draft that cannot be synced is a ValidationError when it is built."""
    with pytest.raises(ValidationError) as info:
        build()

    assert (field, code) == (info.value.field, info.value.code)


# ------------------------------------------------------------------ concurrency


class Racing(Erp):
    """The ERP plugin, plus a validator that holds every creation until all threads arrive.

    The threads then insert the same new organization at the same moment.  Where
    the store lets only one write at a time (SQLite, the memory store), the first
    thread waits in vain: the barrier times out and the writes run one by one.
    """

    def __init__(self, barrier: threading.Barrier) -> None:
        super().__init__()
        self.barrier = barrier

    @hookimpl
    def crmkit_validate_organization(self, previous: Organization | None) -> None:
        if previous is None:
            with contextlib.suppress(threading.BrokenBarrierError):
                self.barrier.wait(timeout=2)


THREADS = 4


@pytest.mark.parametrize("round_", range(2))
def test_concurrent_syncs_of_a_new_customer_make_one_organization(
    backend_url: str, tmp_path: Path, round_: int
) -> None:
    """Four CRMs (own connections) sync the same new customer at once: one organization,
    two contacts, one creator; the others end as updates that change nothing."""
    barrier = threading.Barrier(THREADS)
    shared = MemoryStore() if backend_url == ":memory:" else None
    crms = [
        crmkit.open(
            backend_url if shared is None else None, store=shared, plugins=[Racing(barrier)]
        )
        for _ in range(THREADS)
    ]
    results: list[SyncResult] = []
    errors: list[BaseException] = []

    def sync(crm: CRM) -> None:
        try:
            results.append(crm.sync_customer(acme()))
        except BaseException as exc:  # reported below, not lost in the thread
            errors.append(exc)

    threads = [threading.Thread(target=sync, args=(crm,)) for crm in crms]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)

        assert [] == errors
        if backend_url.startswith("postgresql"):  # all four inserted at once: a real race
            assert not barrier.broken
        assert [True, False, False, False] == sorted((r.created for r in results), reverse=True)
        assert 1 == len({r.organization.id for r in results})
        check = crms[0]
        assert 1 == check.organizations.count(archived=None)
        assert 2 == check.contacts.count(archived=None)
        assert [1, 1, 1] == versions(check, results[0])
    finally:
        for crm in crms:
            crm.close()


def test_a_duplicate_that_keeps_coming_back_is_raised_after_the_retries(
    clock: FixedClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """sync_customer retries a lost race a few times, then lets the DuplicateError through."""
    with crmkit.open(":memory:", clock=clock, plugins=[Erp()]) as crm:
        attempts: list[int] = []

        def always_taken(draft: OrganizationDraft) -> SyncResult:
            attempts.append(1)
            raise DuplicateError("organization", "external_ref", draft.external_ref)

        monkeypatch.setattr(crm, "_sync", always_taken)

        with pytest.raises(DuplicateError):
            crm.sync_customer(acme())

        assert crmkit.app.SYNC_ATTEMPTS == len(attempts)
