"""The columns of each entity's files: how a cell becomes an argument, and a value a cell.

A column is named after the argument of the service's creation method it
feeds (``name``, ``emails``, ``market``), or ``custom.<key>`` for a custom
field.  Its :class:`Kind` says how a cell is read (text in CSV, JSON values in
JSON Lines) and written.  Reading only converts types; the services validate.

.. versionadded:: 0.1
"""

from __future__ import annotations

import enum
import json
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import UTC, date, datetime, tzinfo
from decimal import Decimal, InvalidOperation
from typing import Any, Final
from uuid import UUID

import attrs

from crmkit.core.cases import Case
from crmkit.core.contact_points import Address
from crmkit.core.custom_fields import CUSTOM_PREFIX, CustomField, CustomFieldType
from crmkit.core.entities import (
    Contact,
    Entity,
    Market,
    Master,
    Organization,
    Outcome,
    Position,
    Source,
    User,
    Zone,
)
from crmkit.core.errors import ValidationError
from crmkit.core.interactions import Interaction
from crmkit.core.leads import Lead
from crmkit.core.money import Money
from crmkit.core.opportunities import LineItem, Opportunity
from crmkit.serialization import converter

__all__ = ["ENTITIES", "Column", "Kind", "ReadContext", "columns_of", "escape_formula"]


class Kind(enum.Enum):
    """How a column's cells are read and written."""

    TEXT = "text"  #: text as is (also enum values and master keys)
    INTEGER = "integer"
    BOOLEAN = "boolean"  #: true/false, yes/no, sí/no, 1/0
    DECIMAL = "decimal"  #: 1234.5, or 1.234,5 with decimal_comma
    MONEY = "money"  #: "12.50 EUR" (or a number and the import's currency)
    DATE = "date"  #: ISO 8601, or the import's date_format
    DATETIME = "datetime"  #: ISO 8601; without an offset, in the CRM's time zone
    LIST = "list"  #: items separated by "|" ("\\|" is a "|" inside an item)
    JSON = "json"  #: a JSON document (addresses, line items)
    UUID = "uuid"  #: an id (campaigns)
    MASTER = "master"  #: a master entry's key
    RECORD = "record"  #: a record's external_ref, or its id


#: Omit the argument: the service's default applies.
OMIT: Final = object()


@attrs.frozen(eq=False)  # compared and hashed by identity: rows key their cells by column
class Column:
    """One column of an entity's files.

    Attributes:
        name: the column (the creation argument, or ``custom.<key>``).
        kind: how cells are read and written.
        attr: the entity attribute exported (``market_id``).
        target: the record or master type a reference column points to.
        empty: what an empty cell passes: ``None``, an empty tuple, or
            :data:`OMIT` (the default of the service applies).
        json_type: the type a :attr:`Kind.JSON` cell holds.
        custom: the custom field this column holds.
    """

    name: str
    kind: Kind
    attr: str
    target: type[Entity] | None = None
    empty: object = None
    json_type: Any = None
    custom: CustomField | None = None

    def value_of(self, entity: Entity) -> object:
        """The entity's value of this column (a custom value, or the attribute)."""
        if self.custom is not None:
            return getattr(entity, "custom", {}).get(self.custom.key)
        return getattr(entity, self.attr)


def _c(name: str, kind: Kind = Kind.TEXT, attr: str | None = None, **options: Any) -> Column:
    return Column(name, kind, attr or name, **options)


def _master(name: str, target: type[Master]) -> Column:
    return Column(name, Kind.MASTER, f"{name}_id", target)


def _record(name: str, target: type[Entity], attr: str | None = None) -> Column:
    return Column(name, Kind.RECORD, attr or f"{name}_id", target)


_EXTERNAL_REF = _c("external_ref")
_TAGS = _c("tags", Kind.LIST, empty=())
_NOTES = _c("notes")
_OWNER = _record("owner", User)

