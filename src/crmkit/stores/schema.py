"""The SQL schema, derived from the entities' own metadata.

Each entity type gets a table whose columns follow its attrs fields: ids are
UUIDs, references get foreign keys and indexes, ``UNIQUE`` fields get named
unique constraints, enums store their value, collections (tags, phones,
addresses...) are JSON (JSONB on PostgreSQL), datetimes are stored in UTC.
Adding an entity type to :data:`ENTITY_TYPES` (and a migration) is all it
takes to store it.

The row codecs here turn entities into rows and back.  Rows are data crmkit
wrote and validated, so decoding builds the frozen objects directly (the
"trusted" path) instead of re-running every validator; JSON columns are
written by the one converter.

.. versionadded:: 0.1
"""

from __future__ import annotations

import enum
import functools
import json
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, Final, Union, get_args, get_origin
from uuid import UUID

import attrs
from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
    Uuid,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB

from crmkit.core.audit import AuditAction, AuditChange, AuditEntry, CreatedChanges
from crmkit.core.automation import Rule, RuleFiring
from crmkit.core.campaigns import Campaign
from crmkit.core.cases import Case
from crmkit.core.contact_points import Address, AddressKind, EmailAddress, PhoneNumber
from crmkit.core.custom_fields import CustomValues, custom_from_json, custom_to_json
from crmkit.core.entities import (
    Contact,
    Entity,
    LossReason,
    Market,
    Organization,
    Outcome,
    Position,
    Product,
    Source,
    User,
    Zone,
)
from crmkit.core.interactions import Interaction
from crmkit.core.leads import Lead
from crmkit.core.mail import CampaignEmail, EmailTemplate
from crmkit.core.merge import MergeJournal
from crmkit.core.money import Money
from crmkit.core.opportunities import Opportunity, StageChange
from crmkit.core.segments import Segment
from crmkit.core.targets import SalesTarget, Team
from crmkit.serialization import converter

__all__ = [
    "ENTITY_TYPES",
    "TABLES",
    "UtcDateTime",
    "audit_changes_json",
    "audit_table",
    "codec",
    "created_changes_sql",
    "metadata",
]

#: Every entity type stored, in dependency order (referenced tables first).
ENTITY_TYPES: Final[tuple[type[Entity], ...]] = (
    User,
    Source,
    Market,
    Position,
    Zone,
    Product,
    LossReason,
    Organization,
    Contact,
    Segment,
    Campaign,
    Opportunity,
    Outcome,
    Case,
    Interaction,
    Lead,
    MergeJournal,
    Team,
    SalesTarget,
    Rule,
    RuleFiring,
    EmailTemplate,
    CampaignEmail,
)

_TABLE_NAMES: Final = {
    "user": "users",
    "source": "sources",
    "market": "markets",
    "position": "positions",
    "zone": "zones",
    "organization": "organizations",
    "contact": "contacts",
    "product": "products",
    "loss_reason": "loss_reasons",
    "opportunity": "opportunities",
    "outcome": "outcomes",
    "case": "cases",
    "interaction": "interactions",
    "lead": "leads",
    "merge": "merges",
    "segment": "segments",
    "campaign": "campaigns",
    "team": "teams",
    "sales_target": "targets",
    "rule": "rules",
    "rule_firing": "rule_firings",
    "email_template": "email_templates",
    "campaign_email": "campaign_emails",
}

NAMING: Final = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING)

JsonType = JSON().with_variant(JSONB(), "postgresql")


class DecimalText(TypeDecorator[Decimal]):
    """An exact ``Decimal`` kept as its text (SQLite has no decimal type)."""

    impl = String(40)
    cache_ok = True

    def process_bind_param(self, value: Decimal | None, dialect: Dialect) -> str | None:
        return None if value is None else str(value)

    def process_result_value(self, value: str | None, dialect: Dialect) -> Decimal | None:
        return None if value is None else Decimal(value)


