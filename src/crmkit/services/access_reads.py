"""The access-aware reads of a scoped CRM beyond get, find and count.

``crm.as_user(user)`` offers analytics and forecasts, sales targets, exports,
the timeline, duplicate search and segment members, each computed over only
what the user may see.  They reuse the system services, built on the scoped
context, so every record they read comes through a guarded repository: the
user's restriction is part of the store query (a ``WHERE`` clause).  What is
computed in Python afterwards (a forecast, a duplicate model, a segment's
history criteria) works on rows the store has already restricted.

Where a store computes a figure itself, the restriction goes with it: the
``GROUP BY`` pushdown of ``SqlStore`` receives it in the
:class:`~crmkit.core.pushdown.OpenDealsQuery` /
:class:`~crmkit.core.pushdown.ClosedDealsQuery` (``restrict``), so a scoped
pipeline or win rate is still one grouped query and equals the pure path
over the visible opportunities.  A segment is evaluated by the store too
(one SQL query on ``SqlStore``), with the restriction of each type: its
history criteria count the visible interactions and opportunities only.

.. versionadded:: 0.1
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, cast
from uuid import UUID

import attrs

from crmkit.core.duplicates import DEFAULT_MAX_BLOCK, DEFAULT_THRESHOLD
from crmkit.core.entities import Contact, Entity, Organization
from crmkit.core.errors import AccessDenied, NotFoundError
from crmkit.core.ids import OrganizationId, SalesTargetId
from crmkit.core.insights import CampaignReport
from crmkit.core.interactions import Interaction
from crmkit.core.opportunities import Opportunity
from crmkit.core.pushdown import ClosedDealsQuery, ClosedGroups, OpenDealsQuery, OpenGroups
from crmkit.core.query import Filter, In, Query, Restriction
from crmkit.core.segments import Criteria, Segment, SegmentMode
from crmkit.core.targets import SalesTarget
from crmkit.io.exports import ExportService
from crmkit.services.analytics import AnalyticsService
from crmkit.services.duplicates import DuplicateService
from crmkit.services.forecast import ForecastService
from crmkit.services.segments import SegmentRef, SegmentService
from crmkit.services.targets import SalesTargetService
from crmkit.services.timeline import TimelineEntry, timeline
from crmkit.stores.base import AnalyticsAggregator, Repository, SegmentEvaluator, UnitOfWork

if TYPE_CHECKING:
    from crmkit.app import CRM
    from crmkit.core.analytics import Period
    from crmkit.core.duplicates import Candidate, DuplicateEntity, Matching, Model
    from crmkit.services.access import _ScopedContext

__all__ = [
    "ScopedAnalytics",
    "ScopedDuplicates",
    "ScopedReads",
    "ScopedSegments",
    "ScopedTargets",
]


def _inner(uow: UnitOfWork) -> UnitOfWork:
    """The system's unit of work under a scoped one (related records, the aggregator)."""
    return cast(UnitOfWork, getattr(uow, "inner", uow))


# ============================================================== analytics


class _RestrictedAggregator:
    """The store's aggregator, answering for the visible opportunities only."""

    def __init__(self, inner: AnalyticsAggregator, restrict: Restriction | None):
        self._inner = inner
        self._restrict = restrict

    def last_opportunity_change(self) -> datetime | None:
        # every opportunity's: a hidden change only sends the scope to the pure path
        return self._inner.last_opportunity_change()

    def opportunity_stages(
        self, *, archived: bool | None = None, restrict: Restriction | None = None
    ) -> set[tuple[str, str]]:
        return self._inner.opportunity_stages(archived=archived, restrict=self._restrict)

    def open_deal_groups(self, query: OpenDealsQuery) -> OpenGroups | None:
        return self._inner.open_deal_groups(attrs.evolve(query, restrict=self._restrict))

    def closed_deal_groups(self, query: ClosedDealsQuery) -> ClosedGroups | None:
        return self._inner.closed_deal_groups(attrs.evolve(query, restrict=self._restrict))


