"""Merging duplicates: the plan (dry run), the merge in one transaction, the exact undo."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from attrs import frozen

import crmkit
from crmkit import ConcurrencyError, Contact, Money, NotFoundError, Organization, ValidationError
from crmkit.core.entities import Entity
from crmkit.core.merge import MergeJournal
from crmkit.core.query import Query
from crmkit.stores.schema import ENTITY_TYPES
from tests.conftest import FixedClock


@frozen
class Book:
    acme: Organization
    acme_copy: Organization
    ana: Contact
    ana_copy: Contact
    luis: Contact


def book(crm: crmkit.CRM) -> Book:
    acme = crm.organizations.create(name="Acme S.A.", tax_id="A12345678")
    acme_copy = crm.organizations.create(
        name="ACME SL", website="https://acme.es", phones=["911234567"], tags=["feria"]
    )
    ana = crm.contacts.create(first_name="Ana", last_name="Pérez", organization=acme)
    ana_copy = crm.contacts.create(
        first_name="Ana",
        last_name="Perez",
        email="ana@acme.es",
        phones=["612345678"],
        organization=acme_copy,
        tags=["vip"],
    )
    luis = crm.contacts.create(first_name="Luis", last_name="Gómez", organization=acme_copy)
    crm.interactions.log(kind="call", organization=acme_copy, contact=ana_copy, subject="Demo")
    opportunity = crm.opportunities.create(
        name="Renting", organization=acme_copy, contact=ana_copy, amount=Money("1200", "EUR")
    )
    crm.cases.open(subject="Factura", case_type="claim", contact=ana_copy, opportunity=opportunity)
    lead = crm.leads.create(first_name="Ana", company="Acme", email="ana@acme.es")
    crm.leads.convert(lead.id, organization=acme_copy, contact=ana_copy)
    return Book(acme, acme_copy, ana, ana_copy, luis)


def every_record(crm: crmkit.CRM) -> dict[str, list[Entity]]:
    """Every table but the merge journal, read through the store, by id."""

    def read(uow: Any) -> dict[str, list[Entity]]:
        return {
            cls.ENTITY: sorted(uow.repository(cls).find(Query(archived=None)), key=lambda e: e.id)
            for cls in ENTITY_TYPES
            if cls is not MergeJournal
        }

    return crm._read(read)


def test_a_plan_is_a_dry_run_that_shows_fields_and_repoints(any_crm: crmkit.CRM) -> None:
    b = book(any_crm)
    before = every_record(any_crm)

    plan = any_crm.duplicates.plan_merge(b.ana.id, [b.ana_copy.id])

    assert before == every_record(any_crm)
    assert b.ana == plan.survivor
    assert {
        "email": b.ana_copy.email,
        "phones": b.ana_copy.phones,
        "tags": ("vip",),
    } == plan.changes
    assert {"filled"} == {c.rule for c in plan.fields if c.field == "email"}
    assert [
        ("case", "contact_id"),
        ("interaction", "contact_id"),
        ("lead", "contact_id"),
        (
            "opportunity",
            "contact_id",
        ),
    ] == [(r.entity, r.field) for r in plan.repoints]


def test_merge_repoints_archives_and_journals(any_crm: crmkit.CRM) -> None:
    b = book(any_crm)

    journal = any_crm.duplicates.merge(
        any_crm.duplicates.plan_merge(b.acme.id, [b.acme_copy.id], entity="organization")
    )

    assert (b.acme.id, (b.acme_copy.id,)) == (journal.survivor_id, journal.merged)
    assert any_crm.organizations.get(b.acme_copy.id).archived
    survivor = any_crm.organizations.get(b.acme.id)
    assert ("A12345678", "https://acme.es") == (survivor.tax_id, survivor.website)
    assert {b.ana.id, b.ana_copy.id, b.luis.id} == {c.id for c in any_crm.contacts.at(survivor)}
    assert [b.acme.id] == [i.organization_id for i in any_crm.interactions.find()]
    assert [b.acme.id] == [o.organization_id for o in any_crm.opportunities.find()]
    assert [b.acme.id] == [lead.organization_id for lead in any_crm.leads.find()]
    assert any(e.action.value == "archive" for e in any_crm.history(b.acme_copy.id))


def test_undo_restores_every_table_exactly(any_crm: crmkit.CRM, clock: FixedClock) -> None:
    b = book(any_crm)
    before = every_record(any_crm)
    clock.advance(hours=1)
    contacts = any_crm.duplicates.merge(any_crm.duplicates.plan_merge(b.ana.id, [b.ana_copy.id]))
    organizations = any_crm.duplicates.merge(
        any_crm.duplicates.plan_merge(b.acme.id, [b.acme_copy.id], entity="organization")
    )
    assert before != every_record(any_crm)
    clock.advance(hours=1)

    undone = any_crm.duplicates.undo(organizations.id)
    any_crm.duplicates.undo(contacts.id)

    assert before == every_record(any_crm)
    assert undone.undone_at == clock.current


def test_undo_on_sqlite_restores_every_row_of_every_table(tmp_path: Path) -> None:
    path = tmp_path / "crm.db"
    with crmkit.open(str(path), default_region="ES") as crm:
        b = book(crm)
    before = _dump(path)
    with crmkit.open(str(path), default_region="ES") as crm:
        journal = crm.duplicates.merge(
            crm.duplicates.plan_merge(b.acme.id, [b.acme_copy.id], entity="organization")
        )
        crm.duplicates.undo(journal.id)

    assert before == _dump(path)


def _dump(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table but the audit trail and the merge journal."""
    engine = sa.create_engine(f"sqlite:///{path}")
    try:
        with engine.connect() as conn:
            names = sa.inspect(conn).get_table_names()
            return {
                name: sorted(tuple(row) for row in conn.exec_driver_sql(f'SELECT * FROM "{name}"'))
                for name in names
                if name not in ("audit_log", "merges")
            }
    finally:
        engine.dispose()


