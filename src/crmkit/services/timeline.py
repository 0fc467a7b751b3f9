"""The timeline of an organization, contact or opportunity: everything that happened.

``crm.timeline(record)`` merges, newest first, the record's audited field
changes, its interactions, its opportunities' stage changes, the leads
converted into it and its cases (opened, resolved, closed).  An
organization's timeline includes its contacts' events and its
opportunities'.  Everything is read in one unit of work, so the page is a
consistent snapshot.

.. versionadded:: 0.1
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING, Final
from uuid import UUID

import attrs

from crmkit.core.audit import AuditAction, AuditChange, AuditEntry
from crmkit.core.cases import Case
from crmkit.core.entities import Contact, Entity, Organization
from crmkit.core.errors import NotFoundError, ValidationError
from crmkit.core.interactions import Interaction
from crmkit.core.leads import Lead
from crmkit.core.opportunities import Opportunity
from crmkit.core.query import Eq, Filter, In, Query
from crmkit.stores.base import UnitOfWork

if TYPE_CHECKING:
    from crmkit.app import CRM

__all__ = ["TimelineEntry", "timeline"]

#: Opportunity fields a stage move changes; their audit is shown as the move itself.
_STAGE_FIELDS: Final = frozenset(
    {"stage", "status", "probability", "history", "held_from", "closed_at"}
)

#: The most entries one page may hold.
MAX_PAGE: Final = 1000


@attrs.frozen
class TimelineEntry:
    """One event on a timeline.

    Attributes:
        at: when it happened (or, for a planned interaction, is planned).
        kind: ``created``, ``updated``, ``archived``, ``restored`` (audited
            changes), ``interaction``, ``stage_change``, ``lead_converted``,
            ``case_opened``, ``case_resolved`` or ``case_closed``.
        entity: the type of the record it is about (``"contact"``...).
        entity_id: that record's id.
        summary: one line for people (English).
        actor: who made the change, when known.
        changes: the field changes of an audited update (old and new values).
        record: the interaction, case, lead or opportunity involved, if any.
    """

    at: datetime
    kind: str
    entity: str
    entity_id: UUID
    summary: str
    actor: str | None = None
    changes: tuple[AuditChange, ...] = ()
    record: Entity | None = attrs.field(default=None, eq=False, repr=False)


def timeline(
    crm: CRM,
    target: Organization | Contact | Opportunity | UUID,
    *,
    limit: int = 50,
    offset: int = 0,
) -> list[TimelineEntry]:
    """The events of ``target``, newest first, ``limit`` from ``offset``.

    Raises:
        NotFoundError: ``target`` is an id of no organization, contact or opportunity.
        ValidationError: a bad ``limit`` or ``offset``, or an unsupported target.
    """
    if isinstance(limit, bool) or not isinstance(limit, int) or not 0 <= limit <= MAX_PAGE:
        raise ValidationError("limit", f"must be an integer from 0 to {MAX_PAGE}", value=limit)
    if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
        raise ValidationError("offset", "must be a non-negative integer", value=offset)

    def read(uow: UnitOfWork) -> list[TimelineEntry]:
        record = _resolve(uow, target)
        gathered = list(enumerate(_gather(uow, record)))
        # ties: by record, then the order each record's events were gathered
        # in (its audit and stage history are oldest first)
        gathered.sort(key=lambda ie: (ie[1].at, ie[1].entity_id.int, ie[1].kind, ie[0]))
        entries = [entry for _, entry in reversed(gathered)]
        return entries[offset : offset + limit]

    return crm._read(read)


def _resolve(uow: UnitOfWork, target: object) -> Organization | Contact | Opportunity:
    if isinstance(target, Organization | Contact | Opportunity):
        return target
    if not isinstance(target, UUID):
        raise ValidationError(
            "target",
            "must be an Organization, Contact, Opportunity or an id of one",
            code="type",
            value=target,
        )
    for cls in (Organization, Contact, Opportunity):
        found = uow.repository(cls).get_many([target]).get(target)
        if isinstance(found, Organization | Contact | Opportunity):
            return found
    raise NotFoundError("record", target)


def _find(uow: UnitOfWork, cls: type[Entity], *filters: Filter) -> list[Entity]:
    return uow.repository(cls).find(Query(filters=filters, archived=None))


def _gather(uow: UnitOfWork, record: Organization | Contact | Opportunity) -> list[TimelineEntry]:
    if isinstance(record, Organization):
        contacts = _find(uow, Contact, Eq("organization_id", record.id))
        contact_ids = tuple(c.id for c in contacts)
        audited: list[Entity] = [record, *contacts]
        anchors: list[Filter] = [Eq("organization_id", record.id)]
        if contact_ids:
            anchors.append(In("contact_id", contact_ids))
    elif isinstance(record, Contact):
        audited = [record]
        anchors = [Eq("contact_id", record.id)]
    else:
        audited = []
        anchors = [Eq("opportunity_id", record.id)]

    opportunities: dict[UUID, Entity] = {}
    if isinstance(record, Opportunity):
        opportunities[record.id] = record
    else:
        for anchor in anchors:
            opportunities.update((o.id, o) for o in _find(uow, Opportunity, anchor))
    audited += opportunities.values()

    entries: list[TimelineEntry] = []
    for entity in audited:
        entries += _audit_entries(entity, uow.audit.history(entity.id))
    for opportunity in opportunities.values():
        assert isinstance(opportunity, Opportunity)
        entries += _stage_entries(opportunity)
    for interaction in _distinct(uow, Interaction, anchors):
        assert isinstance(interaction, Interaction)
        entries.append(_interaction_entry(interaction))
    for case in _distinct(uow, Case, anchors):
        assert isinstance(case, Case)
        entries += _case_entries(case)
    for lead in _distinct(uow, Lead, anchors):
        assert isinstance(lead, Lead)
        if lead.converted_at is not None:
            name = lead.full_name or lead.company or "lead"
            entries.append(
                TimelineEntry(
                    lead.converted_at,
                    "lead_converted",
                    "lead",
                    lead.id,
                    f"lead converted: {name}",
                    record=lead,
                )
            )
    return entries


def _distinct(uow: UnitOfWork, cls: type[Entity], anchors: Iterable[Filter]) -> list[Entity]:
    """Records matching any anchor (an interaction with both organization and contact once)."""
    found: dict[UUID, Entity] = {}
    for anchor in anchors:
        found.update((e.id, e) for e in _find(uow, cls, anchor))
    return list(found.values())


_ACTION_KIND: Final = {
    AuditAction.CREATE: "created",
    AuditAction.UPDATE: "updated",
    AuditAction.ARCHIVE: "archived",
    AuditAction.RESTORE: "restored",
}


def _audit_entries(entity: Entity, history: list[AuditEntry]) -> list[TimelineEntry]:
    entries = []
    for audit in history:
        changes = audit.changes
        if audit.action is AuditAction.UPDATE and isinstance(entity, Opportunity):
            changes = tuple(c for c in changes if c.field not in _STAGE_FIELDS)
            if not changes:
                continue  # a pure stage move: shown as its stage_change entry
        kind = _ACTION_KIND[audit.action]
        name = _name(entity)
        if audit.action is AuditAction.UPDATE:
            summary = f"{entity.ENTITY} {name} changed: {', '.join(c.field for c in changes)}"
        else:
            summary = f"{entity.ENTITY} {name} {kind}"
        shown = changes if audit.action is AuditAction.UPDATE else ()
        entries.append(
            TimelineEntry(
                audit.at, kind, audit.entity, audit.entity_id, summary, audit.actor, shown, entity
            )
        )
    return entries


def _stage_entries(opportunity: Opportunity) -> list[TimelineEntry]:
    entries = []
    for change in opportunity.history:
        if change.source is None:
            summary = f"opportunity {opportunity.name} opened in {change.target}"
        else:
            summary = f"opportunity {opportunity.name}: {change.source} -> {change.target}"
        entries.append(
            TimelineEntry(
                change.at,
                "stage_change",
                "opportunity",
                opportunity.id,
                summary,
                change.by,
                record=opportunity,
            )
        )
    return entries


def _interaction_entry(interaction: Interaction) -> TimelineEntry:
    subject = f": {interaction.subject}" if interaction.subject else ""
    return TimelineEntry(
        interaction.when,
        "interaction",
        "interaction",
        interaction.id,
        f"{interaction.kind} ({interaction.status.value}){subject}",
        record=interaction,
    )


def _case_entries(case: Case) -> list[TimelineEntry]:
    moments = [("case_opened", case.opened_at, "opened")]
    if case.resolved_at is not None:
        moments.append(("case_resolved", case.resolved_at, "resolved"))
    if case.closed_at is not None:
        moments.append(("case_closed", case.closed_at, "closed"))
    return [
        TimelineEntry(at, kind, "case", case.id, f"case {case.subject} {verb}", record=case)
        for kind, at, verb in moments
    ]


def _name(entity: Entity) -> str:
    if isinstance(entity, Contact):
        return entity.full_name
    return str(getattr(entity, "name", entity.id))
