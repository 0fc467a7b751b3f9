"""The one cattrs converter: crmkit types to and from JSON-ready data.

Serialization lives at the edges (stores, import/export, plugins' payloads),
never in core.  The rules:

* datetimes are ISO 8601 strings and must carry a timezone;
* ``Decimal`` is a string (``"12.50"``), never a float; NaN and infinities are refused;
* UUIDs (every ``*Id``) are canonical strings;
* enums by value; sets as sorted lists; e-mails and phones as their text;
* ``Money`` is ``{"amount": "12.50", "currency": "EUR"}``;
* custom field values are an object of JSON values, the non-text strings
  named in ``"$types"`` (:mod:`crmkit.core.custom_fields`);
* unknown keys, missing keys and wrong types are refused.

:meth:`CrmConverter.structure` raises only :class:`crmkit.ValidationError`,
whose ``field`` is the path of the offending value (``"emails[1]"``,
``"addresses[0].country"``): never a raw cattrs, attrs or ``TypeError``.

.. versionadded:: 0.1
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, TypeVar, get_args, get_origin
from uuid import UUID

import cattrs
from cattrs.errors import (
    ClassValidationError,
    ForbiddenExtraKeysError,
    IterableValidationError,
)

from crmkit.core.contact_points import EmailAddress, PhoneNumber
from crmkit.core.custom_fields import CustomValues, custom_from_json, custom_to_json
from crmkit.core.errors import ValidationError
from crmkit.core.money import Money

__all__ = ["CrmConverter", "converter", "make_converter"]

T = TypeVar("T")


def _type_error(expected: str, value: object) -> ValidationError:
    return ValidationError(
        "", f"must be {expected}, not {type(value).__name__}", code="type", value=value
    )


def _strict(expected: type, label: str) -> Callable[[object, type], Any]:
    def structure(value: object, _: type) -> Any:
        if isinstance(value, bool) and expected is not bool:
            raise _type_error(label, value)
        if not isinstance(value, expected):
            raise _type_error(label, value)
        return value

    return structure


def _structure_datetime(value: object, _: type) -> datetime:
    if isinstance(value, datetime):
        result = value
    elif isinstance(value, str):
        try:
            result = datetime.fromisoformat(value)
        except ValueError:
            raise ValidationError(
                "", "is not an ISO 8601 datetime", code="datetime", value=value
            ) from None
    else:
        raise _type_error("an ISO 8601 string", value)
    if result.tzinfo is None or result.utcoffset() is None:
        raise ValidationError("", "must be timezone-aware", code="naive_datetime", value=value)
    return result


def _structure_date(value: object, _: type) -> date:
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value)
        except ValueError:
            pass
    raise ValidationError("", "is not an ISO 8601 date", code="date", value=value)


def _structure_decimal(value: object, _: type) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, str | int | Decimal):
        raise _type_error("a decimal string", value)
    try:
        result = Decimal(value)
    except InvalidOperation:
        raise ValidationError("", "is not a decimal number", code="decimal", value=value) from None
    if not result.is_finite():
        raise ValidationError("", "must be a finite number", code="not_finite", value=value)
    return result


def _structure_uuid(value: object, _: type) -> UUID:
    if isinstance(value, UUID):
        return value
    if isinstance(value, str):
        try:
            return UUID(value)
        except ValueError:
            pass
    raise ValidationError("", "is not a UUID", code="uuid", value=value)


def _bare(exc: ValidationError) -> ValidationError:
    """A value object's own error, placed at the path of the value itself."""
    return ValidationError("", exc.reason, code=exc.code, value=exc.value)


def _structure_email(value: object, _: type) -> EmailAddress:
    if not isinstance(value, str):
        raise _type_error("text", value)
    try:
        return EmailAddress(value)
    except ValidationError as exc:
        raise _bare(exc) from None


def _structure_phone(value: object, _: type) -> PhoneNumber:
    if not isinstance(value, str):
        raise _type_error("text", value)
    try:
        return PhoneNumber(value)
    except ValidationError as exc:
        raise _bare(exc) from None


def _structure_money(value: object, _: type) -> Money:
    if not isinstance(value, dict):
        raise _type_error('an object {"amount": ..., "currency": ...}', value)
    extra = set(value) - {"amount", "currency"}
    if extra:
        raise ValidationError(
            sorted(map(str, extra))[0], "is not a field of Money", code="unknown_field"
        )
    for key in ("amount", "currency"):
        if key not in value:
            raise ValidationError(key, "is required", code="required")
    amount = value["amount"]
    if isinstance(amount, bool) or not isinstance(amount, str | int | Decimal):
        raise ValidationError("amount", "must be a decimal string", code="type", value=amount)
    return Money(amount, value["currency"])