#: The built-in columns of each entity type that files may hold, in export order.
_BUILTIN: Final[dict[str, tuple[Column, ...]]] = {
    "organization": (
        _EXTERNAL_REF,
        _c("name"),
        _c("legal_name"),
        _c("kinds", Kind.LIST, empty=()),
        _c("status", empty=OMIT),
        _c("lifecycle", empty=OMIT),
        _c("tax_id"),
        _c("addresses", Kind.JSON, empty=(), json_type=tuple[Address, ...]),
        _c("phones", Kind.LIST, empty=()),
        _c("emails", Kind.LIST, empty=()),
        _c("website"),
        _master("market", Market),
        _master("source", Source),
        _master("zone", Zone),
        _OWNER,
        _record("parent", Organization),
        _TAGS,
        _NOTES,
    ),
    "contact": (
        _EXTERNAL_REF,
        _c("first_name"),
        _c("last_name"),
        _c("email"),
        _c("phones", Kind.LIST, empty=()),
        _record("organization", Organization),
        _master("position", Position),
        _c("department"),
        _c("role"),
        _c("preferred_channel"),
        _c("do_not_contact", Kind.BOOLEAN, empty=OMIT),
        _c("language"),
        _c("social_profiles", Kind.LIST, empty=()),
        _OWNER,
        _TAGS,
        _NOTES,
    ),
    "lead": (
        _EXTERNAL_REF,
        _c("first_name"),
        _c("last_name"),
        _c("company"),
        _c("job_title"),
        _c("email"),
        _c("phone"),
        _c("website"),
        _c("message"),
        _master("source", Source),
        _c("campaign", Kind.UUID, "campaign_id"),
        _OWNER,
        _c("channel", empty=OMIT),
        _TAGS,
    ),
    "opportunity": (
        _EXTERNAL_REF,
        _c("name"),
        _c("pipeline", empty=OMIT),
        _c("stage", empty=OMIT),
        _record("organization", Organization),
        _record("contact", Contact),
        _c("amount", Kind.MONEY),
        _c("probability", Kind.DECIMAL),
        _c("expected_close", Kind.DATE),
        _master("source", Source),
        _c("campaign", Kind.UUID, "campaign_id"),
        _record("prescriber", Organization),
        _OWNER,
        _c("competitors", Kind.LIST, empty=()),
        _c("line_items", Kind.JSON, empty=(), json_type=tuple[LineItem, ...]),
        _TAGS,
        _NOTES,
    ),
    "interaction": (
        _EXTERNAL_REF,
        _c("kind"),
        _c("status", empty=OMIT),
        _c("scheduled_at", Kind.DATETIME),
        _c("occurred_at", Kind.DATETIME),
        _record("organization", Organization),
        _record("contact", Contact),
        _c("subject"),
        _c("description"),
        _master("outcome", Outcome),
        _record("assignee", User),
        _record("opportunity", Opportunity),
        _record("case", Case),
        _c("campaign", Kind.UUID, "campaign_id"),
        _record("follow_up_of", Interaction, "follow_up_of"),
        _TAGS,
    ),
}

#: The entity types files hold, by the name the API and command use.
ENTITIES: Final[dict[str, type[Entity]]] = {
    "organizations": Organization,
    "contacts": Contact,
    "leads": Lead,
    "opportunities": Opportunity,
    "interactions": Interaction,
}

_CUSTOM_KINDS: Final = {
    CustomFieldType.TEXT: Kind.TEXT,
    CustomFieldType.CHOICE: Kind.TEXT,
    CustomFieldType.INTEGER: Kind.INTEGER,
    CustomFieldType.DECIMAL: Kind.DECIMAL,
    CustomFieldType.MONEY: Kind.MONEY,
    CustomFieldType.DATE: Kind.DATE,
    CustomFieldType.DATETIME: Kind.DATETIME,
    CustomFieldType.BOOLEAN: Kind.BOOLEAN,
    CustomFieldType.MULTI_CHOICE: Kind.LIST,
    CustomFieldType.REFERENCE: Kind.RECORD,
}

_TARGETS: Final[dict[str, type[Entity]]] = {
    cls.ENTITY: cls for cls in (Organization, Contact, Lead, Opportunity, Interaction, Case, User)
}


def columns_of(entity: str, custom_fields: Iterable[CustomField]) -> tuple[Column, ...]:
    """The columns of ``entity`` (``"organization"``): built-in ones, then custom fields."""
    custom = tuple(
        Column(
            f"{CUSTOM_PREFIX}{f.key}",
            _CUSTOM_KINDS[f.type],
            "custom",
            _TARGETS[f.reference] if f.reference else None,
            custom=f,
        )
        for f in custom_fields
    )
    return (_c("id", Kind.UUID), *_BUILTIN[entity], *custom)


# ====================================================================== reading


@attrs.frozen(kw_only=True)
class ReadContext:
    """How an import reads cells.

    Attributes:
        text: cells are text (CSV), not JSON values.
        decimal_comma: numbers are written ``1.234,56`` (Spanish spreadsheets).
        date_format: a :func:`~datetime.datetime.strptime` format for dates
            that are not ISO 8601 (``"%d/%m/%Y"``).
        currency: the currency of money cells that give only a number.
        timezone: the zone of datetimes given without an offset.
        unescape_formulas: drop the ``'`` a formula-safe export put before
            a cell starting with ``= + - @``, a tab or a carriage return.
    """

    text: bool = True
    decimal_comma: bool = False
    date_format: str | None = None
    currency: str | None = None
    timezone: tzinfo = UTC
    unescape_formulas: bool = True


