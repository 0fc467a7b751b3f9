"""The fast SQL paths write and read exactly what the general codecs do.

``add_many`` builds each row's driver parameters in one generated pass, the
audit log writes its ``changes`` JSON text itself on SQLite, timestamp binds
remember their last value, and point reads share the decoded value of empty
JSON collections.  Each is checked against the general path it replaces: the
row codec + SQLAlchemy's bind processors, ``json.dumps``, the plain reader.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from uuid import UUID

import attrs
import pytest
import sqlalchemy as sa
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy.dialects import postgresql, sqlite

from crmkit.core.audit import AuditAction, AuditChange, CreatedChanges
from crmkit.core.entities import Entity
from crmkit.stores.schema import (
    TABLES,
    audit_changes_json,
    audit_row,
    audit_table,
    codec,
)
from crmkit.stores.sql import _audit_writer, _bind_processor, _Compiled, _result_processor
from tests.strategies import _BY_TYPE, entities, entity_of

DIALECTS = {
    "sqlite": sqlite.pysqlite.dialect(),
    "postgresql": postgresql.psycopg.dialect(),  # type: ignore[no-untyped-call]
}

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)
changes = st.lists(st.builds(AuditChange, st.text(), json_values, json_values), max_size=8)
created = st.lists(st.tuples(st.text(), json_values), max_size=8)


def _comparable(params: Any) -> Any:
    """Driver parameters with psycopg's JSON wrappers replaced by what they wrap."""
    if isinstance(params, dict):
        return {k: getattr(v, "obj", v) for k, v in params.items()}
    return params


@pytest.mark.parametrize("dialect", list(DIALECTS))
@given(entity=entities)
def test_insert_writer_gives_the_row_codec_parameters(dialect: str, entity: Entity) -> None:
    """The generated writer's parameters equal the row codec's through the bind processors."""
    entity_codec = codec(type(entity))
    compiled = _Compiled(TABLES[type(entity)], DIALECTS[dialect])

    expected = compiled.params(entity_codec.to_row(entity))
    actual = compiled.writer(entity_codec)(entity)

    assert _comparable(expected) == _comparable(actual)


@given(entity=entities)
def test_sqlite_reader_reads_back_what_the_writer_wrote(entity: Entity) -> None:
    """A row as SQLite returns it reads back as the entity, empty collections shared or not."""
    entity_codec = codec(type(entity))
    compiled = _Compiled(TABLES[type(entity)], DIALECTS["sqlite"])
    written = dict(zip(compiled.insert_names, compiled.writer(entity_codec)(entity), strict=True))
    raw = [written[name] for name in compiled.names]
    plain = entity_codec.reader(compiled.names, compiled.results)
    sharing = entity_codec.reader(compiled.names, compiled.results, common=("[]", "{}"))

    for read in (plain, sharing):
        back = read(raw)
        for field in attrs.fields(type(entity)):
            assert getattr(entity, field.name) == getattr(back, field.name), field.name


@given(entity=entities)
def test_sqlite_json_columns_are_the_text_json_dumps_writes(entity: Entity) -> None:
    """On SQLite the writer's JSON columns are exactly json.dumps of the converter's form."""
    entity_codec = codec(type(entity))
    compiled = _Compiled(TABLES[type(entity)], DIALECTS["sqlite"])
    row = entity_codec.to_row(entity)
    values = dict(zip(compiled.insert_names, compiled.writer(entity_codec)(entity), strict=True))
    json_columns = [c.name for c in TABLES[type(entity)].c if isinstance(c.type, sa.JSON)]

    for name in json_columns:  # tags, phones, e-mails, kinds, addresses... (none for users)
        assert json.dumps(row[name]) == values[name]


@given(changes=changes)
def test_audit_changes_text_is_what_json_dumps_writes(changes: list[AuditChange]) -> None:
    """The audit log's own JSON text is byte for byte json.dumps of the stored row value."""
    expected = json.dumps(
        audit_row(
            entity="organization",
            entity_id=_ID,
            version=1,
            action=AuditAction.UPDATE,
            changes=changes,
            actor=None,
            at=_AT,
        )["changes"]
    )
    assert expected == audit_changes_json(changes)


@given(pairs=created)
def test_created_changes_text_is_that_of_the_same_changes(pairs: list[tuple[str, object]]) -> None:
    """A creation's compact changes write the same JSON text as the change objects."""
    compact = CreatedChanges(pairs)

    assert [AuditChange(field, None, new) for field, new in pairs] == list(compact)
    assert audit_changes_json(tuple(compact)) == audit_changes_json(compact)