class UtcDateTime(TypeDecorator[datetime]):
    """A timezone-aware datetime stored in UTC; read back aware, in UTC.

    PostgreSQL keeps ``timestamptz``; SQLite keeps ISO text in UTC (which sorts
    correctly), microseconds included.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        utc = value.astimezone(UTC)
        return utc.replace(tzinfo=None) if dialect.name == "sqlite" else utc

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


# ------------------------------------------------------------- field kinds


class _Kind(enum.Enum):
    UUID = "uuid"
    TEXT = "text"
    INT = "int"
    BOOL = "bool"
    DATETIME = "datetime"
    ENUM = "enum"
    EMAIL = "email"
    PHONE = "phone"  #: E.164 text
    JSON = "json"
    MONEY = "money"  #: two columns: <name>_minor (integer minor units) and <name>_currency
    DATE = "date"
    DECIMAL = "decimal"  #: exact: kept as its decimal text
    CUSTOM = "custom"  #: custom field values: their JSON form, NOT NULL, default {}


@attrs.frozen
class FieldCodec:
    """How one entity field is stored."""

    name: str
    kind: _Kind
    nullable: bool
    python_type: Any  # the enum class, or the collection's type hint


def _unwrap_optional(hint: Any) -> tuple[Any, bool]:
    origin = get_origin(hint)
    if origin in (Union, types.UnionType):
        args = [a for a in get_args(hint) if a is not type(None)]
        if len(args) == 1 and len(get_args(hint)) == 2:
            return args[0], True
    return hint, False


#: Field types stored in one column of their own kind (``Any`` is the base entity's id).
_SCALAR_KINDS: Final[dict[Any, _Kind]] = {
    UUID: _Kind.UUID,
    Any: _Kind.UUID,
    str: _Kind.TEXT,
    bool: _Kind.BOOL,
    int: _Kind.INT,
    datetime: _Kind.DATETIME,
    date: _Kind.DATE,
    Decimal: _Kind.DECIMAL,
    EmailAddress: _Kind.EMAIL,
    PhoneNumber: _Kind.PHONE,
    Money: _Kind.MONEY,
    CustomValues: _Kind.CUSTOM,
}


def _kind_of(hint: Any) -> _Kind:
    supertype = getattr(hint, "__supertype__", None)
    if supertype is not None:
        return _kind_of(supertype)
    scalar = _SCALAR_KINDS.get(hint)
    if scalar is not None:
        return scalar
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return _Kind.ENUM
    if get_origin(hint) in (tuple, frozenset, list, dict, Union, types.UnionType):
        return _Kind.JSON  # collections, and tagged unions (a segment's criteria tree)
    if attrs.has(hint):
        return _Kind.JSON  # a value object the converter knows (a rule's trigger)
    raise TypeError(f"no column type for {hint!r}")  # a new field type needs a mapping here


def field_codecs(cls: type[Entity]) -> tuple[FieldCodec, ...]:
    """How each field of ``cls`` is stored, in field order."""
    hints = typing.get_type_hints(cls)
    result = []
    for a in attrs.fields(cls):
        hint, nullable = _unwrap_optional(hints[a.name])
        result.append(FieldCodec(a.name, _kind_of(hint), nullable, hint))
    return tuple(result)


def money_columns(name: str, *, nullable: bool = True) -> list[Column[Any]]:
    """The two columns storing a :class:`~crmkit.Money` field ``name``."""
    return [
        Column(f"{name}_minor", BigInteger(), nullable=nullable),
        Column(f"{name}_currency", String(3), nullable=nullable),
    ]


def encode_money(value: Money | None) -> tuple[int | None, str | None]:
    """``(minor units, currency)`` of ``value``."""
    return (None, None) if value is None else (value.minor_units, value.currency)


def decode_money(minor: int | None, currency: str | None) -> Money | None:
    """The :class:`~crmkit.Money` two columns store."""
    if minor is None or currency is None:
        return None
    return Money.from_minor_units(int(minor), currency)


def _columns(cls: type[Entity], f: FieldCodec) -> list[Column[Any]]:
    if f.kind is _Kind.MONEY:
        return money_columns(f.name, nullable=f.nullable)
    return [_column(cls, f)]


def _column(cls: type[Entity], f: FieldCodec) -> Column[Any]:
    sql_type: Any = {
        _Kind.UUID: Uuid(),
        _Kind.TEXT: Text(),
        _Kind.INT: Integer(),
        _Kind.BOOL: Boolean(create_constraint=False),
        _Kind.DATETIME: UtcDateTime(),
        _Kind.ENUM: String(32),
        _Kind.EMAIL: String(320),
        _Kind.PHONE: String(32),
        _Kind.JSON: JsonType,
        _Kind.DATE: Date(),
        _Kind.DECIMAL: DecimalText(),
        _Kind.CUSTOM: JsonType,
    }[f.kind]
    args: list[Any] = []
    target = cls.REFERENCES.get(f.name)
    if target is not None:
        args.append(ForeignKey(f"{table_name(target)}.id"))
    if f.kind is _Kind.CUSTOM:
        return Column(f.name, sql_type, nullable=False, server_default=text("'{}'"))
    return Column(f.name, sql_type, *args, primary_key=f.name == "id", nullable=f.nullable)


def table_name(cls: type[Entity]) -> str:
    """The table that stores ``cls``."""
    return _TABLE_NAMES[cls.ENTITY]


def _build_table(cls: type[Entity]) -> Table:
    fields = field_codecs(cls)
    name = table_name(cls)
    ordered = sorted(fields, key=lambda f: f.name != "id")  # id first, then field order
    items: list[Any] = [c for f in ordered for c in _columns(cls, f)]
    items += [UniqueConstraint(f) for f in cls.UNIQUE]
    items += [UniqueConstraint(*columns) for columns in _EXTRA_UNIQUE.get(cls, ())]
    items += [Index(None, ref) for ref in cls.REFERENCES]
    items.append(Index(None, "updated_at"))
    if "name" in attrs.fields_dict(cls):
        items.append(Index(None, "name"))
    items += [Index(None, *columns) for columns in _EXTRA_INDEXES.get(cls, ())]
    return Table(name, metadata, *items)


#: Indexes for the searches each entity type is known for.
_EXTRA_INDEXES: Final[dict[type[Entity], tuple[tuple[str, ...], ...]]] = {
    Opportunity: (
        ("pipeline", "stage"),
        ("status",),
        ("expected_close",),
        ("amount_currency", "amount_minor"),
    ),
    Organization: (("name_key",),),
    Contact: (("email",),),
    # the agenda: one user's planned interactions by time
    Interaction: (
        ("assignee_id", "status", "scheduled_at"),
        ("status", "scheduled_at"),
        ("occurred_at",),
    ),
    Case: (("owner_id", "status", "sla_due"), ("status", "sla_due")),
    Lead: (("status",), ("email",)),
    MergeJournal: (("survivor_id",),),
    Campaign: (("status",),),
    # unsubscribes are looked up by contact and by address; "opened" by member
    CampaignEmail: (("contact_id",), ("email",), ("organization_id", "opened_at")),
}

#: Unique constraints over several columns.
_EXTRA_UNIQUE: Final[dict[type[Entity], tuple[tuple[str, ...], ...]]] = {
    CampaignEmail: (("campaign_id", "contact_id"),),
}


TABLES: Final[dict[type[Entity], Table]] = {cls: _build_table(cls) for cls in ENTITY_TYPES}

audit_table = Table(
    "audit_log",
    metadata,
    Column(
        "seq", BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True
    ),
    Column("entity", String(64), nullable=False),
    Column("entity_id", Uuid(), nullable=False),
    Column("version", Integer(), nullable=False),
    Column("action", String(16), nullable=False),
    Column("changes", JsonType, nullable=False),
    Column("actor", Text(), nullable=True),
    Column("at", UtcDateTime(), nullable=False),
    Index(None, "entity_id", "seq"),
)


# ------------------------------------------------------------------ codecs


def _trusted(cls: type[Any], values: Mapping[str, Any]) -> Any:
    """Build a frozen attrs object from values crmkit validated before."""
    obj = object.__new__(cls)
    for name, value in values.items():
        object.__setattr__(obj, name, value)
    return obj


def _email(value: str) -> EmailAddress:
    return typing.cast(EmailAddress, _trusted(EmailAddress, {"value": value}))


def _phone(value: str) -> PhoneNumber:
    return typing.cast(PhoneNumber, _trusted(PhoneNumber, {"e164": value}))


def _address(value: Mapping[str, Any]) -> Address:
    data = dict(value)
    data["kind"] = AddressKind(data["kind"])
    return typing.cast(Address, _trusted(Address, data))


def _stage_change(value: Mapping[str, Any]) -> StageChange:
    """A stored stage change (trusted: its keys and the aware time were validated on write)."""
    change = object.__new__(StageChange)
    _set(change, "source", value.get("source"))
    _set(change, "target", value["target"])
    _set(change, "at", datetime.fromisoformat(value["at"]))
    _set(change, "by", value.get("by"))
    return change


_set: Final = object.__setattr__


_ITEM_DECODERS: Final[dict[Any, Callable[[Any], Any]]] = {
    EmailAddress: _email,
    PhoneNumber: _phone,
    Address: _address,
    StageChange: _stage_change,
    str: str,
}


def _json_decoder(hint: Any) -> Callable[[Any], Any]:
    if attrs.has(hint):  # one value object (a rule's trigger): the converter knows it
        return lambda v: converter.structure(v, hint)
    origin = get_origin(hint)
    item = get_args(hint)[0]
    if isinstance(item, type) and issubclass(item, enum.Enum):
        item_decode: Callable[[Any], Any] = item
    elif item in _ITEM_DECODERS:
        item_decode = _ITEM_DECODERS[item]
    else:  # line items, stage changes: the converter knows them
        return lambda v: converter.structure(v, hint)
    build: Callable[[Any], Any] = frozenset if origin is frozenset else tuple
    empty = build(())

    def decode(values: Any) -> Any:
        return build(map(item_decode, values)) if values else empty

    return decode


class EntityCodec:
    """Turns one entity type into rows and back."""

    def __init__(self, cls: type[Entity]):
        self.cls = cls
        self.table = TABLES[cls]
        self.fields = field_codecs(cls)
        self._money = frozenset(f.name for f in self.fields if f.kind is _Kind.MONEY)
        self._encoders: list[tuple[str, Callable[[Any], Any] | None]] = []
        self._decoders: list[tuple[str, Callable[[Any], Any] | None]] = []
        for f in self.fields:
            enc: Callable[[Any], Any] | None
            dec: Callable[[Any], Any] | None
            if f.kind is _Kind.ENUM:
                enc, dec = _enum_value, f.python_type
            elif f.kind is _Kind.EMAIL:
                enc, dec = _email_value, _email
            elif f.kind is _Kind.PHONE:
                enc, dec = _phone_value, _phone
            elif f.kind is _Kind.CUSTOM:
                enc, dec = custom_to_json, custom_from_json
            elif f.kind is _Kind.JSON:
                enc, dec = converter.unstructure, _json_decoder(f.python_type)
            else:
                enc = dec = None
            self._encoders.append((f.name, enc))
            self._decoders.append((f.name, dec))
        #: the decoders of frame cells: an enum's value rather than the enum
        self._cell_decoders = [
            (name, _compose(dec, _enum_value) if f.kind is _Kind.ENUM and dec else dec)
            for f, (name, dec) in zip(self.fields, self._decoders, strict=True)
        ]

    def to_row(self, entity: Entity) -> dict[str, Any]:
        """The row storing ``entity``."""
        row: dict[str, Any] = {}
        for name, enc in self._encoders:
            value = getattr(entity, name)
            row[name] = value if enc is None or value is None else enc(value)
        for name in self._money:
            row[f"{name}_minor"], row[f"{name}_currency"] = encode_money(row.pop(name))
        return row

    def column_names(self, fields: Sequence[str]) -> list[str]:
        """The columns storing ``fields``, in order (a money field has two)."""
        names: list[str] = []
        for name in fields:
            money = name in self._money
            names.extend((f"{name}_minor", f"{name}_currency") if money else (name,))
        return names

    def cells(
        self,
        raw: Mapping[str, Sequence[Any]],
        processors: Mapping[str, Callable[[Any], Any] | None],
        fields: Sequence[str],
        count: int,
        *,
        whole: Mapping[str, Callable[[Sequence[Any]], list[Any]]] | None = None,
    ) -> dict[str, list[Any]]:
        """The frame cells of ``fields`` from raw driver columns (``count`` rows).

        What :meth:`ColumnReader.cells <crmkit.stores.base.ColumnReader.cells>`
        returns: a field's value as ``from_row`` would decode it, after its
        column's processor (which may give an id's text or leave a datetime's
        text), except that an enum gives its value and a money field its
        ``Decimal`` amounts and ``<field>_currency``.  Each distinct raw value
        of a column is decoded once (decoded values are immutable).

        Args:
            raw: each read column's raw driver values, by column name.
            processors: each read column's result processor (or None).
            fields: the fields wanted, in order.
            count: the number of rows.
            whole: columns converted at once instead (by column name).
        """
        decoders = dict(self._cell_decoders)
        cells: dict[str, list[Any]] = {}
        for name in fields:
            if name in self._money:
                minors = raw.get(f"{name}_minor", (None,) * count)
                currencies = raw.get(f"{name}_currency", (None,) * count)
                cells[name], cells[f"{name}_currency"] = _amounts(minors, currencies)
                continue
            values = raw.get(name, (None,) * count)
            convert = (whole or {}).get(name)
            if convert is not None:
                cells[name] = convert(values)
                continue
            steps = [f for f in (processors.get(name), decoders[name]) if f is not None]
            if not steps:
                cells[name] = values if isinstance(values, list) else list(values)
                continue
            decode = steps[0] if len(steps) == 1 else _compose(steps[0], steps[1])
            cells[name] = _decoded_column(decode, values)
        return cells

    def reader(
        self,
        names: Sequence[str],
        processors: Sequence[Callable[[Any], Any] | None],
        *,
        common: Sequence[str] = (),
    ) -> Callable[[Sequence[Any]], Entity]:
        """A function building the entity from a raw driver row in one pass.

        The function is generated as straight-line code (one statement per
        field, as attrs generates ``__init__``), because it runs for every row
        read by id.

        Args:
            names: the column name of each position of the raw row.
            processors: the result processor of each column (or None).
            common: raw text values frequent in the row (SQLite's ``"[]"`` of an
                empty collection): where a column decodes one to an immutable
                value, that value is computed once and shared.
        """
        index = {name: i for i, name in enumerate(names)}
        namespace: dict[str, Any] = {
            "_new": object.__new__,
            "_set": object.__setattr__,
            "_cls": self.cls,
            "_money": decode_money,
        }
        lines = ["def read(raw):", "    o = _new(_cls)"]
        for n, (name, dec) in enumerate(self._decoders):
            if name in self._money:
                minor, currency = index[f"{name}_minor"], index[f"{name}_currency"]
                lines.append(f"    _set(o, {name!r}, _money(raw[{minor}], raw[{currency}]))")
                continue
            i = index[name]
            proc = processors[i]
            steps = [f for f in (proc, dec) if f is not None]
            if not steps:
                lines.append(f"    _set(o, {name!r}, raw[{i}])")
                continue
            decode = steps[0] if len(steps) == 1 else _compose(steps[0], steps[1])
            namespace[f"_f{n}"] = decode
            lines.append(f"    v = raw[{i}]")
            known = _decoded_once(decode, common)
            if known:
                namespace[f"_known{n}"] = known
                lines.append(
                    f"    _set(o, {name!r}, _known{n}[v] if v in _known{n} "
                    f"else None if v is None else _f{n}(v))"
                )
            else:
                lines.append(f"    _set(o, {name!r}, None if v is None else _f{n}(v))")
        lines.append("    return o")
        exec("\n".join(lines), namespace)
        reader: Callable[[Sequence[Any]], Entity] = namespace["read"]
        return reader

    def encoder(self, name: str) -> Callable[[Any], Any] | None:
        """What turns field ``name``'s (non-None) value into its column value (None: as is)."""
        return dict(self._encoders)[name]

    def json_text(self, name: str) -> Callable[[Any], str] | None:
        """A direct JSON-text encoder of the collection field ``name``, if it has one.

        The text equals ``json.dumps(converter.unstructure(value))`` (what the
        JSON column's encoder writes) for collections of text, e-mails, phones
        and text-valued enums; other fields get ``None``.
        """
        found = next(f for f in self.fields if f.name == name)
        return _json_text_encoder(found.python_type) if found.kind is _Kind.JSON else None

    def writer(
        self,
        names: Sequence[str],
        steps: Mapping[str, Callable[[Any], Any] | None],
        *,
        named: bool,
    ) -> Callable[[Entity], Any]:
        """A function building an insert's driver parameters from an entity in one pass.

        Generated as straight-line code, like :meth:`reader`, because it runs
        for every row inserted.

        Args:
            names: the insert's column names, in parameter order.
            steps: for each column, the function turning the field's value
                into the bound value (``None``: the value as is).  ``None``
                values are bound as NULL without a step.
            named: build a ``{column: value}`` mapping instead of a tuple.
        """
        money = {
            f"{name}_{part}": (name, attr)
            for name in self._money
            for part, attr in (("minor", "minor_units"), ("currency", "currency"))
        }
        namespace: dict[str, Any] = {}
        lines = ["def write(e):"]
        for n, column in enumerate(names):
            if column in money:
                name, attr = money[column]
                lines.append(f"    v = e.{name}")
                lines.append(f"    v = None if v is None else v.{attr}")
            else:
                lines.append(f"    v = e.{column}")
            step = steps.get(column)
            if step is None:
                lines.append(f"    c{n} = v")
            else:
                namespace[f"_f{n}"] = step
                lines.append(f"    c{n} = None if v is None else _f{n}(v)")
        if named:
            items = ", ".join(f"{column!r}: c{n}" for n, column in enumerate(names))
            lines.append(f"    return {{{items}}}")
        else:
            lines.append(f"    return ({''.join(f'c{n}, ' for n in range(len(names)))})")
        exec("\n".join(lines), namespace)
        writer: Callable[[Entity], Any] = namespace["write"]
        return writer

    def from_row(self, row: Mapping[Any, Any]) -> Entity:
        """The entity a row stores (rows are trusted: crmkit validated them on write)."""
        values: dict[str, Any] = {}
        for name, dec in self._decoders:
            if name in self._money:
                values[name] = decode_money(row[f"{name}_minor"], row[f"{name}_currency"])
                continue
            value = row[name]
            values[name] = value if dec is None or value is None else dec(value)
        return typing.cast(Entity, _trusted(self.cls, values))