def test_undo_twice_is_refused(crm: crmkit.CRM) -> None:
    b = book(crm)
    journal = crm.duplicates.merge(crm.duplicates.plan_merge(b.ana.id, [b.ana_copy.id]))
    crm.duplicates.undo(journal.id)

    with pytest.raises(ValidationError) as error:
        crm.duplicates.undo(journal.id)

    assert ("merge", "undone") == (error.value.field, error.value.code)


def test_undo_after_a_touched_record_changed_is_refused_and_changes_nothing(
    crm: crmkit.CRM,
) -> None:
    b = book(crm)
    journal = crm.duplicates.merge(crm.duplicates.plan_merge(b.ana.id, [b.ana_copy.id]))
    survivor = crm.contacts.get(b.ana.id)
    crm.contacts.update(survivor.id, expected_version=survivor.version, department="Compras")
    after = every_record(crm)

    with pytest.raises(ConcurrencyError):
        crm.duplicates.undo(journal.id)

    assert after == every_record(crm)


def test_a_stale_plan_is_refused(crm: crmkit.CRM) -> None:
    b = book(crm)
    plan = crm.duplicates.plan_merge(b.ana.id, [b.ana_copy.id])
    crm.contacts.update(b.ana_copy.id, expected_version=b.ana_copy.version, department="IT")
    before = every_record(crm)

    with pytest.raises(ConcurrencyError):
        crm.duplicates.merge(plan)

    assert before == every_record(crm)


def test_choose_takes_a_field_from_a_merged_record(crm: crmkit.CRM) -> None:
    b = book(crm)

    crm.duplicates.merge(
        crm.duplicates.plan_merge(b.ana.id, [b.ana_copy.id], choose={"last_name": b.ana_copy.id})
    )

    assert "Perez" == crm.contacts.get(b.ana.id).last_name


@pytest.mark.parametrize(
    ("arguments", "field", "code"),
    [
        ({"choose": {"id": "x"}}, "choose.id", "unknown_field"),
        ({"entity": "lead"}, "entity", "choice"),
    ],
)
def test_bad_plans_are_refused(
    crm: crmkit.CRM, arguments: dict[str, Any], field: str, code: str
) -> None:
    b = book(crm)

    with pytest.raises(ValidationError) as error:
        crm.duplicates.plan_merge(b.ana.id, [b.ana_copy.id], **arguments)

    assert (field, code) == (error.value.field, error.value.code)


def test_the_survivor_cannot_be_merged_into_itself(crm: crmkit.CRM) -> None:
    b = book(crm)

    with pytest.raises(ValidationError) as error:
        crm.duplicates.plan_merge(b.ana.id, [b.ana.id])

    assert "merged" == error.value.field


def test_undo_of_an_unknown_merge_is_not_found(crm: crmkit.CRM) -> None:
    with pytest.raises(NotFoundError):
        crm.duplicates.undo(crmkit.core.ids.uuid7())