def test_created_changes_read_like_a_tuple_of_changes() -> None:
    """Indexing, slicing and len of a creation's changes give AuditChange values."""
    compact = CreatedChanges([("name", "Acme"), ("tags", ["vip"]), ("emails", [])])

    assert 3 == len(compact)
    assert AuditChange("tags", None, ["vip"]) == compact[1]
    assert AuditChange("emails", None, []) == compact[-1]
    assert (AuditChange("name", None, "Acme"), AuditChange("tags", None, ["vip"])) == compact[:2]
    assert AuditChange("name", None, "Acme") in compact


@pytest.mark.parametrize("dialect", list(DIALECTS))
@given(changes=changes)
def test_audit_writer_gives_the_audit_row_parameters(
    dialect: str, changes: list[AuditChange]
) -> None:
    """The audit writer's parameters decode to those of the audit row codec."""
    compiled = _Compiled(audit_table, DIALECTS[dialect])
    entry: dict[str, Any] = {
        "entity": "contact",
        "entity_id": _ID,
        "version": 3,
        "action": AuditAction.UPDATE,
        "changes": changes,
        "actor": "ana",
        "at": _AT,
    }
    expected = _comparable(compiled.params(audit_row(**entry)))

    actual = _comparable(_audit_writer(DIALECTS[dialect])(*entry.values()))

    if dialect == "sqlite":  # the JSON column is text: compare what it decodes to
        expected, actual = list(expected), list(actual)
        expected[4], actual[4] = json.loads(expected[4]), json.loads(actual[4])
    assert expected == actual


@pytest.mark.parametrize("dialect", list(DIALECTS))
def test_timestamp_binds_remember_only_the_very_same_value(dialect: str) -> None:
    """A remembered timestamp is reused for the same object, never for an equal-looking other."""
    column = TABLES[next(iter(TABLES))].c.created_at
    plain = column.type._cached_bind_processor(DIALECTS[dialect])
    cached = _bind_processor(column, DIALECTS[dialect])
    assert plain is not None
    assert cached is not None
    first = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
    same_instant_elsewhere = first.astimezone(timezone(timedelta(hours=2)))
    later = first + timedelta(microseconds=1)
    values = [first, first, same_instant_elsewhere, later, first, later, later]

    assert [plain(v) for v in values] == [cached(v) for v in values]


@pytest.mark.parametrize("value", [[], {}, ["a"], {"a": [1, {}]}, "{}", 0])
def test_sqlite_json_shortcuts_write_and_read_what_json_does(value: object) -> None:
    """Empty lists and objects skip the JSON encoder and decoder with the same result."""
    column, dialect = audit_table.c.changes, DIALECTS["sqlite"]
    plain_bind = column.type._cached_bind_processor(dialect)
    plain_result = column.type._cached_result_processor(dialect, None)
    bind, result = _bind_processor(column, dialect), _result_processor(column, dialect)
    assert plain_bind is not None
    assert plain_result is not None
    assert bind is not None
    assert result is not None

    assert plain_bind(value) == bind(value)
    assert plain_result(plain_bind(value)) == result(bind(value))


_ID = UUID(int=7)
_AT = datetime(2026, 1, 5, 9, 0, 0, 123456, tzinfo=UTC)


@given(
    batch=st.sampled_from(sorted(_BY_TYPE, key=lambda c: c.ENTITY)).flatmap(
        lambda cls: st.lists(entity_of(cls), min_size=1, max_size=6)
    )
)
def test_a_sparse_sqlite_insert_stores_every_value_of_the_full_one(batch: list[Entity]) -> None:
    """Leaving out the columns NULL in every row of a batch stores the same rows."""
    cls = type(batch[0])
    compiled = _Compiled(TABLES[cls], DIALECTS["sqlite"])
    params = [compiled.writer(codec(cls))(e) for e in batch]
    order = [compiled.insert_names[i] for i in compiled.insert_order]
    engine = sa.create_engine("sqlite://")
    try:
        with engine.begin() as conn:  # the columns without constraints (rows may repeat keys)
            columns = ", ".join(f'"{name}"' for name in order)
            conn.exec_driver_sql(f'CREATE TABLE "{TABLES[cls].name}" ({columns})')
            sql, rows = compiled.sparse(params)
            assert len(rows) == len(params)
            if any(all(p[i] is None for p in params) for i in compiled._omittable):
                assert len(rows[0]) < len(params[0])  # something was left out
            conn.connection.driver_connection.executemany(sql, rows)  # type: ignore[union-attr]
            stored = conn.exec_driver_sql(f'SELECT {columns} FROM "{TABLES[cls].name}"').all()
    finally:
        engine.dispose()
    assert sorted(map(tuple, stored), key=repr) == sorted(params, key=repr)