def _amounts(
    minors: Sequence[int | None], currencies: Sequence[str | None]
) -> tuple[list[Decimal | None], list[str | None]]:
    """The amounts and currencies of stored money columns (None where either is missing).

    An amount is ``decode_money(minor, currency).amount``, computed per
    currency (one exponent look-up each).
    """
    scale = {c: -_exponent(c) for c in set(currencies) if c is not None}
    amounts = [
        None if m is None or c is None else Decimal(m).scaleb(scale[c])
        for m, c in zip(minors, currencies, strict=True)
    ]
    kept = [None if m is None else c for m, c in zip(minors, currencies, strict=True)]
    return amounts, kept


@functools.lru_cache(maxsize=256)
def _exponent(currency: str) -> int:
    return Money.zero(currency).exponent


def _decoded_column(decode: Callable[[Any], Any], values: Sequence[Any]) -> list[Any]:
    """``decode`` of each value (None stays None), once per distinct hashable value."""
    try:
        distinct = set(values)
    except TypeError:  # unhashable (JSON values already parsed by the driver)
        return [None if value is None else decode(value) for value in values]
    decoded = {value: None if value is None else decode(value) for value in distinct}
    if len(decoded) == 1:  # one value (often None) for every record
        return [*decoded.values()] * len(values)
    return list(map(decoded.__getitem__, values))


