"""``MemoryStore``: a real backend kept in process memory.

For tests and notebooks.  It keeps the same semantics as the SQL stores
(versions, unique fields, references, audit, ordering), so code tested against
it behaves the same on SQLite and PostgreSQL.  Units of work are serialized by
one re-entrant lock; a writing unit of work copies each table on its first
write (copy-on-write), so a rollback costs nothing and a commit swaps tables.

.. versionadded:: 0.1
"""

from __future__ import annotations

import threading
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any, Generic, TypeVar, cast
from uuid import UUID

import attrs

from crmkit.core.audit import AuditAction, AuditChange, AuditEntry
from crmkit.core.entities import Entity, FieldKind, Organization
from crmkit.core.errors import ConcurrencyError, DuplicateError, NotFoundError, ValidationError
from crmkit.core.ids import OrganizationId
from crmkit.core.interactions import Interaction
from crmkit.core.mail import CampaignEmail
from crmkit.core.opportunities import Opportunity
from crmkit.core.query import Query, Restriction, restriction_matches, select
from crmkit.core.segments import Criteria, History, evaluate

__all__ = ["MemoryStore"]

E = TypeVar("E", bound=Entity)


@attrs.define
class _Table:
    rows: dict[UUID, Entity] = attrs.Factory(dict)
    #: per UNIQUE field: value -> id
    unique: dict[str, dict[object, UUID]] = attrs.Factory(dict)

    def copy(self) -> _Table:
        return _Table(dict(self.rows), {k: dict(v) for k, v in self.unique.items()})


class _State:
    def __init__(self) -> None:
        self.tables: dict[str, _Table] = {}
        self.audit: list[AuditEntry] = []


class _Audit:
    def __init__(self, uow: _MemoryUnitOfWork):
        self._uow = uow

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
        uow = self._uow
        seq = len(uow.store_state.audit) + len(uow.pending_audit) + 1
        uow.pending_audit.append(
            AuditEntry(
                seq=seq,
                entity=entity,
                entity_id=entity_id,
                version=version,
                action=action,
                changes=tuple(changes),
                actor=actor,
                at=at,
            )
        )

    def history(self, entity_id: UUID) -> list[AuditEntry]:
        uow = self._uow
        entries = [*uow.store_state.audit, *uow.pending_audit]
        return [e for e in entries if e.entity_id == entity_id]


class _Repository(Generic[E]):
    def __init__(self, uow: _MemoryUnitOfWork, cls: type[E]):
        self._uow = uow
        self._cls = cls

    def _read(self) -> _Table:
        return self._uow.table(self._cls, write=False)

    def _write(self) -> _Table:
        return self._uow.table(self._cls, write=True)

    def _check(self, table: _Table, entity: E) -> None:
        for name in self._cls.UNIQUE:
            value = getattr(entity, name)
            if value is None:
                continue
            holder = table.unique.get(name, {}).get(value)
            if holder is not None and holder != entity.id:
                raise DuplicateError(self._cls.ENTITY, name, value)
        for name, target in self._cls.REFERENCES.items():
            ref = getattr(entity, name)
            if ref is not None and ref != entity.id and ref not in self._uow.table(target).rows:
                raise ValidationError(
                    name, f"refers to a {target.ENTITY} that does not exist", code="reference"
                )

    def _index(self, table: _Table, old: Entity | None, new: Entity) -> None:
        for name in self._cls.UNIQUE:
            index = table.unique.setdefault(name, {})
            if old is not None and getattr(old, name) is not None:
                index.pop(getattr(old, name), None)
            if getattr(new, name) is not None:
                index[getattr(new, name)] = new.id
        table.rows[new.id] = new

    def add(self, entity: E) -> None:
        self.add_many([entity])

    def add_many(self, entities: Sequence[E]) -> None:
        table = self._write()
        for entity in entities:
            if entity.id in table.rows:
                raise DuplicateError(self._cls.ENTITY, "id", entity.id)
            self._check(table, entity)
            self._index(table, None, entity)

    def get(self, id: UUID) -> E:
        entity = self._read().rows.get(id)
        if entity is None:
            raise NotFoundError(self._cls.ENTITY, id)
        return cast(E, entity)

    def get_many(self, ids: Collection[UUID]) -> dict[UUID, E]:
        rows = self._read().rows
        return {i: cast(E, rows[i]) for i in ids if i in rows}

    def get_by(self, field: str, value: object) -> E | None:
        if field not in self._cls.UNIQUE:
            raise ValidationError(field, "is not a unique field", code="unknown_field")
        table = self._read()
        found = table.unique.get(field, {}).get(value)
        return None if found is None else cast(E, table.rows[found])

    def ids_by(self, field: str, values: Collection[object]) -> dict[object, UUID]:
        table = self._read()
        if field == "id":
            return {v: v for v in values if isinstance(v, UUID) and v in table.rows}
        if field not in self._cls.UNIQUE:
            raise ValidationError(field, "is not a unique field", code="unknown_field")
        index = table.unique.get(field, {})
        return {v: index[v] for v in values if v is not None and v in index}

    def update(self, entity: E, *, expected_version: int) -> None:
        table = self._write()
        current = table.rows.get(entity.id)
        if current is None:
            raise NotFoundError(self._cls.ENTITY, entity.id)
        if current.version != expected_version:
            raise ConcurrencyError(self._cls.ENTITY, entity.id, expected_version, current.version)
        self._check(table, entity)
        self._index(table, current, entity)

    def update_many(self, entities: Sequence[E], *, expected_versions: Sequence[int]) -> None:
        if len(entities) != len(expected_versions):
            raise ValidationError(
                "expected_versions", "must give one version per record", code="range"
            )
        for entity, version in zip(entities, expected_versions, strict=True):
            self.update(entity, expected_version=version)

    def _rows(self, query: Query) -> Iterable[Entity]:
        rows = self._read().rows.values()
        if query.restrict is None:
            return rows

        def lookup(cls: type[Entity], id: UUID) -> Entity | None:
            return self._uow.table(cls).rows.get(id)

        return [e for e in rows if restriction_matches(e, query.restrict, lookup)]

    def find(self, query: Query) -> list[E]:
        return cast(list[E], select(self._rows(query), query))

    def count(self, query: Query) -> int:
        unpaged = attrs.evolve(query, limit=None, offset=0, order=())
        return len(select(self._rows(query), unpaged))