class ScopedAnalytics(AnalyticsService):
    """``scoped.analytics``: every report over the opportunities and interactions
    the user may see.

    The zone of a visible opportunity is its organization's, even when the
    user may not see that organization (grouping ``by="zone"`` is the same on
    the pushdown and the pure path).  ``campaign_roi`` is refused: campaigns
    are not covered by access control.
    """

    def __init__(self, context: _ScopedContext):
        super().__init__(context)
        self._context = context

    def _restriction(self) -> Restriction | None:
        guard = self._context._guard
        return guard.policy.visibility(guard.principal, Opportunity)

    def _aggregator(self, uow: UnitOfWork, as_of: datetime) -> AnalyticsAggregator | None:
        inner = _inner(uow)
        if not hasattr(inner, "open_deal_groups"):
            return None
        scoped = _RestrictedAggregator(cast(AnalyticsAggregator, inner), self._restriction())
        return super()._aggregator(cast(UnitOfWork, scoped), as_of)

    def _organizations(self, uow: UnitOfWork) -> Repository[Organization]:
        # the zones of the visible opportunities' organizations, as the pushdown's join reads them
        return _inner(uow).repository(Organization)

    def campaign_roi(self, *, currency: str, as_of: datetime | None = None) -> CampaignReport:
        """Refused in a scope: campaigns are not covered by access control.

        Raises:
            AccessDenied: always (``use crm.analytics.campaign_roi``).
        """
        raise AccessDenied("use", "crm.analytics.campaign_roi")


# ================================================================ targets


class ScopedTargets:
    """``scoped.targets``: the sales targets the user may see, read-only.

    A target is visible to an admin; to a manager when it is theirs, one of
    their teams', a teammate's or one of their zones'; to a contributor when
    it is theirs, one of their teams' or one of their zones' (the
    ``sales_target`` row of the rights table).
    """

    def __init__(self, context: CRM):
        self._service = SalesTargetService(context)

    def get(self, id: SalesTargetId) -> SalesTarget:
        """The target with ``id``.

        Raises:
            AccessDenied: hidden or absent (the same error).
        """
        return self._service.get(id)

    def find(
        self,
        *where: Filter,
        order_by: str | Sequence[str] = (),
        limit: int | None = None,
        offset: int = 0,
        archived: bool | None = False,
        **equals: object,
    ) -> list[SalesTarget]:
        """The visible targets meeting the criteria (as ``crm.targets.find``)."""
        return self._service.find(
            *where, order_by=order_by, limit=limit, offset=offset, archived=archived, **equals
        )

    def count(self, *where: Filter, archived: bool | None = False, **equals: object) -> int:
        """How many visible targets meet the criteria."""
        return self._service.count(*where, archived=archived, **equals)

    def for_period(self, period: Period | str, *, fiscal_start: int = 1) -> list[SalesTarget]:
        """The visible targets of ``period`` (as ``crm.targets.for_period``)."""
        return self._service.for_period(period, fiscal_start=fiscal_start)


# ============================================================= duplicates


class ScopedDuplicates:
    """``scoped.duplicates``: likely duplicates among the records the user may see.

    Pairs are made of visible records only, so no pair reveals that a hidden
    record exists.  A model fitted here stays in this scope.
    """

    def __init__(self, context: CRM):
        self._service = DuplicateService(context)

    def find(
        self,
        entity: DuplicateEntity = "contact",
        *,
        threshold: float = DEFAULT_THRESHOLD,
        max_block: int = DEFAULT_MAX_BLOCK,
        archived: bool | None = False,
        model: Model | None = None,
    ) -> Matching:
        """As ``crm.duplicates.find``, over the visible records."""
        return self._service.find(
            entity, threshold=threshold, max_block=max_block, archived=archived, model=model
        )

    def candidates_for(self, record: Contact | Organization) -> tuple[Candidate, ...]:
        """The visible records ``record`` probably duplicates."""
        return self._service.candidates_for(record)

    def model(self, entity: DuplicateEntity = "contact") -> Model:
        """The model of this scope: the last one :meth:`find` fitted here, or the default."""
        return self._service.model(entity)


# =============================================================== segments


