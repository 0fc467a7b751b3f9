"""Typed find criteria, checked against each entity's allow-list of fields.

A :class:`Query` is plain data: filters (equality, ``in``, ranges, text
contains, set membership), archived or not, ordering, limit and offset.
Stores translate it (to SQL, or to a Python predicate for memory) and must
return the same rows in the same order; ties are always broken by ``id``.

.. versionadded:: 0.1
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Final, TypeVar
from uuid import UUID

import attrs
from attrs import frozen

from crmkit.core.contact_points import EmailAddress, PhoneNumber
from crmkit.core.custom_fields import CUSTOM_PREFIX, check_decimal
from crmkit.core.entities import Entity, FieldKind
from crmkit.core.errors import ValidationError
from crmkit.core.fields import in_utc_range
from crmkit.core.money import Money

__all__ = [
    "AnyOf",
    "Contains",
    "Eq",
    "Filter",
    "Has",
    "In",
    "Lookup",
    "Order",
    "Query",
    "Range",
    "Restriction",
    "Via",
    "check_query",
    "custom_value",
    "fold",
    "is_custom",
    "matches",
    "restriction_matches",
    "select",
    "sort_key",
]

E = TypeVar("E", bound=Entity)

MAX_LIMIT: Final = 100_000


def _values(values: Iterable[object]) -> tuple[object, ...]:
    return tuple(values)


@frozen
class Eq:
    """``field == value`` (``None`` matches a missing value)."""

    field: str
    value: object


@frozen
class In:
    """``field`` is one of ``values``."""

    field: str
    values: tuple[object, ...] = attrs.field(converter=_values)


@frozen
class Range:
    """``low <= field < high`` by default; either bound may be ``None``."""

    field: str
    low: object = None
    high: object = None
    include_high: bool = False


@frozen
class Contains:
    """``text`` occurs in ``field``, ignoring case."""

    field: str
    text: str


@frozen
class Has:
    """The collection ``field`` (tags, kinds) contains ``value``."""

    field: str
    value: object


Filter = Eq | In | Range | Contains | Has


@frozen
class Via:
    """The record the reference ``field`` points to (a ``target``) passes ``where``.

    Used by access control ("the organization's zone is one of mine"); stores
    compile it to a subquery, never to a list of ids loaded first.
    """

    field: str
    target: type[Entity]
    where: Eq | In


def _parts(parts: Iterable[Restriction]) -> tuple[Restriction, ...]:
    return tuple(parts)


@frozen
class AnyOf:
    """At least one of ``parts`` holds; ``AnyOf(())`` holds for no record."""

    parts: tuple[Restriction, ...] = attrs.field(converter=_parts)


#: What a :class:`Query`'s ``restrict`` holds: built by access control, not by callers.
Restriction = Eq | In | Via | AnyOf


@frozen
class Order:
    """Sort by ``field``; ``None`` values sort last in both directions."""

    field: str
    descending: bool = False

    @classmethod
    def parse(cls, spec: str) -> Order:
        """``"name"`` ascending, ``"-created_at"`` descending."""
        if spec.startswith("-"):
            return cls(spec[1:], descending=True)
        return cls(spec)


def _filters(filters: Iterable[Filter]) -> tuple[Filter, ...]:
    return tuple(filters)


def _orders(orders: Iterable[Order]) -> tuple[Order, ...]:
    return tuple(orders)


def _kinds(
    kinds: Mapping[str, FieldKind] | Iterable[tuple[str, FieldKind]],
) -> tuple[tuple[str, FieldKind], ...]:
    items = kinds.items() if isinstance(kinds, Mapping) else kinds
    return tuple(sorted(items, key=lambda item: item[0]))


@frozen(kw_only=True)
class Query:
    """What ``find`` and ``count`` select.

    Attributes:
        filters: all must hold.
        archived: ``False`` (default) hides archived records, ``True`` shows only
            them, ``None`` shows both.
        order: sort keys, then ``id``.
        limit: at most this many rows (``None``: all).
        offset: skip this many rows first.
        custom_kinds: the kind of each custom field the query names
            (``("custom.tier", FieldKind.TEXT)``), from the definitions of
            the moment; stores read them to compare custom values.
    """

    filters: tuple[Filter, ...] = attrs.field(default=(), converter=_filters)
    archived: bool | None = False
    order: tuple[Order, ...] = attrs.field(default=(), converter=_orders)
    limit: int | None = None
    offset: int = 0
    custom_kinds: tuple[tuple[str, FieldKind], ...] = attrs.field(default=(), converter=_kinds)
    #: the records the current principal may see (access control); ``None``: all
    restrict: Restriction | None = None


def is_custom(name: str) -> bool:
    """Whether ``name`` names a custom field (``custom.<key>``)."""
    return name.startswith(CUSTOM_PREFIX)


_TEXT_OPS: Final = (Eq, In, Range, Contains)


def check_query(
    cls: type[Entity], query: Query, extra: Mapping[str, FieldKind] | None = None
) -> None:
    """Check every field against ``cls.QUERYABLE`` and every value against its kind.

    Args:
        cls: the entity type searched.
        query: the query.
        extra: more searchable fields and their kinds (default: the query's
            ``custom_kinds``, the custom fields defined for ``cls``).

    Raises:
        ValidationError: unknown field, wrong operation for the field's kind,
            a value of the wrong type, a bad limit or offset.
    """
    known = dict(query.custom_kinds) if extra is None else dict(extra)
    for f in query.filters:
        kind = _kind_of(cls, f.field, known)
        if kind is FieldKind.SET:
            if not isinstance(f, Has):
                raise ValidationError(
                    f.field, "is a collection: filter it with Has", code="operator"
                )
            _check_value(kind, f.field, f.value)
        elif isinstance(f, Has):
            raise ValidationError(f.field, "is not a collection", code="operator")
        elif isinstance(f, Contains):
            if kind is not FieldKind.TEXT:
                raise ValidationError(f.field, "is not text", code="operator")
            if not isinstance(f.text, str) or not f.text:
                raise ValidationError(f.field, "needs non-empty text", code="type", value=f.text)
        elif isinstance(f, Eq):
            _check_value(kind, f.field, f.value)
        elif isinstance(f, In):
            for v in f.values:
                _check_value(kind, f.field, v)
        else:
            for v in (f.low, f.high):
                if v is not None:
                    _check_value(kind, f.field, v)
            if (
                isinstance(f.low, Money)
                and isinstance(f.high, Money)
                and f.low.currency != f.high.currency
            ):
                raise ValidationError(
                    f.field, "bounds must be in one currency", code="currency", value=f.high
                )
    for o in query.order:
        if _kind_of(cls, o.field, known) is FieldKind.SET:
            raise ValidationError(o.field, "is a collection and cannot be sorted", code="order")
    if query.limit is not None and (
        isinstance(query.limit, bool)
        or not isinstance(query.limit, int)
        or not 0 <= query.limit <= MAX_LIMIT
    ):
        raise ValidationError(
            "limit", f"must be an integer from 0 to {MAX_LIMIT}", value=query.limit
        )
    if isinstance(query.offset, bool) or not isinstance(query.offset, int) or query.offset < 0:
        raise ValidationError("offset", "must be a non-negative integer", value=query.offset)


def _kind_of(cls: type[Entity], name: str, extra: Mapping[str, FieldKind]) -> FieldKind:
    kind = extra.get(name) if is_custom(name) else cls.QUERYABLE.get(name)
    if kind is None and is_custom(name):
        raise ValidationError(name, f"is not a custom field of {cls.ENTITY}", code="unknown_field")
    if kind is None:
        raise ValidationError(
            name, f"is not a field {cls.ENTITY} can be searched by", code="unknown_field"
        )
    return kind


#: The Python types a filter value of each kind may have (one scalar, never a list).
_EXPECTED: Final[dict[FieldKind, type | tuple[type, ...]]] = {
    FieldKind.ID: UUID,
    FieldKind.DATETIME: datetime,
    FieldKind.BOOL: bool,
    FieldKind.TEXT: (str, EmailAddress),
    FieldKind.INT: int,
    FieldKind.ENUM: (str, enum.Enum),
    FieldKind.SET: (str, enum.Enum, EmailAddress, PhoneNumber),
    FieldKind.DATE: date,
    FieldKind.MONEY: Money,
    FieldKind.DECIMAL: (Decimal, int),
}


def _check_value(kind: FieldKind, name: str, value: object) -> None:
    if value is None:
        return
    expected = _EXPECTED[kind]
    if not isinstance(value, expected) or (kind is FieldKind.INT and isinstance(value, bool)):
        raise ValidationError(name, "has a value of the wrong type", code="type", value=value)
    if kind is FieldKind.DATE and isinstance(value, datetime):
        raise ValidationError(name, "must be a date, not a datetime", code="type", value=value)
    if isinstance(value, datetime) and value.tzinfo is None:
        raise ValidationError(name, "must be timezone-aware", code="naive_datetime", value=value)
    if isinstance(value, datetime) and not in_utc_range(value):
        raise ValidationError(name, "is out of range in UTC", code="out_of_range", value=value)
    if kind is FieldKind.DECIMAL:  # compared exactly by every store only within these limits
        check_decimal(value, name)
    if kind is FieldKind.INT and is_custom(name) and abs(value) >= 2**63:  # type: ignore[arg-type]
        raise ValidationError(name, "does not fit in 64 bits", code="out_of_range", value=value)


# ----------------------------------------------------- in-memory semantics
# The reference semantics every store must reproduce.


def _plain(value: object) -> object:
    """The comparable form of a field value: enums and e-mails by their value,
    money as (currency, amount) so that sorting groups currencies."""
    if isinstance(value, enum.Enum | EmailAddress):
        return value.value
    if isinstance(value, PhoneNumber):
        return value.e164
    if isinstance(value, Money):
        return (value.currency, value.amount)
    return value


def fold(text: str) -> str:
    """Case-insensitive form of text used by :class:`Contains` in every store.

    Unicode lower-casing: what PostgreSQL's ``lower()`` does in a UTF-8
    database, and what crmkit registers as a function on SQLite connections.
    """
    return text.lower()


#: the Python types a custom value of each kind has; other values count as missing
_CUSTOM_TYPES: Final[dict[FieldKind, type | tuple[type, ...]]] = {
    FieldKind.TEXT: str,
    FieldKind.INT: int,
    FieldKind.DECIMAL: Decimal,
    FieldKind.MONEY: Money,
    FieldKind.DATE: date,
    FieldKind.DATETIME: datetime,
    FieldKind.BOOL: bool,
    FieldKind.SET: tuple,
    FieldKind.ID: UUID,
}


def custom_value(entity: Entity, name: str, kind: FieldKind | None) -> object:
    """The value of custom field ``name`` (``custom.<key>``) as queries see it.

    A missing value, or one whose type is not the kind's (left by an earlier
    definition of the same key), is ``None`` (an empty tuple for collections).
    """
    values = getattr(entity, "custom", None) or {}
    value = values.get(name[len(CUSTOM_PREFIX) :])
    expected = _CUSTOM_TYPES.get(kind) if kind is not None else None
    ok = (
        value is not None
        and expected is not None
        and isinstance(value, expected)
        and not (kind is FieldKind.INT and isinstance(value, bool))
        and not (kind is FieldKind.DATE and isinstance(value, datetime))
    )
    if not ok:
        return () if kind is FieldKind.SET else None
    return value


def _field(entity: Entity, name: str, kinds: Mapping[str, FieldKind]) -> object:
    if is_custom(name):
        return custom_value(entity, name, kinds.get(name))
    return getattr(entity, name)


def _matches_one(entity: Entity, f: Filter, kinds: Mapping[str, FieldKind]) -> bool:
    raw = _field(entity, f.field, kinds)
    if isinstance(f, Has):
        return _plain(f.value) in {_plain(v) for v in raw}  # type: ignore[attr-defined]
    value = _plain(raw)
    if isinstance(f, Eq):
        return value == _plain(f.value)
    if isinstance(f, In):
        return value in {_plain(v) for v in f.values}
    if isinstance(f, Contains):
        return isinstance(value, str) and fold(f.text) in fold(value)
    if value is None:
        return False
    if isinstance(raw, Money):  # a money range holds within one currency only
        bounds = [b for b in (f.low, f.high) if isinstance(b, Money)]
        if any(b.currency != raw.currency for b in bounds):
            return False
    low, high = _plain(f.low), _plain(f.high)
    if low is not None and value < low:  # type: ignore[operator]
        return False
    if high is not None:
        return bool(value <= high if f.include_high else value < high)  # type: ignore[operator]
    return True


def matches(entity: Entity, query: Query) -> bool:
    """Whether ``entity`` passes the query's filters and archived setting."""
    if query.archived is not None and entity.archived != query.archived:
        return False
    kinds = dict(query.custom_kinds)
    return all(_matches_one(entity, f, kinds) for f in query.filters)


