"""Records as a :class:`pandas.DataFrame`, for notebooks and analysis.

One row per record and one column per field, with values an analyst can use
directly: enums as their values, ids as their canonical text (``str(uuid)``),
money as an exact :class:`~decimal.Decimal` column plus a ``<field>_currency``
column, e-mail addresses and phone numbers as strings, collections as tuples,
dates as :class:`~datetime.date`, datetimes as ``datetime64[us, UTC]`` (``NaT``
when missing, and the dtype even when the frame is empty).  Custom fields
become ``custom.<key>`` columns: every definition of the entity type, then
any stored key whose definition was removed (values are never dropped
silently).  Every field is shown but those of :data:`OPT_IN` (an
opportunity's stage ``history``), unless the fields are named.

pandas is an optional extra (``pip install "crmkit[pandas]"``); without it,
:func:`records_frame` raises :class:`ImportError` saying so.

.. versionadded:: 0.1
"""

from __future__ import annotations

import enum
import typing
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Final
from uuid import UUID

import attrs

from crmkit.core.contact_points import EmailAddress, PhoneNumber
from crmkit.core.custom_fields import CUSTOM_PREFIX, CustomValues
from crmkit.core.entities import Entity
from crmkit.core.errors import ValidationError
from crmkit.core.money import Money

if TYPE_CHECKING:
    import pandas

__all__ = ["OPT_IN", "fields_frame", "frame_fields", "records_frame"]


#: fields a frame leaves out unless asked for by name (``columns=``): the
#: stage history is a log of its own, the one field decoded per row
OPT_IN: Final = frozenset({"history"})


def frame_fields(cls: type[Entity], columns: str | Iterable[str] | None = None) -> tuple[str, ...]:
    """The fields a frame of ``cls`` shows: ``columns`` in their order, or the default ones.

    The default is every field in field order except :data:`OPT_IN`'s.

    Args:
        cls: the records' type.
        columns: field names (``"amount"`` gives ``amount`` and ``amount_currency``,
            ``"custom"`` every ``custom.<key>`` column), or None for the default.

    Raises:
        ValidationError: a name that is not a field of ``cls`` (code ``unknown_column``).
    """
    names = [f.name for f in attrs.fields(cls)]
    if columns is None:
        return tuple(name for name in names if name not in OPT_IN)
    wanted = tuple(dict.fromkeys([columns] if isinstance(columns, str) else columns))
    for name in wanted:
        if name not in names:
            raise ValidationError(
                "columns", f"{name!r} is not a field of {cls.ENTITY}", code="unknown_column"
            )
    return wanted


def records_frame(
    cls: type[Entity],
    records: Sequence[Entity],
    custom_keys: Iterable[str] = (),
    fields: Sequence[str] | None = None,
) -> pandas.DataFrame:
    """The ``records`` of type ``cls`` as a DataFrame (columns even when empty).

    Args:
        cls: the records' type.
        records: the records, as ``find`` returns them.
        custom_keys: the custom fields defined for ``cls``, in order.
        fields: the fields to show, in order (default :func:`frame_fields`).

    Raises:
        ImportError: pandas is not installed.
    """
    shown = frame_fields(cls) if fields is None else fields
    return fields_frame(
        cls,
        {name: [getattr(record, name) for record in records] for name in shown},
        len(records),
        custom_keys,
    )


def fields_frame(
    cls: type[Entity],
    values: Mapping[str, Sequence[Any]],
    count: int,
    custom_keys: Iterable[str] = (),
) -> pandas.DataFrame:
    """:func:`records_frame` from the records' field values, one sequence per field.

    The frame has the fields of ``values``, in its order.  A store can read
    them column by column without building the records (``SqlStore`` does,
    see :class:`~crmkit.stores.base.ColumnReader`); the frame is the same.
    Besides the records' own values, a field's sequence may hold its cells
    already: an id field canonical id text (``str(uuid)``); a datetime field
    naive ISO 8601 text in UTC; a money field the ``Decimal`` amounts, with
    the currencies under ``<field>_currency``.

    Args:
        cls: the records' type.
        values: each shown field's values, record by record.
        count: the number of records.
        custom_keys: the custom fields defined for ``cls``, in order.

    Raises:
        ImportError: pandas is not installed.
    """
    pd = _pandas()
    kinds_of = _field_kinds(cls)
    columns: dict[str, Any] = {}
    for name, column in values.items():
        if name.endswith(_CURRENCY) and name[: -len(_CURRENCY)] in values:
            continue  # a money field's currencies, placed after its amounts
        kind = kinds_of.get(name)
        if name == "custom":
            columns.update(_custom_columns(_listed(column), custom_keys))
        elif kind is Money:
            currencies = values.get(name + _CURRENCY)
            if currencies is None:
                columns.update(_money_columns(name, _listed(column)))
            else:
                columns[name] = _listed(column)
                columns[name + _CURRENCY] = _listed(currencies)
        elif kind is datetime:
            times = pd.to_datetime(_listed(column), utc=True, format="ISO8601")
            columns[name] = times.as_unit("us")
        elif kind is _Plain:
            columns[name] = _listed(column)  # every value is its own cell
        else:
            columns[name] = _cells(column, set(map(type, column)))
    frame: pandas.DataFrame = pd.DataFrame(columns, index=pd.RangeIndex(count))
    return frame