def read_cell(column: Column, cell: object, ctx: ReadContext) -> object:
    """The argument value of a cell (references to records stay as their text).

    Returns:
        The value, or :data:`OMIT`.

    Raises:
        ValidationError: the cell cannot be read as the column's type
            (``field`` is empty: the caller names the column).
    """
    if isinstance(cell, str):
        if ctx.unescape_formulas and cell[:1] == "'":
            cell = unescape_formula(cell)
        stripped = cell.strip()
        if not stripped:
            return column.empty
        if column.kind is Kind.TEXT:  # the most common column: as it is
            return cell
        cell = stripped
    elif cell is None:
        return column.empty
    return _READERS[column.kind](cell, ctx)


def _text(cell: object, ctx: ReadContext) -> object:
    if isinstance(cell, str):
        return cell
    raise _wrong("text", cell)


def _wrong(expected: str, cell: object) -> ValidationError:
    return ValidationError("", f"must be {expected}", code="type", value=cell)


def _integer(cell: object, ctx: ReadContext) -> int:
    if isinstance(cell, int) and not isinstance(cell, bool):
        return cell
    if isinstance(cell, str) and re.fullmatch(r"[+-]?\d+", cell):
        return int(cell)
    raise ValidationError("", "is not a whole number", code="integer", value=cell)


_TRUE: Final = frozenset({"true", "t", "yes", "y", "1", "sí", "si", "s", "x", "verdadero"})
_FALSE: Final = frozenset({"false", "f", "no", "n", "0", "falso"})


def _boolean(cell: object, ctx: ReadContext) -> bool:
    if isinstance(cell, bool):
        return cell
    if isinstance(cell, str):
        lowered = cell.lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
    raise ValidationError("", "must be true or false (sí/no)", code="boolean", value=cell)


def _decimal(cell: object, ctx: ReadContext) -> Decimal:
    if isinstance(cell, int) and not isinstance(cell, bool):
        return Decimal(cell)
    if isinstance(cell, str):
        text = cell.replace("\u00a0", "").replace(" ", "")
        if ctx.decimal_comma:
            text = text.replace(".", "").replace(",", ".")
        try:
            number = Decimal(text)
        except InvalidOperation:
            pass
        else:
            if number.is_finite():
                return number
    raise ValidationError("", "is not a number", code="decimal", value=cell)


_MONEY_RE: Final = re.compile(r"^(?:([A-Za-z]{3})\s*)?([^A-Za-z€$£]+?)\s*([A-Za-z]{3}|€|\$|£)?$")
_SYMBOLS: Final = {"€": "EUR", "$": "USD", "£": "GBP"}


def _money(cell: object, ctx: ReadContext) -> Money:
    if isinstance(cell, dict):
        try:
            return converter.structure(cell, Money)
        except ValidationError as error:
            raise ValidationError("", error.reason, code=error.code, value=cell) from None
    if not isinstance(cell, str):
        raise _wrong('an amount and a currency ("12.50 EUR")', cell)
    match = _MONEY_RE.match(cell)
    if match is None:
        raise ValidationError(
            "", 'is not an amount and a currency ("12.50 EUR")', code="money", value=cell
        )
    before, number, after = match.groups()
    currency = before or _SYMBOLS.get(after or "", after) or ctx.currency
    if currency is None:
        raise ValidationError("", "needs a currency (12.50 EUR)", code="currency", value=cell)
    try:
        return Money(_decimal(number, ctx), currency.upper())
    except ValidationError as error:
        raise ValidationError("", error.reason, code=error.code, value=cell) from None


def _date(cell: object, ctx: ReadContext) -> date:
    if isinstance(cell, str):
        try:
            if ctx.date_format is not None and not re.fullmatch(r"\d{4}-\d\d-\d\d", cell):
                return datetime.strptime(cell, ctx.date_format).date()
            return date.fromisoformat(cell)
        except ValueError:
            pass
    expected = ctx.date_format or "YYYY-MM-DD"
    raise ValidationError("", f"is not a date ({expected})", code="date", value=cell)


def _datetime(cell: object, ctx: ReadContext) -> datetime:
    if isinstance(cell, str):
        try:
            value = datetime.fromisoformat(cell)
        except ValueError:
            pass
        else:
            if value.tzinfo is None:
                value = value.replace(tzinfo=ctx.timezone)
            return value
    raise ValidationError("", "is not an ISO 8601 date and time", code="datetime", value=cell)


