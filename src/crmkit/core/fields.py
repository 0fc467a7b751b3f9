"""attrs field helpers shared by the entities: converters and validators that
raise :class:`~crmkit.core.errors.ValidationError` naming the field.

.. versionadded:: 0.1
"""

from __future__ import annotations

import enum
import re
import unicodedata
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, Final, TypeVar
from urllib.parse import urlsplit
from uuid import UUID

import attrs
from attrs import field

from crmkit.core.contact_points import MAX_TEXT, Address, EmailAddress, PhoneNumber, normalize_text
from crmkit.core.errors import ValidationError
from crmkit.core.money import Money

__all__ = [
    "aware_datetime",
    "enum_field",
    "enum_set_field",
    "optional_email",
    "optional_enum",
    "optional_id",
    "slugify",
    "text",
]

E = TypeVar("E", bound=enum.Enum)
T = TypeVar("T")

KEY_RE: Final = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")


def text(name: str, *, required: bool = False, max_length: int = MAX_TEXT) -> Any:
    """A stripped text field; ``""`` becomes ``None`` (or an error when required)."""

    def convert(value: object) -> str | None:
        return normalize_text(value, name, required=required, max_length=max_length)

    if required:
        return field(converter=convert)
    return field(default=None, converter=convert)


def enum_field(enum_type: type[E], name: str, default: E | None = None) -> Any:
    """A field holding one member of ``enum_type``; its value string is accepted too."""

    def convert(value: object) -> E:
        return to_enum(enum_type, value, name)

    if default is None:
        return field(converter=convert)
    return field(default=default, converter=convert)


def to_enum(enum_type: type[E], value: object, name: str) -> E:
    """``value`` as a member of ``enum_type`` (members or their values accepted)."""
    if isinstance(value, enum_type):
        return value
    try:
        return enum_type(value)
    except (ValueError, TypeError):
        choices = ", ".join(str(m.value) for m in enum_type)
        raise ValidationError(
            name, f"must be one of: {choices}", code="choice", value=value
        ) from None


def optional_enum(enum_type: type[E], name: str) -> Any:
    """An optional field holding one member of ``enum_type``."""

    def convert(value: object) -> E | None:
        if value is None or value == "":
            return None
        return to_enum(enum_type, value, name)

    return field(default=None, converter=convert)


def enum_set_field(enum_type: type[E], name: str) -> Any:
    """A frozenset of ``enum_type`` members."""

    def convert(value: object) -> frozenset[E]:
        items = _iterable(value, name)
        return frozenset(to_enum(enum_type, item, f"{name}[{i}]") for i, item in enumerate(items))

    return field(factory=frozenset, converter=convert)


def _iterable(value: object, name: str) -> Iterable[object]:
    if type(value) in (list, tuple, frozenset, set):  # the common case, without ABC checks
        return value  # type: ignore[return-value]
    if isinstance(value, str | bytes | Mapping) or not isinstance(value, Iterable):
        raise ValidationError(name, "must be a list", code="type", value=value)
    return value


def tuple_field(item: Callable[[object, str], T], name: str, *, max_items: int = 50) -> Any:
    """A tuple whose items are converted by ``item(value, path)``."""

    def convert(value: object) -> tuple[T, ...]:
        items = list(_iterable(value, name))
        if len(items) > max_items:
            raise ValidationError(
                name, f"has more than {max_items} items", code="too_many", value=value
            )
        return tuple(item(v, f"{name}[{i}]") for i, v in enumerate(items))

    return field(factory=tuple, converter=convert)


def email_item(value: object, path: str) -> EmailAddress:
    """Convert one e-mail list item."""
    if isinstance(value, EmailAddress):
        return value
    try:
        return EmailAddress(value)
    except ValidationError as exc:
        raise _renamed(exc, path) from None


def phone_item(value: object, path: str) -> PhoneNumber:
    """Convert one phone list item (strings must be international, ``+...``)."""
    if isinstance(value, PhoneNumber):
        return value
    try:
        return PhoneNumber(value)
    except ValidationError as exc:
        raise _renamed(exc, path) from None


def address_item(value: object, path: str) -> Address:
    """Check one address list item."""
    if isinstance(value, Address):
        return value
    raise ValidationError(path, "must be an Address", code="type", value=value)


def tag_item(value: object, path: str) -> str:
    """Convert one tag: required text of at most 64 characters."""
    result = normalize_text(value, path, required=True, max_length=64)
    assert result is not None
    return result


def url_item(value: object, path: str) -> str:
    """An http(s) URL; a bare domain gets ``https://``."""
    text_value = normalize_text(value, path, required=True, max_length=2000)
    assert text_value is not None
    if "://" not in text_value:
        text_value = f"https://{text_value}"
    try:
        parts = urlsplit(text_value)
        parts.port  # noqa: B018 - reading it checks the port (ValueError when out of range)
    except ValueError:  # a malformed IPv6 host or port
        parts = None
    if (
        parts is None
        or parts.scheme not in ("http", "https")
        or not parts.netloc
        or " " in text_value
    ):
        raise ValidationError(path, "is not an http(s) URL", code="url", value=value)
    return text_value


