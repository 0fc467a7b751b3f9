"""Money: an exact decimal amount in an ISO 4217 currency.

Minor units (2 for EUR, 0 for JPY, 3 for BHD...) come from the CLDR currency
data shipped with Babel, not from a hand-written table.  Amounts are exact:
floats, NaN and infinities are refused, and an amount with more decimals than
its currency has is an error rather than a silent rounding.

.. versionadded:: 0.1
"""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal, DecimalException, InvalidOperation, localcontext
from functools import lru_cache
from typing import Final

from attrs import field, frozen
from babel.numbers import format_currency, get_currency_precision, list_currencies

from crmkit.core.errors import CurrencyMismatchError, ValidationError

__all__ = ["MAX_MINOR_UNITS", "Money", "currency_exponent", "is_currency"]

#: The largest absolute amount, in minor units, crmkit accepts (10 trillion EUR).
#: The SQL stores keep money as a signed 64-bit integer of minor units, so any
#: ~9,000 maximal amounts still sum without overflow.
MAX_MINOR_UNITS: Final = 10**15

AmountLike = Decimal | int | str


@lru_cache(maxsize=1)
def _known_currencies() -> frozenset[str]:
    return frozenset(list_currencies())


def is_currency(code: str) -> bool:
    """Whether ``code`` is an ISO 4217 currency code known to CLDR."""
    return code in _known_currencies()


@lru_cache(maxsize=512)
def currency_exponent(code: str) -> int:
    """The number of minor-unit digits of ``code`` (EUR 2, JPY 0, BHD 3).

    Raises:
        ValidationError: ``code`` is not a known currency.
    """
    if not isinstance(code, str) or not is_currency(code):
        raise ValidationError(
            "currency", "is not a known ISO 4217 currency code", code="currency", value=code
        )
    return int(get_currency_precision(code))


def _to_decimal(value: object) -> Decimal:
    if isinstance(value, bool):
        raise ValidationError("amount", "must be a decimal number, not a boolean", value=value)
    if isinstance(value, float):
        raise ValidationError(
            "amount", "floats are not exact; pass a str or Decimal", code="float", value=value
        )
    if isinstance(value, Decimal):
        result = value
    elif isinstance(value, int):
        result = Decimal(value)
    elif isinstance(value, str):
        try:
            result = Decimal(value.strip())
        except InvalidOperation:
            raise ValidationError("amount", "is not a decimal number", value=value) from None
    else:
        raise ValidationError("amount", "must be a Decimal, int or str", code="type", value=value)
    if not result.is_finite():
        raise ValidationError("amount", "must be a finite number", code="not_finite", value=value)
    return result


def _to_currency(value: object) -> str:
    if not isinstance(value, str):
        raise ValidationError("currency", "must be a 3-letter code", code="type", value=value)
    code = value.strip().upper()
    currency_exponent(code)
    return code


