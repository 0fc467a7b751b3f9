"""Custom fields (campos personalizados): typed values a plugin or the user adds to records.

A :class:`CustomField` defines one value an entity type may carry (its key,
labels, :class:`CustomFieldType`, whether it is required, a default, choices,
limits).  A record keeps its values in ``custom``, a :class:`CustomValues`
mapping from key to a normalized Python value:

========================  ==================================================
type                      Python value (JSON form)
========================  ==================================================
text, choice              ``str`` (as is)
integer                   ``int`` (as is)
boolean                   ``bool`` (as is)
decimal                   ``Decimal`` (a string, ``"12.50"``)
money                     ``Money`` (``{"amount": "12.50", "currency": "EUR"}``)
date                      ``date`` (ISO string)
datetime                  aware ``datetime`` in UTC (ISO string, microseconds)
multi_choice              sorted ``tuple`` of ``str`` (a list)
reference                 ``UUID`` (its string)
========================  ==================================================

The JSON form of a whole mapping is an object of those JSON values; values
whose JSON is a string but whose type is not text (decimal, date, datetime,
reference) are named in a ``"$types"`` entry (``{"$types": {"since":
"date"}}``), so the stored form reads back exactly without the definitions.

Values of a key whose definition was removed stay where they are: they are
returned, audited and exported, a write that does not mention them keeps
them, and ``custom={"key": None}`` removes them.

.. versionadded:: 0.1
"""

from __future__ import annotations

import contextlib
import enum
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Final
from uuid import UUID

import attrs
from attrs import field, frozen

from crmkit.core.contact_points import normalize_text
from crmkit.core.errors import ValidationError
from crmkit.core.fields import in_utc_range
from crmkit.core.money import Money

__all__ = [
    "CUSTOM_ENTITIES",
    "CUSTOM_PREFIX",
    "CustomField",
    "CustomFieldType",
    "CustomPatch",
    "CustomValues",
    "check_decimal",
    "custom_from_json",
    "custom_to_json",
    "validate_custom",
]

#: The entity types that carry custom fields.
CUSTOM_ENTITIES: Final = ("organization", "contact", "lead", "opportunity", "interaction", "case")
#: The entity types a reference field may point to.
REFERENCE_TARGETS: Final = (*CUSTOM_ENTITIES, "user")
#: ``find`` names a custom field ``custom.<key>``.
CUSTOM_PREFIX: Final = "custom."
#: What a custom field's key looks like.
CUSTOM_KEY_RE: Final = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
#: Decimals keep at most this many significant digits (every store compares them exactly).
MAX_DECIMAL_DIGITS: Final = 15
#: Integers fit in 64 bits.
MAX_INTEGER: Final = 2**63 - 1
#: The JSON key naming the types of string-encoded values.
TYPES_KEY: Final = "$types"


class CustomFieldType(enum.Enum):
    """The type of a custom field's value."""

    TEXT = "text"
    INTEGER = "integer"
    DECIMAL = "decimal"
    MONEY = "money"
    DATE = "date"
    DATETIME = "datetime"
    BOOLEAN = "boolean"
    CHOICE = "choice"
    MULTI_CHOICE = "multi_choice"
    REFERENCE = "reference"


# ------------------------------------------------------------------ values


def _check_value_type(key: str, value: object) -> object:
    """A stored value's Python type is one of the normalized ones (lists become tuples)."""
    path = f"{CUSTOM_PREFIX}{key}"
    if isinstance(value, list | tuple):
        if not all(isinstance(v, str) for v in value):
            raise ValidationError(path, "must be a list of text", code="type", value=value)
        return tuple(value)
    if isinstance(value, datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValidationError(path, "must be timezone-aware", code="naive_datetime")
        return value.astimezone(UTC)
    if not isinstance(value, str | int | Decimal | Money | date | UUID):  # bool is an int
        raise ValidationError(path, "has a value of the wrong type", code="type", value=value)
    return value


class CustomValues(Mapping[str, object]):
    """An immutable mapping of custom field keys to normalized values.

    Compares by value with any other :class:`CustomValues`, and hashes.

    .. versionadded:: 0.1
    """

    __slots__ = ("_data", "_hash")

    def __init__(self, values: Mapping[str, object] | Iterable[tuple[str, object]] = ()):
        data: dict[str, object] = {}
        items = values.items() if isinstance(values, Mapping) else values
        for key, value in items:
            if not isinstance(key, str) or not CUSTOM_KEY_RE.match(key):
                raise ValidationError(
                    "custom", "keys must be lower-case identifiers", code="key", value=key
                )
            if value is not None:
                data[key] = _check_value_type(key, value)
        self._data = dict(sorted(data.items()))
        self._hash: int | None = None

    def __getitem__(self, key: str) -> object:
        return self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, CustomValues):
            return self._data == other._data
        if isinstance(other, Mapping):
            return self._data == dict(other)
        return NotImplemented

    def __hash__(self) -> int:
        if self._hash is None:
            self._hash = hash(frozenset(self._data.items()))
        return self._hash

    def __repr__(self) -> str:
        return f"CustomValues({self._data!r})"


