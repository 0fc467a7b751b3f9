"""Money: exact amounts, real minor units, no silent currency mixing."""

from __future__ import annotations

import json
import pickle
from decimal import ROUND_HALF_EVEN, Decimal, localcontext

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from crmkit import CurrencyMismatchError, Money, ValidationError
from crmkit.core.money import MAX_MINOR_UNITS, currency_exponent, is_currency
from crmkit.serialization import converter
from tests.strategies import (
    CURRENCIES,
    CURRENCIES_BY_EXPONENT,
    currencies,
    garbage,
    money,
    valid_or_rejected_at,
)

_EXPONENTS = sorted(CURRENCIES_BY_EXPONENT)


@pytest.mark.parametrize(
    ("code", "expected"),
    [("EUR", 2), ("USD", 2), ("JPY", 0), ("CLP", 0), ("BHD", 3), ("KWD", 3), ("JOD", 3)],
)
def test_currency_exponent_comes_from_currency_data(code: str, expected: int) -> None:
    """EUR has 2 minor digits, JPY 0, BHD 3."""
    assert expected == currency_exponent(code)


@pytest.mark.parametrize("code", ["EURO", "ZZZ", "", "eur", "€"])
def test_unknown_currency_code_is_rejected(code: str) -> None:
    """``currency_exponent`` refuses codes that are not ISO 4217."""
    assert not is_currency(code)
    with pytest.raises(ValidationError) as info:
        currency_exponent(code)
    assert "currency" == info.value.field
    assert "currency" == info.value.code


# ------------------------------------------------------------ round trips


@settings(max_examples=10_000)
@given(currency=currencies, units=st.integers(-MAX_MINOR_UNITS, MAX_MINOR_UNITS))
def test_random_amounts_round_trip_exactly(currency: str, units: int) -> None:
    """10,000 amounts in currencies with 0, 2 and 3 minor digits round-trip exactly.

    Through minor units, the converter (and JSON) and ``str``.
    """
    exponent = currency_exponent(currency)
    amount = Decimal(units).scaleb(-exponent)
    value = Money(amount, currency)
    assert amount == value.amount
    assert units == value.minor_units
    assert -exponent == value.amount.as_tuple().exponent
    assert value == Money.from_minor_units(value.minor_units, currency)
    wire = json.loads(json.dumps(converter.unstructure(value)))
    assert value == converter.structure(wire, Money)
    text, code = str(value).split(" ")
    assert value == Money(text, code)
    assert value == Money(str(value.amount), value.currency.lower())


@given(money())
def test_money_pickles_by_value(value: Money) -> None:
    """A pickled amount comes back equal and with the same hash."""
    copy = pickle.loads(pickle.dumps(value))
    assert value == copy
    assert hash(value) == hash(copy)


def test_equal_amounts_compare_equal_whatever_their_written_scale() -> None:
    """``Money("12.5", "eur") == Money(Decimal("12.50"), "EUR")``."""
    assert Money(Decimal("12.50"), "EUR") == Money("12.5", "eur")
    assert Money("0", "EUR") == Money("-0.00", "EUR")
    assert "0.00" == str(Money("-0", "EUR").amount)


# -------------------------------------------------------------- rejections


@pytest.mark.parametrize("amount", [1.5, 0.0, float("nan"), float("inf"), -float("inf")])
def test_floats_are_rejected(amount: float) -> None:
    """Floats (NaN and infinities included) are never accepted as amounts."""
    with pytest.raises(ValidationError) as info:
        Money(amount, "EUR")
    assert "amount" == info.value.field
    assert "float" == info.value.code


@given(st.floats(allow_nan=True, allow_infinity=True), currencies)
def test_any_float_is_rejected(amount: float, currency: str) -> None:
    """Every float is refused with code ``float``."""
    with pytest.raises(ValidationError) as info:
        Money(amount, currency)
    assert ("amount", "float") == (info.value.field, info.value.code)


@pytest.mark.parametrize(
    "amount", ["NaN", "nan", "-NaN", "sNaN", "Infinity", "-inf", Decimal("NaN"), Decimal("-Inf")]
)
def test_nan_and_infinity_are_rejected(amount: str | Decimal) -> None:
    """NaN and infinities, as text or Decimal, are not amounts."""
    with pytest.raises(ValidationError) as info:
        Money(amount, "EUR")
    assert ("amount", "not_finite") == (info.value.field, info.value.code)


@settings(max_examples=500)
@given(exponent=st.sampled_from(_EXPONENTS), data=st.data())
def test_too_many_decimals_are_rejected(exponent: int, data: st.DataObject) -> None:
    """An amount with more decimals than its currency has is an error, not a rounding."""
    currency = data.draw(st.sampled_from(CURRENCIES_BY_EXPONENT[exponent]))
    units = data.draw(st.integers(-(10**12), 10**12))
    extra = data.draw(st.integers(1, 9))
    amount = Decimal(units * 10 + extra).scaleb(-exponent - 1)
    with pytest.raises(ValidationError) as info:
        Money(amount, currency)
    assert ("amount", "precision") == (info.value.field, info.value.code)


