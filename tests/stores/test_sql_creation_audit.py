"""On SQLite, runs of creations are audited by SQL from the stored rows.

The JSON SQLite builds must be the changes ``crmkit.app`` computes in Python,
for every entity type it handles, whatever the values; a record changed
before the audit is written, or SQL that disagrees, falls back to Python; and
entries keep the order they were appended in.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crmkit import AuditAction, AuditChange, Contact, Organization
from crmkit.app import _created_changes
from crmkit.core.custom_fields import CustomValues
from crmkit.core.entities import Entity, Market, Position, Source, User, Zone
from crmkit.core.ids import ContactId, OrganizationId, UserId, uuid7
from crmkit.serialization import converter
from crmkit.stores import sql
from crmkit.stores.schema import TABLES, created_changes_sql
from crmkit.stores.sql import SQL_AUDIT_MIN_RUN, SqlStore, sqlite_url
from tests.strategies import entity_of

NOW = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
BY_SQL = [cls for cls in TABLES if created_changes_sql(cls, "t") is not None]
#: the types tests.strategies draws
DRAWN = [c for c in (Organization, Contact, User, Source, Market, Position, Zone) if c in BY_SQL]


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqlStore]:
    store = SqlStore(sqlite_url(tmp_path / "audit.db"))
    yield store
    store.close()


@pytest.fixture
def by_sql(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, bool]]:
    """Each run of creations offered to SQL: (its length, whether SQL wrote it)."""
    runs: list[tuple[int, bool]] = []
    original = sql._SqlAudit._insert_by_sql

    def spy(self: Any, cursor: Any, run: list[Any]) -> bool:
        written = original(self, cursor, run)
        runs.append((len(run), written))
        return written

    monkeypatch.setattr(sql._SqlAudit, "_insert_by_sql", spy)
    return runs


def _reference(entity: Entity) -> list[AuditChange]:
    """A creation's audit changes as Python computes them, field by field."""
    changes = []
    for field in attrs.fields(type(entity)):
        if not field.init or field.name in Entity.SYSTEM_FIELDS:
            continue
        value = getattr(entity, field.name)
        if value is None or value is False or value in ((), frozenset(), CustomValues()):
            continue
        changes.append(AuditChange(field.name, None, converter.unstructure(value)))
    return changes


def _targets() -> dict[type[Entity], Entity]:
    """One record of each type records refer to."""
    common: dict[str, Any] = {"created_at": NOW, "updated_at": NOW, "name": "Target"}
    made: dict[type[Entity], Entity] = {
        User: User(id=UserId(uuid7()), **common),
        Organization: Organization(id=OrganizationId(uuid7()), **common),
    }
    for cls in (Source, Market, Position, Zone):
        master: Any = cls
        made[cls] = master(id=uuid7(), key="target", **common)
    return made


def _fresh(entity: Entity, n: int, targets: dict[type[Entity], Entity]) -> Entity:
    """``entity`` as a new record: own id and key, created at NOW, referring to ``targets``."""
    values: dict[str, Any] = {
        name: None if getattr(entity, name) is None else targets[cls].id
        for name, cls in type(entity).REFERENCES.items()
    }
    if "key" in attrs.fields_dict(type(entity)):
        values["key"] = f"k{n}"
    return attrs.evolve(
        entity,
        id=uuid7(),
        version=1,
        created_at=NOW,
        updated_at=NOW,
        external_ref=None if entity.external_ref is None else f"ERP-{n}",
        archived=False,
        **values,
    )


def _append(uow: Any, entity: Entity, actor: str | None = "ana") -> None:
    uow.audit.append(
        entity=entity.ENTITY,
        entity_id=entity.id,
        version=entity.version,
        action=AuditAction.CREATE,
        changes=_created_changes(entity),
        actor=actor,
        at=entity.updated_at,
    )


def test_organizations_contacts_users_and_masters_are_audited_by_sql() -> None:
    """The entity types bulk-created most are the ones SQL can audit."""
    assert {Organization, Contact, User, Market} <= set(BY_SQL)


def test_sql_audits_each_creation_with_the_changes_python_computes(
    store: SqlStore, by_sql: list[tuple[int, bool]]
) -> None:
    """Random records of every type SQL handles: history holds Python's changes."""

    @settings(max_examples=60)
    @given(
        data=st.data(),
        cls=st.sampled_from(DRAWN),
        size=st.integers(SQL_AUDIT_MIN_RUN, SQL_AUDIT_MIN_RUN + 4),
    )
    def check(data: st.DataObject, cls: type[Entity], size: int) -> None:
        drawn = data.draw(st.lists(entity_of(cls), min_size=size, max_size=size))
        targets = _targets()
        records = [_fresh(e, n, targets) for n, e in enumerate(drawn)]
        with store.unit_of_work() as uow:
            for target in targets.values():
                uow.repository(type(target)).add(target)
            uow.repository(cls).add_many(records)
            for record in records:
                _append(uow, record)
            for record in records:
                (entry,) = uow.audit.history(record.id)
                assert (AuditAction.CREATE, 1, "ana") == (entry.action, entry.version, entry.actor)
                assert NOW == entry.at
                assert _reference(record) == list(entry.changes)

    check()
    assert by_sql
    assert all(written for _, written in by_sql)