def _decoded_once(decode: Callable[[Any], Any], raws: Sequence[str]) -> dict[str, Any]:
    """The raw values ``decode`` turns into immutable values, with those values."""
    known = {}
    for raw in raws:
        try:
            value = decode(raw)
            hash(value)  # immutable: shared by every record read
        except Exception:  # not a value of this column
            continue
        known[raw] = value
    return known


def _compose(first: Callable[[Any], Any], then: Callable[[Any], Any]) -> Callable[[Any], Any]:
    def both(value: Any) -> Any:
        return then(first(value))

    return both


#: JSON text of a string, exactly as ``json.dumps`` writes it (ASCII, escaped)
_quote: Final[Callable[[str], str]] = json.encoder.encode_basestring_ascii


def _json_text_encoder(hint: Any) -> Callable[[Any], str] | None:
    """``json.dumps(converter.unstructure(value))`` for a collection of text-like items."""
    if not get_args(hint):  # one value object (a rule's trigger), not a collection
        return None
    item = get_args(hint)[0]
    text: Callable[[Any], str]
    if item is str:
        text = str
    elif item is EmailAddress:
        text = _email_value
    elif item is PhoneNumber:
        text = _phone_value
    elif (
        isinstance(item, type)
        and issubclass(item, enum.Enum)
        and all(type(m.value) is str for m in item)
    ):
        text = _enum_value
    else:
        return None
    if get_origin(hint) is frozenset:  # the converter writes sets sorted

        def encode_set(values: Any) -> str:
            if not values:
                return "[]"
            return "[" + ", ".join([_quote(v) for v in sorted(map(text, values))]) + "]"

        return encode_set

    def encode(values: Any) -> str:
        if not values:
            return "[]"
        return "[" + ", ".join([_quote(text(v)) for v in values]) + "]"

    return encode