def _unstructure_money(value: Money) -> dict[str, str]:
    return {"amount": str(value.amount), "currency": value.currency}


def _is_collection(t: Any) -> bool:
    origin = get_origin(t)
    if origin is frozenset:
        return True
    args = get_args(t)
    return origin is tuple and len(args) == 2 and args[1] is Ellipsis


class CrmConverter(cattrs.Converter):
    """A cattrs converter whose ``structure`` raises only :class:`ValidationError`."""

    def structure(self, obj: Any, cl: type[T]) -> T:
        """Structure ``obj`` into ``cl``.

        Raises:
            ValidationError: with the path of the first offending value in ``field``.
        """
        try:
            return super().structure(obj, cl)
        except Exception as exc:
            raise _translate(exc, "") from None

    def _structure_collection(self, t: Any) -> Callable[[object, type], Any]:
        item_type = get_args(t)[0]
        build: Callable[[list[Any]], Any] = frozenset if get_origin(t) is frozenset else tuple
        item_hook = self.get_structure_hook(item_type)

        def structure(value: object, _: type) -> Any:
            if isinstance(value, str | bytes | dict) or not isinstance(
                value, list | tuple | set | frozenset
            ):
                raise _type_error("a list", value)
            items = []
            for i, item in enumerate(value):
                try:
                    items.append(item_hook(item, item_type))
                except Exception as exc:
                    raise _translate(exc, f"[{i}]") from None
            return build(items)

        return structure


def _translate(exc: BaseException, path: str) -> ValidationError:
    if isinstance(exc, ValidationError):
        return exc.at(path)
    if isinstance(exc, ForbiddenExtraKeysError):
        extra = sorted(map(str, exc.extra_fields))[0]
        return ValidationError(_join(path, extra), "is not a known field", code="unknown_field")
    if isinstance(exc, ClassValidationError):
        with_notes, without = exc.group_exceptions()
        if with_notes:
            sub, note = with_notes[0]
            return _translate(sub, _join(path, note.name))
        return _translate(without[0], path)
    if isinstance(exc, IterableValidationError):
        indexed, rest = exc.group_exceptions()
        if indexed:
            sub, index_note = indexed[0]
            return _translate(sub, f"{path}[{index_note.index}]")
        return _translate(rest[0], path)
    if isinstance(exc, KeyError):
        return ValidationError(path, "is required", code="required")
    if isinstance(exc, ValueError):
        return ValidationError(path, "has an invalid value", code="invalid")
    return ValidationError(path, "has the wrong type or shape", code="type")


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _structure_enum(value: object, cl: type[enum.Enum]) -> enum.Enum:
    try:
        return cl(value)
    except ValueError:
        choices = ", ".join(str(m.value) for m in cl)
        raise ValidationError(
            "", f"must be one of: {choices}", code="choice", value=value
        ) from None


def make_converter() -> CrmConverter:
    """A fresh converter with crmkit's rules (plugins may extend their own copy)."""
    c = CrmConverter(forbid_extra_keys=True)
    c.register_structure_hook(str, _strict(str, "text"))
    c.register_structure_hook(int, _strict(int, "an integer"))
    c.register_structure_hook(bool, _strict(bool, "true or false"))
    c.register_structure_hook(datetime, _structure_datetime)
    c.register_unstructure_hook(datetime, datetime.isoformat)
    c.register_structure_hook(date, _structure_date)
    c.register_unstructure_hook(date, date.isoformat)
    c.register_structure_hook(Decimal, _structure_decimal)
    c.register_unstructure_hook(Decimal, str)
    c.register_structure_hook(UUID, _structure_uuid)
    c.register_unstructure_hook(UUID, str)
    c.register_structure_hook(EmailAddress, _structure_email)
    c.register_unstructure_hook(EmailAddress, lambda e: e.value)
    c.register_structure_hook(PhoneNumber, _structure_phone)
    c.register_unstructure_hook(PhoneNumber, lambda p: p.e164)
    c.register_structure_hook(Money, _structure_money)
    c.register_unstructure_hook(Money, _unstructure_money)
    c.register_structure_hook(CustomValues, lambda v, _: custom_from_json(v))
    c.register_unstructure_hook(CustomValues, custom_to_json)
    c.register_structure_hook_func(
        lambda t: isinstance(t, type) and issubclass(t, enum.Enum), _structure_enum
    )
    c.register_structure_hook_factory(_is_collection, c._structure_collection)
    c.register_unstructure_hook_func(
        lambda t: get_origin(t) is frozenset or t is frozenset,  # type: ignore[comparison-overlap]
        lambda s: sorted((c.unstructure(v) for v in s), key=str),
    )
    return c


#: The converter crmkit uses everywhere.
converter = make_converter()
