"""Merging duplicate records: the plan (pure) and the journal entry that lets it be undone.

A merge keeps one record, the **survivor**, and folds the others into it:

* each field of the survivor keeps its value unless the caller chose another
  record's value for it, or it is empty and another record has one; list
  fields (phones, e-mails, tags...) take the union, survivor's first;
* every record that refers to a merged record (a contact's organization, an
  interaction's contact, an opportunity, a case, a lead...) is re-pointed to
  the survivor;
* the merged records are archived, not deleted.

:func:`merged_fields` computes the survivor's new values; the service turns
them into a :class:`MergePlan` (a preview, written nowhere) and executes it
in one transaction, writing a :class:`MergeJournal` entry that holds every
touched record as it was, so ``undo`` can put each back exactly.

.. versionadded:: 0.1
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import ClassVar, Final
from uuid import UUID

import attrs
from attrs import field, frozen

from crmkit.core.entities import _BASE_FIELDS, Entity, FieldKind
from crmkit.core.errors import ValidationError
from crmkit.core.fields import optional_datetime, required_id, text

__all__ = [
    "FieldChoice",
    "MergeJournal",
    "MergePlan",
    "Repoint",
    "mergeable_fields",
    "merged_fields",
]

#: Fields a merge never takes from another record: the survivor's identity
#: and system fields (``external_ref`` is unique: two records cannot share it).
_KEPT: Final = frozenset({"external_ref"})

#: how long the journal's JSON snapshot may be (about 50 MB)
MAX_SNAPSHOT: Final = 50_000_000


def mergeable_fields(cls: type[Entity]) -> tuple[str, ...]:
    """The fields of ``cls`` a merge may fill or choose (not system fields nor ``external_ref``)."""
    return tuple(
        a.name
        for a in attrs.fields(cls)
        if a.init and a.name not in cls.SYSTEM_FIELDS and a.name not in _KEPT
    )


def _empty(value: object) -> bool:
    return value is None or (isinstance(value, str | tuple | frozenset | Mapping) and not value)


@frozen
class FieldChoice:
    """Where the survivor's value of one field comes from.

    Attributes:
        field: the field name.
        source: the id of the record whose value is taken (the survivor's own
            id when it keeps its value); for list fields, the survivor's id.
        value: the value the survivor will have.
        rule: ``"kept"``, ``"chosen"`` (asked for), ``"filled"`` (the survivor
            had none) or ``"union"`` (list fields).
    """

    field: str
    source: UUID
    value: object
    rule: str


def merged_fields(
    survivor: Entity, others: Sequence[Entity], choose: Mapping[str, UUID] | None = None
) -> tuple[FieldChoice, ...]:
    """The survivor's value of each mergeable field after merging ``others`` into it.

    Args:
        survivor: the record that stays.
        others: the records merged into it (same entity type).
        choose: ``{field: record id}``: take that field from that record
            (the survivor or one of ``others``).

    Raises:
        ValidationError: ``choose`` names a field that cannot be merged
            (code ``unknown_field``) or a record not in the merge (code
            ``reference``).
    """
    cls = type(survivor)
    fields = mergeable_fields(cls)
    by_id = {survivor.id: survivor, **{o.id: o for o in others}}
    choose = dict(choose or {})
    for name, source in choose.items():
        if name not in fields:
            raise ValidationError(
                f"choose.{name}",
                f"is not a field a {cls.ENTITY} merge can choose",
                code="unknown_field",
            )
        if source not in by_id:
            raise ValidationError(
                f"choose.{name}", "is not one of the merged records", code="reference", value=source
            )
    choices: list[FieldChoice] = []
    for name in fields:
        mine = getattr(survivor, name)
        if name in choose:
            source = choose[name]
            choices.append(FieldChoice(name, source, getattr(by_id[source], name), "chosen"))
        elif isinstance(mine, tuple):
            values = list(mine)
            for other in others:
                values.extend(v for v in getattr(other, name) if v not in values)
            rule = "union" if len(values) > len(mine) else "kept"
            choices.append(FieldChoice(name, survivor.id, tuple(values), rule))
        elif isinstance(mine, frozenset):
            union = frozenset(mine).union(*(getattr(o, name) for o in others))
            rule = "union" if union != mine else "kept"
            choices.append(FieldChoice(name, survivor.id, union, rule))
        elif _empty(mine):
            donor = next((o for o in others if not _empty(getattr(o, name))), None)
            if donor is None:
                choices.append(FieldChoice(name, survivor.id, mine, "kept"))
            else:
                choices.append(FieldChoice(name, donor.id, getattr(donor, name), "filled"))
        else:
            choices.append(FieldChoice(name, survivor.id, mine, "kept"))
    return tuple(choices)


@frozen
class Repoint:
    """A related record that will refer to the survivor instead of a merged record.

    Attributes:
        entity: its entity type (``"interaction"``).
        id: its id.
        field: the reference field (``"contact_id"``).
        old: the merged record it referred to.
        new: the survivor.
    """

    entity: str
    id: UUID
    field: str
    old: UUID
    new: UUID


@frozen
class MergePlan:
    """What a merge will do; computing it writes nothing (a dry run).

    Attributes:
        entity: ``"contact"`` or ``"organization"``.
        survivor: the record that stays, as it is now.
        merged: the records folded into it, as they are now (their versions
            are checked when the plan is executed).
        fields: where each field of the survivor comes from.
        repoints: the related records that will refer to the survivor.
    """

    entity: str
    survivor: Entity
    merged: tuple[Entity, ...]
    fields: tuple[FieldChoice, ...]
    repoints: tuple[Repoint, ...]

    @property
    def changes(self) -> dict[str, object]:
        """The survivor's fields that change, with their new values."""
        return {c.field: c.value for c in self.fields if c.value != getattr(self.survivor, c.field)}


def _check_entity(value: object) -> str:
    if value not in ("contact", "organization"):
        raise ValidationError(
            "entity", 'must be "contact" or "organization"', code="choice", value=value
        )
    assert isinstance(value, str)
    return value


@frozen(kw_only=True)
class MergeJournal(Entity):
    """One executed merge, kept so it can be undone (the ``merges`` table).

    Attributes:
        entity: the entity type merged.
        survivor_id: the record that stayed.
        merged_ids: the records folded into it, comma-separated.
        snapshot: JSON: every record the merge touched, as it was before.
        versions: JSON: each touched record's version right after the merge
            (undo refuses if any has changed since).
        undone_at: when the merge was undone, or ``None``.
    """

    ENTITY: ClassVar[str] = "merge"
    QUERYABLE: ClassVar[dict[str, FieldKind]] = {
        **_BASE_FIELDS,
        "entity": FieldKind.TEXT,
        "survivor_id": FieldKind.ID,
        "undone_at": FieldKind.DATETIME,
    }

    entity: str = field(converter=_check_entity)
    survivor_id: UUID = required_id()
    merged_ids: str = text("merged_ids", required=True, max_length=100_000)
    snapshot: str = text("snapshot", required=True, max_length=MAX_SNAPSHOT)
    versions: str = text("versions", required=True, max_length=MAX_SNAPSHOT)
    undone_at: datetime | None = optional_datetime()

    @property
    def merged(self) -> tuple[UUID, ...]:
        """The ids of the merged records."""
        return tuple(UUID(part) for part in self.merged_ids.split(","))
