"""Pipeline analytics: pure functions over a snapshot of the book, as of a moment.

Every function here takes a :class:`Book` (the opportunities, their pipelines,
the zone of each organization and the revisions of the fields that change
outside the stage history) and an ``as_of`` moment that is always passed in,
never read from a clock.  The book is first rebuilt as it stood at ``as_of``
(:meth:`Book.at`): stage and status from each opportunity's stage history,
amount, close date, probability, owner and loss reason by undoing every
:class:`Revision` made after ``as_of``.  So the pipeline of a past date is the
same function called with an earlier ``as_of``.

Amounts are exact :class:`~crmkit.core.money.Money`.  Each report is in one
``currency``; an amount in another currency is converted with the ``rate``
function the caller gives (``rate(base, quote, day)``), and a missing rate is a
:class:`~crmkit.core.errors.ValidationError` with code ``no_rate``, never a
silent sum.

The definitions (what counts, what is censored, which probability is used)
are written out in the "Analytics and forecasting" guide.

.. versionadded:: 0.1
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import date, datetime, timedelta
from decimal import (
    MAX_EMAX,
    MAX_PREC,
    MIN_EMIN,
    ROUND_HALF_EVEN,
    Context,
    Decimal,
    localcontext,
)
from fractions import Fraction
from functools import lru_cache
from itertools import product
from types import MappingProxyType
from typing import Any, ClassVar, Final, TypeVar, overload
from uuid import UUID

from attrs import field, frozen

from crmkit.core.errors import ValidationError
from crmkit.core.events import FieldChange
from crmkit.core.ids import (
    CampaignId,
    LossReasonId,
    OpportunityId,
    OrganizationId,
    SourceId,
    TeamId,
    UserId,
    ZoneId,
)
from crmkit.core.money import Money, currency_exponent
from crmkit.core.opportunities import Opportunity
from crmkit.core.pipelines import Pipeline, Stage, StageKind
from crmkit.core.tables import Table, Tabular

__all__ = [
    "REVISED_FIELDS",
    "TEAM_NOTE",
    "Book",
    "CycleReport",
    "DealState",
    "Dimension",
    "Funnel",
    "FunnelStep",
    "LostReasonRow",
    "Period",
    "PeriodKind",
    "PipelineReport",
    "PipelineRow",
    "RateFunction",
    "Revision",
    "StageTime",
    "StageTimes",
    "SurvivalPoint",
    "Velocity",
    "Waterfall",
    "WaterfallRow",
    "WaterfallStep",
    "WinRate",
    "WinRates",
    "convert",
    "funnel",
    "kaplan_meier",
    "pipeline",
    "sales_cycle",
    "time_in_stage",
    "velocity",
    "waterfall",
    "win_rate",
    "win_rates",
]

#: ``rate(base, quote, day)``: the price of one ``base`` in ``quote`` on ``day``,
#: or ``None`` when unknown (the signature of ``crm.exchange_rate`` without the error).
RateFunction = Callable[[str, str, date], Decimal | None]

#: The opportunity fields that change outside the stage history and that
#: :meth:`Book.at` rebuilds from revisions.
REVISED_FIELDS: Final = frozenset(
    {
        "amount",
        "expected_close",
        "probability",
        "probability_override",
        "owner_id",
        "close_reason_id",
    }
)

T = TypeVar("T")

_ONE: Final = Decimal(1)
_ZERO: Final = Decimal(0)
_DAY: Final = timedelta(days=1)


# ==================================================================== periods


class PeriodKind(enum.Enum):
    """The length of a reporting period."""

    MONTH = "month"
    QUARTER = "quarter"
    YEAR = "year"


def _fiscal_start(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 12:
        raise ValidationError(
            "fiscal_start", "must be a month number, 1-12", code="range", value=value
        )
    return value


def _add_months(day: date, months: int) -> date:
    index = day.year * 12 + day.month - 1 + months
    return date(index // 12, index % 12 + 1, 1)


@frozen(kw_only=True)
class Period:
    """A month, quarter or year, always with its year.

    Quarters and years follow the fiscal year, which starts in month
    ``fiscal_start`` (1, January, by default) and is named after the calendar
    year it ends in (a fiscal year from July 2026 to June 2027 is ``FY2027``).
    Labels: ``"2027-03"`` (months are calendar months), ``"2027-Q1"`` and
    ``"2027"`` with a January fiscal start, ``"FY2027-Q1"`` and ``"FY2027"``
    otherwise.  Labels of one kind and fiscal start sort chronologically.

    Attributes:
        kind: month, quarter or year.
        start: the first day.
        end: the day after the last one.
        label: as above.
    """

    kind: PeriodKind
    start: date
    end: date
    label: str

    @classmethod
    def containing(cls, day: date, kind: PeriodKind, *, fiscal_start: int = 1) -> Period:
        """The period of ``kind`` that ``day`` falls in.

        Raises:
            ValidationError: ``fiscal_start`` is not 1-12 (field ``fiscal_start``).
        """
        return _period(day.year, day.month, kind, _fiscal_start(fiscal_start))

    def __contains__(self, day: object) -> bool:
        return isinstance(day, date) and self.start <= day < self.end


@lru_cache(maxsize=4096)
def _period(year: int, month: int, kind: PeriodKind, first: int) -> Period:
    """The period of ``kind`` holding the month ``year``-``month`` (fiscal year from ``first``)."""
    month_start = date(year, month, 1)
    if kind is PeriodKind.MONTH:
        return Period(
            kind=kind,
            start=month_start,
            end=_add_months(month_start, 1),
            label=f"{year}-{month:02}",
        )
    offset = (month - first) % 12  # months since the fiscal year began
    year_start = _add_months(month_start, -offset)
    fiscal_year = year_start.year if first == 1 else year_start.year + 1
    prefix = str(fiscal_year) if first == 1 else f"FY{fiscal_year}"
    if kind is PeriodKind.YEAR:
        return Period(kind=kind, start=year_start, end=_add_months(year_start, 12), label=prefix)
    quarter = offset // 3
    start = _add_months(year_start, quarter * 3)
    return Period(
        kind=kind, start=start, end=_add_months(start, 3), label=f"{prefix}-Q{quarter + 1}"
    )


# ================================================================== the book


class Dimension(enum.Enum):
    """What a report groups by."""

    STAGE = "stage"
    PIPELINE = "pipeline"
    OWNER = "owner"
    #: each team of the owner (a deal counts under every one); ``None``: no team
    TEAM = "team"
    ZONE = "zone"  #: the zone of the opportunity's organization
    SOURCE = "source"
    CAMPAIGN = "campaign"
    MONTH = "month"
    QUARTER = "quarter"
    YEAR = "year"


_PERIOD_OF: Final = {
    Dimension.MONTH: PeriodKind.MONTH,
    Dimension.QUARTER: PeriodKind.QUARTER,
    Dimension.YEAR: PeriodKind.YEAR,
}


def _check_aware(value: object, name: str) -> datetime:
    if not isinstance(value, datetime) or value.utcoffset() is None:
        raise ValidationError(name, "must be a timezone-aware datetime", code="type", value=value)
    return value


@frozen(kw_only=True)
class Revision:
    """One change of a field in :data:`REVISED_FIELDS`, with its old and new value.

    Stage moves live in the opportunity's own history; the other fields that
    analytics rebuild for a past date (amount, close date, probability and its
    override flag, owner, loss reason) come from revisions, which the facade
    reads from the audit trail.  ``old`` and ``new`` are typed values
    (``Money``, ``date``, ``Decimal``...), as in
    :class:`~crmkit.core.events.FieldChange`.
    """

    opportunity_id: OpportunityId
    at: datetime
    field: str
    old: object
    new: object

    def __attrs_post_init__(self) -> None:
        _check_aware(self.at, "at")
        if self.field not in REVISED_FIELDS:
            raise ValidationError(
                "field", "is not a field analytics rebuild", code="choice", value=self.field
            )

    @classmethod
    def from_changes(
        cls, opportunity_id: OpportunityId, at: datetime, changes: Iterable[FieldChange]
    ) -> tuple[Revision, ...]:
        """The revisions among the ``changes`` of one event (other fields are skipped)."""
        return tuple(
            cls(opportunity_id=opportunity_id, at=at, field=c.field, old=c.old, new=c.new)
            for c in changes
            if c.field in REVISED_FIELDS
        )


@frozen(kw_only=True)
class DealState:
    """An opportunity as it stood at one moment (see :meth:`Book.at`).

    Attributes:
        opened_at: the first entry of its stage history.
        closed_at: when its won or lost stage was entered; ``None`` otherwise.
        zone_id: the zone of its organization (``None`` without one).
        team_ids: the teams its owner (at that moment) is a member of, as
            the book's ``teams`` say (today's membership), in id order.
        position: the stage's index in the pipeline's stages; on-hold stages
            come before every open stage (a paused deal is behind).
    """

    id: OpportunityId
    pipeline: str
    stage: str
    status: StageKind
    position: int
    amount: Money | None
    probability: Decimal
    expected_close: date | None
    owner_id: UserId | None
    source_id: SourceId | None
    campaign_id: CampaignId | None
    organization_id: OrganizationId | None
    zone_id: ZoneId | None
    close_reason_id: LossReasonId | None
    opened_at: datetime
    closed_at: datetime | None
    team_ids: tuple[TeamId, ...] = ()

    @property
    def in_pipeline(self) -> bool:
        """Open or on hold: still to be won or lost."""
        return self.status in (StageKind.OPEN, StageKind.ON_HOLD)


def _items(value: object, name: str, cls: type[T], noun: str) -> tuple[T, ...]:
    """``value`` as a tuple of ``cls``; a string, a non-iterable or a stray item is refused."""
    if isinstance(value, str) or not isinstance(value, Iterable):
        raise ValidationError(name, f"must be a list of {cls.__name__}", value=value)
    items = tuple(value)
    for i, item in enumerate(items):
        if not isinstance(item, cls):
            raise ValidationError(f"{name}[{i}]", f"must be {noun}", code="type", value=item)
    return items


def _pipelines(value: object) -> Mapping[str, Pipeline]:
    items = value.values() if isinstance(value, Mapping) else value
    return MappingProxyType({p.key: p for p in _items(items, "pipelines", Pipeline, "a Pipeline")})


def _opportunities(value: object) -> tuple[Opportunity, ...]:
    return _items(value, "opportunities", Opportunity, "an Opportunity")


def _revisions(value: object) -> tuple[Revision, ...]:
    return _items(value, "revisions", Revision, "a Revision")


def _zones(value: object) -> Mapping[OrganizationId, ZoneId | None]:
    if not isinstance(value, Mapping):
        raise ValidationError("zones", "must map organization ids to zone ids", value=value)
    return MappingProxyType(dict(value))


def _teams(value: object) -> Mapping[TeamId, frozenset[UserId]]:
    if not isinstance(value, Mapping):
        raise ValidationError("teams", "must map team ids to member ids", value=value)
    teams: dict[TeamId, frozenset[UserId]] = {}
    for team, members in value.items():
        if not isinstance(team, UUID):
            raise ValidationError("teams", "must map team ids (UUID)", code="type", value=team)
        ids = _items(members, f"teams[{team}]", UUID, "a user id (UUID)")
        teams[TeamId(team)] = frozenset(UserId(member) for member in ids)
    return MappingProxyType(teams)


def _teams_by_user(
    teams: Mapping[TeamId, Iterable[UserId]],
) -> dict[UserId, tuple[TeamId, ...]]:
    """The teams of each member, in id order (the order of the team groups)."""
    found: dict[UserId, list[TeamId]] = {}
    for team in sorted(teams, key=str):
        for member in teams[team]:
            found.setdefault(member, []).append(team)
    return {user: tuple(ids) for user, ids in found.items()}


@frozen(kw_only=True)
class Book:
    """The snapshot analytics work on: what the store holds, read once.

    Attributes:
        opportunities: every opportunity (archived ones are left out of every
            figure).
        pipelines: the pipelines they live in, by key (a list is accepted).
        zones: the zone of each organization, for grouping by zone.
        teams: the members of each team, for grouping by team (a user may
            be in several teams; ``crm.analytics`` gives the teams not
            archived, with today's members).
        revisions: changes of the :data:`REVISED_FIELDS`, in any order.
            Without them, a past date sees today's amount, close date, owner
            and loss reason (the stage and probability still come out right
            unless an override was set).

    Raises:
        ValidationError: an item of the wrong type, or an opportunity whose
            pipeline is missing (field ``pipelines``).
    """

    opportunities: tuple[Opportunity, ...] = field(converter=_opportunities)
    pipelines: Mapping[str, Pipeline] = field(converter=_pipelines)
    zones: Mapping[OrganizationId, ZoneId | None] = field(
        factory=lambda: MappingProxyType({}), converter=_zones
    )
    revisions: tuple[Revision, ...] = field(default=(), converter=_revisions)
    teams: Mapping[TeamId, frozenset[UserId]] = field(
        factory=lambda: MappingProxyType({}), converter=_teams
    )
    _by_opportunity: Mapping[OpportunityId, tuple[Revision, ...]] = field(
        init=False, eq=False, repr=False
    )
    _teams_of: Mapping[UserId, tuple[TeamId, ...]] = field(init=False, eq=False, repr=False)

    def __attrs_post_init__(self) -> None:
        for opp in self.opportunities:
            if opp.pipeline not in self.pipelines:
                raise ValidationError(
                    "pipelines",
                    f"pipeline {opp.pipeline!r} of an opportunity is missing",
                    code="pipeline",
                    value=opp.pipeline,
                )
        grouped: dict[OpportunityId, list[Revision]] = {}
        for revision in self.revisions:
            grouped.setdefault(revision.opportunity_id, []).append(revision)
        object.__setattr__(
            self,
            "_by_opportunity",
            {key: tuple(sorted(items, key=lambda r: r.at)) for key, items in grouped.items()},
        )
        object.__setattr__(self, "_teams_of", _teams_by_user(self.teams))

    def at(self, as_of: datetime) -> tuple[DealState, ...]:
        """Every opportunity that existed at ``as_of``, as it stood then.

        An opportunity exists from the first entry of its stage history.  Its
        stage is the last history entry at or before ``as_of``; the revised
        fields are today's values with every revision made after ``as_of``
        undone, newest first.  The probability is 1 in a won stage and 0 in a
        lost one; the rebuilt one while an override was set, or in today's
        stage; otherwise the default of the stage it was in (what complete
        revisions give too, and the right answer when they are missing).

        Raises:
            ValidationError: ``as_of`` is naive; a stage the pipeline no
                longer has (field ``stage``).
        """
        moment = _check_aware(as_of, "as_of")
        return tuple(
            state
            for opp in self.opportunities
            if not opp.archived
            for state in (self._state(opp, moment),)
            if state is not None
        )

    def _state(self, opp: Opportunity, as_of: datetime) -> DealState | None:
        history = opp.history
        if history and history[-1].at > as_of:
            history = tuple(c for c in history if c.at <= as_of)
        if not history:  # not opened yet (or built without a history)
            return None
        revisions = self._by_opportunity.get(opp.id)
        if revisions is None:  # nothing to undo: today's values (the common case, kept fast)
            amount, expected_close, owner_id = opp.amount, opp.expected_close, opp.owner_id
            probability, override = opp.probability, opp.probability_override
            close_reason_id = opp.close_reason_id
        else:
            values: dict[str, Any] = {name: getattr(opp, name) for name in REVISED_FIELDS}
            for revision in reversed(revisions):
                if revision.at <= as_of:
                    break
                values[revision.field] = revision.old
            amount, expected_close = values["amount"], values["expected_close"]
            owner_id, close_reason_id = values["owner_id"], values["close_reason_id"]
            probability, override = values["probability"], values["probability_override"]
        stage, position = _stage_at(self.pipelines[opp.pipeline], history[-1].target)
        if stage.is_final or not (override or stage.key == opp.stage):
            probability = stage.probability
        closed = stage.is_final
        organization_id = opp.organization_id
        return DealState(
            id=opp.id,
            pipeline=opp.pipeline,
            stage=stage.key,
            status=stage.kind,
            position=position,
            amount=amount,
            probability=probability,
            expected_close=expected_close,
            owner_id=owner_id,
            source_id=opp.source_id,
            campaign_id=opp.campaign_id,
            organization_id=organization_id,
            zone_id=None if organization_id is None else self.zones.get(organization_id),
            close_reason_id=close_reason_id if stage.kind is StageKind.LOST else None,
            opened_at=history[0].at,
            closed_at=history[-1].at if closed else None,
            team_ids=() if owner_id is None else self._teams_of.get(owner_id, ()),
        )


@lru_cache(maxsize=1024)
def _stage_at(pipeline: Pipeline, key: str) -> tuple[Stage, int]:
    """The stage ``key`` and its position (on-hold stages: -1, behind every open stage)."""
    stage = pipeline.stage(key)
    return stage, -1 if stage.kind is StageKind.ON_HOLD else pipeline.stages.index(stage)


# ================================================================== currency


def convert(money: Money, currency: str, on: date, rate: RateFunction | None) -> Money:
    """``money`` in ``currency`` at ``rate(money.currency, currency, on)``, rounded once.

    The same currency needs no rate.  The exact product is rounded to the
    target's minor units, half to even, as ``crm.convert`` does.

    Raises:
        ValidationError: no rate function or no rate for the pair and day
            (field ``currency``, code ``no_rate``); an unknown currency.
    """
    if money.currency == currency:
        return money
    found = None if rate is None else rate(money.currency, currency, on)
    if found is None:
        raise ValidationError(
            "currency",
            f"no exchange rate from {money.currency} to {currency} on {on.isoformat()}: "
            "amounts in different currencies are never summed without one",
            code="no_rate",
            value=money.currency,
        )
    quantum = _ONE.scaleb(-currency_exponent(currency))
    with localcontext() as ctx:
        ctx.prec = len(money.amount.as_tuple().digits) + len(found.as_tuple().digits) + 20
        amount = (money.amount * found).quantize(quantum, rounding=ROUND_HALF_EVEN)
    return Money(amount, currency)


#: Exact decimal arithmetic for sums and products of amounts: no rounding
#: happens under it except the explicit quantize to minor units.  Never divide
#: under it (a repeating fraction would not end).
_EXACT: Final = Context(prec=MAX_PREC, rounding=ROUND_HALF_EVEN, Emax=MAX_EMAX, Emin=MIN_EMIN)


class _Valuer:
    """Converts deal amounts into one currency; a deal without amount is worth zero.

    The hot paths work on ``Decimal`` and make one ``Money`` per total; the
    results are those of ``Money`` arithmetic (exact sums, each weighted
    amount rounded once to minor units, half to even).
    """

    __slots__ = ("currency", "quantum", "rate")

    def __init__(self, currency: str, rate: RateFunction | None):
        self.currency = currency
        self.rate = rate
        self.quantum = _ONE.scaleb(-currency_exponent(currency))

    def amount(self, deal: DealState, on: date) -> Decimal:
        return self.amount_of(deal.amount, on)

    def amount_of(self, money: Money | None, on: date) -> Decimal:
        if money is None:
            return _ZERO
        if money.currency == self.currency:
            return money.amount
        return convert(money, self.currency, on, self.rate).amount

    def weigh(self, amount: Decimal, probability: Decimal) -> Decimal:
        return _EXACT.quantize(_EXACT.multiply(amount, probability), self.quantum)

    def total(self, amounts: Iterable[Decimal]) -> Money:
        total = _ZERO
        for amount in amounts:
            total = _EXACT.add(total, amount)
        return Money(total, self.currency)

    def value(self, deal: DealState, on: date) -> Money:
        return Money(self.amount(deal, on), self.currency)

    def weighted(self, value: Money, probability: Decimal) -> Money:
        return Money(self.weigh(value.amount, probability), self.currency)

    def zero(self) -> Money:
        return Money.zero(self.currency)


def _currency(value: object) -> str:
    if not isinstance(value, str):
        raise ValidationError("currency", "must be a 3-letter code", code="type", value=value)
    code = value.strip().upper()
    currency_exponent(code)
    return code


# ================================================================== grouping


def _key(deal: DealState, by: Dimension, day: date | None, fiscal_start: int) -> str | None:
    """The deal's key in a dimension with one key per deal (all but ``Dimension.TEAM``)."""
    if by is Dimension.STAGE:
        return deal.stage
    if by is Dimension.PIPELINE:
        return deal.pipeline
    if by in _PERIOD_OF:
        if day is None:
            return None
        return Period.containing(day, _PERIOD_OF[by], fiscal_start=fiscal_start).label
    value: UUID | None
    if by is Dimension.OWNER:
        value = deal.owner_id
    elif by is Dimension.ZONE:
        value = deal.zone_id
    elif by is Dimension.SOURCE:
        value = deal.source_id
    else:
        value = deal.campaign_id
    return None if value is None else str(value)


def _keys_in(
    deal: DealState, by: Dimension, day: date | None, fiscal_start: int
) -> tuple[str | None, ...]:
    """The deal's keys in one dimension: one, or one per team of its owner (``None``: no team)."""
    if by is Dimension.TEAM:
        return tuple(str(t) for t in deal.team_ids) or (None,)
    return (_key(deal, by, day, fiscal_start),)


def _group_keys(
    deal: DealState, dimensions: tuple[Dimension, ...], day: date | None, fiscal_start: int
) -> list[GroupKey]:
    """Every group the deal falls in: one, or one per team of its owner when grouped by team."""
    if not dimensions:
        return [None]
    parts = [_keys_in(deal, d, day, fiscal_start) for d in dimensions]
    if len(parts) == 1:
        return list(parts[0])
    return list(product(*parts))


def _order_in(
    pipelines: Mapping[str, Pipeline], by: Dimension
) -> Callable[[str | None], tuple[int, int, str]]:
    """Sort keys: stages in pipeline order, everything else by label, ``None`` last."""
    ranks: dict[str, int] = {}
    if by is Dimension.STAGE:
        for pipeline_ in pipelines.values():
            for stage in pipeline_.stages:
                ranks.setdefault(stage.key, len(ranks))

    def order(key: str | None) -> tuple[int, int, str]:
        if key is None:
            return (1, 0, "")
        return (0, ranks.get(key, len(ranks)), key)

    return order


def _select(book: Book, as_of: datetime, pipeline: str | None) -> tuple[DealState, ...]:
    if pipeline is not None and pipeline not in book.pipelines:
        raise ValidationError(
            "pipeline", "the book has no such pipeline", code="pipeline", value=pipeline
        )
    return tuple(d for d in book.at(as_of) if pipeline is None or d.pipeline == pipeline)


#: A group while a report is built: one dimension's key, or a tuple of them.
GroupKey = str | tuple[str | None, ...] | None


def _row_keys(key: GroupKey, dimensions: int) -> tuple[str | None, tuple[str | None, ...]]:
    """A row's ``key`` and ``keys`` for the group ``key`` of ``dimensions`` dimensions."""
    if not dimensions:
        return None, ()
    if isinstance(key, tuple):
        return " / ".join("-" if k is None else k for k in key), key
    return key, (key,)


def _check_dimensions(value: object) -> tuple[Dimension, ...]:
    """``by`` as a tuple of dimensions: none, one, or several (a sequence, no repeats)."""
    if value is None:
        return ()
    if isinstance(value, str | Dimension) or not isinstance(value, Sequence):
        return (_check_dimension(value),)
    dimensions = tuple(_check_dimension(item) for item in value)
    if not dimensions or len(set(dimensions)) != len(dimensions):
        raise ValidationError(
            "by", "must name at least one dimension, each once", code="choice", value=value
        )
    return dimensions


def _check_grouping(value: object) -> tuple[Dimension, ...]:
    """``by`` of a report that must group: one dimension or several, not none."""
    dimensions = _check_dimensions(value)
    if not dimensions:
        raise ValidationError("by", "must name at least one dimension", code="choice", value=value)
    return dimensions


def _report_by(dimensions: tuple[Dimension, ...]) -> Dimension | tuple[Dimension, ...] | None:
    return None if not dimensions else dimensions[0] if len(dimensions) == 1 else dimensions


def _group_order(
    pipelines: Mapping[str, Pipeline], dimensions: tuple[Dimension, ...]
) -> Callable[[Any], Any]:
    """Sort keys of one dimension's keys, or of tuples of several (dimension by dimension)."""
    orders = [_order_in(pipelines, d) for d in dimensions]
    if len(orders) == 1:
        return orders[0]
    return lambda key: tuple(order(part) for order, part in zip(orders, key, strict=True))


def _check_dimension(value: object) -> Dimension:
    if not isinstance(value, Dimension):
        try:
            return Dimension(value)
        except ValueError:
            raise ValidationError(
                "by", f"must be one of: {', '.join(d.value for d in Dimension)}", value=value
            ) from None
    return value


# ================================================================== pipeline


@frozen(kw_only=True)
class PipelineRow:
    """One group of a pipeline report.

    Attributes:
        key: the group (a stage key, a period label, an id as text; ``None``
            for deals without one).  Grouped by several dimensions, their keys
            joined by ``" / "`` (``"-"`` for a missing one), for display.
        count: deals in the group.
        unvalued: deals among them without an amount (counted as zero).
        value: the sum of their amounts.
        weighted: the sum of amount x probability, each rounded to minor units.
        keys: the group's key in each dimension (``(key,)`` for one; empty
            for the total).
    """

    key: str | None
    count: int
    unvalued: int
    value: Money
    weighted: Money
    keys: tuple[str | None, ...] = ()


_PIPELINE_COLUMNS: Final = ("count", "unvalued", "value", "weighted", "currency")


@frozen(kw_only=True)
class PipelineReport(Tabular):
    """The open pipeline at ``as_of``, grouped ``by`` one dimension, several, or none.

    ``by`` is the dimension, the tuple of dimensions (rows keyed by tuples),
    or ``None``.  The rows add up to the total, except by team: a deal
    counts under every team of its owner, so the rows may add up to more
    (the total counts each deal once).
    """

    as_of: datetime
    by: Dimension | tuple[Dimension, ...] | None
    currency: str
    rows: tuple[PipelineRow, ...]
    total: PipelineRow

    def table(self) -> Table:
        """One row per group (or the total alone, without ``by``); they add up to the total
        (by team they may add up to more: a note says so)."""
        rows = self.rows if self.by is not None else (self.total,)
        if isinstance(self.by, tuple):  # several dimensions: one key column each
            keys: tuple[str, ...] = tuple(d.value for d in self.by)
            cells = [
                (*r.keys, r.count, r.unvalued, r.value, r.weighted, self.currency) for r in rows
            ]
        else:
            keys = (self.by.value if self.by else "total",)
            cells = [(r.key, r.count, r.unvalued, r.value, r.weighted, self.currency) for r in rows]
        return Table.of(
            f"Pipeline as of {self.as_of.isoformat()}",
            (*keys, *_PIPELINE_COLUMNS),
            cells,
            (
                ("deals", self.total.count),
                ("value", self.total.value),
                ("weighted", self.total.weighted),
                *_team_note(self.by),
            ),
        )


#: The note of a table grouped by team.
TEAM_NOTE: Final = (
    "teams",
    "a deal counts under every team of its owner (none: no team), "
    "so the rows may add up to more than the total",
)


def _team_note(by: Dimension | tuple[Dimension, ...] | None) -> tuple[tuple[str, str], ...]:
    dimensions = by if isinstance(by, tuple) else (by,)
    return (TEAM_NOTE,) if Dimension.TEAM in dimensions else ()


def pipeline(
    book: Book,
    *,
    as_of: datetime,
    currency: str,
    by: Dimension | str | Sequence[Dimension | str] | None = None,
    rate: RateFunction | None = None,
    pipeline: str | None = None,
    include_on_hold: bool = True,
    fiscal_start: int = 1,
) -> PipelineReport:
    """Pipeline value and weighted pipeline as they stood at ``as_of``.

    Only deals still to be won or lost count: open stages, and on-hold stages
    unless ``include_on_hold`` is false (a paused deal weighs its on-hold
    stage's probability).  Won and lost deals never count, weighted or not.
    Each deal weighs its amount (converted at the rate of ``as_of``'s day)
    times its probability at ``as_of``.  Periods group by the expected close
    date.  By team, a deal counts under every team its owner at ``as_of`` is
    a member of (the book's ``teams``), under ``None`` when the owner is in
    none (or there is no owner); the total still counts it once.

    Args:
        book: the snapshot.
        as_of: the moment; an earlier one gives the pipeline as it stood then.
        currency: the report's currency.
        by: the dimension to group by, or a sequence of them (owner x month:
            ``("owner", "month")``; rows keyed by tuples, sorted by the first
            dimension, then the next); ``None`` for the total only.
        rate: exchange rates for amounts in other currencies.
        pipeline: only the deals of the pipeline with this key.
        include_on_hold: count on-hold deals.
        fiscal_start: the month the fiscal year starts (quarters and years).

    Raises:
        ValidationError: unknown currency, dimension or pipeline; a missing
            rate (code ``no_rate``).
    """
    code = _currency(currency)
    dimensions = _check_dimensions(by)
    _fiscal_start(fiscal_start)
    valuer = _Valuer(code, rate)
    kinds = (StageKind.OPEN, StageKind.ON_HOLD) if include_on_hold else (StageKind.OPEN,)
    deals = [d for d in _select(book, as_of, pipeline) if d.status in kinds]
    day = as_of.date()
    groups: dict[GroupKey, list[tuple[DealState, Decimal, Decimal]]] = {}
    everything: list[tuple[DealState, Decimal, Decimal]] = []
    several = Dimension.TEAM in dimensions  # a deal may fall in several groups
    for deal in deals:
        amount = valuer.amount(deal, day)
        entry = (deal, amount, valuer.weigh(amount, deal.probability))
        everything.append(entry)
        if several:
            for key in _group_keys(deal, dimensions, deal.expected_close, fiscal_start):
                groups.setdefault(key, []).append(entry)
            continue
        keys = [_key(deal, d, deal.expected_close, fiscal_start) for d in dimensions]
        group: GroupKey = None if not keys else keys[0] if len(keys) == 1 else tuple(keys)
        groups.setdefault(group, []).append(entry)

    def row(
        key: GroupKey, items: Sequence[tuple[DealState, Decimal, Decimal]], grouped: bool = True
    ) -> PipelineRow:
        label, keys = _row_keys(key, len(dimensions) if grouped else 0)
        return PipelineRow(
            key=label,
            keys=keys,
            count=len(items),
            unvalued=sum(1 for deal, _, _ in items if deal.amount is None),
            value=valuer.total(amount for _, amount, _ in items),
            weighted=valuer.total(weighted for _, _, weighted in items),
        )

    rows: tuple[PipelineRow, ...] = ()
    if dimensions:
        order = _group_order(book.pipelines, dimensions)
        rows = tuple(row(k, groups[k]) for k in sorted(groups, key=order))
    return PipelineReport(
        as_of=as_of,
        by=_report_by(dimensions),
        currency=code,
        rows=rows,
        total=row(None, everything, grouped=False),
    )


# ================================================================== win rate


def _ratio(part: Decimal | int, whole: Decimal | int) -> Decimal | None:
    return None if not whole else Decimal(part) / Decimal(whole)


@frozen(kw_only=True)
class LostReasonRow:
    """Lost deals with one loss reason (``None``: no reason recorded)."""

    reason_id: LossReasonId | None
    count: int
    value: Money


@frozen(kw_only=True)
class WinRate(Tabular):
    """Deals closed in ``[since, as_of]``: how many were won, and for how much.

    Attributes:
        won, lost: counts.
        won_value, lost_value: the sums of their amounts, each converted at
            the rate of its close day.
        by_count: won / (won + lost); ``None`` when nothing closed.
        by_value: won value / (won + lost value); ``None`` when both are zero.
        average_deal: won value / won deals; ``None`` without wins.
        lost_reasons: lost deals by reason, most frequent first.
        key: the group, for :func:`win_rates` (``None`` for the whole book);
            grouped by several dimensions, their keys joined by ``" / "``
            (``"-"`` for a missing one), as in :class:`PipelineRow`.
        keys: the group's key in each dimension of :func:`win_rates`
            (``(key,)`` for one; empty for the whole book).
    """

    as_of: datetime
    since: datetime | None
    currency: str
    won: int
    lost: int
    won_value: Money
    lost_value: Money
    by_count: Decimal | None
    by_value: Decimal | None
    average_deal: Money | None
    lost_reasons: tuple[LostReasonRow, ...]
    key: str | None = None
    keys: tuple[str | None, ...] = ()

    #: the columns of a win rate's row in :meth:`table` (and in :class:`WinRates`)
    COLUMNS: ClassVar[tuple[str, ...]] = (
        "key",
        "won",
        "lost",
        "won_value",
        "lost_value",
        "by_count",
        "by_value",
        "average_deal",
        "currency",
    )

    def row(self) -> tuple[object, ...]:
        """The cells of this win rate, in the order of :attr:`COLUMNS`."""
        return (
            self.key,
            self.won,
            self.lost,
            self.won_value,
            self.lost_value,
            self.by_count,
            self.by_value,
            self.average_deal,
            self.currency,
        )

    def table(self) -> Table:
        """One row; the lost reasons are the notes."""
        return Table.of(
            f"Win rate as of {self.as_of.isoformat()}",
            self.COLUMNS,
            (self.row(),),
            (
                (f"lost for {r.reason_id or 'no reason'}", f"{r.count} ({r.value})")
                for r in self.lost_reasons
            ),
        )


@frozen(kw_only=True)
class WinRates(Sequence[WinRate], Tabular):
    """:func:`win_rates`' groups: a sequence of :class:`WinRate`, one per group.

    Attributes:
        by: the dimension of the groups, or the tuple of dimensions.
        groups: the win rates, in group order (``None`` last).
    """

    as_of: datetime
    by: Dimension | tuple[Dimension, ...]
    currency: str
    groups: tuple[WinRate, ...]

    @overload
    def __getitem__(self, index: int) -> WinRate: ...
    @overload
    def __getitem__(self, index: slice) -> tuple[WinRate, ...]: ...
    def __getitem__(self, index: int | slice) -> WinRate | tuple[WinRate, ...]:
        return self.groups[index]

    def __len__(self) -> int:
        return len(self.groups)

    def table(self) -> Table:
        """One row per group (a key column per dimension); by team, a note says a deal
        counts under every team of its owner."""
        dimensions = self.by if isinstance(self.by, tuple) else (self.by,)
        return Table.of(
            f"Win rate by {' x '.join(d.value for d in dimensions)} as of {self.as_of.isoformat()}",
            (*(d.value for d in dimensions), *WinRate.COLUMNS[1:]),
            ((*(g.keys if len(dimensions) > 1 else (g.key,)), *g.row()[1:]) for g in self.groups),
            _team_note(self.by),
        )


def _closed(
    book: Book, as_of: datetime, since: datetime | None, pipeline: str | None
) -> list[DealState]:
    if since is not None:
        _check_aware(since, "since")
    return [
        d
        for d in _select(book, as_of, pipeline)
        if d.closed_at is not None and (since is None or d.closed_at >= since)
    ]


def win_rate(
    book: Book,
    *,
    as_of: datetime,
    currency: str,
    since: datetime | None = None,
    rate: RateFunction | None = None,
    pipeline: str | None = None,
) -> WinRate:
    """Win rate by count and by value, average deal size and the reasons of losses.

    A deal counts when it was won or lost at ``as_of`` and its close time
    (the last entry into a won or lost stage) is at or after ``since``.  A
    deal reopened after ``as_of`` still counts as it stood then.

    Raises:
        ValidationError: unknown currency or pipeline; a missing rate.
    """
    code = _currency(currency)
    deals = _closed(book, as_of, since, pipeline)
    return _win_rate(deals, as_of=as_of, since=since, valuer=_Valuer(code, rate), key=None)


def win_rates(
    book: Book,
    *,
    by: Dimension | str | Sequence[Dimension | str],
    as_of: datetime,
    currency: str,
    since: datetime | None = None,
    rate: RateFunction | None = None,
    pipeline: str | None = None,
    fiscal_start: int = 1,
) -> WinRates:
    """:func:`win_rate` per group (owner, team, zone, source...), each with its ``key``.

    The deals are those :func:`win_rate` counts; periods group by the close
    date.  ``by`` is one dimension or a sequence of them (owner x quarter:
    ``("owner", "quarter")``), as in :func:`pipeline`.  Groups are ordered
    as in :func:`pipeline` (``None`` last).  By team, a deal counts under
    every team its owner at ``as_of`` is a member of (``None``: no team), so
    the groups may add up to more than :func:`win_rate`'s whole.

    Raises:
        ValidationError: unknown dimension (or none), currency or pipeline;
            a missing rate.
    """
    code = _currency(currency)
    dimensions = _check_grouping(by)
    _fiscal_start(fiscal_start)
    valuer = _Valuer(code, rate)
    groups: dict[GroupKey, list[DealState]] = {}
    for deal in _closed(book, as_of, since, pipeline):
        day = deal.closed_at.date() if deal.closed_at is not None else None
        for key in _group_keys(deal, dimensions, day, fiscal_start):
            groups.setdefault(key, []).append(deal)
    results = []
    for key in sorted(groups, key=_group_order(book.pipelines, dimensions)):
        label, keys = _row_keys(key, len(dimensions))
        results.append(
            _win_rate(groups[key], as_of=as_of, since=since, valuer=valuer, key=label, keys=keys)
        )
    return WinRates(
        as_of=as_of,
        by=dimensions[0] if len(dimensions) == 1 else dimensions,
        currency=code,
        groups=tuple(results),
    )


def _win_rate(
    deals: Iterable[DealState],
    *,
    as_of: datetime,
    since: datetime | None,
    valuer: _Valuer,
    key: str | None,
    keys: tuple[str | None, ...] = (),
) -> WinRate:
    tally = _WinTally(valuer.zero())
    for deal in deals:
        assert deal.closed_at is not None
        value = valuer.value(deal, deal.closed_at.date())
        tally.add(deal.status is StageKind.WON, deal.close_reason_id, 1, value)
    return tally.result(as_of=as_of, since=since, key=key, keys=keys)


class _WinTally:
    """Won and lost counts and values, and the losses by reason, summed as they come."""

    def __init__(self, zero: Money):
        self.zero = zero
        self.won = self.lost = 0
        self.won_value = self.lost_value = zero
        self.reasons: dict[LossReasonId | None, tuple[int, Money]] = {}

    def add(self, won: bool, reason: LossReasonId | None, count: int, value: Money) -> None:
        """Count ``count`` deals worth ``value`` together."""
        if won:
            self.won, self.won_value = self.won + count, self.won_value + value
            return
        self.lost, self.lost_value = self.lost + count, self.lost_value + value
        seen, total = self.reasons.get(reason, (0, self.zero))
        self.reasons[reason] = (seen + count, total + value)

    def result(
        self,
        *,
        as_of: datetime,
        since: datetime | None,
        key: str | None,
        keys: tuple[str | None, ...] = (),
    ) -> WinRate:
        won, lost = self.won, self.lost
        won_value, lost_value, reasons = self.won_value, self.lost_value, self.reasons
        rows = sorted(
            (LostReasonRow(reason_id=k, count=c, value=v) for k, (c, v) in reasons.items()),
            key=lambda r: (-r.count, -r.value.amount, str(r.reason_id)),
        )
        average = _divide(won_value, won) if won else None
        return WinRate(
            as_of=as_of,
            since=since,
            currency=self.zero.currency,
            won=won,
            lost=lost,
            won_value=won_value,
            lost_value=lost_value,
            by_count=_ratio(won, won + lost),
            by_value=_ratio(won_value.amount, won_value.amount + lost_value.amount),
            average_deal=average,
            lost_reasons=tuple(rows),
            key=key,
            keys=keys,
        )


def _divide(money: Money, count: int) -> Money:
    quantum = _ONE.scaleb(-money.exponent)
    return Money((money.amount / count).quantize(quantum, rounding=ROUND_HALF_EVEN), money.currency)


# ============================================================ survival (KM)


@frozen
class SurvivalPoint:
    """The Kaplan-Meier estimate just after ``elapsed``: the share still not ended.

    ``survival`` is rounded to 28 significant digits; the median is decided on
    the exact fraction.
    """

    elapsed: timedelta
    survival: Decimal


def kaplan_meier(
    observations: Iterable[tuple[timedelta, bool]],
) -> tuple[tuple[SurvivalPoint, ...], timedelta | None]:
    """The Kaplan-Meier survival curve and median of ``(duration, ended)`` pairs.

    An observation that has not ended (``ended`` false) is censored: it counts
    as at risk up to its duration and no further.  At a time where some end
    and some are censored, the ends come first (the usual convention).

    Returns:
        One point per distinct time something ended, and the median: the
        first time the survival falls to one half or below (``None`` if it
        never does, e.g. too many deals still open).
    """
    items = sorted(observations, key=lambda o: o[0])
    at_risk = len(items)
    survival = Fraction(1)  # exact, so "one half or below" is decided exactly
    points: list[SurvivalPoint] = []
    median: timedelta | None = None
    i = 0
    while i < len(items):
        elapsed = items[i][0]
        ended = censored = 0
        while i < len(items) and items[i][0] == elapsed:
            ended, censored = (ended + 1, censored) if items[i][1] else (ended, censored + 1)
            i += 1
        if ended:
            survival *= 1 - Fraction(ended, at_risk)
            exact = Decimal(survival.numerator) / Decimal(survival.denominator)
            points.append(SurvivalPoint(elapsed, exact))
            if median is None and survival <= Fraction(1, 2):
                median = elapsed
        at_risk -= ended + censored
    return tuple(points), median


@frozen(kw_only=True)
class CycleReport(Tabular):
    """Sales-cycle length: from opening to winning or losing, open deals censored.

    Attributes:
        closed: deals won or lost by ``as_of`` (their cycle ended).
        censored: deals still open or on hold (their cycle so far counts).
        curve: the Kaplan-Meier share of deals not yet closed after each time.
        median: the Kaplan-Meier median cycle (``None`` while more than half
            could still be open).
        median_won: the plain median cycle of the won deals only.
    """

    as_of: datetime
    closed: int
    censored: int
    curve: tuple[SurvivalPoint, ...]
    median: timedelta | None
    median_won: timedelta | None

    def table(self) -> Table:
        """The Kaplan-Meier curve: elapsed time and share still open; the medians as notes."""
        return Table.of(
            f"Sales cycle as of {self.as_of.isoformat()}",
            ("elapsed", "still_open"),
            ((p.elapsed, p.survival) for p in self.curve),
            (
                ("closed", self.closed),
                ("censored (still open)", self.censored),
                ("median (Kaplan-Meier)", self.median),
                ("median of won deals", self.median_won),
            ),
        )


def _median(values: Sequence[timedelta]) -> timedelta | None:
    if not values:
        return None
    ordered = sorted(values)
    middle = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[middle]
    return (ordered[middle - 1] + ordered[middle]) / 2


def sales_cycle(book: Book, *, as_of: datetime, pipeline: str | None = None) -> CycleReport:
    """How long deals take from opening (first history entry) to closing.

    A deal won or lost at ``as_of`` ended its cycle at its close time; a deal
    still open or on hold is censored at ``as_of`` (it has lasted at least
    that long), so slow open deals pull the estimate up instead of being
    ignored.
    """
    observations: list[tuple[timedelta, bool]] = []
    won: list[timedelta] = []
    for deal in _select(book, as_of, pipeline):
        end = as_of if deal.closed_at is None else deal.closed_at
        observations.append((end - deal.opened_at, deal.closed_at is not None))
        if deal.status is StageKind.WON:
            won.append(end - deal.opened_at)
    curve, median = kaplan_meier(observations)
    closed = sum(1 for _, ended in observations if ended)
    return CycleReport(
        as_of=as_of,
        closed=closed,
        censored=len(observations) - closed,
        curve=curve,
        median=median,
        median_won=_median(won),
    )


@frozen(kw_only=True)
class StageTime:
    """Time spent in one stage per visit.

    Attributes:
        stage: the stage key.
        visits: times a deal entered it (a deal may enter it again).
        left: visits that ended (the deal moved on) by ``as_of``.
        mean_left: the mean length of the visits that ended.
        median: the Kaplan-Meier median visit, ongoing visits censored.
    """

    stage: str
    visits: int
    left: int
    mean_left: timedelta | None
    median: timedelta | None


@frozen(kw_only=True)
class StageTimes(Sequence[StageTime], Tabular):
    """:func:`time_in_stage`'s result: a sequence of :class:`StageTime` in stage order."""

    as_of: datetime
    pipeline: str
    stages: tuple[StageTime, ...]

    @overload
    def __getitem__(self, index: int) -> StageTime: ...
    @overload
    def __getitem__(self, index: slice) -> tuple[StageTime, ...]: ...
    def __getitem__(self, index: int | slice) -> StageTime | tuple[StageTime, ...]:
        return self.stages[index]

    def __len__(self) -> int:
        return len(self.stages)

    def table(self) -> Table:
        """One row per stage."""
        return Table.of(
            f"Time in stage ({self.pipeline}) as of {self.as_of.isoformat()}",
            ("stage", "visits", "left", "mean_left", "median"),
            ((s.stage, s.visits, s.left, s.mean_left, s.median) for s in self.stages),
        )


def time_in_stage(book: Book, *, as_of: datetime, pipeline: str) -> StageTimes:
    """Time in each open and on-hold stage of a pipeline, from the stage history.

    Every entry into a stage starts a visit; the next history entry ends it.
    A visit still going on at ``as_of`` is censored at ``as_of``.  Won and
    lost stages are left out (nothing leaves them but a reopening).
    """
    pipe = _pipeline(book, pipeline)
    visits: dict[str, list[tuple[timedelta, bool]]] = {
        s.key: [] for s in pipe.stages if not s.is_final
    }
    for opp in book.opportunities:
        if opp.archived or opp.pipeline != pipe.key:
            continue
        history = [c for c in opp.history if c.at <= as_of]
        ends = [(c.at, True) for c in history[1:]] + [(as_of, False)]
        for change, (until, ended) in zip(history, ends, strict=False):  # none: no visit
            if change.target in visits:
                visits[change.target].append((until - change.at, ended))
    result = []
    for stage in pipe.stages:
        if stage.is_final:
            continue
        observed = visits[stage.key]
        done = [d for d, ended in observed if ended]
        result.append(
            StageTime(
                stage=stage.key,
                visits=len(observed),
                left=len(done),
                mean_left=sum(done, timedelta(0)) / len(done) if done else None,
                median=kaplan_meier(observed)[1],
            )
        )
    return StageTimes(as_of=as_of, pipeline=pipe.key, stages=tuple(result))


def _pipeline(book: Book, key: object) -> Pipeline:
    if not isinstance(key, str) or key not in book.pipelines:
        raise ValidationError(
            "pipeline", "the book has no such pipeline", code="pipeline", value=key
        )
    return book.pipelines[key]


# ==================================================================== funnel


@frozen(kw_only=True)
class FunnelStep:
    """Deals that reached a step of the funnel.

    Attributes:
        stage: the open stage's key; the last step is the won stage (its key,
            or ``"won"`` when the pipeline has several).
        reached: deals that entered this stage or a later one at some point.
        conversion: reached here / reached at the step before (``None`` for
            the first step or when none reached the step before).
    """

    stage: str
    reached: int
    conversion: Decimal | None


@frozen(kw_only=True)
class Funnel(Tabular):
    """The stage conversion funnel of one pipeline at ``as_of``."""

    as_of: datetime
    pipeline: str
    steps: tuple[FunnelStep, ...]

    def table(self) -> Table:
        """One row per step, in order."""
        return Table.of(
            f"Funnel ({self.pipeline}) as of {self.as_of.isoformat()}",
            ("stage", "reached", "conversion"),
            ((s.stage, s.reached, s.conversion) for s in self.steps),
        )


def funnel(book: Book, *, as_of: datetime, pipeline: str) -> Funnel:
    """Stage conversion from the stage history: reached step k, then step k+1.

    The steps are the pipeline's open stages in order, then winning.  A deal
    reached a step when its history (up to ``as_of``) entered that stage or
    any later step, so a deal opened straight into a later stage, or moved
    back since, still counts as having reached the earlier ones; a deal that
    was lost counts at every step it got to before.  Final stages alone are
    never used: a lost deal that had reached negotiation counts there.  By
    construction each step counts no more deals than the one before.
    """
    pipe = _pipeline(book, pipeline)
    opens = pipe.of_kind(StageKind.OPEN)
    won = pipe.of_kind(StageKind.WON)
    index = {s.key: i for i, s in enumerate(opens)}
    index.update({s.key: len(opens) for s in won})
    reached = [0] * (len(opens) + 1)
    for opp in book.opportunities:
        if opp.archived or opp.pipeline != pipe.key:
            continue
        furthest = max(
            (index[c.target] for c in opp.history if c.at <= as_of and c.target in index),
            default=None,
        )
        if furthest is None:
            continue
        for k in range(furthest + 1):
            reached[k] += 1
    names = [s.key for s in opens] + [won[0].key if len(won) == 1 else StageKind.WON.value]
    steps = tuple(
        FunnelStep(
            stage=name,
            reached=count,
            conversion=None if k == 0 else _ratio(count, reached[k - 1]),
        )
        for k, (name, count) in enumerate(zip(names, reached, strict=True))
    )
    return Funnel(as_of=as_of, pipeline=pipe.key, steps=steps)


# ================================================================== velocity


@frozen(kw_only=True)
class Velocity(Tabular):
    """Pipeline velocity: the value the pipeline turns into wins per day.

    ``per_day = open_deals x average_deal x win_rate / cycle_days``, each from
    the window ``[as_of - window, as_of]``: open deals at ``as_of``, the
    average won deal and the win rate by count of deals closed in the window,
    and the mean days from opening to winning of the deals won in it.
    ``per_day`` is ``None`` when a factor is unknown (no deal closed or won),
    or when it is too large for any amount (deals won within milliseconds of
    opening, as in a book loaded by a script).
    """

    as_of: datetime
    window: timedelta
    open_deals: int
    average_deal: Money | None
    win_rate: Decimal | None
    cycle_days: Decimal | None
    per_day: Money | None

    def table(self) -> Table:
        """One row: the four factors and the velocity."""
        currency = next(
            (m.currency for m in (self.per_day, self.average_deal) if m is not None), None
        )
        return Table.of(
            f"Pipeline velocity as of {self.as_of.isoformat()}",
            ("open_deals", "average_deal", "win_rate", "cycle_days", "per_day", "currency"),
            (
                (
                    self.open_deals,
                    self.average_deal,
                    self.win_rate,
                    self.cycle_days,
                    self.per_day,
                    currency,
                ),
            ),
            (("window", self.window),),
        )


def velocity(
    book: Book,
    *,
    as_of: datetime,
    currency: str,
    window: timedelta = timedelta(days=365),
    rate: RateFunction | None = None,
    pipeline: str | None = None,
) -> Velocity:
    """Pipeline velocity over the ``window`` before ``as_of`` (see :class:`Velocity`)."""
    code = _currency(currency)
    since = as_of - window
    rates = win_rate(book, as_of=as_of, currency=code, since=since, rate=rate, pipeline=pipeline)
    deals = _select(book, as_of, pipeline)
    open_deals = sum(1 for d in deals if d.in_pipeline)
    cycles = [
        d.closed_at - d.opened_at
        for d in deals
        if d.status is StageKind.WON and d.closed_at is not None and d.closed_at >= since
    ]
    cycle_days = None
    if cycles:
        total = sum(cycles, timedelta(0))
        cycle_days = Decimal(total // timedelta(microseconds=1)) / Decimal(
            len(cycles) * (_DAY // timedelta(microseconds=1))
        )
    per_day = None
    if rates.average_deal is not None and rates.by_count is not None and cycle_days:
        try:
            per_day = rates.average_deal.multiply(Decimal(open_deals) * rates.by_count / cycle_days)
        except ValidationError as error:  # a cycle of milliseconds: no money is that large
            if error.code != "too_large":
                raise
    return Velocity(
        as_of=as_of,
        window=window,
        open_deals=open_deals,
        average_deal=rates.average_deal,
        win_rate=rates.by_count,
        cycle_days=cycle_days,
        per_day=per_day,
    )


# ================================================================= waterfall


class WaterfallStep(enum.Enum):
    """How the pipeline moved between two dates (one row of a waterfall)."""

    CREATED = "created"  #: opened after the start
    REOPENED = "reopened"  #: closed at the start, back in the pipeline at the end
    ADVANCED = "advanced"  #: in a later stage at the end
    MOVED_BACK = "moved_back"  #: in an earlier stage at the end (on hold counts as earlier)
    PROBABILITY_CHANGED = "probability_changed"  #: same stage, another probability
    AMOUNT_CHANGED = "amount_changed"  #: another amount at the end
    SLIPPED = "slipped"  #: expected close date later at the end
    WON = "won"  #: won by the end
    LOST = "lost"  #: lost by the end


@frozen(kw_only=True)
class WaterfallRow:
    """One step: how many deals it concerns and how it moved the totals.

    ``value`` and ``weighted`` are changes (negative for wins and losses,
    which leave the pipeline).  A deal can fall in several steps (advanced
    and amount changed); its change is split between them, never counted
    twice.  Slipped deals change no total: the row counts them.
    """

    step: WaterfallStep
    count: int
    value: Money
    weighted: Money


@frozen(kw_only=True)
class Waterfall(Tabular):
    """The pipeline at ``start``, each step, and the pipeline at ``end``.

    ``start_value`` plus every row's ``value`` equals ``end_value`` exactly,
    and likewise for ``weighted``.  Every amount is converted at the rates of
    ``end``'s day, so exchange-rate moves do not pass for deal changes.
    """

    start: datetime
    end: datetime
    currency: str
    start_value: Money
    start_weighted: Money
    rows: tuple[WaterfallRow, ...]
    end_value: Money
    end_weighted: Money

    def table(self) -> Table:
        """The start, one row per step, the end: each step's value is a change."""
        return Table.of(
            f"Pipeline waterfall {self.start.isoformat()} to {self.end.isoformat()}",
            ("step", "count", "value", "weighted", "currency"),
            (
                ("start", None, self.start_value, self.start_weighted, self.currency),
                *((r.step, r.count, r.value, r.weighted, self.currency) for r in self.rows),
                ("end", None, self.end_value, self.end_weighted, self.currency),
            ),
        )


def waterfall(
    book: Book,
    *,
    start: datetime,
    end: datetime,
    currency: str,
    rate: RateFunction | None = None,
    pipeline: str | None = None,
) -> Waterfall:
    """How the pipeline (open and on-hold deals) moved from ``start`` to ``end``.

    For a deal in the pipeline at both dates, the amount change counts at the
    start probability and the probability change at the end amount, so the
    two add up to its whole change; whether a probability change is
    "advanced", "moved back" or "probability changed" depends on its stage.
    A deal that left counts its amount change, then leaves with its end
    amount (won or lost).  A deal opened after ``start`` is "created" with its
    end amount (weighing nothing if it also closed before ``end``).

    Raises:
        ValidationError: ``end`` before ``start`` (field ``end``); unknown
            currency or pipeline; a missing rate.
    """
    code = _currency(currency)
    if _check_aware(end, "end") < _check_aware(start, "start"):
        raise ValidationError("end", "must not be before start", code="range", value=end)
    valuer = _Valuer(code, rate)
    day = end.date()
    before = {d.id: d for d in _select(book, start, pipeline)}
    after = _select(book, end, pipeline)
    zero = valuer.zero()
    totals = {s: WaterfallRow(step=s, count=0, value=zero, weighted=zero) for s in WaterfallStep}

    def add(step: WaterfallStep, value: Money, weighted: Money) -> None:
        row = totals[step]
        totals[step] = WaterfallRow(
            step=step,
            count=row.count + 1,
            value=row.value + value,
            weighted=row.weighted + weighted,
        )

    for deal in after:
        old = before.get(deal.id)
        new_value = valuer.value(deal, day)
        if old is None or not old.in_pipeline:
            if not deal.in_pipeline and old is not None:
                continue  # closed at both dates
            step = WaterfallStep.CREATED if old is None else WaterfallStep.REOPENED
            entering = valuer.weighted(new_value, deal.probability) if deal.in_pipeline else zero
            add(step, new_value, entering)
            if not deal.in_pipeline:  # came and went within the window
                add(_exit(deal), -new_value, zero)
            continue
        old_value = valuer.value(old, day)
        old_weighted = valuer.weighted(old_value, old.probability)
        at_old_probability = valuer.weighted(new_value, old.probability)
        if new_value != old_value:
            add(
                WaterfallStep.AMOUNT_CHANGED,
                new_value - old_value,
                at_old_probability - old_weighted,
            )
        if old.expected_close is not None and (
            deal.expected_close is None or deal.expected_close > old.expected_close
        ):
            add(WaterfallStep.SLIPPED, zero, zero)
        if not deal.in_pipeline:
            add(_exit(deal), -new_value, -at_old_probability)
            continue
        moved = valuer.weighted(new_value, deal.probability) - at_old_probability
        if deal.position > old.position:
            add(WaterfallStep.ADVANCED, zero, moved)
        elif deal.position < old.position:
            add(WaterfallStep.MOVED_BACK, zero, moved)
        elif deal.probability != old.probability:
            add(WaterfallStep.PROBABILITY_CHANGED, zero, moved)
    first = _totals(before.values(), valuer, day)
    last = _totals(after, valuer, day)
    rows = tuple(totals.values())
    return Waterfall(
        start=start,
        end=end,
        currency=code,
        start_value=first[0],
        start_weighted=first[1],
        rows=rows,
        end_value=last[0],
        end_weighted=last[1],
    )


def _exit(deal: DealState) -> WaterfallStep:
    return WaterfallStep.WON if deal.status is StageKind.WON else WaterfallStep.LOST


def _totals(deals: Iterable[DealState], valuer: _Valuer, day: date) -> tuple[Money, Money]:
    amounts = [(valuer.amount(d, day), d.probability) for d in deals if d.in_pipeline]
    return (
        valuer.total(a for a, _ in amounts),
        valuer.total(valuer.weigh(a, p) for a, p in amounts),
    )
