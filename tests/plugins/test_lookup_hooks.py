"""The lookup hooks: crmkit_exchange_rate, behind crm.exchange_rate() and crm.convert()."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

import crmkit
from crmkit import CRM, HookError, Money, ValidationError, hookimpl
from crmkit.testing import RecordingPlugin
from tests.conftest import FixedClock

DAY = date(2026, 1, 5)


class Rates:
    """Knows the rates in ``table``: (base, quote, day) -> rate; None otherwise."""

    def __init__(self, table: dict[tuple[str, str, date], object]) -> None:
        self.table = table
        self.asked: list[tuple[str, str, date]] = []

    @hookimpl
    def crmkit_exchange_rate(self, base: str, quote: str, on: date) -> object:
        self.asked.append((base, quote, on))
        return self.table.get((base, quote, on))


class Raises:
    """Fails with ``error`` for every pair."""

    def __init__(self, error: Exception) -> None:
        self.error = error

    @hookimpl
    def crmkit_exchange_rate(self) -> object:
        raise self.error


ECB = Rates(
    {
        ("EUR", "USD", DAY): Decimal("1.0842"),
        ("EUR", "JPY", DAY): Decimal("161.53"),
        ("USD", "EUR", DAY): Decimal("0.9223"),
        ("EUR", "KWD", DAY): Decimal("0.3345"),
    }
)


def open_crm(*plugins: object, clock: FixedClock) -> CRM:
    """A memory CRM with ``plugins``."""
    return crmkit.open(":memory:", plugins=plugins, clock=clock)


# ======================================================== crmkit_exchange_rate


def test_exchange_rate_receives_crm_codes_and_the_day(clock: FixedClock) -> None:
    """The hook is called with crm, upper-case codes and the date, and its rate returned."""
    recorder = RecordingPlugin()
    with open_crm(ECB, recorder, clock=clock) as crm:
        rate = crm.exchange_rate("eur", "usd", DAY)

        assert Decimal("1.0842") == rate
        assert [{"crm": crm, "base": "EUR", "quote": "USD", "on": DAY}] == [
            c.kwargs for c in recorder.calls_to("crmkit_exchange_rate")
        ]


def test_exchange_rate_of_a_currency_with_itself_is_one_without_asking(clock: FixedClock) -> None:
    """EUR in EUR is 1; no plugin is called."""
    rates = Rates({})
    with open_crm(rates, clock=clock) as crm:
        assert Decimal(1) == crm.exchange_rate("EUR", "EUR", DAY)
        assert [] == rates.asked


def test_exchange_rate_stops_at_the_first_answer(clock: FixedClock) -> None:
    """The most recently registered plugin that knows the rate wins; None passes the turn."""
    older = Rates({("EUR", "USD", DAY): Decimal("1.08")})
    newer = Rates({("EUR", "USD", DAY): Decimal("1.09")})
    with open_crm(older, newer, Rates({}), clock=clock) as crm:
        assert Decimal("1.09") == crm.exchange_rate("EUR", "USD", DAY)
        assert [] == older.asked


def test_exchange_rate_nobody_knows_is_a_validation_error(clock: FixedClock) -> None:
    """No answer: ValidationError on quote, code no_rate; crmkit does not invert USD->EUR."""
    with open_crm(Rates({("USD", "EUR", DAY): Decimal("0.92")}), clock=clock) as crm:
        with pytest.raises(ValidationError) as info:
            crm.exchange_rate("EUR", "USD", DAY)

        assert ("quote", "no_rate", "USD") == (info.value.field, info.value.code, info.value.value)
        assert "EUR to USD on 2026-01-05" in info.value.reason


def test_exchange_rate_without_plugins_is_a_validation_error(clock: FixedClock) -> None:
    """The built-in plugins know no rates."""
    with open_crm(clock=clock) as crm, pytest.raises(ValidationError) as info:
        crm.exchange_rate("EUR", "GBP", DAY)

    assert "no_rate" == info.value.code


@pytest.mark.parametrize(
    ("base", "quote", "on", "field", "code"),
    [
        ("EURO", "USD", DAY, "base", "currency"),
        ("EUR", 840, DAY, "quote", "currency"),
        ("EUR", "USD", "2026-01-05", "on", "type"),
        ("EUR", "USD", datetime(2026, 1, 5), "on", "type"),
    ],
    ids=["unknown-base", "numeric-quote", "text-day", "datetime"],
)
def test_exchange_rate_checks_its_arguments(
    clock: FixedClock, base: object, quote: object, on: object, field: str, code: str
) -> None:
    """Unknown currencies and days that are not dates are refused before any plugin runs."""
    rates = Rates({})
    with open_crm(rates, clock=clock) as crm:
        with pytest.raises(ValidationError) as info:
            crm.exchange_rate(base, quote, on)  # type: ignore[arg-type]

        assert (field, code) == (info.value.field, info.value.code)
        assert [] == rates.asked


@pytest.mark.parametrize(
    "answer",
    [1.0842, "1.0842", Decimal(0), Decimal(-1), Decimal("NaN"), Decimal("Infinity"), True],
    ids=["float", "str", "zero", "negative", "nan", "infinity", "bool"],
)
def test_exchange_rate_answer_that_is_not_a_positive_decimal_is_a_hook_error(
    clock: FixedClock, answer: object
) -> None:
    """A float, text, zero, a negative or non-finite rate is the plugin's fault: HookError."""
    with open_crm(Rates({("EUR", "USD", DAY): answer}), clock=clock) as crm:
        with pytest.raises(HookError) as info:
            crm.exchange_rate("EUR", "USD", DAY)

        assert "crmkit_exchange_rate" == info.value.hook
        assert info.value.reason.startswith("Rates: returned ")