class _MemoryUnitOfWork:
    def __init__(self, state: _State):
        self.store_state = state
        self.working: dict[str, _Table] = {}
        self.pending_audit: list[AuditEntry] = []
        self.audit = _Audit(self)

    def table(self, cls: type[Entity], *, write: bool = False) -> _Table:
        name = cls.ENTITY
        if name in self.working:
            return self.working[name]
        committed = self.store_state.tables.get(name) or _Table()
        if not write:
            return committed
        self.working[name] = committed.copy()
        return self.working[name]

    def repository(self, cls: type[E]) -> _Repository[E]:
        return _Repository(self, cls)

    def segment(
        self,
        criteria: Criteria,
        *,
        as_of: datetime,
        custom_kinds: Sequence[tuple[str, FieldKind]] = (),
        restrict: Mapping[type[Entity], Restriction | None] | None = None,
    ) -> list[OrganizationId]:
        limits = restrict or {}

        def rows(cls: type[Entity]) -> Collection[Any]:
            found = self.table(cls).rows.values()
            r = limits.get(cls)
            if r is None:
                return found

            def lookup(related: type[Entity], id: UUID) -> Entity | None:
                return self.table(related).rows.get(id)

            return [e for e in found if restriction_matches(e, r, lookup)]

        history = History.of(
            cast(Collection[Interaction], rows(Interaction)),
            cast(Collection[Opportunity], rows(Opportunity)),
            cast(Collection[CampaignEmail], rows(CampaignEmail)),
        )
        organizations = cast(Collection[Organization], rows(Organization))
        return evaluate(
            organizations, criteria, as_of=as_of, history=history, kinds=dict(custom_kinds)
        )

    @contextmanager
    def savepoint(self) -> Iterator[None]:
        saved_tables = {k: t.copy() for k, t in self.working.items()}
        saved_audit = len(self.pending_audit)
        try:
            yield
        except BaseException:
            self.working = saved_tables
            del self.pending_audit[saved_audit:]
            raise

    def commit(self) -> None:
        self.store_state.tables.update(self.working)
        self.store_state.audit.extend(self.pending_audit)
        self.working = {}
        self.pending_audit = []

    def rollback(self) -> None:
        self.working = {}
        self.pending_audit = []


class MemoryStore:
    """A store in process memory; data lives as long as the object.

    Thread-safe: units of work run one at a time.
    """

    def __init__(self) -> None:
        self._state = _State()
        self._lock = threading.RLock()

    @contextmanager
    def unit_of_work(self, *, write: bool = True) -> Iterator[_MemoryUnitOfWork]:
        """Begin a unit of work; it rolls back unless committed."""
        with self._lock:
            uow = _MemoryUnitOfWork(self._state)
            try:
                yield uow
            finally:
                uow.rollback()  # drops whatever was not committed

    def get(self, cls: type[E], id: UUID) -> E:
        """One committed record, by id.

        Raises:
            NotFoundError: there is none.
        """
        with self._lock:
            table = self._state.tables.get(cls.ENTITY)
            found = None if table is None else table.rows.get(id)
        if found is None:
            raise NotFoundError(cls.ENTITY, id)
        return cast(E, found)

    def close(self) -> None:
        """Nothing to release; kept for the protocol."""

    def __repr__(self) -> str:
        counts: dict[str, Any] = {k: len(t.rows) for k, t in self._state.tables.items()}
        return f"MemoryStore({counts})"
