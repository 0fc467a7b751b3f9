"""The audit trail: what changed, when, by whom.

Stores append :class:`AuditEntry` rows in the same transaction as the change
they describe; ``crm.history(id)`` reads them back in sequence order.  Values
are kept in their JSON form (as the converter writes them), so the trail
survives schema changes of the entities themselves.

.. versionadded:: 0.1
"""

from __future__ import annotations

import enum
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import final, overload
from uuid import UUID

from attrs import frozen

__all__ = ["AuditAction", "AuditChange", "AuditEntry", "CreatedChanges"]


class AuditAction(enum.Enum):
    """What kind of change an audit entry records."""

    CREATE = "create"
    UPDATE = "update"
    ARCHIVE = "archive"
    RESTORE = "restore"


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
    """

    __slots__ = ("pairs",)

    def __init__(self, pairs: Sequence[tuple[str, object]]) -> None:
        self.pairs = pairs

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