def test_exchange_rate_answer_may_be_an_int(clock: FixedClock) -> None:
    """An int rate is exact: it comes back as a Decimal."""
    with open_crm(Rates({("EUR", "JPY", DAY): 160}), clock=clock) as crm:
        rate = crm.exchange_rate("EUR", "JPY", DAY)

        assert (Decimal(160), Decimal) == (rate, type(rate))


def test_exchange_rate_raising_is_a_hook_error_and_crmkit_errors_pass(clock: FixedClock) -> None:
    """A failing rate service is a HookError; a plugin's ValidationError passes unchanged."""
    with open_crm(Raises(TimeoutError("ECB feed")), clock=clock) as crm:
        with pytest.raises(HookError) as info:
            crm.exchange_rate("EUR", "USD", DAY)
        assert "Raises: TimeoutError: ECB feed" == info.value.reason

    error = ValidationError("on", "no rates before 1999", code="no_rate")
    with open_crm(Raises(error), clock=clock) as crm:
        with pytest.raises(ValidationError) as refused:
            crm.exchange_rate("EUR", "USD", DAY)
        assert refused.value is error


# ================================================================== convert


@pytest.mark.parametrize(
    ("amount", "currency", "to", "expected"),
    [
        ("100.00", "EUR", "USD", Money("108.42", "USD")),
        ("0.01", "EUR", "USD", Money("0.01", "USD")),  # 0.010842 rounds down
        ("10.00", "EUR", "JPY", Money("1615", "JPY")),  # 1615.3 to yen
        ("1.00", "EUR", "KWD", Money("0.334", "KWD")),  # 0.3345: half to the even 0.334
        ("100.00", "EUR", "EUR", Money("100.00", "EUR")),
    ],
    ids=["usd", "cent", "yen", "dinar", "same"],
)
def test_convert_rounds_once_to_the_target_minor_units(
    clock: FixedClock, amount: str, currency: str, to: str, expected: Money
) -> None:
    """The exact product is rounded to the target currency's minor units."""
    with open_crm(ECB, clock=clock) as crm:
        assert expected == crm.convert(Money(amount, currency), to, DAY)


def test_convert_rounds_half_to_even(clock: FixedClock) -> None:
    """Exactly half a minor unit goes to the even neighbour (banker's rounding)."""
    rates = Rates({("EUR", "USD", DAY): Decimal("0.5")})
    with open_crm(rates, clock=clock) as crm:
        assert Money("0.02", "USD") == crm.convert(Money("0.05", "EUR"), "USD", DAY)  # 0.025
        assert Money("0.04", "USD") == crm.convert(Money("0.07", "EUR"), "USD", DAY)  # 0.035


def test_convert_without_a_rate_names_the_target(clock: FixedClock) -> None:
    """No rate: ValidationError on ``to``, code no_rate."""
    with open_crm(clock=clock) as crm, pytest.raises(ValidationError) as info:
        crm.convert(Money("1", "EUR"), "GBP", DAY)

    assert ("to", "no_rate") == (info.value.field, info.value.code)


def test_convert_checks_its_arguments(clock: FixedClock) -> None:
    """money must be Money and to a currency code."""
    with open_crm(ECB, clock=clock) as crm:
        with pytest.raises(ValidationError) as info:
            crm.convert(Decimal("1"), "USD", DAY)  # type: ignore[arg-type]
        assert ("money", "type") == (info.value.field, info.value.code)
        with pytest.raises(ValidationError) as info:
            crm.convert(Money("1", "EUR"), "dollars", DAY)
        assert ("to", "currency") == (info.value.field, info.value.code)


def test_convert_too_large_a_result_is_a_validation_error(clock: FixedClock) -> None:
    """A result beyond what crmkit keeps is refused, not overflowed."""
    rates = Rates({("EUR", "USD", DAY): Decimal("1E+30")})
    with open_crm(rates, clock=clock) as crm, pytest.raises(ValidationError) as info:
        crm.convert(Money("1000", "EUR"), "USD", DAY)

    assert "too_large" == info.value.code


@given(
    cents=st.integers(min_value=-(10**12), max_value=10**12),
    rate=st.decimals(min_value=Decimal("0.0001"), max_value=Decimal(1000), places=4),
)
def test_convert_is_the_product_rounded_to_the_nearest_minor_unit(
    cents: int, rate: Decimal
) -> None:
    """|converted - amount * rate| <= half a cent, and rounding happens once (exactly)."""
    rates = Rates({("EUR", "USD", DAY): rate})
    with crmkit.open(":memory:", plugins=[rates], seed_masters=False) as crm:
        money = Money.from_minor_units(cents, "EUR")

        converted = crm.convert(money, "USD", DAY)

        exact = money.amount * rate
        assert "USD" == converted.currency
        assert abs(converted.amount - exact) <= Decimal("0.005")
        assert converted.amount == exact.quantize(Decimal("0.01"))  # ROUND_HALF_EVEN default