def optional_url(name: str) -> Any:
    """An optional http(s) URL field."""

    def convert(value: object) -> str | None:
        if value is None or value == "":
            return None
        return url_item(value, name)

    return field(default=None, converter=convert)


def optional_email(name: str) -> Any:
    """An optional :class:`EmailAddress` field; strings are parsed."""

    def convert(value: object) -> EmailAddress | None:
        if value is None or value == "":
            return None
        return email_item(value, name)

    return field(default=None, converter=convert)


def _renamed(exc: ValidationError, path: str) -> ValidationError:
    return ValidationError(path, exc.reason, code=exc.code, value=exc.value)


def _check_id(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, UUID):
        raise ValidationError(attribute.name, "must be a UUID", code="type", value=value)


def _check_optional_id(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None:
        _check_id(instance, attribute, value)


def required_id() -> Any:
    """A required UUID field (one of the ``*Id`` NewTypes)."""
    return field(validator=_check_id)


def optional_id() -> Any:
    """An optional reference to another entity, by id."""
    return field(default=None, validator=_check_optional_id)


def _check_aware(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, datetime):
        raise ValidationError(attribute.name, "must be a datetime", code="type", value=value)
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValidationError(
            attribute.name, "must be timezone-aware", code="naive_datetime", value=value
        )
    if not in_utc_range(value):
        raise ValidationError(
            attribute.name, "is out of range in UTC", code="out_of_range", value=value
        )


def in_utc_range(value: datetime) -> bool:
    """Whether the aware ``value`` converts to UTC (year 1 to 9999), as stores keep it."""
    try:
        value.astimezone(UTC)
    except OverflowError:
        return False
    return True


def aware_datetime() -> Any:
    """A timezone-aware datetime field."""
    return field(validator=_check_aware)


def _check_optional_aware(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None:
        _check_aware(instance, attribute, value)


def optional_datetime() -> Any:
    """An optional timezone-aware datetime field."""
    return field(default=None, validator=_check_optional_aware)


def _check_version(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValidationError(
            attribute.name, "must be a positive integer", code="type", value=value
        )


def version_field() -> Any:
    """The optimistic-concurrency version: 1 on creation, +1 per change."""
    return field(default=1, validator=_check_version)


def _check_bool(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, bool):
        raise ValidationError(attribute.name, "must be true or false", code="type", value=value)


def bool_field(default: bool = False) -> Any:
    """A strict boolean (``1`` or ``"yes"`` are refused)."""
    return field(default=default, validator=_check_bool)


def slugify(name: str) -> str:
    """A master key from a label: ``"Gran Cuenta Pública" -> "gran-cuenta-publica"``."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_name.lower()).strip("-")
    return slug[:64].rstrip("-")


def key_field() -> Any:
    """A master key: lower-case letters, digits, ``-`` and ``_``; at most 64."""

    def convert(value: object) -> str:
        if not isinstance(value, str) or not KEY_RE.fullmatch(value):
            raise ValidationError(
                "key",
                "must be 1-64 lower-case letters, digits, '-' or '_'",
                code="key",
                value=value,
            )
        return value

    return field(converter=convert)


def _to_date(value: object, name: str) -> date:
    if isinstance(value, datetime) or not isinstance(value, date):
        raise ValidationError(name, "must be a date", code="type", value=value)
    return value


def optional_date(name: str) -> Any:
    """An optional calendar date (a ``datetime`` is refused: it is not a date)."""

    def convert(value: object) -> date | None:
        return None if value is None else _to_date(value, name)

    return field(default=None, converter=convert)


def to_decimal(value: object, name: str) -> Decimal:
    """An exact, finite decimal from a Decimal, int or str (never a float)."""
    if isinstance(value, bool) or not isinstance(value, Decimal | int | str):
        raise ValidationError(name, "must be a Decimal, int or str", code="type", value=value)
    try:
        result = Decimal(value.strip() if isinstance(value, str) else value)
    except ArithmeticError:
        raise ValidationError(
            name, "is not a decimal number", code="decimal", value=value
        ) from None
    if not result.is_finite():
        raise ValidationError(name, "must be a finite number", code="not_finite", value=value)
    return result


def fraction_field(name: str, default: Decimal | None = None) -> Any:
    """A decimal between 0 and 1 (a probability, a discount)."""

    def convert(value: object) -> Decimal | None:
        if value is None and default is None:
            return None
        result = to_decimal(value, name)
        if not Decimal(0) <= result <= Decimal(1):
            raise ValidationError(name, "must be between 0 and 1", code="range", value=value)
        return result

    if default is None:
        return field(default=None, converter=convert)
    return field(default=default, converter=convert)


def optional_money(name: str) -> Any:
    """An optional :class:`Money` field."""

    def check(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
        if value is not None and not isinstance(value, Money):
            raise ValidationError(name, "must be Money", code="type", value=value)

    return field(default=None, validator=check)
