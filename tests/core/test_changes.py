"""Pure change functions: create, update, archive, restore."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from crmkit import Contact, Entity, Organization, Source, User, ValidationError
from crmkit.core.changes import archive, create, restore, update
from crmkit.core.events import Archived, Created, FieldChange, Restored, Updated
from crmkit.core.ids import uuid7
from tests.strategies import ENTITY_TYPES, entity_of

NOW = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
LATER = NOW + timedelta(hours=1)


def _user_fields(cls: type[Entity]) -> list[str]:
    return sorted(a.name for a in attrs.fields(cls) if a.init and a.name not in cls.SYSTEM_FIELDS)


# ------------------------------------------------------------------ create


def test_create_starts_at_version_one_with_both_times_now() -> None:
    """A new record is version 1, not archived, created and updated now."""
    ident = uuid7()
    org, event = create(Organization, id=ident, now=NOW, name="Acme", emails=["a@acme.es"])
    assert (ident, 1, NOW, NOW, False) == (
        org.id,
        org.version,
        org.created_at,
        org.updated_at,
        org.archived,
    )
    assert Created(org) == event


@pytest.mark.parametrize("name", sorted(Entity.SYSTEM_FIELDS - {"id"}))
def test_create_refuses_system_fields(name: str) -> None:
    """Version, times and archived are set by crmkit, not by the caller."""
    with pytest.raises(ValidationError) as info:
        create(User, id=uuid7(), now=NOW, name="Ana", **{name: 2})
    assert (name, "read_only") == (info.value.field, info.value.code)


def test_create_refuses_unknown_fields() -> None:
    """A field the entity does not have is named in the error."""
    with pytest.raises(ValidationError) as info:
        create(Contact, id=uuid7(), now=NOW, first_name="Ana", surname="Pérez")
    assert ("surname", "unknown_field") == (info.value.field, info.value.code)


def test_create_validates_values() -> None:
    """Invalid values raise ValidationError naming the field."""
    with pytest.raises(ValidationError) as info:
        create(Contact, id=uuid7(), now=NOW, first_name="Ana", email="nope")
    assert ("email", "invalid_email") == (info.value.field, info.value.code)


# ------------------------------------------------------------------ update


@st.composite
def _update_case(draw: st.DrawFn) -> tuple[Entity, dict[str, Any]]:
    cls = draw(st.sampled_from(ENTITY_TYPES))
    entity, other = draw(entity_of(cls)), draw(entity_of(cls))
    names = draw(st.lists(st.sampled_from(_user_fields(cls)), unique=True, max_size=4))
    source = draw(st.sampled_from([entity, other]))  # sometimes the values do not change
    return entity, {name: getattr(source, name) for name in names}


@given(_update_case())
def test_update_bumps_the_version_only_when_something_changed(
    case: tuple[Entity, dict[str, Any]],
) -> None:
    """The version goes up by one and the event lists exactly the fields that differ."""
    entity, changes = case
    new, event = update(entity, changes, now=LATER)
    differing = [n for n in changes if getattr(entity, n) != changes[n]]
    if not differing:
        assert entity is new
        assert event is None
        return
    assert entity.version + 1 == new.version
    assert LATER == new.updated_at
    assert (entity.id, entity.created_at, entity.archived) == (
        new.id,
        new.created_at,
        new.archived,
    )
    assert isinstance(event, Updated)
    assert new == event.entity
    assert tuple(FieldChange(n, getattr(entity, n), changes[n]) for n in differing) == (
        event.changes
    )
    for name in _user_fields(type(entity)):
        expected = changes[name] if name in changes else getattr(entity, name)
        assert expected == getattr(new, name)


def test_update_with_equivalent_values_is_a_no_op() -> None:
    """Values that normalize to what is stored change nothing, not even the version."""
    org, _ = create(Organization, id=uuid7(), now=NOW, name="Acme", emails=["ana@acme.es"])
    same, event = update(org, {"name": "  Acme ", "emails": ["ana@ACME.es"]}, now=LATER)
    assert org is same
    assert event is None


@pytest.mark.parametrize("name", sorted(Entity.SYSTEM_FIELDS))
def test_system_fields_are_read_only(name: str) -> None:
    """``update`` refuses id, version, created_at, updated_at and archived."""
    org, _ = create(Organization, id=uuid7(), now=NOW, name="Acme")
    with pytest.raises(ValidationError) as info:
        update(org, {name: getattr(org, name)}, now=LATER)
    assert (name, "read_only") == (info.value.field, info.value.code)


def test_update_refuses_unknown_fields() -> None:
    """Only the entity's own fields can change."""
    org, _ = create(Organization, id=uuid7(), now=NOW, name="Acme")
    with pytest.raises(ValidationError) as info:
        update(org, {"colour": "red"}, now=LATER)
    assert ("colour", "unknown_field") == (info.value.field, info.value.code)


def test_invalid_update_leaves_the_entity_as_it_was() -> None:
    """A rejected change raises and the original is untouched."""
    org, _ = create(Organization, id=uuid7(), now=NOW, name="Acme")
    with pytest.raises(ValidationError) as info:
        update(org, {"name": "Acme 2", "website": "ftp://x"}, now=LATER)
    assert "website" == info.value.field
    assert ("Acme", 1) == (org.name, org.version)


# -------------------------------------------------------- archive / restore


@given(st.sampled_from(ENTITY_TYPES).flatmap(entity_of))
def test_archive_and_restore_are_idempotent_without_events(entity: Entity) -> None:
    """Archiving an archived record (or restoring a live one) returns it unchanged, no event."""
    archived, first = archive(entity, now=LATER)
    again, second = archive(archived, now=LATER + timedelta(hours=1))
    assert archived.archived
    assert archived is again
    assert second is None
    if entity.archived:
        assert entity is archived
        assert first is None
    else:
        assert Archived(archived) == first
        assert (entity.version + 1, LATER) == (archived.version, archived.updated_at)

    restored, came_back = restore(archived, now=LATER)
    restored_again, no_event = restore(restored, now=LATER)
    assert not restored.archived
    assert restored is restored_again
    assert no_event is None
    assert Restored(restored) == came_back
    assert archived.version + 1 == restored.version


def test_archive_keeps_every_other_field() -> None:
    """Only archived, version and updated_at change."""
    source, _ = create(Source, id=uuid7(), now=NOW, key="web", name="Web")
    archived, _ = archive(source, now=LATER)
    assert attrs.evolve(source, archived=True, version=2, updated_at=LATER) == archived