@pytest.mark.parametrize("code", ["XYZ", "EURO", "", "12", "E U"])
def test_unknown_currency_is_rejected(code: str) -> None:
    """Only ISO 4217 codes are currencies."""
    with pytest.raises(ValidationError) as info:
        Money("1", code)
    assert ("currency", "currency") == (info.value.field, info.value.code)


@pytest.mark.parametrize(
    ("amount", "code"),
    [
        (str(MAX_MINOR_UNITS + 1), "JPY"),
        ("1e30", "EUR"),
        ("1e999999", "EUR"),
        ("1234567890123456789012345678901.5", "JPY"),
        (10**40, "BHD"),
    ],
)
def test_amounts_beyond_the_limit_are_rejected(amount: str | int, code: str) -> None:
    """Amounts beyond ``MAX_MINOR_UNITS`` (however many digits) are ``too_large``."""
    with pytest.raises(ValidationError) as info:
        Money(amount, code)
    assert ("amount", "too_large") == (info.value.field, info.value.code)


def test_the_limit_itself_is_accepted() -> None:
    """``MAX_MINOR_UNITS`` minor units is still an amount, either way."""
    assert MAX_MINOR_UNITS == Money.from_minor_units(MAX_MINOR_UNITS, "EUR").minor_units
    assert -MAX_MINOR_UNITS == Money.from_minor_units(-MAX_MINOR_UNITS, "EUR").minor_units


@pytest.mark.parametrize(
    ("amount", "code"),
    [(True, "type"), (None, "type"), ([1], "type"), (b"1", "type"), ("1,5", "invalid")],
)
def test_other_amount_types_are_rejected(amount: object, code: str) -> None:
    """Booleans, None, lists, bytes and unreadable text are not amounts."""
    with pytest.raises(ValidationError) as info:
        Money(amount, "EUR")
    assert "amount" == info.value.field
    if amount is not True:
        assert code == info.value.code


def test_minor_units_must_be_an_integer() -> None:
    """``from_minor_units`` refuses anything but an int."""
    with pytest.raises(ValidationError) as info:
        Money.from_minor_units(Decimal("1.5"), "EUR")  # type: ignore[arg-type]
    assert "amount" == info.value.field


# ----------------------------------------------------------- currency mixing


@st.composite
def _two_currencies(draw: st.DrawFn) -> tuple[Money, Money]:
    left, right = draw(st.lists(currencies, min_size=2, max_size=2, unique=True))
    return draw(money(left)), draw(money(right))


@settings(max_examples=500)
@given(_two_currencies())
def test_cross_currency_arithmetic_and_comparison_always_raise(pair: tuple[Money, Money]) -> None:
    """``+``, ``-``, ``<``, ``<=``, ``>``, ``>=`` across currencies raise CurrencyMismatchError."""
    a, b = pair
    operations = (
        lambda: a + b,
        lambda: a - b,
        lambda: a < b,
        lambda: a <= b,
        lambda: a > b,
        lambda: a >= b,
    )
    for operation in operations:
        with pytest.raises(CurrencyMismatchError) as info:
            operation()
        assert (a.currency, b.currency) == (info.value.left, info.value.right)
    assert a != b


def test_sum_across_currencies_raises() -> None:
    """``sum`` of mixed amounts is an error, never a silent total."""
    with pytest.raises(CurrencyMismatchError):
        sum([Money("1", "EUR"), Money("1", "USD")], Money.zero("EUR"))


def test_comparing_with_a_non_money_raises_type_error() -> None:
    """Ordering a Money against a number is a TypeError, like any unorderable pair."""
    with pytest.raises(TypeError):
        _ = Money("1", "EUR") < 1


# ------------------------------------------------------------ arithmetic laws

_small = 10**12  # three of these summed stay within MAX_MINOR_UNITS


@given(currency=currencies, data=st.data())
def test_addition_is_associative_and_commutative(currency: str, data: st.DataObject) -> None:
    """Within a currency, ``(a + b) + c == a + (b + c)`` and ``a + b == b + a``."""
    a, b, c = (data.draw(money(currency, max_units=_small)) for _ in range(3))
    assert (a + b) + c == a + (b + c)
    assert a + b == b + a
    assert a == a + Money.zero(currency)
    assert a - b == a + (-b)
    assert (a + b).minor_units == a.minor_units + b.minor_units


@given(currency=currencies, data=st.data())
def test_ordering_follows_minor_units(currency: str, data: st.DataObject) -> None:
    """Within a currency, comparisons agree with the integer minor units."""
    a, b = data.draw(money(currency)), data.draw(money(currency))
    assert (a < b) == (a.minor_units < b.minor_units)
    assert (a <= b) == (a.minor_units <= b.minor_units)
    assert (a > b) == (a.minor_units > b.minor_units)
    assert (a >= b) == (a.minor_units >= b.minor_units)
    assert abs(a).minor_units == abs(a.minor_units)
    assert bool(a) == (a.minor_units != 0)