def _enum_value(value: enum.Enum) -> Any:
    return value.value


def _email_value(value: EmailAddress) -> str:
    return value.value


def _phone_value(value: PhoneNumber) -> str:
    return value.e164


_CODECS: dict[type[Entity], EntityCodec] = {}


def codec(cls: type[Entity]) -> EntityCodec:
    """The (cached) codec of ``cls``."""
    found = _CODECS.get(cls)
    if found is None:
        found = _CODECS[cls] = EntityCodec(cls)
    return found


def audit_row(
    *,
    entity: str,
    entity_id: UUID,
    version: int,
    action: AuditAction,
    changes: typing.Sequence[AuditChange],
    actor: str | None,
    at: datetime,
) -> dict[str, Any]:
    """The audit_log row of one entry (``seq`` assigned by the database)."""
    return {
        "entity": entity,
        "entity_id": entity_id,
        "version": version,
        "action": action.value,
        "changes": [{"field": c.field, "old": c.old, "new": c.new} for c in changes],
        "actor": actor,
        "at": at,
    }


def created_changes_sql(cls: type[Entity], row: str) -> str | None:
    """SQLite: an expression giving the JSON text of the creation audit of the
    record in table alias ``row``, or ``None`` if a field is of a kind it cannot write.

    The changes are those ``crmkit.app`` audits on creation: each field but the
    system ones that holds a value (not NULL, not false, not an empty
    collection or empty custom values), new value in JSON form, in field order.
    Every column kind handled stores that JSON form or its text: collections
    and custom values as the converter's JSON, enums by value, ids as 32 hex
    digits (written back with hyphens).  Text may escape differently from
    ``json.dumps`` (UTF-8, not ``\\u`` escapes); it decodes the same.
    """
    kinds = {f.name: f.kind for f in field_codecs(cls)}
    parts = []
    for a in attrs.fields(cls):
        if not a.init or a.name in Entity.SYSTEM_FIELDS:
            continue
        column = f'{row}."{a.name}"'
        prefix = f'\'{{"field": {_quote(a.name)}, "old": null, "new": \''
        kind = kinds[a.name]
        if kind in (_Kind.TEXT, _Kind.INT, _Kind.ENUM, _Kind.EMAIL, _Kind.PHONE):
            held, value = f"{column} IS NOT NULL", f"json_quote({column})"
        elif kind is _Kind.BOOL:
            held, value = column, "'true'"
        elif kind is _Kind.UUID:
            held = f"{column} IS NOT NULL"
            value = (
                "'\"' || "
                + " || '-' || ".join(
                    f"substr({column}, {start}, {length})"
                    for start, length in ((1, 8), (9, 4), (13, 4), (17, 4), (21, 12))
                )
                + " || '\"'"
            )
        elif kind is _Kind.JSON:
            held, value = f"{column} IS NOT NULL AND {column} <> '[]'", column
        elif kind is _Kind.CUSTOM:
            held, value = f"{column} IS NOT NULL AND {column} <> '{{}}'", column
        else:  # datetimes, dates, decimals, money: written by Python
            return None
        parts.append(f"CASE WHEN {held} THEN {prefix} || {value} || '}}, ' ELSE '' END")
    if not parts:
        return "'[]'"
    return "'[' || rtrim(" + " || ".join(parts) + ", ', ') || ']'"


