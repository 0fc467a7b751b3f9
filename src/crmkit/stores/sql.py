"""``SqlStore``: SQLite (the embedded default) and PostgreSQL, on SQLAlchemy Core.

No ORM session: Table objects, ``select``/``insert``/``update``, rows mapped
to the frozen entities by the codecs in :mod:`crmkit.stores.schema`.

SQLite is configured for safety: WAL journal, ``foreign_keys=ON``, a busy
timeout, ``synchronous=FULL`` (opt out with ``synchronous="NORMAL"``), and
write transactions that begin with ``BEGIN IMMEDIATE`` (SQLAlchemy's
documented pysqlite recipe), so two writers never deadlock on a lock upgrade.
One engine per database file per process.

Every database error is translated at this boundary: unique violations become
:class:`~crmkit.DuplicateError`, stale versions :class:`~crmkit.ConcurrencyError`,
locks and serialization failures a retryable :class:`~crmkit.StorageError`.

.. versionadded:: 0.1
"""

from __future__ import annotations

import json
import operator
import os
import re
import sqlite3
import threading
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from collections.abc import Set as AbstractSet
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from types import MappingProxyType
from typing import Any, Final, Generic, TypeVar, cast
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy import event, exc
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Connection, Engine

from crmkit.core.audit import AuditAction, AuditChange, AuditEntry, CreatedChanges
from crmkit.core.contact_points import PhoneNumber
from crmkit.core.custom_fields import CUSTOM_PREFIX, TYPES_KEY
from crmkit.core.entities import Entity, FieldKind, Organization
from crmkit.core.errors import (
    ConcurrencyError,
    CrmkitError,
    DuplicateError,
    NotFoundError,
    StorageError,
    ValidationError,
)
from crmkit.core.ids import OrganizationId
from crmkit.core.interactions import Interaction, InteractionStatus
from crmkit.core.mail import CampaignEmail
from crmkit.core.money import Money
from crmkit.core.opportunities import Opportunity
from crmkit.core.pipelines import StageKind
from crmkit.core.pushdown import ClosedDealsQuery, ClosedGroups, OpenDealsQuery, OpenGroups
from crmkit.core.query import (
    AnyOf,
    Contains,
    Eq,
    Filter,
    Has,
    In,
    Query,
    Range,
    Restriction,
    Via,
    fold,
    is_custom,
)
from crmkit.core.segments import (
    And,
    Criteria,
    NoInteraction,
    Not,
    OpenedEmail,
    OpenOpportunity,
    Or,
    WonValue,
)
from crmkit.stores import aggregates
from crmkit.stores.schema import (
    TABLES,
    EntityCodec,
    UtcDateTime,
    audit_changes_json,
    audit_entry,
    audit_row,
    audit_table,
    codec,
    created_changes_sql,
    table_name,
)

__all__ = ["SqlStore", "database_revision", "sqlite_url", "upgrade_database"]

E = TypeVar("E", bound=Entity)

#: Rows per executemany batch in ``add_many``.
BATCH_SIZE: Final = 1000
#: How long a SQLite connection waits for another writer before giving up.
BUSY_TIMEOUT_MS: Final = 10_000
#: How many ids per table a unit of work remembers as stored (see ``_SqlUnitOfWork._stored``).
STORED_IDS_KEPT: Final = 10_000


def sqlite_url(path: str | os.PathLike[str]) -> str:
    """The SQLAlchemy URL of a SQLite file."""
    return f"sqlite+pysqlite:///{os.path.abspath(os.fspath(path))}"


# ------------------------------------------------------------------ engines

_engines: dict[tuple[int, str], tuple[Engine, int]] = {}
_engines_lock = threading.Lock()


def _acquire_engine(url: str, synchronous: str, echo: bool) -> Engine:
    key = (os.getpid(), url)
    with _engines_lock:
        found = _engines.get(key)
        if found is not None:
            engine, refs = found
            _engines[key] = (engine, refs + 1)
            return engine
        engine = _create_engine(url, synchronous, echo)
        _engines[key] = (engine, 1)
        return engine


def _release_engine(engine: Engine) -> None:
    with _engines_lock:
        for key, (candidate, refs) in list(_engines.items()):
            if candidate is engine:
                if refs <= 1:
                    del _engines[key]
                    engine.dispose()
                else:
                    _engines[key] = (engine, refs - 1)
                return


def _create_engine(url: str, synchronous: str, echo: bool) -> Engine:
    engine = sa.create_engine(url, echo=echo)
    if engine.dialect.name == "sqlite":
        _configure_sqlite(engine, synchronous, borrowed=False)
    elif engine.dialect.name == "postgresql":

        @event.listens_for(engine, "connect")
        def _pg_connect(dbapi_connection: Any, _record: Any) -> None:
            with dbapi_connection.cursor() as cursor:
                cursor.execute("SET TIME ZONE 'UTC'")
            dbapi_connection.commit()

    return engine


def _borrowed_engine(
    url: str, creator: Callable[[], sqlite3.Connection], synchronous: str
) -> Engine:
    """An engine on the caller's SQLite connections, which crmkit never closes nor resets.

    No pool keeps them (the store keeps one per thread while ``creator``
    still returns it, so a connection the caller closed and reopened is
    picked up) and none is rolled back on return: crmkit ends its own
    transactions, and a transaction the caller has open on the connection is
    the caller's.
    """
    engine = sa.create_engine(
        url,
        creator=lambda: _Borrowed(creator()),
        poolclass=sa.pool.NullPool,
        pool_reset_on_return=None,
    )
    if engine.dialect.name != "sqlite":
        engine.dispose()
        raise ValidationError("creator", "is only supported on SQLite", code="url", value=url)
    _read_converted_dates(engine.dialect)
    _configure_sqlite(engine, synchronous, borrowed=True)
    return engine


def _read_converted_dates(dialect: sa.Dialect) -> None:
    """Let ``dialect`` read DATE and DATETIME columns the driver already converted.

    A connection opened with ``detect_types=sqlite3.PARSE_DECLTYPES`` (Django's
    are) runs the ``sqlite3`` converters registered for those declared types,
    so crmkit's date and datetime columns arrive as ``date`` and ``datetime``
    objects, not the ISO text SQLAlchemy parses.  Only borrowed engines get
    these types: crmkit's own connections never convert.
    """
    colspecs = dict(dialect.colspecs)
    for generic in (sa.Date, sa.DateTime):
        colspecs[generic] = _passing_converted(colspecs[generic])
    dialect.colspecs = colspecs  # this dialect instance only


def _passing_converted(base: type[Any]) -> type[Any]:
    """A subclass of the SQLite type ``base`` whose results may be converted already."""

    def result_processor(self: Any, dialect: sa.Dialect, coltype: object) -> Any:
        parse = base.result_processor(self, dialect, coltype)
        if parse is None:
            return None

        def process(value: Any) -> Any:
            return parse(value) if isinstance(value, str) else value

        return process

    return type(f"Converted{base.__name__}", (base,), {"result_processor": result_processor})


class _Borrowed:
    """A caller's DBAPI connection: crmkit uses it, the caller closes it.

    It commits and rolls back only a transaction crmkit began (``BEGIN
    IMMEDIATE``): SQLAlchemy also "rolls back" after a read, which on a
    connection its owner holds inside a transaction would undo the owner's work.
    """

    __slots__ = ("_dbapi", "_ours")

    def __init__(self, dbapi: sqlite3.Connection) -> None:
        object.__setattr__(self, "_dbapi", dbapi)
        object.__setattr__(self, "_ours", False)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._dbapi, name)

    def __setattr__(self, name: str, value: object) -> None:
        setattr(self._dbapi, name, value)

    def borrows(self, dbapi: sqlite3.Connection) -> bool:
        """Whether this is ``dbapi``."""
        return self._dbapi is dbapi

    def began(self) -> None:
        """crmkit began the connection's current transaction."""
        object.__setattr__(self, "_ours", True)

    def commit(self) -> None:
        if self._ours:
            object.__setattr__(self, "_ours", False)
            self._dbapi.commit()

    def rollback(self) -> None:
        if self._ours:
            object.__setattr__(self, "_ours", False)
            self._dbapi.rollback()

    def close(self) -> None:
        """Nothing: the connection stays open for its owner."""


def _configure_sqlite(engine: Engine, synchronous: str, *, borrowed: bool) -> None:
    """SQLAlchemy's pysqlite recipe: crmkit, not the driver, emits BEGIN."""

    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.create_function("crmkit_fold", 1, _fold_or_none, deterministic=True)
        if not borrowed:
            dbapi_connection.isolation_level = None  # the driver must not BEGIN on its own
        elif dbapi_connection.isolation_level is not None:
            # Setting it would COMMIT a transaction the owner has open: a
            # borrowed connection must be in autocommit mode already (Django's
            # SQLite backend keeps it there, in atomic blocks too).
            raise StorageError(
                "the connection given to crmkit must be in autocommit mode (isolation_level=None)"
            )
        elif dbapi_connection.in_transaction:
            return  # the owner's transaction: no PRAGMA now (WAL cannot switch in one)
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")  # first: WAL may wait
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute(f"PRAGMA synchronous={synchronous}")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        # Writers take the write lock up front, so two writers never deadlock
        # on a lock upgrade.  Readers run each statement in autocommit: in WAL
        # mode every SELECT reads one consistent snapshot and never blocks.
        if not conn.info.get("crmkit_write", True):
            return
        dbapi = conn.connection.dbapi_connection
        if borrowed and dbapi.in_transaction:  # type: ignore[union-attr]
            raise StorageError(
                "the connection crmkit shares is inside a transaction of its owner "
                "(a Django atomic block?): crmkit cannot commit or roll back on its own "
                "there; write to crmkit after that transaction ends "
                "(Django: transaction.on_commit)"
            )
        conn.exec_driver_sql("BEGIN IMMEDIATE")
        if borrowed:
            dbapi.began()  # type: ignore[union-attr]