class _SegmentReads(SegmentService):
    """Segment evaluation over the visible records, by the store when it can."""

    def __init__(self, context: _ScopedContext):
        super().__init__(context)
        self._context = context

    def _evaluate(
        self, uow: UnitOfWork, criteria: Criteria, as_of: datetime
    ) -> list[OrganizationId]:
        inner = _inner(uow)
        if not hasattr(inner, "segment"):
            return super()._evaluate(uow, criteria, as_of)  # the pure path, restricted reads
        guard = self._context._guard
        restrict: dict[type[Entity], Restriction | None] = {
            cls: guard.policy.visibility(guard.principal, cls)
            for cls in (Organization, Interaction, Opportunity)
        }
        evaluator = cast(SegmentEvaluator, inner)
        kinds = tuple(self._kinds().items())
        return evaluator.segment(criteria, as_of=as_of, custom_kinds=kinds, restrict=restrict)

    def _members(self, uow: UnitOfWork, segment: Segment, as_of: datetime) -> list[OrganizationId]:
        ids = super()._members(uow, segment, as_of)
        if segment.mode is not SegmentMode.STATIC or not ids:
            return ids  # a dynamic segment is evaluated over the visible records
        # a snapshot's members: the visible ones, asked of the store
        query = Query(filters=(In("id", tuple(ids)),), archived=None)
        visible = {o.id for o in uow.repository(Organization).find(query)}
        return [i for i in ids if i in visible]


class ScopedSegments:
    """``scoped.segments``: the members of a segment the user may see.

    Criteria on history (interactions, opportunities) count the visible
    records only.  Segment definitions are not offered in a scope (a
    snapshot's member list would name hidden organizations).
    """

    def __init__(self, context: _ScopedContext):
        self._service = _SegmentReads(context)

    def member_ids(
        self, segment: SegmentRef, *, as_of: datetime | None = None
    ) -> list[OrganizationId]:
        """The ids of the segment's visible organizations, in id order."""
        return self._service.member_ids(segment, as_of=as_of)

    def members(self, segment: SegmentRef, *, as_of: datetime | None = None) -> list[Organization]:
        """The segment's visible organizations, in id order."""
        return self._service.members(segment, as_of=as_of)

    def member_count(self, segment: SegmentRef, *, as_of: datetime | None = None) -> int:
        """How many visible organizations the segment holds."""
        return self._service.member_count(segment, as_of=as_of)

    def preview(self, criteria: Criteria, *, as_of: datetime | None = None) -> list[OrganizationId]:
        """The ids of the visible organizations meeting an unsaved criteria tree."""
        return self._service.preview(criteria, as_of=as_of)


# =============================================================== timeline


class _NoCases:
    """A unit of work hiding the record types a scope does not cover (cases)."""

    def __init__(self, inner: UnitOfWork, covered: tuple[type[Any], ...]):
        self._inner = inner
        self._covered = covered

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def repository(self, cls: type[Any]) -> Any:
        if cls in self._covered:
            return self._inner.repository(cls)
        return _Nothing()


class _Nothing:
    """A repository of a type the scope does not cover: it finds nothing."""

    def find(self, query: Query) -> list[Any]:
        return []

    def get_many(self, ids: object) -> dict[UUID, Any]:
        return {}


class _TimelineReader:
    """What :func:`~crmkit.services.timeline.timeline` needs of a CRM: ``_read``."""

    def __init__(self, context: CRM):
        self._context = context

    def _read(self, fn: Any) -> Any:
        from crmkit.core.access import COVERED

        return self._context._read(lambda uow: fn(cast(UnitOfWork, _NoCases(uow, COVERED))))


def scoped_timeline(
    context: CRM,
    record: Organization | Contact | Opportunity | UUID,
    *,
    limit: int = 50,
    offset: int = 0,
) -> list[TimelineEntry]:
    """The timeline of a visible record, made of visible records' events only.

    Raises:
        AccessDenied: the record is hidden or absent (``read record``).
        ValidationError: a bad ``limit``, ``offset`` or target.
    """
    # a record passed in is looked up again: its events are shown only if it is visible
    target = record.id if isinstance(record, Organization | Contact | Opportunity) else record
    try:
        return timeline(cast("CRM", _TimelineReader(context)), target, limit=limit, offset=offset)
    except NotFoundError:
        raise AccessDenied("read", "record") from None


# ================================================================ wiring


class ScopedReads:
    """The read services of one scope, built on its context.

    The context's own ``analytics`` and ``targets`` become the scoped ones,
    so the forecast (which reads them) is scoped too.
    """

    def __init__(self, context: _ScopedContext):
        self.analytics = ScopedAnalytics(context)
        self.targets = ScopedTargets(context)
        context.analytics = self.analytics
        context.targets = self.targets._service
        self.forecast = ForecastService(context)
        self.exports = ExportService(context)
        self.duplicates = ScopedDuplicates(context)
        self.segments = ScopedSegments(context)
