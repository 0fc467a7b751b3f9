"""Pure functions that change entities: each returns the new entity and its event.

Nothing here reads a clock or a store: ``now`` and ``id`` are passed in.
Validation happens in the entity's converters, so a change either returns a
valid entity or raises :class:`ValidationError` and has no effect.

.. versionadded:: 0.1
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, TypeVar
from uuid import UUID

import attrs

from crmkit.core.custom_fields import CustomPatch
from crmkit.core.entities import Entity
from crmkit.core.errors import ValidationError
from crmkit.core.events import Archived, Created, FieldChange, Restored, Updated

__all__ = ["archive", "create", "restore", "update"]

E = TypeVar("E", bound=Entity)


_FIELDS: dict[type[Entity], frozenset[str]] = {}


def _fields(cls: type[Entity]) -> frozenset[str]:
    found = _FIELDS.get(cls)
    if found is None:
        found = _FIELDS[cls] = frozenset(a.name for a in attrs.fields(cls) if a.init)
    return found


_REQUIRED: dict[type[Entity], tuple[str, ...]] = {}


def _required(cls: type[Entity]) -> tuple[str, ...]:
    """Fields without a default that a caller must give (system fields excluded)."""
    found = _REQUIRED.get(cls)
    if found is None:
        found = _REQUIRED[cls] = tuple(
            a.name
            for a in attrs.fields(cls)
            if a.default is attrs.NOTHING and a.init and a.name not in cls.SYSTEM_FIELDS
        )
    return found


def create(cls: type[E], *, id: UUID, now: datetime, **values: Any) -> tuple[E, Created[E]]:
    """A new ``cls`` at version 1, created and updated at ``now``.

    Raises:
        ValidationError: a value is invalid, or a field is unknown or system-owned.
    """
    _check_names(cls, values)
    for name in _required(cls):
        if name not in values:
            raise ValidationError(name, "is required", code="required")
    patch = values.get("custom")
    if isinstance(patch, CustomPatch):
        values = {**values, "custom": patch.created()}
    entity = cls(id=id, version=1, created_at=now, updated_at=now, archived=False, **values)
    return entity, Created(entity)


def update(entity: E, changes: Mapping[str, Any], *, now: datetime) -> tuple[E, Updated[E] | None]:
    """Apply ``changes``; the version goes up by one when anything really changed.

    Returns:
        The new entity and its :class:`Updated` event, or the same entity and
        ``None`` when every value was already as asked.

    Raises:
        ValidationError: a value is invalid, or a field is unknown or system-owned.
    """
    cls = type(entity)
    _check_names(cls, changes)
    patch = changes.get("custom")
    if isinstance(patch, CustomPatch):  # merged into the stored values
        changes = {**changes, "custom": patch.applied_to(getattr(entity, "custom", {}))}
    candidate = attrs.evolve(entity, **changes)
    diff = tuple(
        FieldChange(name, getattr(entity, name), getattr(candidate, name))
        for name in changes
        if getattr(entity, name) != getattr(candidate, name)
    )
    if not diff:
        return entity, None
    new = attrs.evolve(candidate, version=entity.version + 1, updated_at=now)
    return new, Updated(new, diff)


def archive(entity: E, *, now: datetime) -> tuple[E, Archived[E] | None]:
    """Mark ``entity`` archived (a no-op, without event, if it already is)."""
    if entity.archived:
        return entity, None
    new = attrs.evolve(entity, archived=True, version=entity.version + 1, updated_at=now)
    return new, Archived(new)


def restore(entity: E, *, now: datetime) -> tuple[E, Restored[E] | None]:
    """Bring back an archived ``entity`` (a no-op, without event, if it is not archived)."""
    if not entity.archived:
        return entity, None
    new = attrs.evolve(entity, archived=False, version=entity.version + 1, updated_at=now)
    return new, Restored(new)


def _check_names(cls: type[Entity], values: Mapping[str, Any]) -> None:
    known = _fields(cls)
    for name in values:
        if name not in known:
            raise ValidationError(name, f"is not a field of {cls.ENTITY}", code="unknown_field")
        if name in cls.SYSTEM_FIELDS:
            raise ValidationError(name, "is managed by crmkit", code="read_only")
