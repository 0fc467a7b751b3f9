"""The audit trail: what changed, when, by whom.

Stores append :class:`AuditEntry` rows in the same transaction as the change
they describe; ``crm.history(id)`` reads them back in sequence order.  Values
are kept in their JSON form (as the converter writes them), so the trail
survives schema changes of the entities themselves.

.. versionadded:: 0.1
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from typing import final, overload
from uuid import UUID

from attrs import frozen

from crmkit.core.entities import Entity

__all__ = ["AuditAction", "AuditChange", "AuditEntry", "CreatedChanges"]


class AuditAction(enum.Enum):
    """What kind of change an audit entry records."""

    CREATE = "create"
    UPDATE = "update"
    ARCHIVE = "archive"
    RESTORE = "restore"
    ELEVATE = "elevate"  #: a user of a scoped CRM used the system context (entity: the user)


@frozen
class AuditChange:
    """One field's old and new value, in JSON form."""

    field: str
    old: object
    new: object


@final
class CreatedChanges(Sequence[AuditChange]):
    """The changes of a creation: each field set from nothing, in JSON form.

    A read-only sequence of :class:`AuditChange` whose ``old`` is ``None``,
    kept as ``(field, new)`` pairs: a change object is made only when one is
    read, and stores that write JSON read :attr:`pairs` directly (creations
    are most of a bulk insert's audit).

    Made with :meth:`of`, it keeps the new record and computes the pairs when
    first read; a store may derive the same changes from the row it stored
    instead (``SqlStore`` builds their JSON in SQL on SQLite).
    """

    __slots__ = ("_pairs", "_snapshot", "entity")

    def __init__(self, pairs: Sequence[tuple[str, object]]) -> None:
        self._pairs: Sequence[tuple[str, object]] | None = pairs
        self._snapshot: Callable[[Entity], Sequence[tuple[str, object]]] | None = None
        #: the record created, when made with :meth:`of`
        self.entity: Entity | None = None

    @classmethod
    def of(
        cls, entity: Entity, snapshot: Callable[[Entity], Sequence[tuple[str, object]]]
    ) -> CreatedChanges:
        """The changes of creating ``entity``: ``snapshot(entity)``, called when first read."""
        changes = cls(())
        changes._pairs, changes._snapshot, changes.entity = None, snapshot, entity
        return changes

    @property
    def pairs(self) -> Sequence[tuple[str, object]]:
        """``(field, new value in JSON form)`` of each change, in field order."""
        pairs = self._pairs
        if pairs is None:
            assert self._snapshot is not None
            assert self.entity is not None
            pairs = self._pairs = self._snapshot(self.entity)
        return pairs

    def __len__(self) -> int:
        return len(self.pairs)

    @overload
    def __getitem__(self, index: int) -> AuditChange: ...

    @overload
    def __getitem__(self, index: slice) -> tuple[AuditChange, ...]: ...

    def __getitem__(self, index: int | slice) -> AuditChange | tuple[AuditChange, ...]:
        if isinstance(index, slice):
            return tuple(AuditChange(field, None, new) for field, new in self.pairs[index])
        field, new = self.pairs[index]
        return AuditChange(field, None, new)

    def __iter__(self) -> Iterator[AuditChange]:
        for field, new in self.pairs:
            yield AuditChange(field, None, new)

    def __repr__(self) -> str:
        return f"CreatedChanges({list(self.pairs)!r})"


@frozen(kw_only=True)
class AuditEntry:
    """One committed change of one record.

    Attributes:
        seq: strictly increasing across the whole store, in commit order
            within a transaction.
        entity: the entity type (``"organization"``).
        entity_id: the record's id.
        version: the record's version after the change.
        action: create, update, archive or restore.
        changes: every field that changed (all fields for a create).
        actor: who made the change (``None`` for the system context).
        at: when, timezone-aware.
    """

    seq: int
    entity: str
    entity_id: UUID
    version: int
    action: AuditAction
    changes: tuple[AuditChange, ...]
    actor: str | None
    at: datetime