def _fold_or_none(value: object) -> object:
    return fold(value) if isinstance(value, str) else value


# ------------------------------------------------------------ error mapping

_UNIQUE_SQLITE = re.compile(r"UNIQUE constraint failed: (\w+)\.(\w+)")
_RETRYABLE_PG = {"40001", "40P01", "55P03"}


def _translate(error: Exception, cls: type[Entity] | None) -> CrmkitError:
    """The crmkit error for a SQLAlchemy or DBAPI driver error."""
    entity = cls.ENTITY if cls is not None else "record"
    if isinstance(error, exc.SQLAlchemyError):
        orig = getattr(error, "orig", None)
        integrity = isinstance(error, exc.IntegrityError)
    else:  # raised by the DBAPI cursor of a fast path
        orig = error
        integrity = isinstance(error, _INTEGRITY_ERRORS)
    message = str(orig if orig is not None else error)
    if integrity:
        match = _UNIQUE_SQLITE.search(message)
        if match:
            return DuplicateError(entity, match.group(2))
        diag = getattr(orig, "diag", None)
        constraint = getattr(diag, "constraint_name", None) or ""
        sqlstate = getattr(orig, "sqlstate", None)
        if sqlstate == "23505" or constraint.startswith(("uq_", "pk_")):
            field = (
                "id" if constraint.startswith("pk_") else _field_from_constraint(constraint, cls)
            )
            return DuplicateError(entity, field)
        if "FOREIGN KEY" in message or sqlstate == "23503":
            return ValidationError("", "refers to a record that does not exist", code="reference")
        return ValidationError("", f"violates a database constraint: {message}", code="integrity")
    sqlstate = getattr(orig, "sqlstate", None)
    if sqlstate in _RETRYABLE_PG or "database is locked" in message or "busy" in message:
        return StorageError(f"transient database conflict: {message}", retryable=True)
    return StorageError(f"database error: {message}")


def _field_from_constraint(constraint: str, cls: type[Entity] | None = None) -> str:
    # uq_<table>_<field>; a table name may hold underscores (rule_firings, loss_reasons)
    if cls is not None and cls in TABLES:
        prefix = f"uq_{TABLES[cls].name}_"
        if constraint.startswith(prefix):
            return constraint.removeprefix(prefix)
    parts = constraint.split("_", 2)
    return parts[2] if len(parts) == 3 else constraint


#: DBAPI error classes of the drivers crmkit runs on (raised by the fast paths)
_DBAPI_ERRORS: tuple[type[Exception], ...] = (exc.SQLAlchemyError, sqlite3.Error)
_INTEGRITY_ERRORS: tuple[type[Exception], ...] = (sqlite3.IntegrityError,)
try:  # psycopg is an optional extra
    import psycopg

    _DBAPI_ERRORS += (psycopg.Error,)
    _INTEGRITY_ERRORS += (psycopg.IntegrityError,)
except ImportError:  # pragma: no cover - without the postgres extra
    pass


@contextmanager
def _translating(cls: type[Entity] | None = None) -> Iterator[None]:
    try:
        yield
    except _DBAPI_ERRORS as error:
        raise _translate(error, cls) from error


# ------------------------------------------------------------ query to SQL


def _value(v: object) -> object:
    if isinstance(v, Entity):
        return v.id
    if isinstance(v, PhoneNumber):
        return v.e164
    return getattr(v, "value", v) if not isinstance(v, str | int | UUID | datetime) else v


def _is_text(cls: type[Entity], name: str) -> bool:
    return cls.QUERYABLE.get(name) is FieldKind.TEXT


def _column(table: sa.Table, cls: type[Entity], name: str, dialect: str) -> Any:
    col = table.c[name]
    if dialect == "postgresql" and _is_text(cls, name):
        return col.collate("C")  # code-point order, as in memory and SQLite
    return col


def _money_condition(table: sa.Table, f: Filter) -> Any:
    """Money filters on a money field's columns, compared in integer minor units."""
    minor, currency = table.c[f"{f.field}_minor"], table.c[f"{f.field}_currency"]
    return _money_filter(f, currency, minor, minor, lambda money: money.minor_units)


def _money_filter(
    f: Filter, currency: Any, amount: Any, present: Any, bind: Callable[[Money], object]
) -> Any:
    """A money filter: one currency at a time, ``amount`` compared with ``bind(money)``.

    ``present`` is the expression that is NULL when a record has no value.
    """

    def equal(value: object) -> Any:
        if value is None:
            return present.is_(None)
        assert isinstance(value, Money)
        return sa.and_(currency == value.currency, amount == bind(value))

    if isinstance(f, Eq):
        return equal(f.value)
    if isinstance(f, In):
        return sa.or_(sa.false(), *(equal(v) for v in f.values))
    assert isinstance(f, Range)
    parts: list[Any] = [present.is_not(None)]
    for bound in (f.low, f.high):
        if isinstance(bound, Money):
            parts.append(currency == bound.currency)
    if isinstance(f.low, Money):
        parts.append(amount >= bind(f.low))
    if isinstance(f.high, Money):
        high = bind(f.high)
        parts.append(amount <= high if f.include_high else amount < high)
    return sa.and_(*parts)


def _order_columns(table: sa.Table, cls: type[Entity], name: str, dialect: str) -> list[Any]:
    """The columns sorting by ``name`` means (money: currency, then amount)."""
    if cls.QUERYABLE.get(name) is FieldKind.MONEY:
        return [table.c[f"{name}_currency"], table.c[f"{name}_minor"]]
    return [_column(table, cls, name, dialect)]


def _condition(table: sa.Table, cls: type[Entity], f: Filter, dialect: str) -> Any:
    if cls.QUERYABLE.get(f.field) is FieldKind.MONEY:
        return _money_condition(table, f)
    col = _column(table, cls, f.field, dialect)
    if isinstance(f, Eq):
        value = _value(f.value)
        return table.c[f.field].is_(None) if value is None else col == value
    if isinstance(f, In):
        values = [_value(v) for v in f.values]
        present = [v for v in values if v is not None]
        cond = col.in_(present) if present else sa.false()
        return sa.or_(cond, table.c[f.field].is_(None)) if None in values else cond
    if isinstance(f, Range):
        parts = []
        if f.low is not None:
            parts.append(col >= _value(f.low))
        if f.high is not None:
            parts.append(col <= _value(f.high) if f.include_high else col < _value(f.high))
        return sa.and_(table.c[f.field].is_not(None), *parts)
    if isinstance(f, Contains):
        folded = (
            sa.func.crmkit_fold(table.c[f.field])
            if dialect == "sqlite"
            else sa.func.lower(table.c[f.field])
        )
        return folded.contains(fold(f.text), autoescape=True)
    assert isinstance(f, Has)
    value = _value(f.value)
    if dialect == "postgresql":
        return sa.type_coerce(table.c[f.field], JSONB()).contains([value])
    each = sa.func.json_each(table.c[f.field]).table_valued("value")
    return sa.exists(sa.select(1).select_from(each).where(each.c.value == value))


def _filter_condition(
    table: sa.Table, cls: type[Entity], f: Filter, query: Query, dialect: str
) -> Any:
    if is_custom(f.field):
        return _custom_condition(table, f, _custom_kind(query, f.field), dialect)
    return _condition(table, cls, f, dialect)


def _where(table: sa.Table, cls: type[Entity], query: Query, dialect: str) -> list[Any]:
    conds = [_filter_condition(table, cls, f, query, dialect) for f in query.filters]
    if query.archived is not None:
        conds.append(table.c.archived.is_(query.archived))
    if query.restrict is not None:
        conds.append(_restrict_condition(table, cls, query.restrict, dialect))
    return conds


def _restrict_condition(table: sa.Table, cls: type[Entity], r: Restriction, dialect: str) -> Any:
    """An access restriction as SQL: related records through a subquery, no join."""
    if isinstance(r, AnyOf):
        return sa.or_(sa.false(), *(_restrict_condition(table, cls, p, dialect) for p in r.parts))
    if isinstance(r, Via):
        target = TABLES[r.target]
        related = (
            sa.select(target.c.id)
            .where(_condition(target, r.target, r.where, dialect))
            .correlate(None)  # never correlated to a join of the same table (analytics)
        )
        return sa.and_(table.c[r.field].is_not(None), table.c[r.field].in_(related))
    return sa.and_(table.c[r.field].is_not(None), _condition(table, cls, r, dialect))


