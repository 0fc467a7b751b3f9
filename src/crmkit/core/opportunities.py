"""Opportunities (oportunidad comercial, oferta, negociación) and their history.

An :class:`Opportunity` sits in one stage of one pipeline.  Its stage changes
only through the pure transition functions in :mod:`crmkit.core.transitions`,
each of which appends a :class:`StageChange` to :attr:`Opportunity.history`,
so cycle times and conversion are computed from what happened, never guessed.

.. versionadded:: 0.1
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any, ClassVar

import attrs
from attrs import field, frozen

from crmkit.core.campaigns import Campaign
from crmkit.core.custom_fields import CustomValues, custom_field
from crmkit.core.entities import (
    _BASE_FIELDS,
    Contact,
    Entity,
    FieldKind,
    LossReason,
    Organization,
    Source,
    User,
)
from crmkit.core.errors import ValidationError
from crmkit.core.fields import (
    bool_field,
    enum_field,
    fraction_field,
    optional_date,
    optional_id,
    optional_money,
    required_id,
    tag_item,
    text,
    to_decimal,
    tuple_field,
)
from crmkit.core.ids import (
    CampaignId,
    ContactId,
    LossReasonId,
    OpportunityId,
    OrganizationId,
    ProductId,
    SourceId,
    UserId,
)
from crmkit.core.money import Money
from crmkit.core.pipelines import StageKind

__all__ = ["LineItem", "Opportunity", "StageChange"]


def _check_aware(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, datetime) or value.utcoffset() is None:
        raise ValidationError(
            attribute.name, "must be a timezone-aware datetime", code="type", value=value
        )


def _optional_key(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise ValidationError("stage", "must be a stage key", code="type", value=value)
    return value


@frozen(kw_only=True)
class StageChange:
    """One move of an opportunity: from a stage (``None`` at creation) to another.

    Attributes:
        source: the stage left (``None`` for the creation).
        target: the stage entered.
        at: when, timezone-aware.
        by: who (the CRM's actor), if known.
    """

    source: str | None = field(converter=_optional_key)
    target: str = field(converter=_optional_key)
    at: datetime = field(validator=_check_aware)
    by: str | None = text("by", max_length=200)


def _quantity(value: object) -> Decimal:
    result = to_decimal(value, "quantity")
    if result <= 0:
        raise ValidationError("quantity", "must be positive", code="range", value=value)
    return result


def _price(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, Money):
        raise ValidationError("unit_price", "must be Money", code="type", value=value)


@frozen(kw_only=True)
class LineItem:
    """A line of an offer: quantity x unit price, less a discount (0-1)."""

    description: str = text("description", required=True, max_length=500)
    quantity: Decimal = field(default=Decimal(1), converter=_quantity)
    unit_price: Money = field(validator=_price)
    discount: Decimal = fraction_field("discount", Decimal(0))
    product_id: ProductId | None = optional_id()

    @property
    def total(self) -> Money:
        """quantity x unit price x (1 - discount), rounded to the currency's minor units."""
        return self.unit_price.multiply(self.quantity * (Decimal(1) - self.discount))


def _line_item(value: object, path: str) -> LineItem:
    if isinstance(value, LineItem):
        return value
    raise ValidationError(path, "must be a LineItem", code="type", value=value)


def _stage_change(value: object, path: str) -> StageChange:
    if isinstance(value, StageChange):
        return value
    raise ValidationError(path, "must be a StageChange", code="type", value=value)


def _competitor(value: object, path: str) -> str:
    return tag_item(value, path)


def _stage_key(value: object) -> str:
    if not isinstance(value, str) or not value:
        raise ValidationError("stage", "must be a stage key", code="type", value=value)
    return value


def _pipeline_key(value: object) -> str:
    if not isinstance(value, str) or not value:
        raise ValidationError("pipeline", "must be a pipeline key", code="type", value=value)
    return value


@frozen(kw_only=True)
class Opportunity(Entity):
    """A potential sale moving through a pipeline.

    ``status`` is the kind of the current stage (open, won, lost, on_hold),
    kept on the record so stores can filter by it.  ``probability`` is the
    stage's default unless ``probability_override`` is set.  ``history`` lists
    every stage change, oldest first; it is append-only.
    """

    ENTITY: ClassVar[str] = "opportunity"
    QUERYABLE: ClassVar[dict[str, FieldKind]] = {
        **_BASE_FIELDS,
        "name": FieldKind.TEXT,
        "organization_id": FieldKind.ID,
        "contact_id": FieldKind.ID,
        "pipeline": FieldKind.TEXT,
        "stage": FieldKind.TEXT,
        "status": FieldKind.ENUM,
        "amount": FieldKind.MONEY,
        "expected_close": FieldKind.DATE,
        "closed_at": FieldKind.DATETIME,
        "source_id": FieldKind.ID,
        "campaign_id": FieldKind.ID,
        "prescriber_id": FieldKind.ID,
        "owner_id": FieldKind.ID,
        "close_reason_id": FieldKind.ID,
        "sales_order_ref": FieldKind.TEXT,
        "tags": FieldKind.SET,
    }

    id: OpportunityId = required_id()
    name: str = text("name", required=True, max_length=300)
    organization_id: OrganizationId | None = optional_id()
    contact_id: ContactId | None = optional_id()
    pipeline: str = field(converter=_pipeline_key)
    stage: str = field(converter=_stage_key)
    status: StageKind = enum_field(StageKind, "status", StageKind.OPEN)
    amount: Money | None = optional_money("amount")
    probability: Decimal = fraction_field("probability", Decimal(0))
    probability_override: bool = bool_field()
    expected_close: date | None = optional_date("expected_close")
    closed_at: datetime | None = field(
        default=None, validator=attrs.validators.optional(_check_aware)
    )
    source_id: SourceId | None = optional_id()
    campaign_id: CampaignId | None = optional_id()
    prescriber_id: OrganizationId | None = optional_id()
    owner_id: UserId | None = optional_id()
    competitors: tuple[str, ...] = tuple_field(_competitor, "competitors", max_items=20)
    line_items: tuple[LineItem, ...] = tuple_field(_line_item, "line_items", max_items=500)
    close_reason_id: LossReasonId | None = optional_id()
    close_note: str | None = text("close_note", max_length=2000)
    sales_order_ref: str | None = text("sales_order_ref", max_length=200)
    held_from: str | None = field(default=None, converter=_optional_key)
    history: tuple[StageChange, ...] = tuple_field(_stage_change, "history", max_items=100_000)
    tags: tuple[str, ...] = tuple_field(tag_item, "tags")
    notes: str | None = text("notes", max_length=10_000)
    #: custom field values (campos personalizados) by key
    custom: CustomValues = custom_field()

    @property
    def is_closed(self) -> bool:
        """Won or lost."""
        return self.status in (StageKind.WON, StageKind.LOST)

    @property
    def line_total(self) -> Money | None:
        """The sum of the line items (``None`` without lines)."""
        if not self.line_items:
            return None
        total = self.line_items[0].total
        for item in self.line_items[1:]:
            total = total + item.total
        return total


Opportunity.REFERENCES = {
    "campaign_id": Campaign,
    "organization_id": Organization,
    "contact_id": Contact,
    "source_id": Source,
    "prescriber_id": Organization,
    "owner_id": User,
    "close_reason_id": LossReason,
}