#: finds the record of an entity type by id (``None``: there is none)
Lookup = Callable[[type[Entity], UUID], Entity | None]


def restriction_matches(entity: Entity, restrict: Restriction | None, lookup: Lookup) -> bool:
    """Whether ``entity`` passes an access restriction; ``lookup`` reads related records."""
    if restrict is None:
        return True
    if isinstance(restrict, AnyOf):
        return any(restriction_matches(entity, p, lookup) for p in restrict.parts)
    if isinstance(restrict, Via):
        ref = getattr(entity, restrict.field)
        related = None if ref is None else lookup(restrict.target, ref)
        return related is not None and _matches_one(related, restrict.where, {})
    return _matches_one(entity, restrict, {})


class _Reversed:
    __slots__ = ("value",)

    def __init__(self, value: object):
        self.value = value

    def __lt__(self, other: _Reversed) -> bool:
        return bool(other.value < self.value)  # type: ignore[operator]

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Reversed) and bool(other.value == self.value)

    __hash__ = None  # type: ignore[assignment]


def sort_key(
    order: Sequence[Order], kinds: Mapping[str, FieldKind] | None = None
) -> Callable[[Entity], tuple[Any, ...]]:
    """A key function ordering entities by ``order``, ``None`` last, then by ``id``.

    ``kinds`` gives the kinds of the custom fields named (``custom.<key>``).
    """
    known = kinds or {}

    def key(entity: Entity) -> tuple[object, ...]:
        parts: list[object] = []
        for o in order:
            value = _plain(_field(entity, o.field, known))
            # None last in both directions; text in code-point order, as the
            # SQL stores sort it (COLLATE "C" on PostgreSQL, BINARY on SQLite).
            parts.append(value is None)
            parts.append(0 if value is None else _Reversed(value) if o.descending else value)
        parts.append(entity.id)
        return tuple(parts)

    return key


def select(entities: Iterable[E], query: Query) -> list[E]:
    """Filter, order and page ``entities`` by ``query``: the reference semantics."""
    chosen = [e for e in entities if matches(e, query)]
    chosen.sort(key=sort_key(query.order, dict(query.custom_kinds)))
    end = None if query.limit is None else query.offset + query.limit
    return chosen[query.offset : end]