def split_list(text: str) -> list[str]:
    """The items of a list cell: separated by ``|``, ``\\`` escaping the next character."""
    if "\\" not in text:  # nothing escaped: split
        return [item for item in (part.strip() for part in text.split("|")) if item]
    items: list[str] = []
    current: list[str] = []
    chars = iter(text)
    for char in chars:
        if char == "\\":
            current.append(next(chars, "\\"))
        elif char == "|":
            items.append("".join(current).strip())
            current = []
        else:
            current.append(char)
    items.append("".join(current).strip())
    return [item for item in items if item]


def join_list(items: Iterable[str]) -> str:
    """A list cell of ``items`` (the inverse of :func:`split_list`)."""
    return "|".join(item.replace("\\", "\\\\").replace("|", "\\|") for item in items)


def _list(cell: object, ctx: ReadContext) -> tuple[object, ...]:
    if isinstance(cell, str):
        return tuple(split_list(cell))
    if isinstance(cell, list):
        return tuple(cell)
    raise _wrong("a list", cell)


def _json(cell: object, ctx: ReadContext) -> object:
    if isinstance(cell, str):
        try:
            return json.loads(cell)
        except ValueError:
            raise ValidationError("", "is not valid JSON", code="json", value=cell) from None
    return cell


def _uuid(cell: object, ctx: ReadContext) -> UUID:
    return converter.structure(cell, UUID)


def _reference(cell: object, ctx: ReadContext) -> UUID | str:
    """An id, or the text of an external_ref (resolved by the import, a batch at a time)."""
    if isinstance(cell, str):
        if len(cell) < 32:  # too short for an id (32 hex digits): spare UUID() its exception
            return cell
        try:
            return UUID(cell)
        except ValueError:
            return cell
    raise _wrong("an external_ref or an id", cell)


_READERS: Final[dict[Kind, Callable[[Any, ReadContext], object]]] = {
    Kind.TEXT: _text,
    Kind.INTEGER: _integer,
    Kind.BOOLEAN: _boolean,
    Kind.DECIMAL: _decimal,
    Kind.MONEY: _money,
    Kind.DATE: _date,
    Kind.DATETIME: _datetime,
    Kind.LIST: _list,
    Kind.JSON: _json,
    Kind.UUID: _uuid,
    Kind.MASTER: _text,
    Kind.RECORD: _reference,
}


def structure_json(column: Column, value: object) -> object:
    """A JSON column's value as the service takes it (addresses, line items).

    Raises:
        ValidationError: the JSON does not describe the column's values.
    """
    if value is column.empty or value is OMIT:
        return value
    return converter.structure(value, column.json_type)


# ====================================================================== writing


def json_value(column: Column, value: object, refs: Mapping[UUID, str]) -> object:
    """The JSON value of an entity's value in a column (``refs``: ids to keys or refs)."""
    if value is None:
        return None
    if column.kind in (Kind.MASTER, Kind.RECORD):
        assert isinstance(value, UUID)
        return refs.get(value, str(value))
    if isinstance(value, frozenset):  # a set: sorted, as the converter writes it
        return sorted(converter.unstructure(value))
    return converter.unstructure(value)


def text_value(column: Column, value: object, refs: Mapping[UUID, str]) -> str:
    """The text cell of an entity's value in a column."""
    data = json_value(column, value, refs)
    if data is None:
        return ""
    if column.kind is Kind.MONEY and isinstance(data, dict):
        return f"{data['amount']} {data['currency']}"
    if column.kind is Kind.LIST and isinstance(data, list):
        return join_list(str(item) for item in data)
    if isinstance(data, bool):
        return "true" if data else "false"
    if isinstance(data, list | dict):
        if not data:
            return ""
        return json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    return str(data)


#: Characters that make a spreadsheet read a cell as a formula.
FORMULA_TRIGGERS: Final = ("=", "+", "-", "@", "\t", "\r")
_ESCAPED_RE: Final = re.compile(r"^'+[=+\-@\t\r]")


def escape_formula(cell: str) -> str:
    """``cell`` made safe to open in a spreadsheet: a ``'`` before a formula trigger.

    Cells starting with ``= + - @``, a tab or a carriage return get a ``'``
    in front, and so do cells that already look escaped (``'=...``), so that
    :func:`unescape_formula` gives back exactly the original text.
    """
    if cell.startswith(FORMULA_TRIGGERS) or _ESCAPED_RE.match(cell):
        return "'" + cell
    return cell


def unescape_formula(cell: str) -> str:
    """The text :func:`escape_formula` escaped (other cells as they are)."""
    if _ESCAPED_RE.match(cell):
        return cell[1:]
    return cell


def column_names(columns: Sequence[Column]) -> Iterator[str]:
    """The names of ``columns``, in order."""
    return (c.name for c in columns)
