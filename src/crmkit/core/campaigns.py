"""Campaigns (campañas): a budgeted marketing or sales push at a segment.

A :class:`Campaign` has a kind (e-mail, event, call, fair, web...), a period,
a budget and an actual cost, a target :class:`~crmkit.core.segments.Segment`
and a status.  Its members are a snapshot of the segment's organizations
taken when the campaign is launched.  Leads, opportunities and interactions
point to the campaign that brought them (``campaign_id``); :func:`results`
turns them into leads, opportunities, won value, cost per lead and ROI.

.. versionadded:: 0.1
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable
from datetime import date, datetime
from decimal import ROUND_HALF_EVEN, Decimal
from typing import TYPE_CHECKING, ClassVar, Final
from uuid import UUID

from attrs import frozen

from crmkit.core.entities import _BASE_FIELDS, Entity, FieldKind, User
from crmkit.core.errors import InvalidTransition, ValidationError
from crmkit.core.fields import (
    enum_field,
    optional_date,
    optional_datetime,
    optional_id,
    optional_money,
    required_id,
    tag_item,
    text,
    tuple_field,
)
from crmkit.core.ids import CampaignId, OrganizationId, SegmentId, UserId
from crmkit.core.mail import CampaignEmail, EmailMetrics, email_metrics
from crmkit.core.money import Money
from crmkit.core.segments import Segment

if TYPE_CHECKING:
    from crmkit.core.leads import Lead
    from crmkit.core.opportunities import Opportunity

__all__ = [
    "CAMPAIGN_FLOW",
    "Campaign",
    "CampaignKind",
    "CampaignResults",
    "CampaignStatus",
    "check_move",
    "results",
]

#: ROI and conversion rates are rounded to this many decimal places.
RATE_PLACES: Final = Decimal("0.0001")


class CampaignKind(enum.Enum):
    """What kind of push a campaign is."""

    EMAIL = "email"
    EVENT = "event"
    CALL = "call"  #: a telemarketing or call round
    FAIR = "fair"  #: a trade fair (feria)
    WEB = "web"
    SOCIAL = "social"
    ADVERTISING = "advertising"
    MAIL = "mail"  #: postal mailing (buzoneo)
    OTHER = "other"


class CampaignStatus(enum.Enum):
    """Where a campaign stands."""

    PLANNED = "planned"  #: being prepared; no members yet
    ACTIVE = "active"  #: launched: members snapshotted, actions planned
    COMPLETED = "completed"  #: over; its results stay
    CANCELLED = "cancelled"  #: called off


def _member(value: object, path: str) -> OrganizationId:
    if not isinstance(value, UUID):
        raise ValidationError(path, "must be a UUID", code="type", value=value)
    return value  # type: ignore[return-value]


@frozen(kw_only=True)
class Campaign(Entity):
    """A campaign (campaña): name, kind, period, budget, cost, target segment, status."""

    ENTITY: ClassVar[str] = "campaign"
    QUERYABLE: ClassVar[dict[str, FieldKind]] = {
        **_BASE_FIELDS,
        "name": FieldKind.TEXT,
        "kind": FieldKind.ENUM,
        "status": FieldKind.ENUM,
        "starts_on": FieldKind.DATE,
        "ends_on": FieldKind.DATE,
        "budget": FieldKind.MONEY,
        "actual_cost": FieldKind.MONEY,
        "segment_id": FieldKind.ID,
        "owner_id": FieldKind.ID,
        "launched_at": FieldKind.DATETIME,
        "tags": FieldKind.SET,
    }
    UNIQUE: ClassVar[tuple[str, ...]] = ("external_ref", "name")

    id: CampaignId = required_id()
    name: str = text("name", required=True, max_length=200)
    kind: CampaignKind = enum_field(CampaignKind, "kind", CampaignKind.OTHER)
    status: CampaignStatus = enum_field(CampaignStatus, "status", CampaignStatus.PLANNED)
    description: str | None = text("description", max_length=10_000)
    starts_on: date | None = optional_date("starts_on")
    ends_on: date | None = optional_date("ends_on")
    budget: Money | None = optional_money("budget")
    actual_cost: Money | None = optional_money("actual_cost")
    segment_id: SegmentId | None = optional_id()
    owner_id: UserId | None = optional_id()
    #: the organizations targeted: the segment's members when it was launched
    members: tuple[OrganizationId, ...] = tuple_field(_member, "members", max_items=10_000_000)
    launched_at: datetime | None = optional_datetime()
    tags: tuple[str, ...] = tuple_field(tag_item, "tags")

    def __attrs_post_init__(self) -> None:
        if self.starts_on and self.ends_on and self.ends_on < self.starts_on:
            raise ValidationError(
                "ends_on", "must not be before starts_on", code="range", value=self.ends_on
            )
        for name in ("budget", "actual_cost"):
            value = getattr(self, name)
            if value is not None and value.amount < 0:
                raise ValidationError(name, "must not be negative", code="range", value=value)


Campaign.REFERENCES = {"segment_id": Segment, "owner_id": User}
# contact_id and organization_id are left out on purpose: merges do not rewrite
# to whom an e-mail went (see CampaignEmail)
CampaignEmail.REFERENCES = {"campaign_id": Campaign}


# ----------------------------------------------------------------- status

#: the statuses each status may move to
CAMPAIGN_FLOW: Final[dict[CampaignStatus, frozenset[CampaignStatus]]] = {
    CampaignStatus.PLANNED: frozenset({CampaignStatus.ACTIVE, CampaignStatus.CANCELLED}),
    CampaignStatus.ACTIVE: frozenset({CampaignStatus.COMPLETED, CampaignStatus.CANCELLED}),
    CampaignStatus.COMPLETED: frozenset(),
    CampaignStatus.CANCELLED: frozenset(),
}


def check_move(campaign: Campaign, target: CampaignStatus) -> None:
    """Check that ``campaign`` may move to ``target`` (:data:`CAMPAIGN_FLOW`).

    Raises:
        InvalidTransition: the flow does not allow it.
    """
    if target not in CAMPAIGN_FLOW[campaign.status]:
        raise InvalidTransition(
            Campaign.ENTITY,
            campaign.status.value,
            target.value,
            f"a {campaign.status.value} campaign cannot become {target.value}",
        )


# ------------------------------------------------------------------- results


@frozen(kw_only=True)
class CampaignResults:
    """What a campaign brought.

    Every opportunity counts once, however many paths lead to it (its own
    ``campaign_id``, a converted lead of the campaign): duplicated rows do not
    inflate the won value or the ROI.

    Attributes:
        campaign_id: the campaign.
        members: organizations targeted.
        leads: leads attributed to it.
        converted_leads: those converted.
        opportunities: opportunities attributed to it (directly or through its leads).
        won: of those, won.
        won_value: the won opportunities' amounts, in the cost's currency
            (``None`` without a cost or budget to say which).
        cost: the actual cost (``None`` if not recorded).
        cost_per_lead: cost / leads (``None`` without cost or leads).
        roi: (won value - cost) / cost, rounded to 4 places (``None`` without a cost).
        conversion_rate: won / opportunities, rounded to 4 places (``None`` without any).
        email: the e-mail metrics (sent, delivered, opened, clicked, bounced,
            unsubscribed and their rates; see :class:`~crmkit.EmailMetrics`).
    """

    campaign_id: CampaignId
    members: int
    leads: int
    converted_leads: int
    opportunities: int
    won: int
    won_value: Money | None
    cost: Money | None
    cost_per_lead: Money | None
    roi: Decimal | None
    conversion_rate: Decimal | None
    email: EmailMetrics = EmailMetrics()


#: Turns money into another currency on a date: ``(money, currency, on) -> money``.
Convert = Callable[[Money, str, date], Money]


def results(
    campaign: Campaign,
    leads: Iterable[Lead],
    opportunities: Iterable[Opportunity],
    *,
    convert: Convert | None = None,
    emails: Iterable[CampaignEmail] = (),
) -> CampaignResults:
    """The results of ``campaign`` from its leads and opportunities.

    ``leads`` and ``opportunities`` may hold duplicates (rows of joins): each
    record counts once, by id.  Opportunities a lead of the campaign was
    converted into count even without their own ``campaign_id``.

    Args:
        campaign: the campaign.
        leads: the leads attributed to it.
        opportunities: its opportunities (and any others: only attributed ones count).
        convert: turns a won amount in another currency into the cost's; without
            it such amounts raise.
        emails: the campaign's e-mail records (others are ignored).

    Raises:
        CurrencyMismatchError: a won amount is in another currency and no ``convert``.
    """
    by_lead = {lead.id: lead for lead in leads if lead.campaign_id == campaign.id}
    via_leads = {lead.opportunity_id for lead in by_lead.values()} - {None}
    attributed = {
        o.id: o for o in opportunities if o.campaign_id == campaign.id or o.id in via_leads
    }
    won = [o for o in attributed.values() if o.status.value == "won"]
    cost = campaign.actual_cost
    reference = cost or campaign.budget
    won_value: Money | None = None
    if reference is not None:
        won_value = Money.zero(reference.currency)
        for o in won:
            if o.amount is None:
                continue
            amount = o.amount
            if amount.currency != reference.currency and convert is not None:
                on = (o.closed_at or o.updated_at).date()
                amount = convert(amount, reference.currency, on)
            won_value = won_value + amount
    n_leads = len(by_lead)
    cost_per_lead = None
    if cost is not None and n_leads:
        cost_per_lead = Money(
            (cost.amount / n_leads).quantize(Decimal(1).scaleb(-cost.exponent), ROUND_HALF_EVEN),
            cost.currency,
        )
    roi = None
    if cost is not None and cost.amount > 0 and won_value is not None:
        roi = ((won_value.amount - cost.amount) / cost.amount).quantize(RATE_PLACES)
    rate = (Decimal(len(won)) / len(attributed)).quantize(RATE_PLACES) if attributed else None
    return CampaignResults(
        campaign_id=campaign.id,
        members=len(campaign.members),
        leads=n_leads,
        converted_leads=sum(1 for lead in by_lead.values() if lead.status.value == "converted"),
        opportunities=len(attributed),
        won=len(won),
        won_value=won_value,
        cost=cost,
        cost_per_lead=cost_per_lead,
        roi=roi,
        conversion_rate=rate,
        email=email_metrics(e for e in emails if e.campaign_id == campaign.id),
    )