# ------------------------------------------------------------ segment criteria
# The tree becomes one WHERE clause over organizations; history criteria are
# correlated subqueries, so no join can repeat a row (or a won amount).

#: No access restriction on any type.
_NO_LIMITS: Final[Mapping[type[Entity], Restriction | None]] = MappingProxyType({})


def _criteria_condition(
    org: sa.Table,
    node: Criteria,
    query: Query,
    dialect: str,
    as_of: datetime,
    restrict: Mapping[type[Entity], Restriction | None] = _NO_LIMITS,
) -> Any:
    """The SQL condition of a criteria tree (NULL counts as false, as in memory).

    ``restrict`` limits the records history criteria count (an access scope's).
    """

    def limited(cls: type[Entity]) -> list[Any]:
        r = restrict.get(cls)
        return [] if r is None else [_restrict_condition(TABLES[cls], cls, r, dialect)]

    def walk(part: Criteria) -> Any:
        return _criteria_condition(org, part, query, dialect, as_of, restrict)

    if isinstance(node, Eq | In | Range | Contains | Has):
        return _filter_condition(org, Organization, node, query, dialect)
    if isinstance(node, And):
        return sa.and_(sa.true(), *(walk(p) for p in node.parts))
    if isinstance(node, Or):
        return sa.or_(sa.false(), *(walk(p) for p in node.parts))
    if isinstance(node, Not):
        return sa.not_(sa.func.coalesce(walk(node.part), sa.false()))
    if isinstance(node, NoInteraction):
        it = TABLES[Interaction]
        since = as_of - timedelta(days=node.days)
        done = sa.select(1).where(
            *limited(Interaction),
            it.c.organization_id == org.c.id,
            it.c.status == InteractionStatus.DONE.value,
            it.c.archived.is_(False),
            it.c.occurred_at >= since,
            it.c.occurred_at <= as_of,
        )
        return ~sa.exists(done)
    if isinstance(node, OpenedEmail):
        mail = TABLES[CampaignEmail]
        conds = [
            *limited(CampaignEmail),
            mail.c.organization_id == org.c.id,
            mail.c.campaign_id == node.campaign,
            mail.c.archived.is_(False),
            mail.c.opened_at.is_not(None),
        ]
        if node.start is not None:
            conds.append(mail.c.opened_at >= node.start)
        if node.end is not None:
            conds.append(mail.c.opened_at < node.end)
        return sa.exists(sa.select(1).where(*conds))
    opp = TABLES[Opportunity]
    if isinstance(node, WonValue):
        total = (
            sa.select(sa.func.coalesce(sa.func.sum(opp.c.amount_minor), 0))
            .where(
                *limited(Opportunity),
                opp.c.organization_id == org.c.id,
                opp.c.status == StageKind.WON.value,
                opp.c.archived.is_(False),
                opp.c.amount_currency == node.at_least.currency,
                opp.c.closed_at >= node.start,
                opp.c.closed_at < node.end,
            )
            .scalar_subquery()
        )
        return total >= node.at_least.minor_units
    assert isinstance(node, OpenOpportunity)
    conds = [
        *limited(Opportunity),
        opp.c.organization_id == org.c.id,
        opp.c.status == StageKind.OPEN.value,
        opp.c.archived.is_(False),
        _column(opp, Opportunity, "stage", dialect) == node.stage,
    ]
    if node.pipeline is not None:
        conds.append(_column(opp, Opportunity, "pipeline", dialect) == node.pipeline)
    return sa.exists(sa.select(1).where(*conds))


# ------------------------------------------------------- custom field queries
# A custom value counts only when its JSON has the type of the field's kind
# (``$types`` names the non-text strings); anything else reads as NULL, as
# :func:`crmkit.core.query.custom_value` does in memory.

#: the ``$types`` tag of kinds whose values are stored as non-text strings
_CUSTOM_TAGS: Final = {
    FieldKind.DECIMAL: "decimal",
    FieldKind.DATE: "date",
    FieldKind.DATETIME: "datetime",
    FieldKind.ID: "reference",
}


def _custom_kind(query: Query, name: str) -> FieldKind:
    kind = dict(query.custom_kinds).get(name)
    if kind is None:
        raise ValidationError(name, "is not a custom field of this record", code="unknown_field")
    return kind


def _custom_parts(table: sa.Table, name: str, kind: FieldKind, dialect: str) -> list[Any]:
    """The SQL expressions of custom field ``name``: one, or (currency, amount) for money.

    Each is NULL when the record has no value of the kind.
    """
    key = name[len(CUSTOM_PREFIX) :]
    doc: Any
    elem: Any
    if dialect == "postgresql":
        doc = sa.type_coerce(table.c.custom, JSONB())
        elem = doc[key]
        jtype = sa.func.jsonb_typeof(elem)
        tag = doc[TYPES_KEY][key].astext
        text = elem.astext
        numeric: Any = sa.Numeric()
    else:
        doc = table.c.custom
        path = f"$.{key}"
        elem = None
        jtype = sa.func.json_type(doc, path)
        tag = sa.func.json_extract(doc, f'$."{TYPES_KEY}".{key}')
        text = sa.func.json_extract(doc, path)
        numeric = sa.Float()

    def when(cond: Any, expr: Any) -> Any:
        return sa.case((cond, expr), else_=sa.null())

    string = "string" if dialect == "postgresql" else "text"
    if kind is FieldKind.MONEY:
        is_money = jtype == "object"
        if dialect == "postgresql":
            currency = doc[key]["currency"].astext.collate("C")
            amount = sa.cast(doc[key]["amount"].astext, numeric)
        else:
            currency = sa.func.json_extract(doc, f"$.{key}.currency")
            amount = sa.cast(sa.func.json_extract(doc, f"$.{key}.amount"), numeric)
        return [when(is_money, currency), when(is_money, amount)]
    if kind is FieldKind.TEXT:
        value = text.collate("C") if dialect == "postgresql" else text
        return [when(sa.and_(jtype == string, tag.is_(None)), value)]
    if kind is FieldKind.INT:
        if dialect == "postgresql":
            return [when(jtype == "number", sa.cast(text, numeric))]
        return [when(jtype == "integer", text)]
    if kind is FieldKind.BOOL:
        if dialect == "postgresql":
            return [when(jtype == "boolean", sa.cast(text, sa.Boolean()))]
        return [when(jtype.in_(["true", "false"]), text)]
    if kind is FieldKind.SET:
        return [when(jtype == "array", elem if elem is not None else text)]
    expected = _CUSTOM_TAGS[kind]
    value = sa.cast(text, numeric) if kind is FieldKind.DECIMAL else text
    if dialect == "postgresql" and kind is not FieldKind.DECIMAL:
        value = value.collate("C")
    return [when(sa.and_(jtype == string, tag == expected), value)]


def _custom_bind(kind: FieldKind, value: object, dialect: str) -> object:
    """A filter value as the custom field's SQL expression compares it."""
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat(timespec="microseconds")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, UUID):
        return str(value)
    if kind is FieldKind.DECIMAL and isinstance(value, Decimal | int) and dialect == "sqlite":
        return float(value)
    return value


def _custom_condition(table: sa.Table, f: Filter, kind: FieldKind, dialect: str) -> Any:
    parts = _custom_parts(table, f.field, kind, dialect)
    if kind is FieldKind.MONEY:
        currency, amount = parts

        def number(money: Money) -> object:
            return float(money.amount) if dialect == "sqlite" else money.amount

        return _money_filter(f, currency, amount, currency, number)
    (expr,) = parts
    if isinstance(f, Has):
        value = _custom_bind(kind, f.value, dialect)
        if dialect == "postgresql":
            return sa.and_(expr.is_not(None), expr.contains([value]))
        key = f.field[len(CUSTOM_PREFIX) :]
        each = sa.func.json_each(table.c.custom, f"$.{key}").table_valued("value")
        found = sa.exists(sa.select(1).select_from(each).where(each.c.value == value))
        return sa.and_(expr.is_not(None), found)
    if isinstance(f, Contains):
        # fold the uncollated text: lower() under COLLATE "C" leaves non-ASCII as is
        key = f.field[len(CUSTOM_PREFIX) :]
        if dialect == "postgresql":
            raw = sa.type_coerce(table.c.custom, JSONB())[key].astext
            folded = sa.func.lower(raw)
        else:
            folded = sa.func.crmkit_fold(sa.func.json_extract(table.c.custom, f"$.{key}"))
        return sa.and_(expr.is_not(None), folded.contains(fold(f.text), autoescape=True))
    if isinstance(f, Eq):
        if f.value is None:
            return expr.is_(None)
        return expr == _custom_bind(kind, f.value, dialect)
    if isinstance(f, In):
        values = [_custom_bind(kind, v, dialect) for v in f.values]
        present = [v for v in values if v is not None]
        cond = expr.in_(present) if present else sa.false()
        return sa.or_(cond, expr.is_(None)) if None in values else cond
    assert isinstance(f, Range)
    conds = [expr.is_not(None)]
    if f.low is not None:
        conds.append(expr >= _custom_bind(kind, f.low, dialect))
    if f.high is not None:
        high = _custom_bind(kind, f.high, dialect)
        conds.append(expr <= high if f.include_high else expr < high)
    return sa.and_(*conds)


