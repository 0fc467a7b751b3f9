"""Records as a :class:`pandas.DataFrame`, for notebooks and analysis.

One row per record and one column per field, with values an analyst can use
directly: enums as their values, ids as strings, money as an exact
:class:`~decimal.Decimal` column plus a ``<field>_currency`` column, e-mail
addresses and phone numbers as strings, collections as tuples, datetimes in
UTC.  Custom fields become ``custom.<key>`` columns: every definition of the
entity type, then any stored key whose definition was removed (values are
never dropped silently).

pandas is an optional extra (``pip install "crmkit[pandas]"``); without it,
:func:`records_frame` raises :class:`ImportError` saying so.

.. versionadded:: 0.1
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Final
from uuid import UUID

import attrs

from crmkit.core.contact_points import EmailAddress, PhoneNumber
from crmkit.core.custom_fields import CUSTOM_PREFIX, CustomValues
from crmkit.core.entities import Entity
from crmkit.core.money import Money

if TYPE_CHECKING:
    import pandas

__all__ = ["fields_frame", "records_frame"]


def records_frame(
    cls: type[Entity], records: Sequence[Entity], custom_keys: Iterable[str] = ()
) -> pandas.DataFrame:
    """The ``records`` of type ``cls`` as a DataFrame (columns even when empty).

    Args:
        cls: the records' type; its fields are the columns, in order.
        records: the records, as ``find`` returns them.
        custom_keys: the custom fields defined for ``cls``, in order.

    Raises:
        ImportError: pandas is not installed.
    """
    return fields_frame(
        cls,
        {f.name: [getattr(record, f.name) for record in records] for f in attrs.fields(cls)},
        len(records),
        custom_keys,
    )


def fields_frame(
    cls: type[Entity],
    values: Mapping[str, Sequence[Any]],
    count: int,
    custom_keys: Iterable[str] = (),
) -> pandas.DataFrame:
    """:func:`records_frame` from the records' field values, one list per field.

    A store can read them column by column without building the records
    (``SqlStore`` does); the frame is the same.

    Args:
        cls: the records' type; its fields are the columns, in order.
        values: each field's values, record by record, as the records hold them.
        count: the number of records.
        custom_keys: the custom fields defined for ``cls``, in order.

    Raises:
        ImportError: pandas is not installed.
    """
    pd = _pandas()
    columns: dict[str, list[Any]] = {}
    for field in attrs.fields(cls):
        column = values[field.name]
        kinds = set(map(type, column))
        if field.name == "custom":
            columns.update(_custom_columns(list(column), custom_keys))
        elif Money in kinds:
            columns.update(_money_columns(field.name, list(column)))
        else:
            columns[field.name] = _cells(column, kinds)
    frame: pandas.DataFrame = pd.DataFrame(columns)
    for name in ("created_at", "updated_at"):
        if name in frame and count:
            frame[name] = pd.to_datetime(frame[name], utc=True)
    return frame


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
        return list(values)
    if kinds <= {UUID, type(None)}:
        return [None if value is None else str(value) for value in values]
    done: dict[int, object] = {}
    cells: list[Any] = []
    for value in values:
        key = id(value)
        cell = done.get(key, done)
        if cell is done:
            cell = done[key] = _cell(value)
        cells.append(cell)
    return cells


def _custom_columns(values: list[Any], defined: Iterable[str]) -> dict[str, list[Any]]:
    keys = dict.fromkeys(defined)  # ordered: the definitions, then removed ones' keys
    for custom in values:
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