@settings(max_examples=1000)
@given(
    value=money(max_units=10**12),
    factor=st.decimals(allow_nan=False, allow_infinity=False, places=None).filter(
        lambda d: abs(d) < 10**6 and abs(d.as_tuple().exponent) < 40  # type: ignore[arg-type]
    ),
)
def test_multiply_rounds_half_even_from_the_exact_product(value: Money, factor: Decimal) -> None:
    """``multiply`` computes the exact product and rounds it once, half to even."""
    with localcontext() as ctx:
        ctx.prec = 200
        exact = value.amount * factor
        expected = exact.quantize(Decimal(1).scaleb(-value.exponent), rounding=ROUND_HALF_EVEN)
    if abs(expected.scaleb(value.exponent)) > MAX_MINOR_UNITS:
        with pytest.raises(ValidationError):
            value.multiply(factor)
    else:
        assert Money(expected, value.currency) == value.multiply(factor)


@pytest.mark.parametrize(
    ("amount", "factor", "expected"),
    [
        ("0.05", Decimal("0.5"), "0.02"),
        ("0.15", Decimal("0.5"), "0.08"),
        ("0.25", Decimal("0.5"), "0.12"),
        ("-0.05", Decimal("0.5"), "-0.02"),
        ("10.00", 3, "30.00"),
        # just above a half: a product rounded to 28 digits first would give 0.00
        ("1.00", Decimal("0.0050000000000000000000000000001"), "0.01"),
    ],
)
def test_multiply_uses_bankers_rounding(amount: str, factor: Decimal | int, expected: str) -> None:
    """Halves round to the even cent: 0.025 -> 0.02, 0.075 -> 0.08."""
    assert Money(expected, "EUR") == Money(amount, "EUR").multiply(factor)


def test_multiply_refuses_floats_and_non_finite_factors() -> None:
    """Factors follow the amount rules: no floats, no NaN."""
    with pytest.raises(ValidationError) as info:
        Money("1", "EUR").multiply(1.5)  # type: ignore[arg-type]
    assert "float" == info.value.code
    with pytest.raises(ValidationError) as info:
        Money("1", "EUR").multiply(Decimal("NaN"))
    assert "not_finite" == info.value.code


@pytest.mark.parametrize("factor", [Decimal("1e20"), Decimal("1e999999"), 10**40])
def test_multiply_beyond_the_limit_raises_validation_error(factor: Decimal | int) -> None:
    """A product too large for any store is a ValidationError, never a decimal signal."""
    with pytest.raises(ValidationError) as info:
        Money("1000000000000", "EUR").multiply(factor)
    assert ("amount", "too_large") == (info.value.field, info.value.code)


def test_formatting_follows_the_locale() -> None:
    """``format`` uses CLDR patterns; ``str`` is the plain amount and code."""
    assert "1.234,50\xa0€" == Money("1234.5", "EUR").format("es_ES")
    assert "1234.50 EUR" == str(Money("1234.5", "EUR"))
    assert "¥1,235" == Money("1235", "JPY").format("en_US")


def test_every_listed_currency_is_known() -> None:
    """The strategies' currencies are real ISO 4217 codes."""
    assert all(is_currency(code) for code in CURRENCIES)


# ------------------------------------------------------------ malformed input

_bad_amounts: st.SearchStrategy[object] = st.one_of(
    garbage,
    st.floats(),
    st.sampled_from(["NaN", "sNaN", "-Infinity", "1e999999", "1.001", "0.0001", "1,5", "1e-3"]),
    st.decimals(),
    st.integers(),
    st.text(alphabet="0123456789.-+eE_ ", max_size=30),
)
_bad_currencies: st.SearchStrategy[object] = st.one_of(
    garbage,
    st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz ", max_size=5),
    st.sampled_from(["EURO", "XYZ", "", " ", "€", "E\x00R"]),
)


@settings(max_examples=1000)
@given(
    bad=st.sampled_from(["amount", "currency"]),
    good=money(),
    amount=_bad_amounts,
    currency=_bad_currencies,
)
def test_malformed_money_input_raises_only_validation_error(
    bad: str, good: Money, amount: object, currency: object
) -> None:
    """1,000 bad amounts or currencies: valid, or ValidationError at that argument."""
    if bad == "amount":
        result = valid_or_rejected_at(lambda: Money(amount, good.currency), "amount")
    else:
        # one unit is a valid amount in every currency, so when the random text
        # happens to be a real code (TMT), only the currency decides
        result = valid_or_rejected_at(lambda: Money(1, currency), "currency")
    event(f"{bad}: {'rejected' if result is None else 'accepted'}")
    if result is not None:
        assert result == Money(str(result.amount), result.currency)
