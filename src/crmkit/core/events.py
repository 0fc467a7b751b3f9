"""Domain events: what a change did, for audit, hooks and (later) automation.

The pure change functions in :mod:`crmkit.core.changes` return them; the
facade records them in the audit log inside the transaction and hands them to
plugins after commit.

.. versionadded:: 0.1
"""

from __future__ import annotations

from typing import Generic, TypeVar

from attrs import frozen

from crmkit.core.entities import Entity
from crmkit.core.opportunities import Opportunity, StageChange

__all__ = [
    "Archived",
    "Created",
    "DomainEvent",
    "FieldChange",
    "Restored",
    "StageChanged",
    "Updated",
]

E = TypeVar("E", bound=Entity)


@frozen
class FieldChange:
    """One field's value before and after a change."""

    field: str
    old: object
    new: object


@frozen
class Created(Generic[E]):
    """A record was created."""

    entity: E


@frozen
class Updated(Generic[E]):
    """A record's fields changed; ``changes`` lists each one."""

    entity: E
    changes: tuple[FieldChange, ...]


@frozen
class Archived(Generic[E]):
    """A record was archived (hidden from ``find`` by default, never deleted)."""

    entity: E


@frozen
class Restored(Generic[E]):
    """An archived record was brought back."""

    entity: E


@frozen
class StageChanged:
    """An opportunity moved to another stage.

    ``entity`` is the opportunity after the move, ``change`` the move itself,
    ``changes`` every field that changed (for the audit trail).
    """

    entity: Opportunity
    change: StageChange
    changes: tuple[FieldChange, ...]


DomainEvent = Created[E] | Updated[E] | Archived[E] | Restored[E]
