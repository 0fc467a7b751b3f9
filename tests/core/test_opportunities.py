"""Opportunity values: line items, stage changes and the entity's own checks."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from crmkit import LineItem, Money, Opportunity, OpportunityId, StageChange, ValidationError
from crmkit.core.ids import uuid7

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


def test_a_line_total_is_quantity_times_price_less_discount() -> None:
    """3 x 100.00 EUR at 10% off is 270.00 EUR, rounded to cents."""
    line = LineItem(
        description="Licencia",
        quantity="3",
        unit_price=Money("100", "EUR"),
        discount=Decimal("0.1"),
    )
    assert Money("270.00", "EUR") == line.total


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ({"quantity": "0"}, "quantity"),
        ({"quantity": 1.5}, "quantity"),
        ({"unit_price": "100"}, "unit_price"),
        ({"discount": "1.5"}, "discount"),
        ({"description": ""}, "description"),
    ],
)
def test_a_bad_line_item_names_its_field(values: dict[str, Any], field: str) -> None:
    """Quantity must be positive, the price Money, the discount 0-1, a description given."""
    base: dict[str, Any] = {"description": "x", "unit_price": Money("1", "EUR")}
    with pytest.raises(ValidationError) as info:
        LineItem(**{**base, **values})
    assert field == info.value.field


def _opportunity(**values: Any) -> Opportunity:
    base: dict[str, Any] = {
        "id": OpportunityId(uuid7()),
        "created_at": T0,
        "updated_at": T0,
        "name": "ERP",
        "pipeline": "sales",
        "stage": "lead",
        "history": (StageChange(source=None, target="lead", at=T0, by=None),),
    }
    return Opportunity(**{**base, **values})


def test_line_total_sums_the_lines_or_is_none_without_lines() -> None:
    """Two lines add up; no lines, no total."""
    lines = (
        LineItem(description="a", unit_price=Money("10", "EUR")),
        LineItem(description="b", quantity=2, unit_price=Money("5", "EUR")),
    )
    assert Money("20", "EUR") == _opportunity(line_items=lines).line_total
    assert _opportunity().line_total is None


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ({"pipeline": ""}, "pipeline"),
        ({"stage": 3}, "stage"),
        ({"line_items": ["a line"]}, "line_items[0]"),
        ({"history": ["moved"]}, "history[0]"),
        ({"competitors": [""]}, "competitors[0]"),
        ({"closed_at": datetime(2026, 1, 5)}, "closed_at"),
        ({"probability": "2"}, "probability"),
    ],
)
def test_a_bad_opportunity_value_names_its_field(values: dict[str, Any], field: str) -> None:
    """Each malformed value is a ValidationError on its own field."""
    with pytest.raises(ValidationError) as info:
        _opportunity(**values)
    assert field == info.value.field


def test_a_stage_change_needs_an_aware_time_and_a_target() -> None:
    """A naive time or an empty target is refused."""
    with pytest.raises(ValidationError):
        StageChange(source=None, target="lead", at=datetime(2026, 1, 5), by=None)
    with pytest.raises(ValidationError):
        StageChange(source="lead", target="", at=T0, by=None)
    assert Decimal(0) == _opportunity().probability