# ------------------------------------------------------- compiled statements


class _Compiled:
    """One table's hot statements, compiled once by SQLAlchemy Core for a dialect.

    They run on the DBAPI cursor with SQLAlchemy's own bind and result
    processors for each column type, which skips the per-execution overhead
    (cache keys, parameter objects, result metadata) of ``Connection.execute``.
    """

    def __init__(self, table: sa.Table, dialect: sa.Dialect):
        columns = list(table.c)
        self.names = [c.name for c in columns]
        self.results = [_result_processor(c, dialect) for c in columns]
        # inserts leave out database-generated keys (the audit log's seq)
        inserted = [c for c in columns if not (c.primary_key and c.autoincrement is True)]
        self.insert_names = [c.name for c in inserted]
        self.named = dialect.paramstyle in ("named", "pyformat")
        insert = table.insert().compile(dialect=dialect, column_keys=self.insert_names)
        self.insert_sql = insert.string
        order = self.insert_names if self.named else list(insert.positiontup or ())
        index = {name: i for i, name in enumerate(self.insert_names)}
        self.insert_order = [index[name] for name in order]
        self.binds = [_bind_processor(c, dialect) for c in inserted]
        self._json_columns = frozenset(c.name for c in inserted if isinstance(c.type, sa.JSON))
        self._sqlite = dialect.name == "sqlite"
        self._uuid_columns = frozenset(c.name for c in inserted if isinstance(c.type, sa.Uuid))
        # the parameter positions of columns an insert may leave out (then NULL)
        self._omittable = tuple(
            p
            for p, i in enumerate(self.insert_order)
            if inserted[i].nullable and inserted[i].server_default is None
        )
        self._table = table
        self._dialect = dialect
        self._sparse_sql: dict[tuple[int, ...], str] = {}
        self._readers: dict[type[Entity], Callable[[Sequence[Any]], Entity]] = {}
        self._writers: dict[type[Entity], Callable[[Entity], Any]] = {}
        key = table.primary_key.columns.values()[0]
        select = sa.select(table).where(key == sa.bindparam("id"))
        self.select_sql = select.compile(dialect=dialect).string
        self.id_bind = key.type._cached_bind_processor(dialect)

    def params(self, row: dict[str, Any]) -> Any:
        """Driver parameters of one insert row."""
        values = [row[name] for name in self.insert_names]
        bound = [
            v if b is None or v is None else b(v) for v, b in zip(values, self.binds, strict=True)
        ]
        if self.named:
            return dict(zip(self.insert_names, bound, strict=True))
        return tuple(bound[i] for i in self.insert_order)

    def sparse(self, params: list[Any]) -> tuple[str, list[Any]]:
        """The insert of positional rows ``params`` without the columns NULL in each
        of them, and the rows without those values (SQLite; elsewhere as given).

        SQLite's driver binds a ``None`` at about three times the cost of a text
        value (it looks for an adapter of ``None`` each time), and a batch of new
        records, imported ones above all, leaves most optional columns empty: an
        organization's insert binds 12 NULLs of 25 values.  Left out, the
        columns are NULL all the same.
        """
        if not self._sqlite or not params:
            return self.insert_sql, params
        first = params[0]
        nulls = tuple(p for p in self._omittable if first[p] is None)
        if not nulls:
            return self.insert_sql, params
        if len(params) > 1 and len(set(map(operator.itemgetter(*nulls), params))) > 1:
            nulls = tuple(p for p in nulls if set(map(operator.itemgetter(p), params)) == {None})
        keep = tuple(p for p in range(len(first)) if p not in nulls)
        if not nulls or len(keep) < 2:  # (one kept value would not make tuples)
            return self.insert_sql, params
        sql = self._sparse_sql.get(nulls)
        if sql is None:
            if len(self._sparse_sql) >= 256:  # rows with ever new empty columns: start over
                self._sparse_sql.clear()
            quote = self._dialect.identifier_preparer.quote
            columns = [self.insert_names[self.insert_order[p]] for p in keep]
            sql = self._sparse_sql[nulls] = (
                f"INSERT INTO {quote(self._table.name)} ({', '.join(map(quote, columns))}) "
                f"VALUES ({', '.join('?' * len(columns))})"
            )
        return sql, list(map(operator.itemgetter(*keep), params))

    def writer(self, codec: EntityCodec) -> Callable[[Entity], Any]:
        """A function giving the driver parameters of an entity's insert row.

        The same values as ``params(codec.to_row(entity))``, built in one pass:
        no row dict, and collections of text written to JSON directly on SQLite.
        """
        writer = self._writers.get(codec.cls)
        if writer is None:
            order = [self.insert_names[i] for i in self.insert_order]
            binds = dict(zip(self.insert_names, self.binds, strict=True))
            fields = {f.name for f in codec.fields}
            steps: dict[str, Callable[[Any], Any] | None] = {}
            for name in order:
                text = codec.json_text(name) if name in fields else None
                if self._sqlite and name in self._json_columns and text is not None:
                    steps[name] = text  # the JSON bind would write the same text
                    continue
                encode = codec.encoder(name) if name in fields else None
                bind = binds[name]
                if self._sqlite and name in self._uuid_columns and encode is None:
                    steps[name] = _uuid_hex  # SQLite's Uuid bind: the 32 hex digits
                elif encode is not None and bind is not None:
                    # custom values and addresses: most records share the empty value
                    steps[name] = _last_value_cached(_compose(encode, bind))
                else:
                    steps[name] = encode or bind
            writer = self._writers[codec.cls] = codec.writer(order, steps, named=self.named)
        return writer

    def id_param(self, id: UUID) -> Any:
        value = self.id_bind(id) if self.id_bind is not None else id
        return {"id": value} if self.named else (value,)

    def entity(self, codec: EntityCodec, raw: Sequence[Any]) -> Entity:
        """The entity a raw driver row of this table stores."""
        reader = self._readers.get(codec.cls)
        if reader is None:
            common = ("[]", "{}") if self._sqlite else ()  # empty collections, custom values
            reader = codec.reader(self.names, self.results, common=common)
            self._readers[codec.cls] = reader
        return reader(raw)

    def decode(self, raw: Sequence[Any]) -> dict[str, Any]:
        """A result row as ``{column: python value}``."""
        return {
            name: value if proc is None or value is None else proc(value)
            for name, value, proc in zip(self.names, raw, self.results, strict=True)
        }


def _result_processor(column: sa.Column[Any], dialect: sa.Dialect) -> Callable[[Any], Any] | None:
    """SQLAlchemy's result processor for ``column``, with SQLite shortcuts.

    SQLite returns datetimes and dates as ISO text (in UTC; ``fromisoformat``
    reads it directly, and passes a value a borrowed connection converted
    already) and JSON as text (an empty list or object needs no decoder).
    """
    processor: Callable[[Any], Any] | None = column.type._cached_result_processor(dialect, None)
    if dialect.name != "sqlite" or processor is None:
        return processor
    if isinstance(column.type, UtcDateTime):
        return _sqlite_utc_datetime
    if isinstance(column.type, sa.Date):
        return _sqlite_date
    if isinstance(column.type, sa.JSON):
        decode = processor

        def json_value(value: Any) -> Any:
            if value == "[]":
                return []
            return {} if value == "{}" else decode(value)  # no custom values

        return json_value
    return processor


def _cell_processor(column: sa.Column[Any], dialect: sa.Dialect) -> Callable[[Any], Any] | None:
    """What turns ``column``'s driver value into its frame cell (see ``ColumnReader.cells``).

    An id becomes its canonical text (on SQLite, straight from the stored hex);
    a datetime on SQLite stays the stored UTC text; other columns get their
    :func:`_result_processor`.
    """
    if isinstance(column.type, sa.Uuid):
        if dialect.name == "sqlite":
            return _hex_id_text
        processor = _result_processor(column, dialect)
        return str if processor is None else _compose_str(processor)
    if isinstance(column.type, UtcDateTime) and dialect.name == "sqlite":
        return None
    return _result_processor(column, dialect)


def _hex_id_text(value: str | UUID) -> str:
    """``str(UUID(value))`` of SQLite's 32 hex digits (or of a UUID a driver converted)."""
    if isinstance(value, str) and len(value) == 32:
        return f"{value[:8]}-{value[8:12]}-{value[12:16]}-{value[16:20]}-{value[20:]}"
    return str(value if isinstance(value, UUID) else UUID(value))


def _hex_ids_text(values: Sequence[Any]) -> list[str]:
    """:func:`_hex_id_text` of every (non-null) id of a column, at once with numpy."""
    import numpy as np  # there with pandas, the only reader of cells

    texts = np.array(values)  # all text of 32 characters at most: <U32 (else None, a UUID...)
    if texts.dtype != np.dtype("U32") or not (np.strings.str_len(texts) == 32).all():
        return [_hex_id_text(v) for v in values]
    hexes = texts.view(np.uint32).reshape(-1, 32)
    text = np.full((len(values), 36), ord("-"), dtype=np.uint32)
    for start, end, at in ((0, 8, 0), (8, 12, 9), (12, 16, 14), (16, 20, 19), (20, 32, 24)):
        text[:, at : at + end - start] = hexes[:, start:end]
    ids: list[str] = text.view("U36").ravel().tolist()
    return ids


