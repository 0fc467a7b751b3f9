"""The custom field definitions of a CRM: ``crm.custom_fields``.

Definitions live in code, not in the store: plugins register them when the
CRM opens (``crmkit_register_custom_fields``) and code may add or remove
them through this registry.  Values live in each record's ``custom``.

.. versionadded:: 0.1
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any, Final

from crmkit.core.cases import Case
from crmkit.core.custom_fields import (
    CUSTOM_ENTITIES,
    CUSTOM_PREFIX,
    CustomField,
    CustomFieldType,
    CustomPatch,
    validate_custom,
)
from crmkit.core.entities import Contact, Entity, FieldKind, Organization, User
from crmkit.core.errors import DuplicateError, NotFoundError, ValidationError
from crmkit.core.interactions import Interaction
from crmkit.core.leads import Lead
from crmkit.core.opportunities import Opportunity
from crmkit.stores.base import UnitOfWork

__all__ = ["CustomFieldRegistry"]

#: The record type each reference target names.
_TARGETS: Final[dict[str, type[Entity]]] = {
    "organization": Organization,
    "contact": Contact,
    "lead": Lead,
    "opportunity": Opportunity,
    "interaction": Interaction,
    "case": Case,
    "user": User,
}

#: How a custom field of each type compares in ``find``.
QUERY_KINDS: Final[dict[CustomFieldType, FieldKind]] = {
    CustomFieldType.TEXT: FieldKind.TEXT,
    CustomFieldType.CHOICE: FieldKind.TEXT,
    CustomFieldType.INTEGER: FieldKind.INT,
    CustomFieldType.DECIMAL: FieldKind.DECIMAL,
    CustomFieldType.MONEY: FieldKind.MONEY,
    CustomFieldType.DATE: FieldKind.DATE,
    CustomFieldType.DATETIME: FieldKind.DATETIME,
    CustomFieldType.BOOLEAN: FieldKind.BOOL,
    CustomFieldType.MULTI_CHOICE: FieldKind.SET,
    CustomFieldType.REFERENCE: FieldKind.ID,
}


class CustomFieldRegistry:
    """Custom field definitions by entity type and key, in registration order.

    .. versionadded:: 0.1
    """

    def __init__(self) -> None:
        self._fields: dict[tuple[str, str], CustomField] = {}

    def load(self, fields: Iterable[CustomField]) -> None:
        """Add definitions plugins registered (already checked for duplicates)."""
        for f in fields:
            self._fields[f.entity, f.key] = f

    def register(self, field: CustomField) -> CustomField:
        """Add a definition.

        Raises:
            ValidationError: not a :class:`~crmkit.CustomField`.
            DuplicateError: the entity type has a field with that key.
        """
        if not isinstance(field, CustomField):
            raise ValidationError("field", "must be a CustomField", code="type", value=field)
        if (field.entity, field.key) in self._fields:
            raise DuplicateError(f"{field.entity} custom field", "key", field.key)
        self._fields[field.entity, field.key] = field
        return field

    def remove(self, entity: str, key: str) -> CustomField:
        """Remove a definition; values stored under its key are kept.

        Stored values stay in their records (returned, audited, exported);
        a write that does not mention them keeps them, and
        ``custom={key: None}`` removes them.

        Raises:
            NotFoundError: there is no such definition.
        """
        found = self._fields.pop((entity, key), None)
        if found is None:
            raise NotFoundError(f"{entity} custom field", key)
        return found

    def get(self, entity: str, key: str) -> CustomField:
        """The definition of ``key`` for ``entity``.

        Raises:
            NotFoundError: there is none.
        """
        found = self._fields.get((entity, key))
        if found is None:
            raise NotFoundError(f"{entity} custom field", key)
        return found

    def for_entity(self, entity: str) -> list[CustomField]:
        """The definitions of one entity type, in registration order.

        Raises:
            ValidationError: ``entity`` is not an entity type with custom fields.
        """
        if entity not in CUSTOM_ENTITIES:
            raise ValidationError(
                "entity",
                f"must be one of: {', '.join(CUSTOM_ENTITIES)}",
                code="choice",
                value=entity,
            )
        return [f for (e, _), f in self._fields.items() if e == entity]

    def kinds(self, entity: str) -> dict[str, FieldKind]:
        """How each custom field of ``entity`` compares, by its ``find`` name."""
        return {
            f"{CUSTOM_PREFIX}{f.key}": QUERY_KINDS[f.type]
            for (e, _), f in self._fields.items()
            if e == entity
        }

    def applies(self, entity: str, values: object) -> bool:
        """Whether a write of ``entity`` passing ``custom=values`` has anything to check.

        ``False`` for entity types without custom fields and for an empty or
        ``None`` value when no definition has a default or is required (the
        record's values stay as they are).
        """
        if entity not in CUSTOM_ENTITIES:
            return False
        if values is not None and not (isinstance(values, Mapping) and not values):
            return True
        return any(
            f.default is not None or f.required for (e, _), f in self._fields.items() if e == entity
        )

    def implied(self, uow: UnitOfWork, entity: str, fields: dict[str, Any]) -> dict[str, Any]:
        """``fields`` of a record crmkit creates on its own (a lead's converted
        organization, a follow-up call), with the custom defaults a creation gets.

        Raises:
            ValidationError: a required field has no default (``custom.<key>``,
                code ``required``): the operation creating it writes nothing.
        """
        if "custom" in fields or not self.applies(entity, None):
            return fields
        return {**fields, "custom": self.patch(uow, entity, None)}

    def patch(
        self, uow: UnitOfWork, entity: str, values: Mapping[str, object] | None
    ) -> CustomPatch:
        """Check the custom values a write passes and resolve their references.

        Raises:
            ValidationError: ``field`` is ``custom.<key>`` (codes
                ``unknown_field``, ``required``, ``reference`` and the type's own).
        """
        definitions = self.for_entity(entity)
        normalized = validate_custom(definitions, values, creating=False)
        by_key = {d.key: d for d in definitions}
        for key, value in normalized.items():
            definition = by_key.get(key)
            if value is None or definition is None or definition.reference is None:
                continue
            target = _TARGETS[definition.reference]
            if not uow.repository(target).get_many([value]):  # type: ignore[list-item]
                raise ValidationError(
                    definition.path,
                    f"refers to a {target.ENTITY} that does not exist",
                    code="reference",
                    value=value,
                )
        return CustomPatch(
            tuple(normalized.items()),
            defaults=tuple((d.key, d.default) for d in definitions if d.default is not None),
            required=tuple(d.key for d in definitions if d.required),
        )

    def __iter__(self) -> Iterator[CustomField]:
        return iter(list(self._fields.values()))

    def __len__(self) -> int:
        return len(self._fields)

    def __repr__(self) -> str:
        names = ", ".join(f"{e}.{k}" for e, k in self._fields)
        return f"<CustomFieldRegistry: {names}>"