@frozen(order=False)
class Money:
    """An exact amount of one currency; compares and hashes by value.

    ``Money("12.5", "eur") == Money(Decimal("12.50"), "EUR")``.  Adding or
    comparing two currencies raises :class:`CurrencyMismatchError`.

    Raises:
        ValidationError: a float, NaN or infinity, more decimals than the
            currency has, an unknown currency, or an amount beyond
            :data:`MAX_MINOR_UNITS`.
    """

    amount: Decimal = field(converter=_to_decimal)
    currency: str = field(converter=_to_currency)

    def __attrs_post_init__(self) -> None:
        exponent = currency_exponent(self.currency)
        quantum = Decimal(1).scaleb(-exponent)
        exp = self.amount.as_tuple().exponent
        assert isinstance(exp, int)  # finite, checked by the converter
        try:
            amount = self.amount.quantize(quantum)
        except InvalidOperation:  # too many digits for the decimal context
            raise ValidationError(
                "amount", "is too large", code="too_large", value=self.amount
            ) from None
        if exp < -exponent and self.amount != amount:
            raise ValidationError(
                "amount",
                f"{self.currency} has {exponent} decimal places",
                code="precision",
                value=self.amount,
            )
        if abs(amount.scaleb(exponent)) > MAX_MINOR_UNITS:
            raise ValidationError("amount", "is too large", code="too_large", value=self.amount)
        object.__setattr__(self, "amount", amount + 0)  # + 0 turns -0 into 0

    # ------------------------------------------------------------ constructors
    @classmethod
    def zero(cls, currency: str) -> Money:
        """Zero in ``currency``."""
        return cls(Decimal(0), currency)

    @classmethod
    def from_minor_units(cls, units: int, currency: str) -> Money:
        """Build from an integer count of minor units (cents for EUR)."""
        if isinstance(units, bool) or not isinstance(units, int):
            raise ValidationError("amount", "minor units must be an integer", value=units)
        return cls(Decimal(units).scaleb(-currency_exponent(_to_currency(currency))), currency)

    # -------------------------------------------------------------- accessors
    @property
    def minor_units(self) -> int:
        """The amount as an integer count of minor units."""
        return int(self.amount.scaleb(currency_exponent(self.currency)))

    @property
    def exponent(self) -> int:
        """The currency's number of minor-unit digits."""
        return currency_exponent(self.currency)

    # ------------------------------------------------------------- arithmetic
    def _same(self, other: Money) -> None:
        if self.currency != other.currency:
            raise CurrencyMismatchError(self.currency, other.currency)

    def __add__(self, other: object) -> Money:
        if not isinstance(other, Money):
            return NotImplemented
        self._same(other)
        return Money(self.amount + other.amount, self.currency)

    def __sub__(self, other: object) -> Money:
        if not isinstance(other, Money):
            return NotImplemented
        self._same(other)
        return Money(self.amount - other.amount, self.currency)

    def __neg__(self) -> Money:
        return Money(-self.amount, self.currency)

    def __abs__(self) -> Money:
        return Money(abs(self.amount), self.currency)

    def __bool__(self) -> bool:
        return bool(self.amount)

    def multiply(self, factor: Decimal | int, *, rounding: str = ROUND_HALF_EVEN) -> Money:
        """Multiply by an exact factor, rounding to the currency's minor units.

        Args:
            factor: a ``Decimal`` or ``int`` (never a float).
            rounding: a :mod:`decimal` rounding mode; banker's rounding by default.
        """
        exact_factor = _to_decimal(factor)
        quantum = Decimal(1).scaleb(-self.exponent)
        digits = len(self.amount.as_tuple().digits) + len(exact_factor.as_tuple().digits)
        with localcontext() as ctx:
            ctx.prec = digits + 20  # the product is exact; its rounding is the only one
            try:
                rounded = (self.amount * exact_factor).quantize(quantum, rounding=rounding)
            except DecimalException:  # overflow, or more digits than any store keeps
                raise ValidationError(
                    "amount", "is too large", code="too_large", value=exact_factor
                ) from None
        return Money(rounded, self.currency)

    def _compare(self, other: object) -> tuple[Decimal, Decimal]:
        if not isinstance(other, Money):
            raise TypeError(f"cannot compare Money with {type(other).__name__}")
        self._same(other)
        return self.amount, other.amount

    def __lt__(self, other: object) -> bool:
        a, b = self._compare(other)
        return a < b

    def __le__(self, other: object) -> bool:
        a, b = self._compare(other)
        return a <= b

    def __gt__(self, other: object) -> bool:
        a, b = self._compare(other)
        return a > b

    def __ge__(self, other: object) -> bool:
        a, b = self._compare(other)
        return a >= b

    # ---------------------------------------------------------------- display
    def format(self, locale: str = "en_US") -> str:
        """Format for people: ``Money("1234.5", "EUR").format("es_ES") == "1.234,50 €"``."""
        return str(format_currency(self.amount, self.currency, locale=locale))

    def __str__(self) -> str:
        return f"{self.amount} {self.currency}"