def audit_changes_json(changes: typing.Sequence[AuditChange]) -> str:
    """The JSON text of an audit row's ``changes`` column.

    The same text ``json.dumps`` writes for :func:`audit_row`'s ``changes``,
    with text, numbers and lists of text written directly.
    """
    if type(changes) is CreatedChanges:
        prefixes = _CREATED_PREFIXES
        return (
            "["
            + ", ".join(
                [
                    (prefixes.get(field) or _created_prefix(field)) + _json_value(new) + "}"
                    for field, new in changes.pairs
                ]
            )
            + "]"
        )
    return (
        "["
        + ", ".join(
            [
                f'{{"field": {_quote(c.field)}, "old": {_json_value(c.old)}, '
                f'"new": {_json_value(c.new)}}}'
                for c in changes
            ]
        )
        + "]"
    )


#: the JSON text before a created field's value, by field name
_CREATED_PREFIXES: dict[str, str] = {}


def _created_prefix(field: str) -> str:
    prefix = _CREATED_PREFIXES[field] = f'{{"field": {_quote(field)}, "old": null, "new": '
    return prefix


def _json_value(value: object) -> str:
    # exact types only: a bool is an int, a str subclass may write itself differently
    kind = type(value)
    if kind is str:
        return _quote(typing.cast(str, value))
    if value is None:
        return "null"
    if kind is int:
        return int.__repr__(typing.cast(int, value))
    if kind is list:
        items = typing.cast(list[object], value)
        if all(type(v) is str for v in items):
            return "[" + ", ".join([_quote(typing.cast(str, v)) for v in items]) + "]"
    return json.dumps(value)


def audit_entry(row: Mapping[Any, Any]) -> AuditEntry:
    """The :class:`AuditEntry` an audit_log row stores."""
    return AuditEntry(
        seq=row["seq"],
        entity=row["entity"],
        entity_id=row["entity_id"],
        version=row["version"],
        action=AuditAction(row["action"]),
        changes=tuple(AuditChange(c["field"], c["old"], c["new"]) for c in row["changes"]),
        actor=row["actor"],
        at=row["at"],
    )
