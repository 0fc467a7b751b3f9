"""``crm.forecast``: the probabilistic forecast, attainment, backtest and calibration.

Each call reads a :class:`~crmkit.core.analytics.Book` through
``crm.analytics.book`` (one consistent snapshot, revisions read back as far
as the call needs) and hands it to the pure functions of
:mod:`crmkit.core.forecast`, with the CRM's exchange-rate plugins as the rate
function.  Forecast methods for the backtest come from the built-in ones
(``weighted``, ``probabilistic``) and the plugins'
``crmkit_register_forecast_methods``.

.. versionadded:: 0.1
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime
from decimal import Decimal
from types import MappingProxyType
from typing import TYPE_CHECKING
from uuid import UUID

from crmkit.core import forecast as core
from crmkit.core.analytics import Period, PeriodKind
from crmkit.core.entities import User, Zone
from crmkit.core.errors import ValidationError
from crmkit.core.forecast import (
    Attainment,
    AttainmentReport,
    Backtest,
    Calibration,
    Forecast,
    ForecastMethod,
    ForecastSeries,
    ProbabilitySource,
    StageWinRate,
    Timing,
)
from crmkit.core.ids import UserId, ZoneId
from crmkit.core.targets import SalesTarget, Team
from crmkit.services.base import UserRef, ZoneRef, _ref_id
from crmkit.services.targets import SalesTargetRef, TeamRef, _team_id
from crmkit.stores.base import UnitOfWork

if TYPE_CHECKING:
    from crmkit.app import CRM

__all__ = ["ForecastService"]

#: The methods every backtest may use, by name.
BUILTIN_METHODS: Mapping[str, ForecastMethod] = MappingProxyType(
    {m.name: m for m in (core.weighted_method, core.probabilistic_method)}
)


class ForecastService:
    """What will close, when, and how sure we are.

    ``as_of`` defaults to the CRM clock's now.  Amounts in other currencies
    are converted through ``crmkit_exchange_rate``; without a rate the call
    fails with ``ValidationError(code="no_rate")``.  Every method is
    seeded: the same data, arguments and ``seed`` give the same result.  The
    definitions are in the "Analytics and forecasting" guide.
    """

    def __init__(self, crm: CRM):
        self._crm = crm
        self._methods: Mapping[str, ForecastMethod] | None = None

    # ---------------------------------------------------------------- helpers
    def _moment(self, as_of: datetime | None) -> datetime:
        return self._crm.analytics._moment(as_of)

    def _rate(self, base: str, quote: str, on: date) -> Decimal | None:
        return self._crm.analytics._rate(base, quote, on)

    def _scope(
        self,
        uow: UnitOfWork,
        owners: Iterable[UserRef] | None,
        zones: Iterable[ZoneRef] | None,
        team: TeamRef | None,
    ) -> tuple[tuple[UserId, ...] | None, tuple[ZoneId, ...] | None]:
        users: list[UserId] | None = None
        if owners is not None:
            users = [_ref_id(uow, User, o, f"owners[{i}]") for i, o in enumerate(owners)]  # type: ignore[misc]
        if team is not None:
            team_id = _team_id(uow, Team, team, "team")
            members = list(uow.repository(Team).get(team_id).member_ids)
            users = members if users is None else [u for u in users if u in members]
        places = None
        if zones is not None:
            places = tuple(_ref_id(uow, Zone, z, f"zones[{i}]") for i, z in enumerate(zones))
        return (None if users is None else tuple(users)), places  # type: ignore[return-value]

    # --------------------------------------------------------------- forecast
    def forecast(
        self,
        *,
        period: Period | str,
        currency: str,
        as_of: datetime | None = None,
        seed: int = 0,
        simulations: int = core.SIMULATIONS,
        bootstrap: int = core.BOOTSTRAP,
        probabilities: ProbabilitySource | str = ProbabilitySource.MANUAL,
        timing: Timing | str = Timing.HISTORY,
        new_deals: bool = True,
        pipeline: str | None = None,
        owners: Iterable[UserRef] | None = None,
        zones: Iterable[ZoneRef] | None = None,
        team: TeamRef | None = None,
        fiscal_start: int = 1,
    ) -> Forecast:
        """P10/P50/P90 of the revenue won in ``period`` (see :func:`crmkit.core.forecast.forecast`).

        Args:
            period: a ``Period`` or its label (``"2027-Q1"``).
            currency: the result's currency.
            as_of: the moment of the forecast (now by default).
            seed: the random seed.
            simulations: simulated outcomes.
            bootstrap: replicates over resampled history (0: none).
            probabilities: ``manual`` (each deal's own), ``stage`` or ``empirical``.
            timing: ``history`` or ``expected_close``.
            new_deals: include the run-rate of deals not created yet.
            pipeline: only this pipeline.
            owners: only deals these users own.
            zones: only deals of organizations in these zones (keys, records, ids).
            team: only deals the team's members own (with ``owners``: both).
            fiscal_start: the month the fiscal year starts.

        Raises:
            ValidationError: a bad argument; an unknown user, zone or team; a
                missing exchange rate.
        """
        moment = self._moment(as_of)
        users, places = self._crm._read(lambda uow: self._scope(uow, owners, zones, team))
        book = self._crm.analytics.book(as_of=moment)
        return core.forecast(
            book,
            period=period,
            as_of=moment,
            currency=currency,
            seed=seed,
            simulations=simulations,
            bootstrap=bootstrap,
            probabilities=probabilities,
            timing=timing,
            new_deals=new_deals,
            rate=self._rate,
            pipeline=pipeline,
            owners=users,
            zones=places,
            fiscal_start=fiscal_start,
        )

    def series(
        self,
        *,
        currency: str,
        kind: PeriodKind | str = PeriodKind.QUARTER,
        start: Period | str | None = None,
        periods: int = 4,
        as_of: datetime | None = None,
        seed: int = 0,
        simulations: int = core.SIMULATIONS,
        bootstrap: int = core.BOOTSTRAP,
        probabilities: ProbabilitySource | str = ProbabilitySource.MANUAL,
        pipeline: str | None = None,
        fiscal_start: int = 1,
    ) -> ForecastSeries:
        """:meth:`forecast` of ``periods`` consecutive periods from one snapshot (a fan).

        Args:
            currency: the result's currency.
            kind: ``month``, ``quarter`` or ``year`` (ignored when ``start`` is given).
            start: the first period (a ``Period`` or its label); by default
                the period of ``kind`` that ``as_of`` falls in.
            periods: how many periods (1 to 36).
            as_of: the moment of the forecast (now by default).
            seed: the random seed (the same for every period).
            simulations: simulated outcomes.
            bootstrap: replicates over resampled history (0: none).
            probabilities: ``manual``, ``stage`` or ``empirical``.
            pipeline: only this pipeline.
            fiscal_start: the month the fiscal year starts.

        Raises:
            ValidationError: a bad argument; a missing exchange rate.
        """
        if not isinstance(periods, int) or isinstance(periods, bool) or not 1 <= periods <= 36:
            raise ValidationError(
                "periods", "must be a whole number from 1 to 36", code="range", value=periods
            )
        moment = self._moment(as_of)
        if start is not None:
            first = core.parse_period(start, fiscal_start=fiscal_start)
        else:
            try:
                period_kind = PeriodKind(kind)
            except ValueError:
                raise ValidationError(
                    "kind", "must be month, quarter or year", code="choice", value=kind
                ) from None
            today = moment.astimezone(self._crm.timezone).date()
            first = Period.containing(today, period_kind, fiscal_start=fiscal_start)
        chosen = [first]
        while len(chosen) < periods:
            chosen.append(Period.containing(chosen[-1].end, first.kind, fiscal_start=fiscal_start))
        book = self._crm.analytics.book(as_of=moment)
        return ForecastSeries(
            forecasts=tuple(
                core.forecast(
                    book,
                    period=period,
                    as_of=moment,
                    currency=currency,
                    seed=seed,
                    simulations=simulations,
                    bootstrap=bootstrap,
                    probabilities=probabilities,
                    rate=self._rate,
                    pipeline=pipeline,
                    fiscal_start=fiscal_start,
                )
                for period in chosen
            )
        )

    # ------------------------------------------------------------- attainment
    def attainment(
        self,
        target: SalesTargetRef,
        *,
        as_of: datetime | None = None,
        seed: int = 0,
        simulations: int = core.SIMULATIONS,
        bootstrap: int = core.BOOTSTRAP,
        probabilities: ProbabilitySource | str = ProbabilitySource.MANUAL,
    ) -> Attainment:
        """How far ``target`` is reached at ``as_of``, and the chance of reaching it.

        A team's target counts the deals owned by the team's current members.

        Raises:
            NotFoundError: no such target.
            ValidationError: a bad argument; a missing exchange rate.
        """
        moment = self._moment(as_of)

        def read(uow: UnitOfWork) -> tuple[SalesTarget, tuple[UserId, ...]]:
            found = self._target(uow, target)
            members: tuple[UserId, ...] = ()
            if found.team_id is not None:
                members = uow.repository(Team).get(found.team_id).member_ids
            return found, members

        found, members = self._crm._read(read)
        return core.attainment(
            self._crm.analytics.book(as_of=moment),
            found,
            as_of=moment,
            members=members,
            seed=seed,
            simulations=simulations,
            bootstrap=bootstrap,
            probabilities=probabilities,
            rate=self._rate,
        )

    def attainments(
        self,
        *,
        period: Period | str,
        as_of: datetime | None = None,
        fiscal_start: int = 1,
        seed: int = 0,
        simulations: int = core.SIMULATIONS,
        bootstrap: int = core.BOOTSTRAP,
    ) -> tuple[Attainment, ...]:
        """:meth:`attainment` of every target (not archived) of ``period``."""
        targets = self._crm.targets.for_period(period, fiscal_start=fiscal_start)
        return tuple(
            self.attainment(t, as_of=as_of, seed=seed, simulations=simulations, bootstrap=bootstrap)
            for t in targets
        )

    def attainment_report(
        self,
        *,
        period: Period | str,
        as_of: datetime | None = None,
        fiscal_start: int = 1,
        seed: int = 0,
        simulations: int = core.SIMULATIONS,
        bootstrap: int = core.BOOTSTRAP,
    ) -> AttainmentReport:
        """:meth:`attainments` of ``period`` as one table, each target named by its scope."""
        moment = self._moment(as_of)
        chosen = core.parse_period(period, fiscal_start=fiscal_start)
        found = self.attainments(
            period=chosen,
            as_of=moment,
            fiscal_start=fiscal_start,
            seed=seed,
            simulations=simulations,
            bootstrap=bootstrap,
        )

        def names(uow: UnitOfWork) -> tuple[str, ...]:
            labels = []
            for a in found:
                t = a.target
                if t.user_id is not None:
                    labels.append(uow.repository(User).get(t.user_id).name)
                elif t.team_id is not None:
                    labels.append(uow.repository(Team).get(t.team_id).name)
                else:
                    assert t.zone_id is not None
                    labels.append(uow.repository(Zone).get(t.zone_id).name)
            return tuple(labels)

        return AttainmentReport(
            period=chosen, as_of=moment, attainments=found, labels=self._crm._read(names)
        )

    def _target(self, uow: UnitOfWork, target: object) -> SalesTarget:
        repo = uow.repository(SalesTarget)
        if isinstance(target, SalesTarget):
            return repo.get(target.id)
        if isinstance(target, UUID):
            return repo.get(target)
        raise ValidationError(
            "target", "must be a SalesTarget or its id", code="type", value=target
        )

    # ---------------------------------------------------------------- methods
    def methods(self) -> Mapping[str, ForecastMethod]:
        """The forecast methods a backtest may use: built-in ones and plugins', by name.

        Raises:
            PluginError: a plugin's method has a built-in's name or another
                plugin's.
        """
        if self._methods is None:
            found = dict(BUILTIN_METHODS)
            for method in self._crm.plugins.register_forecast_methods(self._crm, reserved=found):
                found[method.name] = method
            self._methods = MappingProxyType(found)
        return self._methods

    # --------------------------------------------------------------- backtest
    def backtest(
        self,
        *,
        currency: str,
        kind: PeriodKind | str = PeriodKind.MONTH,
        periods: int = 6,
        methods: Sequence[str] | None = None,
        as_of: datetime | None = None,
        seed: int = 0,
        pipeline: str | None = None,
        fiscal_start: int = 1,
    ) -> Backtest:
        """Forecast each of the last ``periods`` complete periods as of its start.

        See :func:`crmkit.core.forecast.backtest`.

        Args:
            currency: of every amount.
            kind: month, quarter or year.
            periods: how many past periods.
            methods: method names (default: all of :meth:`methods`).
            as_of: the backtest's end (now by default).
            seed: the random seed.
            pipeline: only this pipeline.
            fiscal_start: the month the fiscal year starts.

        Raises:
            ValidationError: an unknown method name (field ``methods``, code
                ``choice``) or another bad argument.
        """
        moment = self._moment(as_of)
        known = self.methods()
        names = list(known) if methods is None else list(methods)
        for i, name in enumerate(names):
            if name not in known:
                raise ValidationError(
                    f"methods[{i}]",
                    f"must be one of: {', '.join(known)}",
                    code="choice",
                    value=name,
                )
        count = core._check_count(periods, "periods", 1)
        earliest = Period.containing(
            moment.date(), core._enum(PeriodKind, kind, "kind"), fiscal_start=fiscal_start
        )
        oldest = core.previous_periods(earliest, count, fiscal_start=fiscal_start)[-1]
        book = self._crm.analytics.book(as_of=min(moment, core._midnight(oldest.start)))
        return core.backtest(
            book,
            as_of=moment,
            currency=currency,
            kind=kind,
            periods=count,
            methods=[known[n] for n in names],
            rate=self._rate,
            seed=seed,
            pipeline=pipeline,
            fiscal_start=fiscal_start,
        )

    # ------------------------------------------------------------ calibration
    def calibration(
        self,
        *,
        as_of: datetime | None = None,
        snapshots: int = 12,
        min_samples: int = core.MIN_SAMPLES,
        pipeline: str | None = None,
    ) -> Calibration:
        """Brier score and reliability bins of stage, manual and empirical probabilities.

        See :func:`crmkit.core.forecast.calibration`.
        """
        moment = self._moment(as_of)
        count = core._check_count(snapshots, "snapshots", 1)
        month = Period.containing(moment.date(), PeriodKind.MONTH)
        oldest = core.previous_periods(month, count)[-1]
        book = self._crm.analytics.book(as_of=min(moment, core._midnight(oldest.start)))
        return core.calibration(
            book, as_of=moment, snapshots=count, min_samples=min_samples, pipeline=pipeline
        )

    def stage_win_rates(
        self,
        *,
        as_of: datetime | None = None,
        min_samples: int = core.MIN_SAMPLES,
        pipeline: str | None = None,
    ) -> tuple[StageWinRate, ...]:
        """Each stage's empirical win probability.

        See :func:`crmkit.core.forecast.stage_win_rates`.
        """
        moment = self._moment(as_of)
        return core.stage_win_rates(
            self._crm.analytics.book(as_of=moment),
            as_of=moment,
            min_samples=min_samples,
            pipeline=pipeline,
        )