#: The empty mapping (the default of every record).
EMPTY: Final = CustomValues()


def to_custom_values(value: object) -> CustomValues:
    """The converter of entities' ``custom`` field."""
    if isinstance(value, CustomValues):
        return value
    if value is None:
        return EMPTY
    if not isinstance(value, Mapping):
        raise ValidationError("custom", "must be a mapping", code="type", value=value)
    return CustomValues(value) if value else EMPTY


def custom_field() -> Any:
    """The ``custom`` attribute of an entity type that carries custom fields."""
    return field(default=EMPTY, converter=to_custom_values)


def _json_value(value: object) -> tuple[object, str | None]:
    """The JSON form of one value, and its ``$types`` tag if its JSON is a non-text string."""
    if isinstance(value, bool | int | str):
        return value, None
    if isinstance(value, Decimal):
        return str(value), "decimal"
    if isinstance(value, Money):
        return {"amount": str(value.amount), "currency": value.currency}, None
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat(timespec="microseconds"), "datetime"
    if isinstance(value, date):
        return value.isoformat(), "date"
    if isinstance(value, UUID):
        return str(value), "reference"
    assert isinstance(value, tuple)
    return list(value), None


def custom_to_json(values: Mapping[str, object]) -> dict[str, object]:
    """The JSON form of custom values (the JSON column, exports, the audit trail)."""
    result: dict[str, object] = {}
    types: dict[str, str] = {}
    for key, value in values.items():
        result[key], tag = _json_value(value)
        if tag is not None:
            types[key] = tag
    if types:
        result[TYPES_KEY] = types
    return result


_FROM_TAG: Final[dict[str, Callable[[str], object]]] = {
    "decimal": Decimal,
    "date": date.fromisoformat,
    "datetime": datetime.fromisoformat,
    "reference": UUID,
}


def custom_from_json(data: object) -> CustomValues:
    """Custom values from their JSON form.

    Raises:
        ValidationError: not the JSON form of custom values.
    """
    if not isinstance(data, Mapping):
        raise ValidationError("custom", "must be an object", code="type", value=data)
    if not data:
        return EMPTY
    types = data.get(TYPES_KEY) or {}
    if not isinstance(types, Mapping):
        raise ValidationError(TYPES_KEY, "must be an object", code="type", value=types)
    values: dict[str, object] = {}
    for key, raw in data.items():
        if key == TYPES_KEY:
            continue
        tag = types.get(key)
        try:
            if tag is not None:
                if tag not in _FROM_TAG or not isinstance(raw, str):
                    raise ValueError(tag)
                values[key] = _FROM_TAG[tag](raw)
            elif isinstance(raw, Mapping):
                values[key] = Money(raw["amount"], raw["currency"])
            else:
                values[key] = raw
        except (ValueError, KeyError, TypeError, InvalidOperation):
            raise ValidationError(
                f"{CUSTOM_PREFIX}{key}", "is not a stored custom value", code="type", value=raw
            ) from None
    return CustomValues(values)


# ------------------------------------------------------------- definitions


def _entity_name(value: object) -> str:
    if value not in CUSTOM_ENTITIES:
        raise ValidationError(
            "entity", f"must be one of: {', '.join(CUSTOM_ENTITIES)}", code="choice", value=value
        )
    return str(value)


def _key(value: object) -> str:
    if not isinstance(value, str) or not CUSTOM_KEY_RE.match(value):
        raise ValidationError(
            "key",
            "must be a lower-case letter, then up to 63 letters, digits or underscores",
            code="key",
            value=value,
        )
    return value


def _type(value: object) -> CustomFieldType:
    try:
        return CustomFieldType(value)
    except ValueError:
        choices = ", ".join(t.value for t in CustomFieldType)
        raise ValidationError(
            "type", f"must be one of: {choices}", code="choice", value=value
        ) from None


def _label(name: str, *, required: bool) -> Any:
    return field(
        default=None if not required else attrs.NOTHING,
        converter=lambda v: normalize_text(v, name, required=required, max_length=200),
        kw_only=True,
    )