def _compose_str(processor: Callable[[Any], Any]) -> Callable[[Any], str]:
    def text(value: Any) -> str:
        return str(processor(value))

    return text


def _sqlite_utc_datetime(value: str | datetime) -> datetime:
    try:
        return datetime.fromisoformat(value).replace(tzinfo=UTC)  # type: ignore[arg-type]
    except TypeError:  # converted by the driver already (a borrowed Django connection)
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC)


def _sqlite_date(value: str | date) -> date:
    try:
        return date.fromisoformat(value)  # type: ignore[arg-type]
    except TypeError:  # converted by the driver already (a borrowed Django connection)
        assert isinstance(value, date)
        return value


def _bind_processor(column: sa.Column[Any], dialect: sa.Dialect) -> Callable[[Any], Any] | None:
    """SQLAlchemy's bind processor for ``column``, with a shortcut for empty JSON lists.

    On SQLite the JSON processor is ``json.dumps``; most collections (tags,
    phones, addresses) and custom values are empty, and ``"[]"`` and ``"{}"``
    need no encoder.
    """
    processor: Callable[[Any], Any] | None = column.type._cached_bind_processor(dialect)
    if processor is not None and isinstance(column.type, UtcDateTime):
        return _last_value_cached(processor)
    if processor is None or dialect.name != "sqlite" or not isinstance(column.type, sa.JSON):
        return processor
    encode = processor

    def json_text(value: Any) -> Any:
        if value == []:
            return "[]"
        return "{}" if value == {} else encode(value)  # no custom values

    return json_text


