"""The audit trail: what changed, when, by whom.

Stores append :class:`AuditEntry` rows in the same transaction as the change
they describe; ``crm.history(id)`` reads them back in sequence order.  Values
are kept in their JSON form (as the converter writes them), so the trail
survives schema changes of the entities themselves.

.. versionadded:: 0.1
"""

from __future__ import annotations

import enum
from datetime import datetime
from uuid import UUID

from attrs import frozen

__all__ = ["AuditAction", "AuditChange", "AuditEntry"]


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
