"""Interaction, campaign and customer analytics on ``crm.analytics``.

:class:`InsightReports` is a base of :class:`~crmkit.services.analytics.AnalyticsService`:
each method reads the book, the interactions, organizations, campaigns and
leads it needs in one unit of work and hands them to the pure function of the
same name in :mod:`crmkit.core.insights`.

.. versionadded:: 0.1
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, TypeVar

from crmkit.core import insights as core
from crmkit.core.analytics import Book, PeriodKind, _check_aware
from crmkit.core.campaigns import Campaign
from crmkit.core.entities import Organization
from crmkit.core.ids import OrganizationId
from crmkit.core.insights import (
    ActivityDimension,
    CampaignReport,
    CustomerValue,
    InteractionResults,
    RelationshipHealth,
    RepPerformance,
    Retention,
)
from crmkit.core.interactions import Interaction
from crmkit.core.leads import Lead
from crmkit.core.money import Money
from crmkit.core.query import Query
from crmkit.stores.base import UnitOfWork

if TYPE_CHECKING:
    from crmkit.app import CRM

__all__ = ["InsightReports"]

T = TypeVar("T")


class InsightReports:
    """Interaction results, campaign ROI, customer value, retention, reps, relationship health.

    ``as_of`` defaults to the CRM clock's now; opportunities are rebuilt as
    they stood then.  The definitions are in the "Analytics and forecasting"
    guide and in :mod:`crmkit.core.insights`.
    """

    _crm: CRM

    if TYPE_CHECKING:  # provided by AnalyticsService

        def _moment(self, as_of: datetime | None) -> datetime: ...
        def _rate(self, base: str, quote: str, on: date) -> Decimal | None: ...
        def _load(self, uow: UnitOfWork, as_of: datetime) -> Book: ...

    def _with_book(
        self, as_of: datetime | None, read: Callable[[UnitOfWork, Book, datetime], T]
    ) -> T:
        moment = self._moment(as_of)
        return self._crm._read(lambda uow: read(uow, self._load(uow, moment), moment))

    # ----------------------------------------------------------- interactions
    def interaction_results(
        self,
        *,
        by: ActivityDimension | str | None = None,
        as_of: datetime | None = None,
        since: datetime | None = None,
        window: timedelta = timedelta(days=30),
        fiscal_start: int = 1,
    ) -> InteractionResults:
        """Done interactions by kind, outcome, user, campaign or period, and how many
        led to an opportunity (see :func:`crmkit.core.insights.interaction_results`)."""
        return self._with_book(
            as_of,
            lambda uow, book, moment: core.interaction_results(
                uow.repository(Interaction).find(Query()),
                book,
                as_of=moment,
                by=by,
                since=since,
                window=window,
                fiscal_start=fiscal_start,
            ),
        )

    def relationship_health(
        self,
        *,
        as_of: datetime | None = None,
        window: timedelta = timedelta(days=90),
        active_within: timedelta = timedelta(days=30),
    ) -> RelationshipHealth:
        """Recency and frequency of interactions per organization
        (see :func:`crmkit.core.insights.relationship_health`)."""
        moment = self._moment(as_of)
        return self._crm._read(
            lambda uow: core.relationship_health(
                uow.repository(Organization).find(Query()),
                uow.repository(Interaction).find(Query()),
                as_of=moment,
                window=window,
                active_within=active_within,
            )
        )

    # -------------------------------------------------------------- campaigns
    def campaign_roi(self, *, currency: str, as_of: datetime | None = None) -> CampaignReport:
        """Leads, opportunities, wins, cost and ROI per campaign, each cost once
        (see :func:`crmkit.core.insights.campaign_roi`)."""
        return self._with_book(
            as_of,
            lambda uow, book, moment: core.campaign_roi(
                book,
                uow.repository(Campaign).find(Query(archived=None)),
                uow.repository(Lead).find(Query(archived=None)),
                as_of=moment,
                currency=currency,
                rate=self._rate,
            ),
        )

    # -------------------------------------------------------------- customers
    def customer_value(
        self, *, currency: str, as_of: datetime | None = None, since: datetime | None = None
    ) -> CustomerValue:
        """Won revenue per organization plus the host's, from ``crmkit_customer_revenue``
        (see :func:`crmkit.core.insights.customer_value`).

        Raises:
            ValidationError: a naive moment, an unknown currency, a missing rate.
            HookError: a ``crmkit_customer_revenue`` plugin failed.
        """

        def read(
            uow: UnitOfWork, book: Book, moment: datetime
        ) -> tuple[Book, datetime, list[Organization]]:
            ids = {o.organization_id for o in book.opportunities if o.organization_id}
            found = uow.repository(Organization).get_many(ids)
            organizations = [o for o in found.values() if isinstance(o, Organization)]
            return book, moment, organizations

        since = None if since is None else _check_aware(since, "since")
        book, moment, organizations = self._with_book(as_of, read)
        host: dict[OrganizationId, Money] = {}
        for org in organizations:
            revenue = self._crm.plugins.customer_revenue(self._crm, org, since=since, until=moment)
            if revenue is not None:
                host[org.id] = revenue
        return core.customer_value(
            book,
            as_of=moment,
            currency=currency,
            since=since,
            rate=self._rate,
            host_revenue=host,
            names={o.id: o.name for o in organizations},
        )

    def retention(
        self,
        *,
        by: PeriodKind | str = PeriodKind.QUARTER,
        as_of: datetime | None = None,
        fiscal_start: int = 1,
    ) -> Retention:
        """Customers by cohort of their first win, and who won again in later periods
        (see :func:`crmkit.core.insights.retention`)."""
        return self._with_book(
            as_of,
            lambda _, book, moment: core.retention(
                book, as_of=moment, by=by, fiscal_start=fiscal_start
            ),
        )

    def rep_performance(
        self, *, currency: str, as_of: datetime | None = None, since: datetime | None = None
    ) -> RepPerformance:
        """Per owner: won value, win rate, open pipeline and activity
        (see :func:`crmkit.core.insights.rep_performance`)."""
        return self._with_book(
            as_of,
            lambda uow, book, moment: core.rep_performance(
                book,
                uow.repository(Interaction).find(Query()),
                as_of=moment,
                currency=currency,
                since=since,
                rate=self._rate,
            ),
        )
