"""``crm.analytics``: the pure analytics of :mod:`crmkit.core.analytics` over the store.

Each call reads a :class:`~crmkit.core.analytics.Book` in one unit of work (a
consistent snapshot) and hands it to the pure function of the same name, with
the CRM's exchange-rate plugins as the rate function.

The pipeline and win-rate figures are pushed down to the store when it can
group them itself (an :class:`~crmkit.stores.base.AnalyticsAggregator`, as
``SqlStore`` is) and ``as_of`` is at or after the last change of any
opportunity (no history to replay): the store answers with partial sums per
group and :mod:`crmkit.core.pushdown` turns them into the very objects the
pure functions return.  Win rates also need the CRM clock in UTC (close days
are the UTC days the store groups by).

.. versionadded:: 0.1
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Final, TypeVar, cast
from uuid import UUID

from crmkit.core import analytics as core
from crmkit.core import pushdown
from crmkit.core.analytics import (
    REVISED_FIELDS,
    Book,
    CycleReport,
    Dimension,
    Funnel,
    PipelineReport,
    Revision,
    StageTimes,
    Velocity,
    Waterfall,
    WinRate,
    WinRates,
)
from crmkit.core.audit import AuditAction
from crmkit.core.entities import Organization
from crmkit.core.errors import ValidationError
from crmkit.core.ids import TeamId, UserId
from crmkit.core.money import Money
from crmkit.core.opportunities import Opportunity
from crmkit.core.pipelines import Pipeline
from crmkit.core.query import Query
from crmkit.core.targets import Team
from crmkit.serialization import converter
from crmkit.services.insights import InsightReports
from crmkit.stores.base import AnalyticsAggregator, Repository, UnitOfWork

if TYPE_CHECKING:
    from crmkit.app import CRM

__all__ = ["AnalyticsService"]

T = TypeVar("T")

#: The type each revised field's audited JSON value structures into.
_FIELD_TYPES: Final[dict[str, type]] = {
    "amount": Money,
    "expected_close": date,
    "probability": Decimal,
    "probability_override": bool,
    "owner_id": UUID,
    "close_reason_id": UUID,
}
assert set(_FIELD_TYPES) == REVISED_FIELDS


class AnalyticsService(InsightReports):
    """Pipeline, win rate, sales cycle, funnel, velocity and waterfall of this CRM.

    ``as_of`` defaults to the CRM clock's now; give a past moment to see the
    figures as they stood then (rebuilt from the stage history and the audit
    trail).  ``currency`` is the report's currency: amounts in others are
    converted through ``crmkit_exchange_rate`` and, without a rate, the call
    fails with ``ValidationError(code="no_rate")``.  The definitions are in the
    "Analytics and forecasting" guide.
    """

    def __init__(self, crm: CRM):
        self._crm = crm

    # -------------------------------------------------------------- snapshot
    def book(self, *, as_of: datetime | None = None) -> Book:
        """The snapshot the reports read, able to go back to ``as_of``.

        Revisions are read from the audit trail only for the opportunities
        changed after ``as_of`` (none when ``as_of`` is now).

        Raises:
            ValidationError: ``as_of`` is not a timezone-aware datetime.
        """
        moment = self._moment(as_of)
        return self._crm._read(lambda uow: self._load(uow, moment))

    def _load(self, uow: UnitOfWork, as_of: datetime) -> Book:
        opportunities = uow.repository(Opportunity).find(Query())
        organization_ids = {o.organization_id for o in opportunities if o.organization_id}
        organizations = self._organizations(uow).get_many(organization_ids)
        revisions: list[Revision] = []
        for opp in opportunities:
            if opp.updated_at > as_of:
                revisions += _revisions(uow, opp, as_of)
        return Book(
            opportunities=opportunities,
            pipelines=list(self._crm.pipelines),
            zones={
                org_id: org.zone_id
                for org_id, org in organizations.items()
                if isinstance(org, Organization)
            },
            revisions=revisions,
            teams=_teams(uow),
        )

    def _organizations(self, uow: UnitOfWork) -> Repository[Organization]:
        """Where the book reads its opportunities' organizations (for their zones)."""
        return uow.repository(Organization)

    def _moment(self, as_of: datetime | None) -> datetime:
        if as_of is None:
            return self._crm.now()
        if not isinstance(as_of, datetime) or as_of.utcoffset() is None:
            raise ValidationError(
                "as_of", "must be a timezone-aware datetime", code="type", value=as_of
            )
        return as_of

    def _rate(self, base: str, quote: str, on: date) -> Decimal | None:
        try:
            return self._crm.exchange_rate(base, quote, on)
        except ValidationError as error:
            if error.code == "no_rate":
                return None
            raise

    def _pipelines(self) -> dict[str, Pipeline]:
        return {p.key: p for p in self._crm.pipelines}

    def _aggregator(self, uow: UnitOfWork, as_of: datetime) -> AnalyticsAggregator | None:
        """The store's aggregator, when it can give the figures at ``as_of``.

        It can when the store has one and no opportunity changed after
        ``as_of`` (the book at ``as_of`` is the book as stored).  The stored
        pipelines and stages are checked as :class:`Book` checks them.
        """
        if not hasattr(uow, "open_deal_groups"):
            return None
        aggregator = cast(AnalyticsAggregator, uow)
        last = aggregator.last_opportunity_change()
        if last is not None and last > as_of:
            return None
        pipelines = self._pipelines()
        unknown: list[tuple[str, str]] = []
        for key, stage in sorted(aggregator.opportunity_stages()):
            if key not in pipelines:
                raise ValidationError(
                    "pipelines",
                    f"pipeline {key!r} of an opportunity is missing",
                    code="pipeline",
                    value=key,
                )
            if not any(s.key == stage for s in pipelines[key].stages):
                unknown.append((key, stage))
        if unknown:
            live = aggregator.opportunity_stages(archived=False)
            for key, stage in unknown:
                if (key, stage) in live:
                    pipelines[key].stage(stage)  # raises the same error as Book.at
        return aggregator

    def _pipeline_pushed(
        self, uow: UnitOfWork, as_of: datetime, fiscal_start: int, **options: Any
    ) -> PipelineReport | None:
        aggregator = self._aggregator(uow, as_of)
        if aggregator is None:
            return None
        pipelines = self._pipelines()
        query = pushdown.open_deals_query(pipelines, fiscal_start=fiscal_start, **options)
        groups = aggregator.open_deal_groups(query)
        if groups is None:
            return None
        return pushdown.pipeline_report(
            query,
            groups,
            pipelines=pipelines,
            as_of=as_of,
            rate=self._rate,
            fiscal_start=fiscal_start,
            teams=_teams(uow) if Dimension.TEAM in query.by else None,
        )

    def _win_rates_pushed(
        self, uow: UnitOfWork, as_of: datetime, fiscal_start: int, **options: Any
    ) -> tuple[WinRate, ...] | None:
        if self._crm.now().utcoffset() != timedelta(0):
            return None  # close days would be UTC days, not the clock's
        aggregator = self._aggregator(uow, as_of)
        if aggregator is None:
            return None
        pipelines = self._pipelines()
        query = pushdown.closed_deals_query(pipelines, fiscal_start=fiscal_start, **options)
        groups = aggregator.closed_deal_groups(query)
        if groups is None:
            return None
        return pushdown.win_rate_reports(
            query,
            groups,
            pipelines=pipelines,
            as_of=as_of,
            rate=self._rate,
            fiscal_start=fiscal_start,
            teams=_teams(uow) if Dimension.TEAM in query.by else None,
        )

    def _run(self, as_of: datetime | None, fn: Callable[[Book, datetime], T]) -> T:
        moment = self._moment(as_of)
        return fn(self.book(as_of=moment), moment)

    # ---------------------------------------------------------------- reports
    def pipeline(
        self,
        *,
        currency: str,
        as_of: datetime | None = None,
        by: Dimension | str | Sequence[Dimension | str] | None = None,
        pipeline: str | None = None,
        include_on_hold: bool = True,
        fiscal_start: int = 1,
    ) -> PipelineReport:
        """Pipeline value and weighted pipeline (see :func:`crmkit.core.analytics.pipeline`).

        Computed by the store (``GROUP BY``) when it can; see the module docstring.
        """
        moment = self._moment(as_of)

        def read(uow: UnitOfWork) -> PipelineReport:
            pushed = self._pipeline_pushed(
                uow,
                moment,
                fiscal_start,
                currency=currency,
                by=by,
                pipeline=pipeline,
                include_on_hold=include_on_hold,
            )
            if pushed is not None:
                return pushed
            return core.pipeline(
                self._load(uow, moment),
                as_of=moment,
                currency=currency,
                by=by,
                rate=self._rate,
                pipeline=pipeline,
                include_on_hold=include_on_hold,
                fiscal_start=fiscal_start,
            )

        return self._crm._read(read)

    def win_rate(
        self,
        *,
        currency: str,
        as_of: datetime | None = None,
        since: datetime | None = None,
        pipeline: str | None = None,
    ) -> WinRate:
        """Win rate, average deal and lost reasons (see :func:`crmkit.core.analytics.win_rate`).

        Computed by the store (``GROUP BY``) when it can; see the module docstring.
        """
        moment = self._moment(as_of)

        def read(uow: UnitOfWork) -> WinRate:
            pushed = self._win_rates_pushed(
                uow, moment, 1, by=None, currency=currency, since=since, pipeline=pipeline
            )
            if pushed is not None:
                return pushed[0]
            return core.win_rate(
                self._load(uow, moment),
                as_of=moment,
                currency=currency,
                since=since,
                rate=self._rate,
                pipeline=pipeline,
            )

        return self._crm._read(read)

    def win_rates(
        self,
        *,
        by: Dimension | str | Sequence[Dimension | str],
        currency: str,
        as_of: datetime | None = None,
        since: datetime | None = None,
        pipeline: str | None = None,
        fiscal_start: int = 1,
    ) -> WinRates:
        """Win rate per owner, team, zone, source, close month... or several of them.

        See :func:`crmkit.core.analytics.win_rates`; computed by the store
        (``GROUP BY``) when it can (see the module docstring).
        """
        moment = self._moment(as_of)
        dimensions = core._check_grouping(by)

        def read(uow: UnitOfWork) -> WinRates:
            pushed = self._win_rates_pushed(
                uow, moment, fiscal_start, by=by, currency=currency, since=since, pipeline=pipeline
            )
            if pushed is not None:
                return WinRates(
                    as_of=moment,
                    by=dimensions[0] if len(dimensions) == 1 else dimensions,
                    currency=currency.upper(),
                    groups=pushed,
                )
            return core.win_rates(
                self._load(uow, moment),
                by=by,
                as_of=moment,
                currency=currency,
                since=since,
                rate=self._rate,
                pipeline=pipeline,
                fiscal_start=fiscal_start,
            )

        return self._crm._read(read)

    def sales_cycle(
        self, *, as_of: datetime | None = None, pipeline: str | None = None
    ) -> CycleReport:
        """Sales-cycle length, open deals censored (Kaplan-Meier)."""
        return self._run(
            as_of, lambda book, moment: core.sales_cycle(book, as_of=moment, pipeline=pipeline)
        )

    def time_in_stage(
        self, *, pipeline: str = "sales", as_of: datetime | None = None
    ) -> StageTimes:
        """Time spent in each stage of ``pipeline`` per visit."""
        return self._run(
            as_of, lambda book, moment: core.time_in_stage(book, as_of=moment, pipeline=pipeline)
        )

    def funnel(self, *, pipeline: str = "sales", as_of: datetime | None = None) -> Funnel:
        """The stage conversion funnel of ``pipeline``, from the stage history."""
        return self._run(
            as_of, lambda book, moment: core.funnel(book, as_of=moment, pipeline=pipeline)
        )

    def velocity(
        self,
        *,
        currency: str,
        as_of: datetime | None = None,
        window: timedelta = timedelta(days=365),
        pipeline: str | None = None,
    ) -> Velocity:
        """Pipeline velocity over the ``window`` before ``as_of``."""
        return self._run(
            as_of,
            lambda book, moment: core.velocity(
                book,
                as_of=moment,
                currency=currency,
                window=window,
                rate=self._rate,
                pipeline=pipeline,
            ),
        )

    def waterfall(
        self,
        *,
        start: datetime,
        currency: str,
        end: datetime | None = None,
        pipeline: str | None = None,
    ) -> Waterfall:
        """How the pipeline moved from ``start`` to ``end`` (now by default)."""
        first = self._moment(start)
        last = self._moment(end)
        book = self.book(as_of=min(first, last))
        return core.waterfall(
            book, start=first, end=last, currency=currency, rate=self._rate, pipeline=pipeline
        )


def _teams(uow: UnitOfWork) -> dict[TeamId, tuple[UserId, ...]]:
    """The members of each team not archived, as they are now (membership has no history)."""
    return {team.id: team.member_ids for team in uow.repository(Team).find(Query())}


def _revisions(uow: UnitOfWork, opp: Opportunity, after: datetime) -> list[Revision]:
    """The revised-field changes of ``opp`` audited after ``after``, typed again."""
    found: list[Revision] = []
    for entry in uow.audit.history(opp.id):
        if entry.action is not AuditAction.UPDATE or entry.at <= after:
            continue
        for change in entry.changes:
            if change.field in REVISED_FIELDS:
                found.append(
                    Revision(
                        opportunity_id=opp.id,
                        at=entry.at,
                        field=change.field,
                        old=_typed(change.field, change.old),
                        new=_typed(change.field, change.new),
                    )
                )
    return found


def _typed(field: str, value: object) -> Any:
    return None if value is None else converter.structure(value, _FIELD_TYPES[field])
