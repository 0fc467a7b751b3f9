"""Interaction, campaign and customer analytics: pure functions, ``as_of`` passed in.

The pipeline analytics of :mod:`crmkit.core.analytics` look at opportunities;
these look at the work around them and at the customers:

- :func:`interaction_results` (resultados de gestiones): done interactions by
  kind, outcome, user, campaign or period, and how many led to an opportunity;
- :func:`campaign_roi`: leads, opportunities, wins, cost and ROI per campaign,
  each cost counted once per campaign and each win once in the total;
- :func:`customer_value`: won revenue per organization, plus the revenue the
  host system (ERP) reports;
- :func:`retention`: customers by cohort (the period of their first win) and
  the share that won again in each later period;
- :func:`rep_performance`: per owner, won value, win rate, open pipeline and
  activity;
- :func:`relationship_health`: recency and frequency of interactions per
  organization.

Opportunities are read from a :class:`~crmkit.core.analytics.Book`, rebuilt
as they stood at ``as_of`` (so a deal counts as won only if it was won by
then).  Interactions count as they are now, when they happened at or before
``as_of``.  Every result is :class:`~crmkit.core.tables.Tabular`.  The exact
definitions are in the "Analytics and forecasting" guide.

.. versionadded:: 0.1
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Final

from attrs import frozen

from crmkit.core.analytics import (
    Book,
    DealState,
    Period,
    PeriodKind,
    RateFunction,
    _check_aware,
    _currency,
    _fiscal_start,
    _ratio,
    _Valuer,
    convert,
)
from crmkit.core.campaigns import Campaign
from crmkit.core.entities import Organization
from crmkit.core.errors import ValidationError
from crmkit.core.ids import CampaignId, OpportunityId, OrganizationId
from crmkit.core.interactions import Interaction, InteractionStatus
from crmkit.core.leads import Lead
from crmkit.core.money import Money
from crmkit.core.pipelines import StageKind
from crmkit.core.tables import Table, Tabular

__all__ = [
    "ActivityDimension",
    "CampaignReport",
    "CampaignRow",
    "Cohort",
    "CustomerRow",
    "CustomerValue",
    "Health",
    "HealthRow",
    "InteractionResults",
    "InteractionRow",
    "RelationshipHealth",
    "RepPerformance",
    "RepRow",
    "Retention",
    "campaign_roi",
    "customer_value",
    "interaction_results",
    "relationship_health",
    "rep_performance",
    "retention",
]

_DAY: Final = timedelta(days=1)


def _since(value: object) -> datetime | None:
    return None if value is None else _check_aware(value, "since")


def _positive(value: object, name: str) -> timedelta:
    if not isinstance(value, timedelta) or value <= timedelta(0):
        raise ValidationError(name, "must be a positive timedelta", code="range", value=value)
    return value


def _done(
    interactions: Iterable[Interaction], as_of: datetime, since: datetime | None
) -> list[tuple[Interaction, datetime]]:
    """The interactions done at or before ``as_of`` (and at or after ``since``), with when."""
    found = []
    for item in interactions:
        if item.archived or item.status is not InteractionStatus.DONE:
            continue
        at = item.occurred_at or item.scheduled_at or item.created_at
        if at <= as_of and (since is None or at >= since):
            found.append((item, at))
    return found


def _key_order(key: str | None) -> tuple[int, str]:
    return (1, "") if key is None else (0, key)


def _text(value: object) -> str | None:
    return None if value is None else str(value)


# ====================================================== interaction results


class ActivityDimension(enum.Enum):
    """What interaction results group by."""

    KIND = "kind"
    OUTCOME = "outcome"
    USER = "user"  #: the assignee
    CAMPAIGN = "campaign"
    MONTH = "month"  #: of the time it happened
    QUARTER = "quarter"
    YEAR = "year"


_ACTIVITY_PERIODS: Final = {
    ActivityDimension.MONTH: PeriodKind.MONTH,
    ActivityDimension.QUARTER: PeriodKind.QUARTER,
    ActivityDimension.YEAR: PeriodKind.YEAR,
}


@frozen(kw_only=True)
class InteractionRow:
    """Done interactions of one group.

    Attributes:
        key: the group (a kind key, an outcome, user or campaign id as text,
            a period label; ``None`` for those without one).
        done: interactions done in the window.
        with_outcome: of those, the ones with an outcome recorded.
        led_to_opportunity: of those, the ones that led to an opportunity
            (see :func:`interaction_results`).
        opportunities: the distinct opportunities they led to.
        conversion: led_to_opportunity / done.
    """

    key: str | None
    done: int
    with_outcome: int
    led_to_opportunity: int
    opportunities: int
    conversion: Decimal | None


@frozen(kw_only=True)
class InteractionResults(Tabular):
    """Interaction results (resultados de gestiones), grouped ``by`` one dimension."""

    as_of: datetime
    since: datetime | None
    by: ActivityDimension | None
    window: timedelta
    rows: tuple[InteractionRow, ...]
    total: InteractionRow

    def table(self) -> Table:
        """One row per group (the total alone without ``by``)."""
        rows = self.rows if self.by is not None else (self.total,)
        return Table.of(
            f"Interaction results as of {self.as_of.isoformat()}",
            (
                self.by.value if self.by else "total",
                "done",
                "with_outcome",
                "led_to_opportunity",
                "opportunities",
                "conversion",
            ),
            (
                (r.key, r.done, r.with_outcome, r.led_to_opportunity, r.opportunities, r.conversion)
                for r in rows
            ),
            (
                ("interactions done", self.total.done),
                ("led to an opportunity", self.total.led_to_opportunity),
            ),
        )


def _activity_dimension(value: object) -> ActivityDimension:
    if isinstance(value, ActivityDimension):
        return value
    try:
        return ActivityDimension(value)
    except ValueError:
        raise ValidationError(
            "by", f"must be one of: {', '.join(d.value for d in ActivityDimension)}", value=value
        ) from None


def _activity_key(
    item: Interaction, at: datetime, by: ActivityDimension, fiscal_start: int
) -> str | None:
    if by is ActivityDimension.KIND:
        return item.kind
    if by is ActivityDimension.OUTCOME:
        return _text(item.outcome_id)
    if by is ActivityDimension.USER:
        return _text(item.assignee_id)
    if by is ActivityDimension.CAMPAIGN:
        return _text(item.campaign_id)
    kind = _ACTIVITY_PERIODS[by]
    return Period.containing(at.date(), kind, fiscal_start=fiscal_start).label


#: a done interaction and the opportunities it led to
_Led = tuple[Interaction, set[OpportunityId]]


def interaction_results(
    interactions: Iterable[Interaction],
    book: Book,
    *,
    as_of: datetime,
    by: ActivityDimension | str | None = None,
    since: datetime | None = None,
    window: timedelta = timedelta(days=30),
    fiscal_start: int = 1,
) -> InteractionResults:
    """Done interactions by kind, outcome, user, campaign or period, and what they led to.

    An interaction counts when it is done and happened (``occurred_at``) in
    ``[since, as_of]``; planned and cancelled ones do not.  It **led to an
    opportunity** when an opportunity opened (its first stage-history entry)
    at or after the interaction, within ``window`` of it and by ``as_of``,
    and that opportunity is the one the interaction names or belongs to the
    interaction's organization.  Follow-up work on a deal opened before it
    does not count as leading to it.

    Args:
        interactions: the interactions (any status; archived ones are left out).
        book: the opportunities.
        as_of: the moment.
        by: the dimension to group by; ``None`` for the total only.
        since: only interactions from this moment on.
        window: how long after an interaction an opportunity still counts.
        fiscal_start: the month the fiscal year starts (quarters and years).

    Raises:
        ValidationError: naive ``as_of``/``since``, an unknown dimension, a
            window that is not a positive timedelta, a bad ``fiscal_start``.
    """
    moment = _check_aware(as_of, "as_of")
    start = _since(since)
    dimension = None if by is None else _activity_dimension(by)
    span = _positive(window, "window")
    first = _fiscal_start(fiscal_start)
    opened: dict[OrganizationId | None, list[DealState]] = {}
    by_id: dict[OpportunityId, DealState] = {}
    for deal in book.at(moment):
        opened.setdefault(deal.organization_id, []).append(deal)
        by_id[deal.id] = deal
    groups: dict[str | None, list[_Led]] = {}
    for item, at in _done(interactions, moment, start):
        until = min(at + span, moment)
        candidates = list(opened.get(item.organization_id, ())) if item.organization_id else []
        named = by_id.get(item.opportunity_id) if item.opportunity_id else None
        if named is not None:
            candidates.append(named)
        led = {d.id for d in candidates if at <= d.opened_at <= until}
        key = None if dimension is None else _activity_key(item, at, dimension, first)
        groups.setdefault(key, []).append((item, led))

    def row(
        key: str | None, items: Sequence[tuple[Interaction, set[OpportunityId]]]
    ) -> InteractionRow:
        led = sum(1 for _, found in items if found)
        return InteractionRow(
            key=key,
            done=len(items),
            with_outcome=sum(1 for item, _ in items if item.outcome_id is not None),
            led_to_opportunity=led,
            opportunities=len(set().union(*(found for _, found in items))),
            conversion=_ratio(led, len(items)),
        )

    rows: tuple[InteractionRow, ...] = ()
    if dimension is not None:
        rows = tuple(row(k, groups[k]) for k in sorted(groups, key=_key_order))
    return InteractionResults(
        as_of=moment,
        since=start,
        by=dimension,
        window=span,
        rows=rows,
        total=row(None, [entry for items in groups.values() for entry in items]),
    )


# ================================================================ campaigns


@frozen(kw_only=True)
class CampaignRow:
    """What one campaign brought, in the report's currency.

    Attributes:
        campaign_id: the campaign (``None`` in the total).
        name: its name (``"total"`` in the total).
        leads: leads attributed to it, created by ``as_of``.
        opportunities: opportunities attributed to it (its own or its
            converted leads'), each once.
        won: of those, won at ``as_of``.
        won_value: their amounts, each converted at its close day's rate.
        cost: the actual cost (``None`` if not recorded), once per campaign.
        roi: (won value - cost) / cost, 4 places; ``None`` without a cost.
    """

    campaign_id: CampaignId | None
    name: str
    leads: int
    opportunities: int
    won: int
    won_value: Money
    cost: Money | None
    roi: Decimal | None


@frozen(kw_only=True)
class CampaignReport(Tabular):
    """Campaign ROI per campaign, and a total where each cost and each win counts once."""

    as_of: datetime
    currency: str
    rows: tuple[CampaignRow, ...]
    total: CampaignRow

    def table(self) -> Table:
        """One row per campaign, by name."""
        return Table.of(
            f"Campaign ROI as of {self.as_of.isoformat()}",
            (
                "campaign",
                "name",
                "leads",
                "opportunities",
                "won",
                "won_value",
                "cost",
                "roi",
                "currency",
            ),
            (
                (
                    r.campaign_id,
                    r.name,
                    r.leads,
                    r.opportunities,
                    r.won,
                    r.won_value,
                    r.cost,
                    r.roi,
                    self.currency,
                )
                for r in self.rows
            ),
            (
                ("won value", self.total.won_value),
                ("cost", self.total.cost),
                ("ROI", self.total.roi),
            ),
        )


def _roi(won: Money, cost: Money | None) -> Decimal | None:
    if cost is None or cost.amount <= 0:
        return None
    return ((won.amount - cost.amount) / cost.amount).quantize(Decimal("0.0001"))


def campaign_roi(
    book: Book,
    campaigns: Iterable[Campaign],
    leads: Iterable[Lead],
    *,
    as_of: datetime,
    currency: str,
    rate: RateFunction | None = None,
) -> CampaignReport:
    """Campaign ROI at the right grain: each campaign's cost once, each won deal once.

    An opportunity is attributed to a campaign when it names it or was
    converted from one of its leads (as :func:`crmkit.core.campaigns.results`
    does); duplicates in ``leads`` (rows of a join) count once.  Won means
    won at ``as_of``; won values are converted at their close day's rate,
    costs at the rate of the campaign's end day (``as_of``'s day if it ends
    later or has no end).  In the total, a deal attributed to two campaigns
    counts once, each campaign's cost once, and the ROI is over the campaigns
    with a recorded cost (their distinct won deals against their costs).

    Raises:
        ValidationError: naive ``as_of``, an unknown currency, a missing rate.
    """
    moment = _check_aware(as_of, "as_of")
    code = _currency(currency)
    valuer = _Valuer(code, rate)
    deals = {d.id: d for d in book.at(moment)}
    unique_leads = {lead.id: lead for lead in leads if lead.created_at <= moment}
    rows: list[CampaignRow] = []
    won_everywhere: dict[OpportunityId, Money] = {}
    won_costed: dict[OpportunityId, Money] = {}
    total_cost: Money | None = None
    leads_total = 0
    attributed_total: set[OpportunityId] = set()
    for campaign in sorted({c.id: c for c in campaigns}.values(), key=lambda c: (c.name, c.id)):
        mine = [lead for lead in unique_leads.values() if lead.campaign_id == campaign.id]
        via = {lead.opportunity_id for lead in mine if lead.opportunity_id is not None}
        attributed = [d for d in deals.values() if d.campaign_id == campaign.id or d.id in via]
        won = {}
        for deal in attributed:
            if deal.status is StageKind.WON and deal.closed_at is not None:
                won[deal.id] = valuer.value(deal, deal.closed_at.date())
        won_value = valuer.total(m.amount for m in won.values())
        cost = None
        if campaign.actual_cost is not None:
            day = min(campaign.ends_on or moment.date(), moment.date())
            cost = convert(campaign.actual_cost, code, day, rate)
            total_cost = cost if total_cost is None else total_cost + cost
            won_costed.update(won)
        won_everywhere.update(won)
        leads_total += len(mine)
        attributed_total.update(d.id for d in attributed)
        rows.append(
            CampaignRow(
                campaign_id=campaign.id,
                name=campaign.name,
                leads=len(mine),
                opportunities=len(attributed),
                won=len(won),
                won_value=won_value,
                cost=cost,
                roi=_roi(won_value, cost),
            )
        )
    total = CampaignRow(
        campaign_id=None,
        name="total",
        leads=leads_total,
        opportunities=len(attributed_total),
        won=len(won_everywhere),
        won_value=valuer.total(m.amount for m in won_everywhere.values()),
        cost=total_cost,
        roi=_roi(valuer.total(m.amount for m in won_costed.values()), total_cost),
    )
    return CampaignReport(as_of=moment, currency=code, rows=tuple(rows), total=total)


# ================================================================ customers


@frozen(kw_only=True)
class CustomerRow:
    """The value of one customer.

    Attributes:
        organization_id: the organization.
        name: its name (empty when not given).
        won: deals won in the window.
        won_value: their amounts, each converted at its close day's rate.
        host_revenue: the revenue the host system reports (``None`` if none).
        total: won value plus host revenue.
        open_value: its open pipeline at ``as_of`` (open and on-hold deals).
        first_won, last_won: when it first and last won a deal (ever, by ``as_of``).
    """

    organization_id: OrganizationId
    name: str
    won: int
    won_value: Money
    host_revenue: Money | None
    total: Money
    open_value: Money
    first_won: datetime | None
    last_won: datetime | None


@frozen(kw_only=True)
class CustomerValue(Tabular):
    """Value per customer, highest total first."""

    as_of: datetime
    since: datetime | None
    currency: str
    rows: tuple[CustomerRow, ...]

    def table(self) -> Table:
        """One row per organization."""
        return Table.of(
            f"Customer value as of {self.as_of.isoformat()}",
            (
                "organization",
                "name",
                "won",
                "won_value",
                "host_revenue",
                "total",
                "open_value",
                "first_won",
                "last_won",
                "currency",
            ),
            (
                (
                    r.organization_id,
                    r.name,
                    r.won,
                    r.won_value,
                    r.host_revenue,
                    r.total,
                    r.open_value,
                    r.first_won,
                    r.last_won,
                    self.currency,
                )
                for r in self.rows
            ),
        )


def customer_value(
    book: Book,
    *,
    as_of: datetime,
    currency: str,
    since: datetime | None = None,
    rate: RateFunction | None = None,
    host_revenue: Mapping[OrganizationId, Money] | None = None,
    names: Mapping[OrganizationId, str] | None = None,
) -> CustomerValue:
    """Won revenue per organization, plus what the host system (ERP) invoiced.

    Won revenue: the deals won at ``as_of`` that closed in ``[since, as_of]``,
    each converted at its close day's rate.  ``host_revenue`` (from the
    ``crmkit_customer_revenue`` hook in ``crm.analytics``) is added as given,
    converted at ``as_of``'s day.  An organization appears when it has a deal
    in the book or host revenue; rows are sorted by total, highest first.

    Raises:
        ValidationError: naive ``as_of``/``since``, an unknown currency, a missing rate.
    """
    moment = _check_aware(as_of, "as_of")
    start = _since(since)
    code = _currency(currency)
    valuer = _Valuer(code, rate)
    extra = dict(host_revenue or {})
    labels = dict(names or {})
    deals: dict[OrganizationId, list[DealState]] = {}
    for deal in book.at(moment):
        if deal.organization_id is not None:
            deals.setdefault(deal.organization_id, []).append(deal)
    rows = []
    for org_id in set(deals) | set(extra):
        mine = deals.get(org_id, [])
        wins = [d for d in mine if d.status is StageKind.WON and d.closed_at is not None]
        counted = [d for d in wins if start is None or (d.closed_at and d.closed_at >= start)]
        won_value = valuer.total(
            valuer.amount(d, d.closed_at.date()) for d in counted if d.closed_at is not None
        )
        host = extra.get(org_id)
        host_value = None if host is None else convert(host, code, moment.date(), rate)
        closes = sorted(d.closed_at for d in wins if d.closed_at is not None)
        rows.append(
            CustomerRow(
                organization_id=org_id,
                name=labels.get(org_id, ""),
                won=len(counted),
                won_value=won_value,
                host_revenue=host_value,
                total=won_value + host_value if host_value is not None else won_value,
                open_value=valuer.total(
                    valuer.amount(d, moment.date()) for d in mine if d.in_pipeline
                ),
                first_won=closes[0] if closes else None,
                last_won=closes[-1] if closes else None,
            )
        )
    rows.sort(key=lambda r: (-r.total.amount, r.name, str(r.organization_id)))
    return CustomerValue(as_of=moment, since=start, currency=code, rows=tuple(rows))


# ================================================================ retention


@frozen(kw_only=True)
class Cohort:
    """The customers whose first win fell in one period, and who won again later.

    Attributes:
        period: the cohort's period (of the first win's close date).
        customers: organizations whose first won deal closed in it.
        retained: for each later period that has started by ``as_of`` (the
            first, the second...), how many of them won a deal closing in it.
    """

    period: Period
    customers: int
    retained: tuple[int, ...]

    @property
    def rates(self) -> tuple[Decimal | None, ...]:
        """``retained`` / ``customers`` for each later period."""
        return tuple(_ratio(n, self.customers) for n in self.retained)


@frozen(kw_only=True)
class Retention(Tabular):
    """Customer retention by cohort, oldest cohort first."""

    as_of: datetime
    kind: PeriodKind
    cohorts: tuple[Cohort, ...]

    def table(self) -> Table:
        """One row per cohort: its size, then the retention rate of each later period."""
        width = max((len(c.retained) for c in self.cohorts), default=0)
        return Table.of(
            f"Retention by {self.kind.value} cohort as of {self.as_of.isoformat()}",
            ("cohort", "customers", *(f"+{k}" for k in range(1, width + 1))),
            (
                (c.period.label, c.customers, *c.rates, *([None] * (width - len(c.retained))))
                for c in self.cohorts
            ),
        )


def retention(
    book: Book,
    *,
    as_of: datetime,
    by: PeriodKind | str = PeriodKind.QUARTER,
    fiscal_start: int = 1,
) -> Retention:
    """Cohorts of customers by the period of their first win, and who won again after.

    A customer is an organization with a deal won at ``as_of``; its cohort is
    the period holding the close date of its first won deal.  It is
    **retained** in the k-th period after its cohort's when a deal of it that
    was won by ``as_of`` closed in that period.  Only periods that have
    started by ``as_of`` are listed, so the last one of each cohort may be
    still running.

    Raises:
        ValidationError: naive ``as_of``, an unknown period kind, a bad ``fiscal_start``.
    """
    moment = _check_aware(as_of, "as_of")
    first = _fiscal_start(fiscal_start)
    if not isinstance(by, PeriodKind):
        try:
            by = PeriodKind(by)
        except ValueError:
            raise ValidationError(
                "by", f"must be one of: {', '.join(k.value for k in PeriodKind)}", value=by
            ) from None
    wins: dict[OrganizationId, list[date]] = {}
    for deal in book.at(moment):
        if deal.status is StageKind.WON and deal.closed_at and deal.organization_id:
            wins.setdefault(deal.organization_id, []).append(deal.closed_at.date())
    today = Period.containing(moment.date(), by, fiscal_start=first)
    members: dict[Period, list[set[date]]] = {}
    for days in wins.values():
        cohort = Period.containing(min(days), by, fiscal_start=first)
        starts = {Period.containing(day, by, fiscal_start=first).start for day in days}
        members.setdefault(cohort, []).append(starts)
    cohorts = []
    for period in sorted(members, key=lambda p: p.start):
        later: list[date] = []
        cursor = period
        while cursor.start < today.start:
            cursor = Period.containing(cursor.end, by, fiscal_start=first)
            later.append(cursor.start)
        cohorts.append(
            Cohort(
                period=period,
                customers=len(members[period]),
                retained=tuple(sum(1 for s in members[period] if start in s) for start in later),
            )
        )
    return Retention(as_of=moment, kind=by, cohorts=tuple(cohorts))


# ============================================================ rep performance


@frozen(kw_only=True)
class RepRow:
    """One owner's figures.

    Attributes:
        owner_id: the user (``None``: deals and interactions without one).
        won, lost: deals closed in the window (owner at ``as_of``).
        won_value: the won deals' amounts, each at its close day's rate.
        win_rate: won / (won + lost); ``None`` when none closed.
        open_deals: deals in the pipeline at ``as_of``.
        open_value, weighted: their value and weighted value.
        activities: interactions done in the window with this user as assignee.
    """

    owner_id: str | None
    won: int
    lost: int
    won_value: Money
    win_rate: Decimal | None
    open_deals: int
    open_value: Money
    weighted: Money
    activities: int


@frozen(kw_only=True)
class RepPerformance(Tabular):
    """Rep performance: one row per user, highest won value first (``None`` last)."""

    as_of: datetime
    since: datetime | None
    currency: str
    rows: tuple[RepRow, ...]

    def table(self) -> Table:
        """One row per owner."""
        return Table.of(
            f"Rep performance as of {self.as_of.isoformat()}",
            (
                "owner",
                "won",
                "lost",
                "won_value",
                "win_rate",
                "open_deals",
                "open_value",
                "weighted",
                "activities",
                "currency",
            ),
            (
                (
                    r.owner_id,
                    r.won,
                    r.lost,
                    r.won_value,
                    r.win_rate,
                    r.open_deals,
                    r.open_value,
                    r.weighted,
                    r.activities,
                    self.currency,
                )
                for r in self.rows
            ),
        )


def rep_performance(
    book: Book,
    interactions: Iterable[Interaction],
    *,
    as_of: datetime,
    currency: str,
    since: datetime | None = None,
    rate: RateFunction | None = None,
) -> RepPerformance:
    """Per owner: won value and win rate of the deals closed in ``[since, as_of]``, open
    pipeline at ``as_of`` and interactions done in the window as assignee.

    The owner of a deal is its owner at ``as_of``.  Won and lost count as in
    :func:`crmkit.core.analytics.win_rates` by owner, the open pipeline as in
    :func:`crmkit.core.analytics.pipeline` by owner.

    Raises:
        ValidationError: naive ``as_of``/``since``, an unknown currency, a missing rate.
    """
    moment = _check_aware(as_of, "as_of")
    start = _since(since)
    code = _currency(currency)
    valuer = _Valuer(code, rate)
    deals: dict[str | None, list[DealState]] = {}
    for deal in book.at(moment):
        deals.setdefault(_text(deal.owner_id), []).append(deal)
    activity: dict[str | None, int] = {}
    for item, _ in _done(interactions, moment, start):
        key = _text(item.assignee_id)
        activity[key] = activity.get(key, 0) + 1
    rows = []
    for key in set(deals) | set(activity):
        mine = deals.get(key, [])
        closed = [
            d for d in mine if d.closed_at is not None and (start is None or d.closed_at >= start)
        ]
        won = [d for d in closed if d.status is StageKind.WON]
        opened = [(d, valuer.amount(d, moment.date())) for d in mine if d.in_pipeline]
        rows.append(
            RepRow(
                owner_id=key,
                won=len(won),
                lost=len(closed) - len(won),
                won_value=valuer.total(
                    valuer.amount(d, d.closed_at.date()) for d in won if d.closed_at is not None
                ),
                win_rate=_ratio(len(won), len(closed)),
                open_deals=len(opened),
                open_value=valuer.total(amount for _, amount in opened),
                weighted=valuer.total(valuer.weigh(amount, d.probability) for d, amount in opened),
                activities=activity.get(key, 0),
            )
        )
    rows.sort(key=lambda r: (r.owner_id is None, -r.won_value.amount, r.owner_id or ""))
    return RepPerformance(as_of=moment, since=start, currency=code, rows=tuple(rows))


# ======================================================= relationship health


class Health(enum.Enum):
    """How recently an organization was worked with (see :func:`relationship_health`)."""

    ACTIVE = "active"  #: an interaction within ``active_within``
    COOLING = "cooling"  #: the last one within ``window``, but not recent
    COLD = "cold"  #: nothing within ``window``
    NEVER = "never"  #: no interaction done at all


@frozen(kw_only=True)
class HealthRow:
    """Recency and frequency of the interactions with one organization.

    Attributes:
        organization_id: the organization.
        name: its name.
        last_interaction: when the last done interaction happened (``None``: never).
        days_since: whole days from it to ``as_of``.
        recent: interactions done within ``window`` before ``as_of`` (frequency).
        health: active, cooling, cold or never.
    """

    organization_id: OrganizationId
    name: str
    last_interaction: datetime | None
    days_since: int | None
    recent: int
    health: Health


@frozen(kw_only=True)
class RelationshipHealth(Tabular):
    """Relationship health per organization, the ones needing attention first."""

    as_of: datetime
    window: timedelta
    active_within: timedelta
    rows: tuple[HealthRow, ...]

    def counts(self) -> dict[Health, int]:
        """How many organizations are in each state."""
        return {h: sum(1 for r in self.rows if r.health is h) for h in Health}

    def table(self) -> Table:
        """One row per organization: never first, then the longest without contact."""
        return Table.of(
            f"Relationship health as of {self.as_of.isoformat()}",
            ("organization", "name", "last_interaction", "days_since", "recent", "health"),
            (
                (r.organization_id, r.name, r.last_interaction, r.days_since, r.recent, r.health)
                for r in self.rows
            ),
            ((h.value, n) for h, n in self.counts().items()),
        )


def relationship_health(
    organizations: Iterable[Organization],
    interactions: Iterable[Interaction],
    *,
    as_of: datetime,
    window: timedelta = timedelta(days=90),
    active_within: timedelta = timedelta(days=30),
) -> RelationshipHealth:
    """Recency (time since the last done interaction) and frequency (how many within
    ``window``) of the interactions with each organization.

    Health: **active** when the last interaction is within ``active_within``
    of ``as_of``; **cooling** when within ``window``; **cold** when older;
    **never** without any done interaction by ``as_of``.  Interactions count
    when done and happened at or before ``as_of``; archived organizations are
    left out.

    Raises:
        ValidationError: naive ``as_of``; ``window`` or ``active_within`` not a
            positive timedelta, or ``active_within`` longer than ``window``.
    """
    moment = _check_aware(as_of, "as_of")
    span = _positive(window, "window")
    recent_span = _positive(active_within, "active_within")
    if recent_span > span:
        raise ValidationError(
            "active_within", "must not be longer than window", code="range", value=active_within
        )
    times: dict[OrganizationId, list[datetime]] = {}
    for item, at in _done(interactions, moment, None):
        if item.organization_id is not None:
            times.setdefault(item.organization_id, []).append(at)
    rows = []
    for org in {o.id: o for o in organizations if not o.archived}.values():
        seen = times.get(org.id, [])
        last = max(seen, default=None)
        if last is None:
            health = Health.NEVER
        elif moment - last <= recent_span:
            health = Health.ACTIVE
        elif moment - last <= span:
            health = Health.COOLING
        else:
            health = Health.COLD
        rows.append(
            HealthRow(
                organization_id=org.id,
                name=org.name,
                last_interaction=last,
                days_since=None if last is None else (moment - last) // _DAY,
                recent=sum(1 for at in seen if at > moment - span),
                health=health,
            )
        )
    rows.sort(
        key=lambda r: (
            r.last_interaction is not None,
            r.last_interaction or moment,
            r.name,
            str(r.organization_id),
        )
    )
    return RelationshipHealth(
        as_of=moment, window=span, active_within=recent_span, rows=tuple(rows)
    )