_CURRENCY: Final = "_currency"


class _Plain:
    """The kind of a field declared with types whose values are their own cells."""


def _field_kinds(cls: type[Entity]) -> dict[str, type]:
    """The fields of ``cls`` declared as :class:`Money`, :class:`datetime` or plain values.

    Optional or not; a plain field (:class:`_Plain`) holds only the types of
    :data:`_PLAIN`, so its values need no look.
    """
    kinds = _KINDS.get(cls)
    if kinds is not None:
        return kinds
    kinds = _KINDS[cls] = {}
    for name, hint in typing.get_type_hints(cls).items():
        declared = set(typing.get_args(hint)) if typing.get_origin(hint) else {hint}
        declared = {getattr(kind, "__supertype__", kind) for kind in declared}  # NewType ids
        for kind in (Money, datetime):
            if kind in declared:
                kinds[name] = kind
        if name not in kinds and declared <= _PLAIN:
            kinds[name] = _Plain
    return kinds


_KINDS: dict[type[Entity], dict[str, type]] = {}


def _listed(values: Sequence[Any]) -> list[Any]:
    return values if isinstance(values, list) else list(values)


def _pandas() -> Any:
    try:
        import pandas as pd
    except ImportError as error:  # pragma: no cover - the dev install has pandas
        raise ImportError(
            'to_pandas() needs pandas: pip install "crmkit[pandas]"', name="pandas"
        ) from error
    return pd


#: cell values that are their own cell (no conversion)
_PLAIN: Final = frozenset({str, int, bool, float, Decimal, date, datetime, type(None)})


def _cells(values: Sequence[Any], kinds: set[type]) -> list[Any]:
    """:func:`_cell` of every value, by column (``kinds``: the values' types).

    Plain columns are kept as they are; a value shared by several records
    (a store decodes each distinct stored value once) is converted once.
    """
    if kinds <= _PLAIN:
        return _listed(values)
    if kinds <= {UUID, type(None)}:
        return [None if value is None else str(value) for value in values]
    try:
        distinct = set(values)  # equal values have equal cells
    except TypeError:  # a collection holding an unhashable value
        keyed = {id(value): value for value in values}
        done = {key: _cell(value) for key, value in keyed.items()}
        return [done[id(value)] for value in values]
    cells = {value: _cell(value) for value in distinct}
    if len(cells) == 1:  # one value for every record
        return [*cells.values()] * len(values)
    return list(map(cells.__getitem__, values))


def _custom_columns(values: list[Any], defined: Iterable[str]) -> dict[str, list[Any]]:
    keys = dict.fromkeys(defined)  # ordered: the definitions, then removed ones' keys
    for custom in {id(custom): custom for custom in values}.values():  # shared when decoded once
        assert isinstance(custom, CustomValues)
        keys.update(dict.fromkeys(custom))
    columns: dict[str, list[Any]] = {}
    for key in keys:
        cells = [custom.get(key) for custom in values]
        if any(isinstance(cell, Money) for cell in cells):
            columns.update(_money_columns(CUSTOM_PREFIX + key, cells))
        else:
            columns[CUSTOM_PREFIX + key] = [_cell(cell) for cell in cells]
    return columns


def _money_columns(name: str, values: list[Any]) -> dict[str, list[Any]]:
    return {
        name: [None if value is None else value.amount for value in values],
        f"{name}_currency": [None if value is None else value.currency for value in values],
    }


def _cell(value: object) -> object:
    convert = _CELLS.get(type(value))
    if convert is not None:
        return convert(value)
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, UUID):
        return str(value)
    return value


def _collection(values: Iterable[object]) -> tuple[object, ...]:
    if isinstance(values, tuple) and all(_kept(type(value)) for value in values):
        return values  # every item is its own cell (stage changes, line items, text)
    return tuple(_cell(value) for value in values)


_KEPT: dict[type, bool] = {}


def _kept(kind: type) -> bool:
    """Whether values of ``kind`` are their own cell (:func:`_cell` returns them)."""
    kept = _KEPT.get(kind)
    if kept is None:
        kept = _KEPT[kind] = kind not in _CELLS and not issubclass(kind, enum.Enum | UUID)
    return kept


_CELLS: dict[type, Callable[[Any], object]] = {
    UUID: str,
    EmailAddress: str,
    PhoneNumber: str,
    Money: str,
    tuple: _collection,
    frozenset: lambda values: tuple(sorted(_collection(values), key=str)),
}