def _last_value_cached(process: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """``process`` remembering its last value: the rows of one bulk insert share
    their timestamps, which then convert once.  Values are compared by identity
    (the pair held keeps the value alive, so its id is not reused)."""
    last: list[tuple[object, Any]] = [(object(), None)]

    def cached(value: Any) -> Any:
        seen, result = last[0]  # one read: threads may replace the pair meanwhile
        if seen is value:
            return result
        result = process(value)
        last[0] = (value, result)
        return result

    return cached


#: an id's 32 hex digits, as SQLAlchemy's ``Uuid`` binds it on SQLite (no ``isinstance`` checks)
_uuid_hex: Final[Callable[[UUID], str]] = UUID.hex.fget  # type: ignore[attr-defined]


def _compose(first: Callable[[Any], Any], then: Callable[[Any], Any]) -> Callable[[Any], Any]:
    def both(value: Any) -> Any:
        return then(first(value))

    return both


_compiled_cache: dict[tuple[str, str], _Compiled] = {}
_NO_IDS: Final[frozenset[UUID]] = frozenset()


class _IdsIn:
    """``SELECT id, <column> FROM <table> WHERE <column> IN (...)`` with room for
    ``size`` values, compiled once by SQLAlchemy Core and run on the DBAPI
    cursor with the columns' own bind and result processors, as
    :class:`_Compiled`'s statements are.  Unused places are bound to NULL,
    which matches nothing, so a few sizes serve every batch."""

    def __init__(self, table: sa.Table, field: str, size: int, dialect: sa.Dialect):
        key = table.primary_key.columns.values()[0]
        column = table.c[field]
        names = [f"v{i}" for i in range(size)]
        stmt = sa.select(key, column.label("value")).where(
            column.in_([sa.bindparam(name, type_=column.type) for name in names])
        )
        compiled = stmt.compile(dialect=dialect)
        self.sql = compiled.string
        self.size = size
        self.named = dialect.paramstyle in ("named", "pyformat")
        if not self.named and list(compiled.positiontup or ()) != names:  # pragma: no cover
            raise AssertionError("the IN list's parameters are out of order")
        self.names = names
        self.bind = column.type._cached_bind_processor(dialect)
        self.id = _result_processor(key, dialect)
        self.value = _result_processor(column, dialect)

    def params(self, values: Sequence[object]) -> Any:
        bind = self.bind
        bound = [v if bind is None else bind(v) for v in values]
        bound += [None] * (self.size - len(bound))
        return dict(zip(self.names, bound, strict=True)) if self.named else bound

    def run(self, cursor: Any, values: Sequence[object], found: dict[object, UUID]) -> None:
        """Add ``{value: id}`` of the rows holding one of ``values`` (``size`` at most)."""
        cursor.execute(self.sql, self.params(values))
        read_id, read_value = self.id, self.value
        for raw_id, raw_value in cursor.fetchall():
            id = raw_id if read_id is None else read_id(raw_id)
            value = raw_value if read_value is None or raw_value is None else read_value(raw_value)
            found[value] = id


_ids_in_cache: dict[tuple[str, str, int, str], _IdsIn] = {}


def _ids_in(
    cursor: Any, table: sa.Table, field: str, values: Sequence[object], dialect: sa.Dialect
) -> dict[object, UUID]:
    """``{value: id}`` of the rows of ``table`` whose ``field`` is one of ``values`` (not None)."""
    found: dict[object, UUID] = {}
    for start in range(0, len(values), BATCH_SIZE):
        chunk = values[start : start + BATCH_SIZE]
        size = 1 << (len(chunk) - 1).bit_length()  # a power of two: few statements to compile
        key = (table.name, field, size, dialect.name)
        query = _ids_in_cache.get(key)
        if query is None:
            query = _ids_in_cache[key] = _IdsIn(table, field, size, dialect)
        query.run(cursor, chunk, found)
    return found


def _compiled(table: sa.Table, dialect: sa.Dialect) -> _Compiled:
    key = (table.name, dialect.name)
    found = _compiled_cache.get(key)
    if found is None:
        found = _compiled_cache[key] = _Compiled(table, dialect)
    return found


# ------------------------------------------------------------- repositories


class _SqlRepository(Generic[E]):
    def __init__(self, uow: _SqlUnitOfWork, cls: type[E]):
        self._uow = uow
        self._cls = cls
        self._codec = codec(cls)
        self._table = TABLES[cls]

    @property
    def _conn(self) -> Connection:
        return self._uow.connection

    def _check_references(self, entities: Sequence[E]) -> None:
        for name, target in self._cls.REFERENCES.items():
            wanted = {getattr(e, name) for e in entities} - {None}
            wanted -= {e.id for e in entities} if target is self._cls else set()
            table = TABLES[target]
            wanted -= self._uow.stored_ids(table.name)  # seen stored in this transaction
            if not wanted:
                continue
            cursor = self._uow.cursor()
            try:
                found = _ids_in(cursor, table, "id", list(wanted), self._conn.dialect)
            finally:
                cursor.close()
            if wanted - found.keys():
                raise ValidationError(
                    name, f"refers to a {target.ENTITY} that does not exist", code="reference"
                )
            self._uow.remember(table.name, found.values())

    def add(self, entity: E) -> None:
        self.add_many([entity])

    def add_many(self, entities: Sequence[E]) -> None:
        if not entities:
            return
        compiled = _compiled(self._table, self._conn.dialect)
        with _translating(self._cls):
            self._check_references(entities)
            write = compiled.writer(self._codec)
            params = [write(e) for e in entities]
            cursor = self._uow.cursor()
            try:
                for start in range(0, len(params), BATCH_SIZE):
                    sql, rows = compiled.sparse(params[start : start + BATCH_SIZE])
                    cursor.executemany(sql, rows)
            finally:
                cursor.close()

    def get(self, id: UUID) -> E:
        compiled = _compiled(self._table, self._conn.dialect)
        try:  # the hottest path: no context managers
            cursor = self._uow.cursor()
            try:
                cursor.execute(compiled.select_sql, compiled.id_param(id))
                raw = cursor.fetchone()
            finally:
                cursor.close()
        except _DBAPI_ERRORS as error:
            raise _translate(error, self._cls) from error
        if raw is None:
            raise NotFoundError(self._cls.ENTITY, id)
        return cast(E, compiled.entity(self._codec, raw))

    def get_many(self, ids: Collection[UUID]) -> dict[UUID, E]:
        result: dict[UUID, E] = {}
        wanted = list(ids)
        with _translating(self._cls):
            for start in range(0, len(wanted), BATCH_SIZE):
                chunk = wanted[start : start + BATCH_SIZE]
                stmt = sa.select(self._table).where(self._table.c.id.in_(chunk))
                for row in self._conn.execute(stmt).mappings():
                    entity = cast(E, self._codec.from_row(row))
                    result[entity.id] = entity
        return result

    def get_by(self, field: str, value: object) -> E | None:
        if field not in self._cls.UNIQUE:
            raise ValidationError(field, "is not a unique field", code="unknown_field")
        if value is None:
            return None
        stmt = sa.select(self._table).where(self._table.c[field] == value)
        with _translating(self._cls):
            row = self._conn.execute(stmt).mappings().first()
        return None if row is None else cast(E, self._codec.from_row(row))

    def ids_by(self, field: str, values: Collection[object]) -> dict[object, UUID]:
        if field != "id" and field not in self._cls.UNIQUE:
            raise ValidationError(field, "is not a unique field", code="unknown_field")
        wanted = [v for v in values if v is not None]
        if not wanted:
            return {}
        with _translating(self._cls):
            cursor = self._uow.cursor()
            try:
                found = _ids_in(cursor, self._table, field, wanted, self._conn.dialect)
            finally:
                cursor.close()
        self._uow.remember(self._table.name, found.values())
        return found

    def update(self, entity: E, *, expected_version: int) -> None:
        table = self._table
        row = self._codec.to_row(entity)
        del row["id"]
        stmt = (
            table.update()
            .where(table.c.id == entity.id, table.c.version == expected_version)
            .values(row)
        )
        with _translating(self._cls):
            self._check_references([entity])
            updated = self._conn.execute(stmt).rowcount
            if updated == 1:
                return
            actual = self._conn.scalar(sa.select(table.c.version).where(table.c.id == entity.id))
        if actual is None:
            raise NotFoundError(self._cls.ENTITY, entity.id)
        raise ConcurrencyError(self._cls.ENTITY, entity.id, expected_version, actual)

    def update_many(self, entities: Sequence[E], *, expected_versions: Sequence[int]) -> None:
        """Update many records at once (``executemany``); the checks of :meth:`update`."""
        if len(entities) != len(expected_versions):
            raise ValidationError(
                "expected_versions", "must give one version per record", code="range"
            )
        if not entities:
            return
        table = self._table
        params: list[dict[str, Any]] = []
        for entity, version in zip(entities, expected_versions, strict=True):
            row = self._codec.to_row(entity)
            params.append({f"v_{k}": v for k, v in row.items()} | {"v_expected": version})
        columns = [k[2:] for k in params[0] if k not in ("v_id", "v_expected")]
        stmt = (
            table.update()
            .where(
                table.c.id == sa.bindparam("v_id"), table.c.version == sa.bindparam("v_expected")
            )
            .values({c: sa.bindparam(f"v_{c}") for c in columns})
        )
        with _translating(self._cls):
            self._check_references(entities)
            for start in range(0, len(params), BATCH_SIZE):
                chunk = params[start : start + BATCH_SIZE]
                updated = self._conn.execute(stmt, chunk).rowcount
                if updated == len(chunk):
                    continue
                ids = [p["v_id"] for p in chunk]
                found = {
                    row[0]: row[1]
                    for row in self._conn.execute(
                        sa.select(table.c.id, table.c.version).where(table.c.id.in_(ids))
                    )
                }
                for p in chunk:
                    actual = found.get(p["v_id"])
                    if actual is None:
                        raise NotFoundError(self._cls.ENTITY, p["v_id"])
                    if actual != p["v_version"]:
                        raise ConcurrencyError(self._cls.ENTITY, p["v_id"], p["v_expected"], actual)

    def find(self, query: Query) -> list[E]:
        stmt = self._find_statement(query)
        with _translating(self._cls):
            rows = self._conn.execute(stmt).mappings().all()
        return [cast(E, self._codec.from_row(r)) for r in rows]

    def cells(self, query: Query, fields: Sequence[str]) -> dict[str, Sequence[Any]]:
        """The frame cells of ``fields`` over the records :meth:`find` returns.

        Only the columns of ``fields`` are read, from the driver's rows
        column by column, without building the records.  Ids come as their
        canonical text, SQLite's datetimes as their stored UTC text (pandas
        parses a whole column at once), money as amounts and currencies; each
        distinct stored value of any other column is decoded once.
        """
        table, dialect = self._table, self._conn.dialect
        names = self._codec.column_names(fields)
        columns = [table.c[name] for name in names]
        stmt = self._find_statement(query).with_only_columns(*columns)
        statement = stmt.compile(dialect=dialect)
        # IN lists (access restrictions) expand into one parameter per value
        state = statement.construct_expanded_state()

        def processed(name: str, value: Any) -> Any:
            process = state.processors.get(name)
            if process is None and name in statement.binds:
                process = statement.binds[name].type._cached_bind_processor(dialect)
            return value if value is None or process is None else process(value)

        bound = {name: processed(name, value) for name, value in state.parameters.items()}
        args: Any = (
            bound
            if _compiled(table, dialect).named
            else tuple(bound[n] for n in state.positiontup or ())
        )
        with _translating(self._cls):
            cursor = self._uow.cursor()
            try:
                cursor.execute(state.statement, args)
                rows = cursor.fetchall()
            finally:
                cursor.close()
        raw = dict(zip(names, zip(*rows, strict=True), strict=True)) if rows else {}
        processors = {c.name: _cell_processor(c, dialect) for c in columns}
        whole = {"id": _hex_ids_text} if dialect.name == "sqlite" else None
        return dict(self._codec.cells(raw, processors, fields, len(rows), whole=whole))

    def _find_statement(self, query: Query) -> Any:
        table, dialect = self._table, self._uow.dialect
        stmt = sa.select(table).where(*_where(table, self._cls, query, dialect))
        order: list[Any] = []
        for o in query.order:
            columns = (
                _custom_parts(table, o.field, _custom_kind(query, o.field), dialect)
                if is_custom(o.field)
                else _order_columns(table, self._cls, o.field, dialect)
            )
            for col in columns:
                order.append((col.desc() if o.descending else col.asc()).nulls_last())
        order.append(table.c.id.asc())
        return stmt.order_by(*order).offset(query.offset or None).limit(query.limit)

    def count(self, query: Query) -> int:
        table = self._table
        stmt = (
            sa.select(sa.func.count())
            .select_from(table)
            .where(*_where(table, self._cls, query, self._uow.dialect))
        )
        with _translating(self._cls):
            return int(self._conn.scalar(stmt) or 0)


#: audit_log's insert columns, in the order the SQLite writer gives them
_AUDIT_COLUMNS: Final = ("entity", "entity_id", "version", "action", "changes", "actor", "at")


#: what turns one audit entry (``_SqlAudit.append``'s arguments, in order) into driver parameters
_AuditWriter = Callable[
    [str, UUID, int, AuditAction, Sequence[AuditChange], str | None, datetime], Any
]


def _audit_writer(dialect: sa.Dialect) -> _AuditWriter:
    """A function giving the driver parameters of one audit_log insert.

    On SQLite it builds the parameter tuple directly and writes the
    ``changes`` JSON text itself (:func:`~crmkit.stores.schema.audit_changes_json`);
    elsewhere it goes through the row dict and SQLAlchemy's bind processors.
    """
    compiled = _compiled(audit_table, dialect)
    if dialect.name != "sqlite" or compiled.named:

        def generic(
            entity: str,
            entity_id: UUID,
            version: int,
            action: AuditAction,
            changes: Sequence[AuditChange],
            actor: str | None,
            at: datetime,
        ) -> Any:
            row = audit_row(
                entity=entity,
                entity_id=entity_id,
                version=version,
                action=action,
                changes=changes,
                actor=actor,
                at=at,
            )
            return compiled.params(row)

        return generic
    order = tuple(compiled.insert_names[i] for i in compiled.insert_order)
    if order != _AUDIT_COLUMNS:  # pragma: no cover - the table changed: update this writer
        raise AssertionError(f"audit_log insert columns are {order}")
    binds = dict(zip(compiled.insert_names, compiled.binds, strict=True))
    bind_id = binds["entity_id"] or _same
    bind_at = binds["at"] or _same

    def sqlite(
        entity: str,
        entity_id: UUID,
        version: int,
        action: AuditAction,
        changes: Sequence[AuditChange],
        actor: str | None,
        at: datetime,
    ) -> Any:
        return (
            entity,
            bind_id(entity_id),
            version,
            action.value,
            audit_changes_json(changes),
            actor,
            bind_at(at),
        )

    return sqlite


def _same(value: Any) -> Any:
    return value


_audit_writers: dict[str, _AuditWriter] = {}

# ---------------------------------------------- creations audited in SQLite
# A bulk insert's creation audit is most of its cost in Python: the JSON of
# every field of every record.  SQLite builds the same JSON from the rows just
# stored (created_changes_sql), with one INSERT ... SELECT per run of
# creations; the first record of each run is checked against Python's JSON.

#: runs of fewer creations are audited by Python (the check would cost more)
SQL_AUDIT_MIN_RUN: Final = 16


class _CreationPlan:
    """How SQLite audits creations of one entity type from their stored rows."""

    __slots__ = ("check_sql", "insert_sql")

    def __init__(self, cls: type[Entity], changes: str):
        table = table_name(cls)
        # a record changed since (another version) gets NULL changes: the insert fails
        self.insert_sql = (
            "INSERT INTO audit_log (entity, entity_id, version, action, changes, actor, at) "
            f"SELECT ?, j.value, ?, '{AuditAction.CREATE.value}', "
            f"CASE WHEN t.id IS NULL THEN NULL ELSE {changes} END, ?, ? "
            f'FROM json_each(?) AS j LEFT JOIN "{table}" AS t ON t.id = j.value AND t.version = ? '
            "ORDER BY j.key"
        )
        self.check_sql = f'SELECT {changes} FROM "{table}" AS t WHERE t.id = ? AND t.version = ?'


_creation_plans: dict[type[Entity], _CreationPlan | None] = {}


def _creation_plan(cls: type[Entity]) -> _CreationPlan | None:
    try:
        return _creation_plans[cls]
    except KeyError:
        changes = created_changes_sql(cls, "t") if cls in TABLES else None
        plan = _creation_plans[cls] = None if changes is None else _CreationPlan(cls, changes)
        return plan


def _id_bind(dialect: sa.Dialect) -> Callable[[Any], Any]:
    """The bind processor of audit_log's ``entity_id``."""
    found = _id_binds.get(dialect.name)
    if found is None:
        compiled = _compiled(audit_table, dialect)
        binds = dict(zip(compiled.insert_names, compiled.binds, strict=True))
        found = _id_binds[dialect.name] = binds["entity_id"] or _same
    return found


_id_binds: dict[str, Callable[[Any], Any]] = {}


class _Creation:
    """A pending creation audit entry (``_SqlAudit.append``'s arguments) SQLite may write."""

    __slots__ = ("entry", "plan")

    def __init__(self, plan: _CreationPlan, entry: tuple[Any, ...]):
        self.plan = plan
        self.entry = entry

    def joins(self, other: object) -> bool:
        """Whether ``other`` can be audited by the same INSERT: same type, version, actor, time."""
        if type(other) is not _Creation or other.plan is not self.plan:
            return False
        mine, theirs = self.entry, other.entry
        return (
            mine[2] == theirs[2]
            and mine[5] == theirs[5]
            and (mine[6] is theirs[6] or mine[6] == theirs[6])
        )


class _SqlAudit:
    def __init__(self, uow: _SqlUnitOfWork):
        self._uow = uow
        dialect = uow.connection.dialect
        found = _audit_writers.get(dialect.name)
        if found is None:
            found = _audit_writers[dialect.name] = _audit_writer(dialect)
        self._write = found
        self._sqlite = dialect.name == "sqlite"
        self._bind_id = _id_bind(dialect)

    def append(
        self,
        *,
        entity: str,
        entity_id: UUID,
        version: int,
        action: AuditAction,
        changes: Sequence[AuditChange],
        actor: str | None,
        at: datetime,
    ) -> None:
        entry = (entity, entity_id, version, action, changes, actor, at)
        if self._sqlite and type(changes) is CreatedChanges and changes.entity is not None:
            plan = _creation_plan(type(changes.entity))
            if plan is not None and action is AuditAction.CREATE:
                self._uow.pending_audit.append(_Creation(plan, entry))
                return
        self._uow.pending_audit.append(self._write(*entry))

    def flush(self) -> None:
        rows = self._uow.pending_audit
        if rows:
            with _translating():
                cursor = self._uow.cursor()
                try:
                    self._insert(cursor, rows)
                finally:
                    cursor.close()
            self._uow.pending_audit = []

    def _insert(self, cursor: Any, rows: list[Any]) -> None:
        """Insert pending entries in order; runs of like creations by SQL where it can."""
        insert_sql = _compiled(audit_table, self._uow.connection.dialect).insert_sql
        start = 0
        while start < len(rows):
            first, end = rows[start], start + 1
            if type(first) is _Creation:
                while end < len(rows) and first.joins(rows[end]):
                    end += 1
                run = rows[start:end]
                if len(run) < SQL_AUDIT_MIN_RUN or not self._insert_by_sql(cursor, run):
                    cursor.executemany(insert_sql, [self._write(*c.entry) for c in run])
            else:
                while end < len(rows) and type(rows[end]) is not _Creation:
                    end += 1
                cursor.executemany(insert_sql, rows[start:end])
            start = end

    def _insert_by_sql(self, cursor: Any, run: list[_Creation]) -> bool:
        """Audit a run of creations with one INSERT ... SELECT; False if SQL cannot."""
        plan = run[0].plan
        entity, _, version, _, changes, actor, _ = run[0].entry
        params = dict(zip(_AUDIT_COLUMNS, self._write(*run[0].entry), strict=True))
        by_sql = cursor.execute(plan.check_sql, (params["entity_id"], version)).fetchone()
        if by_sql is None:  # the record changed since: Python has its creation values
            return False
        if json.loads(by_sql[0]) != json.loads(params["changes"]):  # pragma: no cover - a bug
            _creation_plans[type(changes.entity)] = None  # never again for this type
            return False
        bind_id = self._bind_id
        ids = '["' + '", "'.join([bind_id(c.entry[1]) for c in run]) + '"]'  # hex digits
        try:
            cursor.execute(plan.insert_sql, (entity, version, actor, params["at"], ids, version))
        except sqlite3.IntegrityError:  # a record changed since (NULL changes): nothing written
            return False
        return True

    def history(self, entity_id: UUID) -> list[AuditEntry]:
        self.flush()
        stmt = (
            sa.select(audit_table)
            .where(audit_table.c.entity_id == entity_id)
            .order_by(audit_table.c.seq)
        )
        with _translating():
            return [audit_entry(r) for r in self._uow.connection.execute(stmt).mappings()]


class _SqlUnitOfWork:
    def __init__(self, connection: Connection, transaction: sa.RootTransaction | None):
        self.connection = connection
        self.dialect = connection.dialect.name
        self._transaction = transaction
        self.pending_audit: list[Any] = []  # driver parameters of audit_log inserts
        self._audit = _SqlAudit(self)
        #: table -> ids of records this transaction read as stored.  Records are
        #: never deleted, so they stay stored until a rollback, which forgets
        #: them all; reference checks skip them (an import's references, read
        #: once per batch, are not looked up again before the insert).
        self._stored: dict[str, set[UUID]] = {}

    def stored_ids(self, table: str) -> AbstractSet[UUID]:
        """Ids of ``table`` this transaction has seen stored (see ``_stored``)."""
        return self._stored.get(table) or _NO_IDS

    def remember(self, table: str, ids: Iterable[UUID]) -> None:
        """Note ``ids`` as stored in ``table``; at most ``STORED_IDS_KEPT`` per table."""
        known = self._stored.setdefault(table, set())
        known.update(ids)
        if len(known) > STORED_IDS_KEPT:  # a cache, not a copy of the table
            known.clear()

    @property
    def audit(self) -> _SqlAudit:
        return self._audit

    def cursor(self) -> Any:
        """A DBAPI cursor in this unit of work's transaction."""
        return self.connection.connection.driver_connection.cursor()  # type: ignore[union-attr]

    def repository(self, cls: type[E]) -> _SqlRepository[E]:
        return _SqlRepository(self, cls)

    # analytics pushdown (crmkit.stores.base.AnalyticsAggregator)
    def last_opportunity_change(self) -> datetime | None:
        with _translating(Opportunity):
            return aggregates.last_opportunity_change(self.connection)

    def opportunity_stages(
        self, *, archived: bool | None = None, restrict: Restriction | None = None
    ) -> set[tuple[str, str]]:
        with _translating(Opportunity):
            return aggregates.opportunity_stages(
                self.connection, archived=archived, restricted=self._restricted(restrict)
            )

    def open_deal_groups(self, query: OpenDealsQuery) -> OpenGroups | None:
        with _translating(Opportunity):
            if query.restrict is None:
                return aggregates.open_deal_groups(self.connection, query)
            restricted = self._restricted(query.restrict)
            return aggregates.open_deal_groups(self.connection, query, restricted=restricted)

    def closed_deal_groups(self, query: ClosedDealsQuery) -> ClosedGroups | None:
        with _translating(Opportunity):
            if query.restrict is None:
                return aggregates.closed_deal_groups(self.connection, query)
            restricted = self._restricted(query.restrict)
            return aggregates.closed_deal_groups(self.connection, query, restricted=restricted)

    def _restricted(self, restrict: Restriction | None) -> list[Any]:
        """An access restriction on opportunities as SQL conditions (none: no restriction)."""
        if restrict is None:
            return []
        return [_restrict_condition(TABLES[Opportunity], Opportunity, restrict, self.dialect)]

    def segment(
        self,
        criteria: Criteria,
        *,
        as_of: datetime,
        custom_kinds: Sequence[tuple[str, FieldKind]] = (),
        restrict: Mapping[type[Entity], Restriction | None] | None = None,
    ) -> list[OrganizationId]:
        org = TABLES[Organization]
        query = Query(custom_kinds=custom_kinds)
        limits = restrict or _NO_LIMITS
        visible = limits.get(Organization)
        stmt = (
            sa.select(org.c.id)
            .where(
                org.c.archived.is_(False),
                *(
                    []
                    if visible is None
                    else [_restrict_condition(org, Organization, visible, self.dialect)]
                ),
                _criteria_condition(org, criteria, query, self.dialect, as_of, limits),
            )
            .order_by(org.c.id)
        )
        with _translating(Organization):
            return [OrganizationId(i) for i in self.connection.scalars(stmt)]

    @contextmanager
    def savepoint(self) -> Iterator[None]:
        self._audit.flush()
        with _translating():
            nested = self.connection.begin_nested()
        try:
            yield
            self._audit.flush()
        except BaseException:
            with _translating():
                nested.rollback()
            self.pending_audit = []
            self._stored = {}  # the savepoint may have inserted some of them
            raise
        with _translating():
            nested.commit()

    def commit(self) -> None:
        self._audit.flush()
        with _translating():
            if self._transaction is not None:
                self._transaction.commit()
            elif self.connection.in_transaction():
                self.connection.commit()

    def rollback(self) -> None:
        self.pending_audit = []
        self._stored = {}
        with _translating():
            if self._transaction is not None:
                if self._transaction.is_active:
                    self._transaction.rollback()
            elif self.connection.in_transaction():
                self.connection.rollback()


# -------------------------------------------------------------------- store


class _UnitOfWorkScope:
    """``with store.unit_of_work() as uow:``: checks a connection out and back in."""

    __slots__ = ("_connection", "_store", "_uow", "_write")

    def __init__(self, store: SqlStore, write: bool):
        self._store = store
        self._write = write

    def __enter__(self) -> _SqlUnitOfWork:
        connection = self._store._checkout()
        try:
            connection.info["crmkit_write"] = self._write
            transaction = None
            if self._write or connection.dialect.name != "sqlite":
                with _translating():
                    transaction = connection.begin()
        except BaseException:
            connection.close()
            raise
        self._connection = connection
        self._uow = _SqlUnitOfWork(connection, transaction)
        return self._uow

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        connection = self._connection
        try:
            self._uow.rollback()
        except BaseException:
            connection.close()  # a connection that failed mid-way is not reused
            raise
        if exc_type is not None and not isinstance(exc, CrmkitError):
            connection.close()
            return
        self._store._checkin(connection)


class SqlStore:
    """A store in a SQL database: a SQLite file or a PostgreSQL server.

    Args:
        url: a SQLAlchemy URL (``sqlite+pysqlite:///crm.db``,
            ``postgresql+psycopg://user@host/db``).
        synchronous: SQLite only: ``"FULL"`` (default, durable at every commit)
            or ``"NORMAL"`` (faster; a power cut may lose the last commits, never
            corrupt the file).
        create: create the schema at the newest migration when the database is
            empty (default).
        echo: log every SQL statement.
        creator: SQLite only: a function returning the caller's own
            ``sqlite3`` connection for the calling thread (in autocommit mode,
            ``isolation_level=None``) for crmkit to use instead of opening its
            own, called at each unit of work; crmkit never closes it.  The
            host's statements on that connection (a Django
            ``crmkit_create_sales_order``) then join crmkit's transactions,
            and crmkit's tables live beside the host's in its database.  See
            the SQL guide's "Sharing the host's connection".

            .. versionadded:: 0.1

    Raises:
        StorageError: the database cannot be opened, or its schema is at a
            revision this crmkit does not know (newer) or an older one that
            needs ``crmkit db upgrade``.
    """

    def __init__(
        self,
        url: str,
        *,
        synchronous: str = "FULL",
        create: bool = True,
        echo: bool = False,
        creator: Callable[[], sqlite3.Connection] | None = None,
    ):
        if synchronous not in ("FULL", "NORMAL", "EXTRA"):
            raise ValidationError("synchronous", "must be FULL, NORMAL or EXTRA", value=synchronous)
        if creator is not None and not callable(creator):
            raise ValidationError("creator", "must be a function returning a connection")
        try:
            if creator is None:
                self.engine = _acquire_engine(url, synchronous, echo)
            else:
                self.engine = _borrowed_engine(url, creator, synchronous)
        except CrmkitError:
            raise
        except (exc.SQLAlchemyError, ImportError, ValueError) as error:
            reason = getattr(error, "orig", None) or error
            raise StorageError(f"cannot open the database: {reason}") from error
        self.url = url
        self._creator = creator
        self._closed = False
        self._open = True
        self._lock = threading.Lock()
        self._local = threading.local()  # this thread's idle connection
        self._connections: list[Connection] = []  # every connection made, to close them
        self._point_reads: dict[
            type[Entity],
            tuple[str, Callable[[UUID], Any], Callable[[Sequence[Any]], Entity], bool],
        ] = {}
        try:
            from crmkit.stores import migrations

            migrations.prepare(self.engine, create=create, shared=creator is not None)
        except BaseException:
            self.close()
            raise

    @property
    def dialect(self) -> str:
        """``"sqlite"`` or ``"postgresql"``."""
        return str(self.engine.dialect.name)

    def unit_of_work(self, *, write: bool = True) -> _UnitOfWorkScope:
        """Begin a transaction (``BEGIN IMMEDIATE`` on SQLite when writing).

        SQLite readers begin no transaction: in WAL mode each statement reads
        one consistent snapshot without blocking or being blocked.
        """
        if self._closed:
            raise StorageError("the store is closed")
        return _UnitOfWorkScope(self, write)

    def get(self, cls: type[E], id: UUID) -> E:
        """One committed record by id: a single SELECT on this thread's connection.

        No unit of work: on SQLite the statement reads one WAL snapshot; on
        PostgreSQL the implicit transaction is rolled back right after.

        Raises:
            NotFoundError: there is none.
        """
        if self._closed:
            raise StorageError("the store is closed")
        connection, dbapi = self._checkout_slot()
        plan = self._point_reads.get(cls) or self._plan_point_read(cls, connection)
        sql, param, read, rollback = plan
        try:
            raw = dbapi.execute(sql, param(id)).fetchone()
            if rollback:
                dbapi.rollback()
        except _DBAPI_ERRORS as error:
            connection.close()
            raise _translate(error, cls) from error
        except BaseException:
            connection.close()
            raise
        self._checkin(connection, dbapi)
        if raw is None:
            raise NotFoundError(cls.ENTITY, id)
        return cast(E, read(raw))

    def _plan_point_read(
        self, cls: type[Entity], connection: Connection
    ) -> tuple[str, Callable[[UUID], Any], Callable[[Sequence[Any]], Entity], bool]:
        compiled = _compiled(TABLES[cls], connection.dialect)
        entity_codec = codec(cls)
        plan = (
            compiled.select_sql,
            compiled.id_param,
            lambda raw: compiled.entity(entity_codec, raw),
            connection.dialect.name != "sqlite",
        )
        self._point_reads[cls] = plan
        return plan

    def _checkout(self) -> Connection:
        return self._checkout_slot()[0]

    def _checkout_slot(self) -> tuple[Connection, Any]:
        """This thread's idle connection (made if needed) and its DBAPI connection."""
        slot: tuple[Connection, Any] | None = getattr(self._local, "slot", None)
        if slot is not None:
            self._local.slot = None
            if not slot[0].invalidated and not slot[0].closed:
                # a borrowed connection serves while its owner hands out the
                # same one (Django opens a new one after closing the last)
                if self._creator is None or slot[1].borrows(self._creator()):
                    return slot
                slot[0].close()
        with _translating():
            connection = self.engine.connect()
        with self._lock:
            self._connections = [c for c in self._connections if not c.closed]
            self._connections.append(connection)
        return connection, connection.connection.dbapi_connection

    def _checkin(self, connection: Connection, dbapi: Any = None) -> None:
        if self._open:  # kept for this thread's next call: no pool round trip
            if dbapi is None:
                dbapi = connection.connection.dbapi_connection
            self._local.slot = (connection, dbapi)
        else:
            connection.close()

    def close(self) -> None:
        """Release this store's hold on the engine (disposed with its last user)."""
        if not self._closed:
            self._closed = True
            with self._lock:
                self._open = False
                connections, self._connections = self._connections, []
            for connection in connections:
                connection.close()
            if self._creator is not None:
                self.engine.dispose()  # its own engine, no pool: closes nothing borrowed
            else:
                _release_engine(self.engine)

    def table_name(self, cls: type[Entity]) -> str:
        """The table storing ``cls``."""
        return table_name(cls)

    def __repr__(self) -> str:
        return f"SqlStore({self.engine.url.render_as_string(hide_password=True)!r})"


# --------------------------------------------------------------- migrations


@contextmanager
def _engine_for(url: str) -> Iterator[Engine]:
    try:
        engine = _acquire_engine(url, "FULL", echo=False)
    except (exc.SQLAlchemyError, ImportError, ValueError) as error:
        reason = getattr(error, "orig", None) or error
        raise StorageError(f"cannot open the database: {reason}") from error
    try:
        yield engine
    finally:
        _release_engine(engine)


def database_revision(url: str) -> tuple[str | None, str]:
    """The schema revision of the database at ``url``, and the newest one crmkit knows.

    Raises:
        StorageError: the database cannot be read.
    """
    from crmkit.stores import migrations

    with _engine_for(url) as engine, _translating():
        return migrations.current_revision(engine), migrations.head_revision()


def upgrade_database(url: str) -> tuple[str | None, str | None]:
    """Upgrade the database at ``url`` to the newest schema (``crmkit db upgrade``).

    Returns:
        The revisions before and after.

    Raises:
        StorageError: the database is at a revision this crmkit does not know,
            or a migration failed (the database is left as it was).
    """
    from crmkit.stores import migrations

    with _engine_for(url) as engine:
        return migrations.upgrade(engine)
