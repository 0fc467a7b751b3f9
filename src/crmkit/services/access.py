"""``crm.as_user(user)``: a CRM scoped to one user, closed by default.

One seam does the work: every unit of work a scoped service runs in is
wrapped, and the wrapped unit of work hands out guarded repositories for the
covered entity types (:data:`crmkit.core.access.COVERED`).  A guarded
repository adds the principal's visibility restriction to every ``find`` and
``count`` (the stores compile it into the query), answers ``get`` of a hidden
record exactly as of an absent one (:class:`~crmkit.AccessDenied`), and
authorizes every ``add`` and ``update``.  The scoped services also authorize a
new or changed record *before* plugins' validation hooks run, so a denied
write leaves no row, no audit entry and no hook call.

The scoped CRM exposes only the services made access-aware; every other
attribute raises :class:`~crmkit.AccessDenied`.

.. versionadded:: 0.1
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from datetime import datetime
from typing import Any, Generic, TypeVar, cast
from uuid import UUID

import attrs

from crmkit.app import (
    CRM,
    ContactService,
    OpportunityService,
    OrganizationService,
    Transaction,
)
from crmkit.core.access import COVERED, Action, Policy, Principal
from crmkit.core.audit import AuditEntry
from crmkit.core.duplicates import DuplicateEntity
from crmkit.core.entities import Contact, Entity, Organization, Role, User
from crmkit.core.errors import AccessDenied, CrmkitError, NotFoundError
from crmkit.core.events import Created, StageChanged
from crmkit.core.ids import InteractionId, OpportunityId, OrganizationId, UserId
from crmkit.core.interactions import Interaction, InteractionKind
from crmkit.core.leads import Lead
from crmkit.core.merge import MergeJournal, MergePlan
from crmkit.core.opportunities import Opportunity
from crmkit.core.query import AnyOf, Query
from crmkit.io.imports import ImportService
from crmkit.services.access_writes import (
    ScopedImports,
    elevated,
    scoped_merge,
    scoped_plan_merge,
)
from crmkit.services.base import Event, UserRef
from crmkit.services.interactions import InteractionService
from crmkit.services.leads import LeadService
from crmkit.services.timeline import TimelineEntry
from crmkit.stores.base import AuditLog, Repository, Store, UnitOfWork

__all__ = ["ScopedCRM", "principal_of"]

E = TypeVar("E", bound=Entity)
I = TypeVar("I", bound=UUID)  # noqa: E741 - as in _Service[E, I]
R = TypeVar("R", bound=Entity)
T = TypeVar("T")


def principal_of(crm: CRM, user: User | UserId) -> Principal:
    """The principal of ``user``, read from the store now (role, teams, zones).

    An archived user has the rights of a guest: none.

    Raises:
        NotFoundError: no such user.
    """
    current = crm.users.get(user.id if isinstance(user, User) else user)
    teammates: set[UUID] = {current.id}
    teams: set[UUID] = set()
    for team in crm.teams.find():
        if current.id in team.member_ids:
            teammates.update(team.member_ids)
            teams.add(team.id)
    return Principal(
        user_id=current.id,
        role=Role.GUEST if current.archived else current.role,
        teammate_ids=frozenset(teammates),
        zone_ids=frozenset(current.zone_ids),
        team_ids=frozenset(teams),
    )


# ============================================================ the seam


class _Guard:
    """The principal and the policy, applied to records of one unit of work."""

    def __init__(self, principal: Principal, policy: Policy):
        self.principal = principal
        self.policy = policy

    def authorize(
        self, uow: UnitOfWork, action: Action, entity: Entity, previous: Entity | None = None
    ) -> None:
        def lookup(cls: type[Entity], id: UUID) -> Entity | None:
            return uow.repository(cls).get_many([id]).get(id)

        if not self.policy.can(self.principal, action, entity, lookup, previous):
            raise AccessDenied(action.value, entity.ENTITY)


class _GuardedRepository(Generic[E]):
    """A repository showing and changing only what the principal may."""

    def __init__(self, inner: Repository[E], cls: type[E], uow: UnitOfWork, guard: _Guard):
        self._inner = inner
        self._cls = cls
        self._uow = uow  # the system's unit of work: related records are looked up there
        self._guard = guard

    def _visible(self, entity: E) -> bool:
        try:
            self._guard.authorize(self._uow, Action.READ, entity)
        except AccessDenied:
            return False
        return True

    def add(self, entity: E) -> None:
        self._guard.authorize(self._uow, Action.CREATE, entity)
        self._inner.add(entity)

    def add_many(self, entities: Sequence[E]) -> None:
        for entity in entities:
            self._guard.authorize(self._uow, Action.CREATE, entity)
        self._inner.add_many(entities)

    def get(self, id: UUID) -> E:
        try:
            entity = self._inner.get(id)
        except NotFoundError:
            raise AccessDenied(Action.READ.value, self._cls.ENTITY) from None
        if not self._visible(entity):
            raise AccessDenied(Action.READ.value, self._cls.ENTITY)
        return entity

    def get_many(self, ids: Collection[UUID]) -> dict[UUID, E]:
        return {i: e for i, e in self._inner.get_many(ids).items() if self._visible(e)}

    def get_by(self, field: str, value: object) -> E | None:
        found = self._inner.get_by(field, value)
        return found if found is not None and self._visible(found) else None

    def ids_by(self, field: str, values: Collection[object]) -> dict[object, UUID]:
        """The ids of the visible records whose unique ``field`` holds one of ``values``.

        Hidden records look absent.  (``Repository.ids_by`` on stores that have it.)
        """
        found: dict[object, UUID] = cast(Any, self._inner).ids_by(field, values)
        visible = self.get_many(set(found.values()))
        return {value: id for value, id in found.items() if id in visible}

    def update(self, entity: E, *, expected_version: int) -> None:
        previous = self._inner.get_many([entity.id]).get(entity.id)
        action = _action(entity, previous)
        if previous is None:
            raise AccessDenied(action.value, self._cls.ENTITY)
        self._guard.authorize(self._uow, action, entity, previous)
        self._inner.update(entity, expected_version=expected_version)

    def update_many(self, entities: Sequence[E], *, expected_versions: Sequence[int]) -> None:
        """:meth:`update` of each entity, authorized all before any is written."""
        stored = self._inner.get_many([e.id for e in entities])
        for entity in entities:
            previous = stored.get(entity.id)
            action = _action(entity, previous)
            if previous is None:
                raise AccessDenied(action.value, self._cls.ENTITY)
            self._guard.authorize(self._uow, action, entity, previous)
        many = getattr(self._inner, "update_many", None)
        if many is not None:
            many(entities, expected_versions=expected_versions)
            return
        for entity, version in zip(entities, expected_versions, strict=True):
            self._inner.update(entity, expected_version=version)

    def _restricted(self, query: Query) -> Query:
        if query.restrict is not None:  # only access control sets it
            raise AccessDenied(Action.READ.value, self._cls.ENTITY)
        visible = self._guard.policy.visibility(self._guard.principal, self._cls)
        return attrs.evolve(query, restrict=visible)

    @property
    def cells(self) -> Callable[[Query, Sequence[str]], dict[str, Sequence[Any]]]:
        """The store's column read (``to_pandas``) over the visible records; an
        ``AttributeError`` when the store has none, as on the store itself."""
        cells: Callable[[Query, Sequence[str]], dict[str, Sequence[Any]]] | None
        cells = getattr(self._inner, "cells", None)
        if cells is None:
            raise AttributeError("cells")
        read = cells
        return lambda query, fields: read(self._restricted(query), fields)

    def find(self, query: Query) -> list[E]:
        return self._inner.find(self._restricted(query))

    def count(self, query: Query) -> int:
        return self._inner.count(self._restricted(query))


def _action(entity: Entity, previous: Entity | None) -> Action:
    if previous is None:
        return Action.CREATE
    return Action.ARCHIVE if entity.archived != previous.archived else Action.UPDATE


class _ScopedUnitOfWork:
    """A unit of work whose covered repositories are guarded."""

    def __init__(self, inner: UnitOfWork, guard: _Guard):
        self.inner = inner
        self.guard = guard

    @property
    def audit(self) -> AuditLog:
        return self.inner.audit

    def repository(self, cls: type[E]) -> Repository[E]:
        repo = self.inner.repository(cls)
        if cls in COVERED:
            return _GuardedRepository(repo, cls, self.inner, self.guard)
        return repo  # masters, users, pipelines' records: read by the services themselves

    def savepoint(self) -> AbstractContextManager[None]:
        return self.inner.savepoint()

    def commit(self) -> None:
        self.inner.commit()

    def rollback(self) -> None:
        self.inner.rollback()


class _ScopedStore:
    """The store as a scoped context sees it: every unit of work is guarded."""

    def __init__(self, context: _ScopedContext, inner: Store):
        self._context = context
        self._inner = inner

    def get(self, cls: type[E], id: UUID) -> E:
        return self._context._read(lambda uow: uow.repository(cls).get(id))

    @contextmanager
    def unit_of_work(self, *, write: bool = True) -> Iterator[UnitOfWork]:
        with self._inner.unit_of_work(write=write) as uow:
            yield self._context._scoped(uow)

    def close(self) -> None:
        raise AccessDenied("close", "store")


# ======================================================== the context


class _ScopedContext(CRM):
    """What scoped services see as their ``CRM``: the system's, with a guarded store.

    Built by copying the system CRM's attributes (it shares its plugins,
    registries, clock and transaction state), never by ``CRM.__init__``.
    """

    def __init__(self, system: CRM, principal: Principal, policy: Policy):
        self.__dict__.update(system.__dict__)
        self._system = system
        self._guard = _Guard(principal, policy)
        self.actor = f"user:{principal.user_id}"
        self.store = _ScopedStore(self, system.store)
        self.organizations = _ScopedOrganizations(self)
        self.contacts = _ScopedContacts(self)
        self.opportunities = _ScopedOpportunities(self)
        self.interactions = _ScopedInteractions(self)
        self.leads = _ScopedLeads(self)

    def _scoped(self, uow: UnitOfWork) -> UnitOfWork:
        if isinstance(uow, _ScopedUnitOfWork) and uow.guard is self._guard:
            return uow
        return _ScopedUnitOfWork(uow, self._guard)

    def _read(self, fn: Callable[[UnitOfWork], T]) -> T:
        return super()._read(lambda uow: fn(self._scoped(uow)))

    def _write(self, fn: Callable[[UnitOfWork, list[Event]], T]) -> T:
        return super()._write(lambda uow, events: fn(self._scoped(uow), events))

    def _after_commit(self, events: Sequence[Event], handle: Transaction) -> None:
        # notifications after commit reach plugins with the system CRM
        self._system._after_commit(events, handle)

    def _may_create(self, cls: type[Entity]) -> None:
        guard = self._guard
        if guard.policy.restriction(guard.principal, cls, Action.CREATE) == AnyOf(()):
            raise AccessDenied(Action.CREATE.value, cls.ENTITY)

    def _authorize(self, action: Action, entity: Entity, previous: Entity | None) -> None:
        def check(uow: UnitOfWork) -> None:
            inner = uow.inner if isinstance(uow, _ScopedUnitOfWork) else uow
            self._guard.authorize(inner, action, entity, previous)

        self._read(check)


def _context(service: Any) -> _ScopedContext:
    return cast(_ScopedContext, service._crm)


class _Guarded(Generic[E]):
    """Authorize a record before plugins (validation hooks) or the store see it."""

    def get_by_external_ref(self, external_ref: str) -> E:
        # hidden and absent give the same error, as for get
        try:
            return super().get_by_external_ref(external_ref)  # type: ignore[misc, no-any-return]
        except NotFoundError:
            raise AccessDenied(Action.READ.value, self._cls.ENTITY) from None  # type: ignore[attr-defined]

    def _creating(self, values: Mapping[str, Any]) -> dict[str, Any]:
        # a role with no right to create this type is refused before anything is read
        _context(self)._may_create(self._cls)  # type: ignore[attr-defined]
        return super()._creating(values)  # type: ignore[misc, no-any-return]

    def _new(self, fields: dict[str, Any], now: datetime) -> tuple[E, Created[E]]:
        entity, event = super()._new(fields, now)  # type: ignore[misc]
        _context(self)._authorize(Action.CREATE, entity, None)
        return entity, event

    def _validated(self, entity: R, previous: R | None) -> R:
        _context(self)._authorize(_action(entity, previous), entity, previous)
        return super()._validated(entity, previous)  # type: ignore[misc, no-any-return]

    def _toggle(self, id: Any, expected_version: int, change: Any) -> E:
        # archive/restore: refused even when it would change nothing (restoring an active record)
        current = self.get(id)  # type: ignore[attr-defined]
        _context(self)._authorize(Action.ARCHIVE, current, current)
        return super()._toggle(id, expected_version, change)  # type: ignore[misc, no-any-return]

    def _bulk_permit(self, uow: UnitOfWork, entity: E, previous: E) -> None:
        # bulk_update: each changed record, before any plugin hook
        inner = uow.inner if isinstance(uow, _ScopedUnitOfWork) else uow
        _context(self)._guard.authorize(inner, _action(entity, previous), entity, previous)

    def _bulk_absent(self, id: UUID) -> CrmkitError:
        # bulk_update of a hidden or absent record: the refusal of one not writable
        return AccessDenied(Action.UPDATE.value, self._cls.ENTITY)  # type: ignore[attr-defined]


class _ScopedOrganizations(_Guarded[Organization], OrganizationService):
    """Organizations the principal may see and change."""


class _ScopedContacts(_Guarded[Contact], ContactService):
    """Contacts the principal may see and change."""


class _ScopedOpportunities(_Guarded[Opportunity], OpportunityService):
    """Opportunities the principal may see and move."""

    def _move(
        self,
        id: OpportunityId,
        expected_version: int | None,
        move: Callable[..., tuple[Opportunity, StageChanged]],
        *,
        needs_uow: bool = False,
    ) -> Opportunity:
        # authorized before plugins' transition guards run (checked again when written)
        current = self.get(id)
        _context(self)._authorize(Action.UPDATE, current, current)
        return super()._move(id, expected_version, move, needs_uow=needs_uow)

    def _customer(
        self, uow: UnitOfWork, events: list[Event], organization_id: OrganizationId | None
    ) -> None:
        # a win making its organization a customer is the system's doing, not the user's
        inner = uow.inner if isinstance(uow, _ScopedUnitOfWork) else uow
        super()._customer(inner, events, organization_id)


class _ScopedInteractions(_Guarded[Interaction], InteractionService):
    """Interactions the principal may see and change (their owner is the assignee)."""

    def __init__(self, context: _ScopedContext):
        super().__init__(context)
        # the registries are the whole CRM's: shared, and read-only in a scope
        self.kinds = context._system.interactions.kinds
        self.sequences = context._system.interactions.sequences

    def log(self, *args: Any, **kwargs: Any) -> Interaction:
        _context(self)._may_create(Interaction)
        return super().log(*args, **kwargs)

    def plan(self, *args: Any, **kwargs: Any) -> Interaction:
        _context(self)._may_create(Interaction)
        return super().plan(*args, **kwargs)

    def apply_sequence(self, *args: Any, **kwargs: Any) -> list[Interaction]:
        _context(self)._may_create(Interaction)
        return super().apply_sequence(*args, **kwargs)

    def reassign(
        self, ids: InteractionId | Iterable[InteractionId], *, to: UserRef | None
    ) -> list[Interaction]:
        # a hidden interaction is reported as an absent one is: AccessDenied
        try:
            return super().reassign(ids, to=to)
        except NotFoundError:
            raise AccessDenied(Action.UPDATE.value, Interaction.ENTITY) from None

    def register_kind(self, kind: InteractionKind) -> InteractionKind:
        # the registry is the whole CRM's: not a user's to change
        raise AccessDenied("register", "interaction_kind")


class _ScopedLeads(_Guarded[Lead], LeadService):
    """Leads the principal may see, work and convert."""


class ScopedCRM:
    """The CRM as one user may use it (``crm.as_user(user)``).

    It offers the access-aware services (``organizations``, ``contacts``,
    ``opportunities``, ``interactions``, ``leads``, ``imports``),
    ``plan_merge()`` and ``merge()``, ``history()``, ``transaction()``,
    ``elevated()``, and the access-aware reads of
    :mod:`crmkit.services.access_reads` (``analytics``, ``forecast``,
    ``targets``, ``exports``, ``duplicates``, ``segments``, ``timeline()``);
    every other attribute raises :class:`~crmkit.AccessDenied`, so a path not
    yet made access-aware is closed rather than open.

    Attributes:
        principal: who the scope acts for (read when the scope opened).
        organizations: organizations the user may see and change.
        contacts: contacts the user may see and change.
        opportunities: opportunities the user may see and move.
        interactions: interactions the user may see and change.
        leads: leads the user may see, work and convert.
        imports: files imported as the user (rows they may not write are refused).
        analytics: reports over the visible opportunities and interactions.
        forecast: forecasts and attainment over the visible opportunities.
        targets: the visible sales targets (read-only).
        exports: exports of the visible records.
        duplicates: duplicate pairs among the visible records.
        segments: the visible members of segments.
    """

    __slots__ = (
        "_context",
        "analytics",
        "contacts",
        "duplicates",
        "exports",
        "forecast",
        "imports",
        "interactions",
        "leads",
        "opportunities",
        "organizations",
        "principal",
        "segments",
        "targets",
    )

    def __init__(self, system: CRM, principal: Principal, policy: Policy):
        context = _ScopedContext(system, principal, policy)
        self._context = context
        self.principal = principal
        self.organizations: OrganizationService = context.organizations
        self.contacts: ContactService = context.contacts
        self.opportunities: OpportunityService = context.opportunities
        self.interactions: InteractionService = context.interactions
        self.leads: LeadService = context.leads
        self.imports: ImportService = ScopedImports(context)
        # the other access-aware reads (crmkit.services.access_reads)
        from crmkit.services.access_reads import ScopedReads

        reads = ScopedReads(context)
        self.analytics = reads.analytics
        self.forecast = reads.forecast
        self.targets = reads.targets
        self.exports = reads.exports
        self.duplicates = reads.duplicates
        self.segments = reads.segments

    def __repr__(self) -> str:
        return f"<ScopedCRM user={self.principal.user_id} role={self.principal.role.value}>"

    def transaction(self) -> AbstractContextManager[Transaction]:
        """Group scoped calls atomically, as ``crm.transaction()`` does."""
        return self._context.transaction()

    def plan_merge(
        self,
        survivor: UUID,
        merged: Sequence[UUID],
        *,
        entity: DuplicateEntity = "contact",
        choose: Mapping[str, UUID] | None = None,
    ) -> MergePlan:
        """What merging would do, as :meth:`crm.duplicates.plan_merge
        <crmkit.services.duplicates.DuplicateService.plan_merge>`; nothing is written.

        The merge is authorized now (and again by :meth:`merge`): the
        survivor and the merged records must be visible and changeable by the
        user, and so must every related record of a covered type it re-points.

        Raises:
            AccessDenied: a record is hidden or absent (``read``), not the
                user's to change (``update``, ``archive``), or a related
                record is not (``merge``).
            ValidationError: bad arguments.
        """
        return scoped_plan_merge(self._context, survivor, merged, entity=entity, choose=choose)

    def merge(self, plan: MergePlan) -> MergeJournal:
        """Execute a merge plan as the user (see :meth:`plan_merge`), in one transaction.

        Everything is authorized before any plugin hook runs or anything is
        written; related records of types access control does not cover
        (cases, campaign members) are re-pointed as the system's follow-up.

        Raises:
            AccessDenied: as for :meth:`plan_merge`.
            ConcurrencyError: a record of the plan changed since it was planned.
        """
        return scoped_merge(self._context, plan)

    def elevated(self, *, reason: str) -> AbstractContextManager[CRM]:
        """The system context (every record, every service) for one ``with`` block.

        Only for the roles the policy allows (:attr:`Policy.elevate
        <crmkit.core.access.Policy.elevate>`: ``admin`` by default).  Each
        elevation appends an ``elevate`` entry to the audit trail of the user
        (who: the actor ``user:<id>``; why: the ``reason``; when: the time)
        before the block runs.  The CRM given is usable only inside the
        block; changes made through it are the system's (audited with the
        system's actor).

        Raises:
            AccessDenied: the user's role may not elevate (``elevate crm``);
                nothing is audited.
            ValidationError: no reason, or one longer than 500 characters.
        """
        return elevated(self._context, reason)

    def history(self, entity_id: UUID) -> list[AuditEntry]:
        """Every audited change of a record the user may see, oldest first.

        Raises:
            AccessDenied: the record is hidden from the user, or of a type
                access control does not cover, or does not exist (the same
                error: ``read record``).
        """

        def run(uow: UnitOfWork) -> list[AuditEntry]:
            for cls in COVERED:
                if uow.repository(cls).get_many([entity_id]):  # guarded: visible ones only
                    return uow.audit.history(entity_id)
            raise AccessDenied(Action.READ.value, "record")

        return self._context._read(run)

    def timeline(
        self,
        record: Organization | Contact | Opportunity | UUID,
        *,
        limit: int = 50,
        offset: int = 0,
    ) -> list[TimelineEntry]:
        """The timeline of a record the user may see, made of visible records' events.

        Cases are left out (access control does not cover them).

        Raises:
            AccessDenied: the record is hidden or absent (``read record``).
        """
        from crmkit.services.access_reads import scoped_timeline

        return scoped_timeline(self._context, record, limit=limit, offset=offset)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        raise AccessDenied("use", f"crm.{name}")
