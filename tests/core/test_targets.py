"""Teams and sales targets: the entities' own rules."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Final

import pytest

from crmkit import Money, ValidationError
from crmkit.core import changes
from crmkit.core.analytics import PeriodKind
from crmkit.core.forecast import parse_period
from crmkit.core.ids import SalesTargetId, TeamId, UserId, ZoneId, uuid7
from crmkit.core.targets import SalesTarget, TargetScope, Team

T0: Final = datetime(2025, 1, 1, tzinfo=UTC)
Q1: Final = parse_period("2027-Q1")
ANA = UserId(uuid7())
NORTE = ZoneId(uuid7())


def EUR(amount: int) -> Money:  # noqa: N802
    """``amount`` euros."""
    return Money(Decimal(amount), "EUR")


def test_a_target_belongs_to_exactly_one_of_user_team_and_zone() -> None:
    for scope in ({}, {"user_id": ANA, "zone_id": NORTE}):
        with pytest.raises(ValidationError) as caught:
            target(**scope)
        assert ("scope", "scope") == (caught.value.field, caught.value.code)
    assert TargetScope.ZONE is target(zone_id=NORTE).scope


def test_a_target_starts_on_the_first_day_of_its_period() -> None:
    assert Q1 == target(user_id=ANA).period
    with pytest.raises(ValidationError) as caught:
        target(user_id=ANA, period_start=date(2027, 2, 1))
    assert ("period_start", "period") == (caught.value.field, caught.value.code)


def test_a_fiscal_quarter_target_keeps_its_fiscal_label() -> None:
    fiscal = target(user_id=ANA, period_start=date(2026, 7, 1), fiscal_start=7)
    assert "FY2027-Q1" == fiscal.period.label


def test_a_target_amount_must_be_more_than_zero() -> None:
    with pytest.raises(ValidationError) as caught:
        target(user_id=ANA, amount=EUR(0))
    assert ("amount", "range") == (caught.value.field, caught.value.code)


def test_a_team_lists_each_member_once() -> None:
    with pytest.raises(ValidationError) as caught:
        changes.create(Team, id=TeamId(uuid7()), now=T0, name="Norte", member_ids=[ANA, ANA])
    assert ("member_ids", "duplicate") == (caught.value.field, caught.value.code)


def target(**fields: object) -> SalesTarget:
    values: dict[str, object] = {
        "period_kind": PeriodKind.QUARTER,
        "period_start": date(2027, 1, 1),
        "amount": EUR(10_000),
    }
    values.update(fields)
    return changes.create(SalesTarget, id=SalesTargetId(uuid7()), now=T0, **values)[0]
