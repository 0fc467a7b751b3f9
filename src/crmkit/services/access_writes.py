"""The write paths of a scoped CRM beyond the entity services: imports, merge, elevation.

- ``scoped.imports``: :class:`~crmkit.io.ImportService` over the scoped
  services; every row is authorized (as the user's create or update) before
  it is written and before plugins' validation hooks see it; a refused row is
  a row error (code ``denied``), reported as an invalid row is (atomic: nothing
  is written; partial: the other rows are).
- ``scoped.plan_merge`` / ``scoped.merge``: the survivor and every merged
  record must be visible and changeable by the user, and so must every related
  record of a covered type that the merge re-points; all of it is checked
  before any plugin hook runs or anything is written.
- ``scoped.elevated(reason=...)``: the system CRM for one block, for the roles
  the policy allows (:attr:`~crmkit.core.access.Policy.elevate`), audited.

.. versionadded:: 0.1
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Final, cast
from uuid import UUID

from crmkit.core import changes
from crmkit.core.access import COVERED, Action
from crmkit.core.audit import AuditAction, AuditChange
from crmkit.core.entities import User
from crmkit.core.errors import AccessDenied, ValidationError
from crmkit.core.merge import MergeJournal, MergePlan, merged_fields
from crmkit.io.imports import ImportService
from crmkit.io.report import ImportReport
from crmkit.services.merge import _entity_types, _repoints, entity_class, execute_merge, plan_merge

if TYPE_CHECKING:
    from crmkit.app import CRM
    from crmkit.services.access import _ScopedContext
    from crmkit.services.base import Event
    from crmkit.stores.base import UnitOfWork

__all__ = ["ScopedImports", "elevated", "scoped_merge", "scoped_plan_merge"]

#: The longest reason an elevation accepts.
REASON_MAX: Final = 500


def _inner(uow: UnitOfWork) -> UnitOfWork:
    inner = getattr(uow, "inner", None)
    return cast("UnitOfWork", inner) if inner is not None else uow


# ================================================================ imports


class ScopedImports(ImportService):
    """``scoped.imports``: files imported as the user (rows they may not write are refused).

    .. versionadded:: 0.1
    """

    def file(self, path: str | os.PathLike[str], *, entity: str, **options: Any) -> ImportReport:
        """Import a file as :meth:`ImportService.file` does, as the user.

        A role with no right to create records of the type is refused before
        the file is read.  A row naming (by ``external_ref`` or ``id``) a
        record the user cannot see is taken as a new record, as for an
        absent one.

        Raises:
            AccessDenied: the role may not create records of this type.
        """
        from crmkit.io.imports import entity_type

        context = cast("_ScopedContext", self._crm)
        context._may_create(entity_type(entity))
        return super().file(path, entity=entity, **options)

    def campaign_metrics(self, path: str | os.PathLike[str], **options: Any) -> ImportReport:
        """Refused in a scope: campaigns are not access-aware yet.

        Raises:
            AccessDenied: always (``use crm.imports.campaign_metrics``).
        """
        raise AccessDenied("use", "crm.imports.campaign_metrics")


# ================================================================== merge


def _check_merge(context: _ScopedContext, uow: UnitOfWork, plan: MergePlan) -> None:
    """Every record the merge changes is one the user may change (before any hook).

    Raises:
        AccessDenied: the survivor or a merged record is hidden, absent or not
            the user's to change (``read``/``update``/``archive`` of its type),
            or a related record of a covered type is not (``merge`` of the
            merged type: the related record is not named).
    """
    guard = context._guard
    inner = _inner(uow)
    cls = type(plan.survivor)
    repo = uow.repository(cls)  # guarded: a hidden record is refused as an absent one
    survivor = repo.get(plan.survivor.id)
    merged = [repo.get(m.id) for m in plan.merged]
    choose = {c.field: c.source for c in plan.fields if c.rule == "chosen"}
    now = context.now()
    fields = {c.field: c.value for c in merged_fields(survivor, merged, choose)}
    new, _ = changes.update(survivor, fields, now=now)
    guard.authorize(inner, Action.UPDATE, new, survivor)
    for record in merged:
        archived, _ = changes.archive(record, now=now)
        guard.authorize(inner, Action.ARCHIVE, archived, record)
    types = {t.ENTITY: t for t in _entity_types()}
    moves: dict[tuple[str, UUID], dict[str, object]] = {}
    for repoint in _repoints(inner, cls, survivor.id, [m.id for m in merged]):
        moves.setdefault((repoint.entity, repoint.id), {})[repoint.field] = repoint.new
    for (entity, id), values in moves.items():
        related_cls = types[entity]
        if related_cls not in COVERED:
            continue  # not access-controlled (cases, campaign members...): the system's follow-up
        related = inner.repository(related_cls).get(id)
        moved, _ = changes.update(related, values, now=now)
        try:  # visible too: the merge re-points the records the scope reads
            guard.authorize(inner, Action.READ, related)
            guard.authorize(inner, Action.UPDATE, moved, related)
        except AccessDenied:
            raise AccessDenied("merge", cls.ENTITY) from None


def scoped_plan_merge(
    context: _ScopedContext,
    survivor: UUID,
    merged: Sequence[UUID],
    *,
    entity: str = "contact",
    choose: Mapping[str, UUID] | None = None,
) -> MergePlan:
    """:meth:`DuplicateService.plan_merge` as the user; the merge is authorized now too."""
    plan = plan_merge(context, entity, survivor, merged, choose)
    context._read(lambda uow: _check_merge(context, uow, plan))
    return plan


def scoped_merge(context: _ScopedContext, plan: MergePlan) -> MergeJournal:
    """:meth:`DuplicateService.merge` as the user: authorized whole, then executed."""
    if not isinstance(plan, MergePlan):
        raise ValidationError("plan", "must be a MergePlan", code="type", value=plan)
    entity_class(plan.entity)
    with context.transaction():  # the check and the merge see the same records
        context._read(lambda uow: _check_merge(context, uow, plan))
        return execute_merge(context, plan)


# ============================================================== elevation


class _Elevated:
    """The system CRM, usable until its ``elevated()`` block ends."""

    __slots__ = ("_open", "_system")

    def __init__(self, system: CRM):
        self._system = system
        self._open = True

    def __getattr__(self, name: str) -> Any:
        if not self._open:
            raise AccessDenied("use", "an elevation that has ended")
        return getattr(self._system, name)

    def __repr__(self) -> str:
        state = "open" if self._open else "ended"
        return f"<elevated {self._system!r} ({state})>"


@contextmanager
def elevated(context: _ScopedContext, reason: str) -> Iterator[CRM]:
    """The system CRM for one block, audited (see ``ScopedCRM.elevated``)."""
    if not isinstance(reason, str):
        raise ValidationError("reason", "must be text", code="type", value=reason)
    reason = reason.strip()
    if not reason:
        raise ValidationError("reason", "is required: say why", code="required")
    if len(reason) > REASON_MAX:
        raise ValidationError(
            "reason", f"must be at most {REASON_MAX} characters", code="too_long", value=reason
        )
    principal = context._guard.principal
    if principal.role not in context._guard.policy.elevate:
        raise AccessDenied("elevate", "crm")
    system = context._system

    def audit(uow: UnitOfWork, events: list[Event]) -> None:
        user = uow.repository(User).get(principal.user_id)
        uow.audit.append(
            entity=User.ENTITY,
            entity_id=user.id,
            version=user.version,
            action=AuditAction.ELEVATE,
            changes=(AuditChange("reason", None, reason),),
            actor=context.actor,
            at=system.now(),
        )

    system._write(audit)
    handle = _Elevated(system)
    try:
        yield cast("CRM", handle)
    finally:
        handle._open = False
