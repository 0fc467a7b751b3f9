"""Merging duplicate contacts or organizations, and undoing a merge (``crm.duplicates``).

:func:`plan_merge` reads and computes, writing nothing (the dry run).
:func:`execute_merge` runs a plan in one transaction: the survivor takes its
chosen fields, every related record (any reference to a merged record, in
every entity type: contacts, interactions, opportunities, cases, leads,
sub-organizations) is re-pointed to the survivor, the merged records are
archived, each change is audited, and a :class:`~crmkit.core.merge.MergeJournal`
entry keeps every touched record as it was.  :func:`undo_merge` writes those
records back exactly (same field values, versions and timestamps), after
checking that none changed since the merge.

.. versionadded:: 0.1
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any
from uuid import UUID

import attrs

from crmkit.core import changes
from crmkit.core.audit import AuditAction, AuditChange
from crmkit.core.entities import Contact, Entity, Organization
from crmkit.core.errors import ConcurrencyError, ValidationError
from crmkit.core.ids import uuid7
from crmkit.core.merge import MergeJournal, MergePlan, Repoint, merged_fields
from crmkit.core.query import Eq, Query
from crmkit.services.base import Event, _check_uuid, _expect
from crmkit.stores.base import UnitOfWork

if TYPE_CHECKING:
    from crmkit.app import CRM

__all__ = ["execute_merge", "plan_merge", "undo_merge"]


def _entity_types() -> tuple[type[Entity], ...]:
    from crmkit.stores.schema import ENTITY_TYPES

    return ENTITY_TYPES


def entity_class(entity: object) -> type[Contact] | type[Organization]:
    """The class of ``"contact"`` or ``"organization"``.

    Raises:
        ValidationError: anything else (field ``entity``, code ``choice``).
    """
    if entity == "contact":
        return Contact
    if entity == "organization":
        return Organization
    raise ValidationError(
        "entity", 'must be "contact" or "organization"', code="choice", value=entity
    )


def plan_merge(
    crm: CRM,
    entity: str,
    survivor: UUID,
    merged: Sequence[UUID],
    choose: Mapping[str, UUID] | None = None,
) -> MergePlan:
    """The plan of merging ``merged`` into ``survivor``; nothing is written.

    Raises:
        ValidationError: an unknown entity, no record to merge, the survivor
            among the merged, a bad ``choose``.
        NotFoundError: a record does not exist.
    """
    cls = entity_class(entity)
    _check_uuid(survivor, "survivor")
    if not isinstance(merged, list | tuple) or not merged:
        raise ValidationError("merged", "must list the ids of the records to merge", value=merged)
    for i, other in enumerate(merged):
        _check_uuid(other, f"merged[{i}]")
    if survivor in merged or len(set(merged)) != len(merged):
        raise ValidationError(
            "merged", "must list other records than the survivor, once each", value=merged
        )

    def read(uow: UnitOfWork) -> MergePlan:
        repo = uow.repository(cls)
        kept = repo.get(survivor)
        others = tuple(repo.get(i) for i in merged)
        return MergePlan(
            cls.ENTITY,
            kept,
            others,
            merged_fields(kept, others, choose),
            _repoints(uow, cls, kept.id, [o.id for o in others]),
        )

    return crm._read(read)


def _repoints(
    uow: UnitOfWork, cls: type[Entity], survivor: UUID, merged: Sequence[UUID]
) -> tuple[Repoint, ...]:
    """Every reference to a merged record, in every entity type."""
    skip = {survivor, *merged}
    found: list[Repoint] = []
    for other in _entity_types():
        fields = [name for name, target in other.REFERENCES.items() if target is cls]
        repo = uow.repository(other)
        for name in fields:
            for old in merged:
                query = Query(filters=(Eq(name, old),), archived=None)
                found.extend(
                    Repoint(other.ENTITY, record.id, name, old, survivor)
                    for record in repo.find(query)
                    if record.id not in skip
                )
    return tuple(sorted(found, key=lambda r: (r.entity, r.id, r.field)))


def execute_merge(crm: CRM, plan: MergePlan) -> MergeJournal:
    """Run ``plan`` in one transaction and journal it.

    Raises:
        ConcurrencyError: the survivor or a merged record changed since the plan.
        ValidationError: the merged values are invalid, or a plugin vetoed a change.
    """
    if not isinstance(plan, MergePlan):
        raise ValidationError("plan", "must be a MergePlan", code="type", value=plan)
    cls = type(plan.survivor)
    choose = {c.field: c.source for c in plan.fields if c.rule == "chosen"}
    types = {t.ENTITY: t for t in _entity_types()}

    def run(uow: UnitOfWork, events: list[Event]) -> MergeJournal:
        now = crm.now()
        repo = uow.repository(cls)
        survivor = repo.get(plan.survivor.id)
        _expect(survivor, plan.survivor.version)
        merged = []
        for planned in plan.merged:
            current = repo.get(planned.id)
            _expect(current, planned.version)
            merged.append(current)
        before: dict[UUID, Entity] = {}
        after: dict[UUID, int] = {}

        def write(previous: Entity, new: Entity, event: Any) -> None:
            before.setdefault(previous.id, previous)
            after[new.id] = new.version
            if event is None:
                return
            crm.plugins.validate(crm, new, previous)
            uow.repository(type(previous)).update(new, expected_version=previous.version)
            crm._record(uow, events, event)

        # related records first: the survivor then takes over their references
        moves: defaultdict[tuple[str, UUID], dict[str, object]] = defaultdict(dict)
        for repoint in _repoints(uow, cls, survivor.id, [m.id for m in merged]):
            moves[repoint.entity, repoint.id][repoint.field] = repoint.new
        for (entity, id), fields in moves.items():
            record = uow.repository(types[entity]).get(id)
            write(record, *changes.update(record, fields, now=now))
        fields = {c.field: c.value for c in merged_fields(survivor, merged, choose)}
        write(survivor, *changes.update(survivor, fields, now=now))
        for record in merged:
            write(record, *changes.archive(record, now=now))
        journal, _ = changes.create(
            MergeJournal,
            id=uuid7(),
            now=now,
            entity=cls.ENTITY,
            survivor_id=survivor.id,
            merged_ids=",".join(str(m.id) for m in merged),
            snapshot=_snapshot(before.values()),
            versions=json.dumps({str(k): v for k, v in after.items()}),
        )
        uow.repository(MergeJournal).add(journal)
        return journal

    return crm._write(run)


def _snapshot(records: Any) -> str:
    from crmkit.serialization import converter

    return json.dumps(
        [{"entity": r.ENTITY, "record": converter.unstructure(r)} for r in records],
        ensure_ascii=False,
    )


def undo_merge(crm: CRM, merge: UUID) -> MergeJournal:
    """Put back every record merge ``merge`` touched, exactly as it was.

    Each record gets its old field values, version and timestamps back; the
    audit trail gets an ``update`` entry per record (the audit and the journal
    are the only trace).  The journal entry is marked undone.

    Raises:
        NotFoundError: no such merge.
        ValidationError: it was undone already (code ``undone``).
        ConcurrencyError: a touched record changed since the merge.
    """
    _check_uuid(merge, "merge")
    from crmkit.app import _audit_change
    from crmkit.core.events import FieldChange
    from crmkit.serialization import converter

    types = {t.ENTITY: t for t in _entity_types()}

    def run(uow: UnitOfWork, events: list[Event]) -> MergeJournal:
        journals = uow.repository(MergeJournal)
        journal = journals.get(merge)
        if journal.undone_at is not None:
            raise ValidationError("merge", "was undone already", code="undone", value=merge)
        now = crm.now()
        versions: dict[str, int] = json.loads(journal.versions)
        for item in json.loads(journal.snapshot):
            cls = types[item["entity"]]
            old = converter.structure(item["record"], cls)
            repo = uow.repository(cls)
            current = repo.get(old.id)
            expected = versions[str(old.id)]
            if current.version != expected:
                raise ConcurrencyError(cls.ENTITY, old.id, expected, current.version)
            repo.update(old, expected_version=current.version)
            diff = tuple(
                _audit_change(FieldChange(a.name, getattr(current, a.name), getattr(old, a.name)))
                for a in attrs.fields(cls)
                if a.eq and getattr(current, a.name) != getattr(old, a.name)
            )
            uow.audit.append(
                entity=cls.ENTITY,
                entity_id=old.id,
                version=old.version,
                action=AuditAction.UPDATE,
                changes=diff or (AuditChange("version", current.version, old.version),),
                actor=crm.actor,
                at=now,
            )
        undone, _ = changes.update(journal, {"undone_at": now}, now=now)
        journals.update(undone, expected_version=journal.version)
        return undone

    return crm._write(run)