def test_references_are_audited_as_canonical_ids(
    store: SqlStore, by_sql: list[tuple[int, bool]]
) -> None:
    """A reference is audited as the id's hyphenated text, as the converter writes it."""
    market = _targets()[Market]
    assert isinstance(market, Market)
    records = [
        Organization(
            id=OrganizationId(uuid7()),
            created_at=NOW,
            updated_at=NOW,
            name=f"Org {n}",
            market_id=market.id,
        )
        for n in range(SQL_AUDIT_MIN_RUN)
    ]
    with store.unit_of_work() as uow:
        uow.repository(Market).add(market)
        uow.repository(Organization).add_many(records)
        for record in records:
            _append(uow, record)

        (entry,) = uow.audit.history(records[-1].id)

    assert AuditChange("market_id", None, str(market.id)) in entry.changes
    assert [(SQL_AUDIT_MIN_RUN, True)] == by_sql


def test_a_record_changed_before_the_audit_is_written_keeps_its_creation_values(
    store: SqlStore, by_sql: list[tuple[int, bool]]
) -> None:
    """Created then renamed in one unit of work: the creation holds the first name."""
    records = [
        Organization(id=OrganizationId(uuid7()), created_at=NOW, updated_at=NOW, name=f"Org {n}")
        for n in range(SQL_AUDIT_MIN_RUN)
    ]
    with store.unit_of_work() as uow:
        repo = uow.repository(Organization)
        repo.add_many(records)
        for record in records:
            _append(uow, record)
        for n in (0, 5):  # the first of the run (checked), then one in the middle
            renamed = attrs.evolve(records[n], name="Renamed", version=2)
            repo.update(renamed, expected_version=1)

            assert (
                AuditChange("name", None, f"Org {n}") in uow.audit.history(records[n].id)[0].changes
            )
        uow.commit()
    assert [(SQL_AUDIT_MIN_RUN, False)] == by_sql  # the first changed: Python wrote the run


def test_a_record_changed_inside_the_run_makes_python_write_the_run(
    store: SqlStore, by_sql: list[tuple[int, bool]]
) -> None:
    """Only the fifth record changed: SQL's insert fails whole, Python writes every entry."""
    records = [
        Organization(id=OrganizationId(uuid7()), created_at=NOW, updated_at=NOW, name=f"Org {n}")
        for n in range(SQL_AUDIT_MIN_RUN)
    ]
    with store.unit_of_work() as uow:
        repo = uow.repository(Organization)
        repo.add_many(records)
        for record in records:
            _append(uow, record)
        repo.update(attrs.evolve(records[4], name="Renamed", version=2), expected_version=1)

        histories = [uow.audit.history(r.id) for r in records]

    assert [(SQL_AUDIT_MIN_RUN, False)] == by_sql
    assert [_reference(r) for r in records] == [list(h[0].changes) for h in histories]
    assert [1] * SQL_AUDIT_MIN_RUN == [len(h) for h in histories]


def test_entries_keep_the_order_they_were_appended_in(
    store: SqlStore, by_sql: list[tuple[int, bool]]
) -> None:
    """Runs by SQL, short runs and other entries interleave in append order (seq)."""
    orgs = [
        Organization(id=OrganizationId(uuid7()), created_at=NOW, updated_at=NOW, name=f"Org {n}")
        for n in range(SQL_AUDIT_MIN_RUN + 2)
    ]
    people = [
        Contact(id=ContactId(uuid7()), created_at=NOW, updated_at=NOW, first_name=f"Ana {n}")
        for n in range(SQL_AUDIT_MIN_RUN)
    ]
    with store.unit_of_work() as uow:
        uow.repository(Organization).add_many(orgs)
        uow.repository(Contact).add_many(people)
        for record in orgs[:SQL_AUDIT_MIN_RUN]:
            _append(uow, record)
        uow.audit.append(
            entity="organization",
            entity_id=orgs[0].id,
            version=2,
            action=AuditAction.UPDATE,
            changes=(AuditChange("name", "Org 0", "Acme"),),
            actor="ana",
            at=NOW,
        )
        _append(uow, orgs[-2], actor="luis")  # another actor: a run of its own
        _append(uow, orgs[-1])
        for person in people:
            _append(uow, person)

        appended = [
            *((r.id, AuditAction.CREATE) for r in orgs[:SQL_AUDIT_MIN_RUN]),
            (orgs[0].id, AuditAction.UPDATE),
            (orgs[-2].id, AuditAction.CREATE),
            (orgs[-1].id, AuditAction.CREATE),
            *((r.id, AuditAction.CREATE) for r in people),
        ]
        entries = [e for r in [*orgs, *people] for e in uow.audit.history(r.id)]

    assert appended == [(e.entity_id, e.action) for e in sorted(entries, key=lambda e: e.seq)]
    assert [(SQL_AUDIT_MIN_RUN, True), (SQL_AUDIT_MIN_RUN, True)] == by_sql


def test_sql_that_disagrees_with_python_is_not_used_again(
    store: SqlStore, by_sql: list[tuple[int, bool]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """If SQL's JSON for the first record differs, Python writes and the type's plan is dropped."""
    plan = sql._creation_plan(Organization)
    assert plan is not None
    wrong = sql._CreationPlan(Organization, "'[]'")
    monkeypatch.setitem(sql._creation_plans, Organization, wrong)
    records = [
        Organization(id=OrganizationId(uuid7()), created_at=NOW, updated_at=NOW, name=f"Org {n}")
        for n in range(SQL_AUDIT_MIN_RUN)
    ]
    with store.unit_of_work() as uow:
        uow.repository(Organization).add_many(records)
        for record in records:
            _append(uow, record)

        histories = [list(uow.audit.history(r.id)[0].changes) for r in records]

    assert [_reference(r) for r in records] == histories
    assert [(SQL_AUDIT_MIN_RUN, False)] == by_sql
    assert sql._creation_plans[Organization] is None