def _choices(value: object) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str) or not isinstance(value, Iterable):
        raise ValidationError("choices", "must be a list of text", code="type", value=value)
    result: list[str] = []
    for i, item in enumerate(value):
        text = normalize_text(item, f"choices[{i}]", required=True, max_length=200)
        assert text is not None
        if text in result:
            raise ValidationError(f"choices[{i}]", "is repeated", code="duplicate", value=item)
        result.append(text)
    return tuple(result)


def _optional_number(name: str) -> Any:
    def convert(value: object) -> Decimal | None:
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | Decimal | str):
            raise ValidationError(name, "must be a number", code="type", value=value)
        try:
            number = Decimal(value)
        except InvalidOperation:
            raise ValidationError(name, "must be a number", code="decimal", value=value) from None
        if not number.is_finite():
            raise ValidationError(name, "must be a finite number", code="not_finite", value=value)
        return number

    return field(default=None, converter=convert, kw_only=True)


def _optional_length(value: object) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValidationError("max_length", "must be a positive integer", value=value)
    return value


def _pattern(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValidationError("pattern", "must be a regular expression", code="type", value=value)
    try:
        re.compile(value)
    except re.error:
        raise ValidationError(
            "pattern", "is not a valid regular expression", code="pattern", value=value
        ) from None
    return value


@frozen(kw_only=True)
class CustomField:
    """The definition of one custom field of an entity type.

    Attributes:
        entity: the entity type (``"organization"``, ``"contact"``, ``"lead"``,
            ``"opportunity"``, ``"interaction"``, ``"case"``).
        key: the field's key (``"tier"``); ``find`` calls it ``custom.tier``.
        label: the English label; ``label_es`` the Spanish one.
        type: a :class:`CustomFieldType` (or its value).
        required: every record must have a value (checked on create and on
            updates that pass ``custom``).
        default: the value a new record gets when none is given.
        choices: the allowed values of ``choice`` and ``multi_choice`` fields.
        reference: the entity type a ``reference`` field points to
            (one of the custom entities, or ``"user"``).
        min_value, max_value: inclusive bounds of integer, decimal and money
            (amount) fields.
        max_length, pattern: limits of text fields (``pattern`` must match
            the whole text).

    .. versionadded:: 0.1
    """

    entity: str = field(converter=_entity_name)
    key: str = field(converter=_key)
    label: str = _label("label", required=True)
    label_es: str | None = _label("label_es", required=False)
    type: CustomFieldType = field(converter=_type)
    required: bool = field(default=False)
    default: object = field(default=None)
    choices: tuple[str, ...] = field(default=(), converter=_choices)
    reference: str | None = field(default=None)
    min_value: Decimal | None = _optional_number("min_value")
    max_value: Decimal | None = _optional_number("max_value")
    max_length: int | None = field(default=None, converter=_optional_length)
    pattern: str | None = field(default=None, converter=_pattern)

    def __attrs_post_init__(self) -> None:
        if not isinstance(self.required, bool):
            raise ValidationError("required", "must be True or False", code="type")
        choice = self.type in (CustomFieldType.CHOICE, CustomFieldType.MULTI_CHOICE)
        if choice and not self.choices:
            raise ValidationError(
                "choices", f"a {self.type.value} field needs choices", code="required"
            )
        if not choice and self.choices:
            raise ValidationError(
                "choices", f"a {self.type.value} field has no choices", code="invalid"
            )
        if self.type is CustomFieldType.REFERENCE:
            if self.reference not in REFERENCE_TARGETS:
                raise ValidationError(
                    "reference",
                    f"must be one of: {', '.join(REFERENCE_TARGETS)}",
                    code="choice",
                    value=self.reference,
                )
            if self.default is not None:
                raise ValidationError("default", "a reference field has no default", code="invalid")
        elif self.reference is not None:
            raise ValidationError(
                "reference", "only reference fields refer to records", code="invalid"
            )
        numeric = self.type in (
            CustomFieldType.INTEGER,
            CustomFieldType.DECIMAL,
            CustomFieldType.MONEY,
        )
        if not numeric and (self.min_value is not None or self.max_value is not None):
            raise ValidationError("min_value", "only numbers have bounds", code="invalid")
        if (
            self.min_value is not None
            and self.max_value is not None
            and self.min_value > self.max_value
        ):
            raise ValidationError(
                "max_value", "is below min_value", code="invalid", value=self.max_value
            )
        if self.type is not CustomFieldType.TEXT and (self.max_length or self.pattern):
            raise ValidationError(
                "max_length", "only text fields have a length or pattern", code="invalid"
            )
        if self.default is not None:
            try:
                object.__setattr__(self, "default", self.normalize(self.default))
            except ValidationError as error:
                raise ValidationError(
                    "default", error.reason, code=error.code, value=self.default
                ) from None

    @property
    def path(self) -> str:
        """The field's name in errors and in ``find``: ``custom.<key>``."""
        return f"{CUSTOM_PREFIX}{self.key}"

    def normalize(self, value: object) -> object:
        """The normalized form of ``value`` (not ``None``) for this field.

        References become their id (a record's ``id`` or a UUID or its text);
        their existence is checked by the service.

        Raises:
            ValidationError: ``field`` is ``custom.<key>``.
        """
        path = self.path
        kind = self.type
        if kind in (CustomFieldType.TEXT, CustomFieldType.CHOICE):
            text = normalize_text(value, path, required=True, max_length=self.max_length or 10_000)
            assert text is not None
            if kind is CustomFieldType.CHOICE and text not in self.choices:
                raise ValidationError(
                    path, f"must be one of: {', '.join(self.choices)}", code="choice", value=value
                )
            if self.pattern is not None and not re.fullmatch(self.pattern, text):
                raise ValidationError(
                    path, "does not match the pattern", code="pattern", value=value
                )
            return text
        if kind is CustomFieldType.MULTI_CHOICE:
            if isinstance(value, str) or not isinstance(value, Iterable):
                raise ValidationError(path, "must be a list of choices", code="type", value=value)
            items = set()
            for item in value:
                if item not in self.choices:
                    raise ValidationError(
                        path,
                        f"must hold only: {', '.join(self.choices)}",
                        code="choice",
                        value=item,
                    )
                items.add(str(item))
            return tuple(sorted(items))
        if kind is CustomFieldType.INTEGER:
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValidationError(path, "must be an integer", code="type", value=value)
            if abs(value) > MAX_INTEGER:
                raise ValidationError(
                    path, "does not fit in 64 bits", code="out_of_range", value=value
                )
            self._bounds(Decimal(value), value)
            return value
        if kind is CustomFieldType.DECIMAL:
            number = check_decimal(value, path)
            self._bounds(number, value)
            return number
        if kind is CustomFieldType.MONEY:
            if not isinstance(value, Money):
                raise ValidationError(path, "must be Money", code="type", value=value)
            self._bounds(value.amount, value)
            return value
        if kind is CustomFieldType.BOOLEAN:
            if not isinstance(value, bool):
                raise ValidationError(path, "must be True or False", code="type", value=value)
            return value
        if kind is CustomFieldType.DATETIME:
            return _datetime(value, path)
        if kind is CustomFieldType.DATE:
            return _date(value, path)
        assert kind is CustomFieldType.REFERENCE
        return _reference(value, path, self.reference)

    def _bounds(self, number: Decimal, value: object) -> None:
        if self.min_value is not None and number < self.min_value:
            raise ValidationError(
                self.path, f"must be at least {self.min_value}", code="out_of_range", value=value
            )
        if self.max_value is not None and number > self.max_value:
            raise ValidationError(
                self.path, f"must be at most {self.max_value}", code="out_of_range", value=value
            )

    def label_in(self, language: str = "en") -> str:
        """The label in ``language`` (``"es"`` or ``"en"``), falling back to English."""
        if language.startswith("es") and self.label_es:
            return self.label_es
        return self.label


def _datetime(value: object, path: str) -> datetime:
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            raise ValidationError(
                path, "is not an ISO 8601 datetime", code="datetime", value=value
            ) from None
    if not isinstance(value, datetime):
        raise ValidationError(path, "must be a datetime", code="type", value=value)
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValidationError(path, "must be timezone-aware", code="naive_datetime", value=value)
    if not in_utc_range(value):
        raise ValidationError(path, "is out of range in UTC", code="out_of_range", value=value)
    return value.astimezone(UTC)


def _date(value: object, path: str) -> date:
    if isinstance(value, str):
        try:
            value = date.fromisoformat(value)
        except ValueError:
            raise ValidationError(
                path, "is not an ISO 8601 date", code="date", value=value
            ) from None
    if not isinstance(value, date) or isinstance(value, datetime):
        raise ValidationError(path, "must be a date", code="type", value=value)
    return value


def _reference(value: object, path: str, target: str | None) -> UUID:
    ref = getattr(value, "id", value)
    if isinstance(ref, str):
        with contextlib.suppress(ValueError):
            ref = UUID(ref)
    if not isinstance(ref, UUID):
        raise ValidationError(path, f"must be a {target} or its id", code="type", value=value)
    return ref


def check_decimal(value: object, path: str) -> Decimal:
    """``value`` as a decimal a custom field may hold (at most 15 significant digits).

    Raises:
        ValidationError: not a number, not finite, or too precise or large
            (code ``precision``).
    """
    if isinstance(value, bool) or not isinstance(value, int | str | Decimal):
        raise ValidationError(path, "must be a decimal number", code="type", value=value)
    try:
        number = Decimal(value.strip() if isinstance(value, str) else value)
    except InvalidOperation:
        raise ValidationError(
            path, "is not a decimal number", code="decimal", value=value
        ) from None
    if not number.is_finite():
        raise ValidationError(path, "must be a finite number", code="not_finite", value=value)
    digits = number.as_tuple().digits
    if (
        len(digits) > MAX_DECIMAL_DIGITS
        or abs(number) >= Decimal(10) ** MAX_DECIMAL_DIGITS
        or (number and number.adjusted() < -MAX_DECIMAL_DIGITS)
    ):
        raise ValidationError(
            path,
            f"must have at most {MAX_DECIMAL_DIGITS} significant digits and be below 10^15",
            code="precision",
            value=value,
        )
    return number


# -------------------------------------------------------------- validation


def validate_custom(
    definitions: Iterable[CustomField],
    values: Mapping[str, object] | None,
    *,
    creating: bool,
) -> dict[str, object | None]:
    """Check and normalize custom values given to a write.

    Args:
        definitions: the entity type's current definitions.
        values: what the caller passed (``None`` values remove a value on update).
        creating: apply defaults and require required fields (a creation);
            otherwise only the given values are checked, and a required one
            cannot be removed.

    Returns:
        Normalized values by key; ``None`` marks a removal (updates only).

    Raises:
        ValidationError: ``field`` is ``custom.<key>``; codes ``unknown_field``
            (no definition: only ``None`` may be given, to remove a value
            stored under a removed definition), ``required``, and the type's
            own codes.
    """
    by_key = {d.key: d for d in definitions}
    given = {} if values is None else values
    if not isinstance(given, Mapping):
        raise ValidationError(
            "custom", "must be a mapping of keys to values", code="type", value=values
        )
    result: dict[str, object | None] = {}
    for key, value in given.items():
        definition = by_key.get(key) if isinstance(key, str) else None
        if definition is None:
            if value is None and isinstance(key, str) and CUSTOM_KEY_RE.match(key):
                if not creating:
                    result[key] = None
                continue
            raise ValidationError(
                f"{CUSTOM_PREFIX}{key}",
                "is not a custom field of this record",
                code="unknown_field",
            )
        if value is None:
            if definition.required and not creating:
                raise ValidationError(definition.path, "is required", code="required")
            if not creating:
                result[key] = None
            continue
        result[key] = definition.normalize(value)
    if creating:
        for definition in by_key.values():
            if result.get(definition.key) is None:
                if definition.default is not None:
                    result[definition.key] = definition.default
                elif definition.required:
                    raise ValidationError(definition.path, "is required", code="required")
    return result


@frozen
class CustomPatch:
    """Custom values a write passes, checked against the definitions of the moment.

    The service builds it (:func:`validate_custom`, references resolved);
    :func:`crmkit.core.changes.create` and :func:`~crmkit.core.changes.update`
    apply it to the record.
    """

    #: the values given (``None``: remove the value)
    values: tuple[tuple[str, object | None], ...]
    #: the definitions' defaults, for a creation
    defaults: tuple[tuple[str, object], ...] = ()
    #: the keys a creation must have a value for
    required: tuple[str, ...] = ()

    def created(self) -> CustomValues:
        """The values of a new record: defaults, then the values given.

        Raises:
            ValidationError: a required field has no value (code ``required``).
        """
        values = dict(self.defaults)
        values.update((k, v) for k, v in self.values if v is not None)
        for key in self.required:
            if key not in values:
                raise ValidationError(f"{CUSTOM_PREFIX}{key}", "is required", code="required")
        return CustomValues(values)

    def applied_to(self, current: Mapping[str, object]) -> CustomValues:
        """``current`` with the patch applied (``None`` removes a value)."""
        merged = dict(current)
        for key, value in self.values:
            if value is None:
                merged.pop(key, None)
            else:
                merged[key] = value
        return CustomValues(merged)
