"""Entities: frozen records whose constructors accept valid data and name the bad field."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from uuid import UUID

import attrs
import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from crmkit import (
    Address,
    Contact,
    EmailAddress,
    Entity,
    Market,
    MasterSeed,
    Organization,
    OrganizationKind,
    PhoneNumber,
    Role,
    Source,
    User,
    ValidationError,
)
from crmkit.core.entities import MASTER_TYPES, FieldKind
from crmkit.core.fields import slugify
from crmkit.core.ids import uuid7
from tests.strategies import (
    ENTITY_TYPES,
    SAMPLES,
    aimed_garbage,
    any_garbage,
    entity_of,
    garbage,
    starting_points,
    valid_or_rejected_at,
)

NOW = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


def _base(**values: Any) -> dict[str, Any]:
    return {"id": uuid7(), "created_at": NOW, "updated_at": NOW, **values}


# ------------------------------------------------------- malformed values


def _kwargs(value: Any) -> dict[str, Any]:
    return {a.alias: getattr(value, a.name) for a in attrs.fields(type(value)) if a.init}


@st.composite
def _mutated_kwargs(draw: st.DrawFn, values: st.SearchStrategy[Any]) -> tuple[Any, str, str]:
    """Valid constructor keywords with one value replaced by garbage: ``(kwargs, key, how)``."""
    kwargs = _kwargs(draw(values))
    key = draw(st.sampled_from(sorted(kwargs)))
    current = kwargs[key]
    if isinstance(current, tuple | frozenset) and draw(st.booleans()):
        items = list(current)
        items.insert(draw(st.integers(0, len(items))), draw(any_garbage(key)))
        kwargs[key] = items
        return kwargs, key, "nested"
    if draw(st.booleans()):
        kwargs[key] = draw(aimed_garbage(key))
        return kwargs, key, "aimed"
    kwargs[key] = draw(garbage)
    return kwargs, key, "garbage"


def _check_constructor(cls: type[Any], case: tuple[dict[str, Any], str, str]) -> None:
    kwargs, key, how = case
    result = valid_or_rejected_at(lambda: cls(**kwargs), key)
    event(f"{how}: {'rejected' if result is None else 'accepted'}")
    if result is not None:  # the value happened to be valid: the result is consistent
        assert result == cls(**_kwargs(result))


@pytest.mark.parametrize("cls", ENTITY_TYPES, ids=lambda c: c.__name__)
@settings(max_examples=1000)
@given(data=st.data())
def test_malformed_constructor_values_raise_only_validation_error_naming_the_field(
    cls: type[Entity], data: st.DataObject
) -> None:
    """1,000 bad keyword values per entity type: each rejected at that keyword, or valid."""
    _check_constructor(cls, data.draw(_mutated_kwargs(starting_points(cls))))


@settings(max_examples=1000)
@given(data=st.data())
def test_malformed_master_seed_values_raise_only_validation_error_naming_the_field(
    data: st.DataObject,
) -> None:
    """1,000 bad MasterSeed keyword values: each rejected at that keyword, or valid."""
    _check_constructor(MasterSeed, data.draw(_mutated_kwargs(starting_points(MasterSeed))))


@pytest.mark.parametrize("cls", ENTITY_TYPES, ids=lambda c: c.__name__)
@settings(max_examples=50)
@given(data=st.data())
def test_accepted_text_is_always_storable(cls: type[Entity], data: st.DataObject) -> None:
    """Whatever text a constructor accepts encodes as UTF-8 and has no NUL."""
    kwargs, key, _ = data.draw(_mutated_kwargs(entity_of(cls)))
    result = valid_or_rejected_at(lambda: cls(**kwargs), key)
    if result is not None:
        for a in attrs.fields(cls):
            value = getattr(result, a.name)
            if isinstance(value, str):
                value.encode("utf-8")
                assert "\x00" not in value


# ---------------------------------------------------------- field rules


def test_text_is_stripped_and_blank_becomes_none() -> None:
    """Surrounding spaces go; an empty optional text is ``None``."""
    org = Organization(**_base(name="  Acme  ", legal_name="   ", tax_id=""))
    assert ("Acme", None, None) == (org.name, org.legal_name, org.tax_id)


@pytest.mark.parametrize("name", ["", "   ", None])
def test_required_text_must_not_be_blank(name: str | None) -> None:
    """An organization needs a name."""
    with pytest.raises(ValidationError) as info:
        Organization(**_base(name=name))
    assert ("name", "required") == (info.value.field, info.value.code)


@pytest.mark.parametrize(
    ("text", "code"),
    [("a\x00b", "control_chars"), ("a\x1bb", "control_chars"), ("a\ud800b", "encoding")],
)
def test_text_with_control_characters_or_lone_surrogates_is_rejected(text: str, code: str) -> None:
    """NUL, escape and unpaired surrogates cannot be stored, so they are refused."""
    with pytest.raises(ValidationError) as info:
        Contact(**_base(first_name=text))
    assert ("first_name", code) == (info.value.field, info.value.code)


def test_text_longer_than_its_limit_is_rejected() -> None:
    """Each text field has a maximum length."""
    with pytest.raises(ValidationError) as info:
        Organization(**_base(name="x" * 301))
    assert ("name", "too_long") == (info.value.field, info.value.code)


def test_friendly_values_are_converted() -> None:
    """Strings become e-mails, phones and enums; lists become tuples and sets."""
    org = Organization(
        **_base(
            name="Acme",
            kinds=["customer", OrganizationKind.PARTNER],
            emails=[" Ventas@ACME.es "],
            phones=["+34 911 23 45 67"],
            website="acme.es",
            tags=[" vip "],
        )
    )
    assert frozenset({OrganizationKind.CUSTOMER, OrganizationKind.PARTNER}) == org.kinds
    assert (EmailAddress("Ventas@acme.es"),) == org.emails
    assert (PhoneNumber("+34911234567"),) == org.phones
    assert "https://acme.es" == org.website
    assert ("vip",) == org.tags


@pytest.mark.parametrize(
    ("values", "field", "code"),
    [
        ({"kinds": ["customer", "alien"]}, "kinds[1]", "choice"),
        ({"kinds": {"customer": True}}, "kinds", "type"),
        ({"emails": ["a@b.es", "no"]}, "emails[1]", "invalid_email"),
        ({"phones": ["911234567"]}, "phones[0]", "unparseable"),
        ({"addresses": [{"city": "Madrid"}]}, "addresses[0]", "type"),
        ({"tags": "vip"}, "tags", "type"),
        ({"tags": ["ok", ""]}, "tags[1]", "required"),
        ({"tags": ["t"] * 51}, "tags", "too_many"),
        ({"website": "ftp://acme.es"}, "website", "url"),
        ({"website": "http://[::1"}, "website", "url"),
        ({"website": "http://acme.es:99999"}, "website", "url"),
        ({"status": "closed"}, "status", "choice"),
        ({"owner_id": "01234567-89ab-7def-8123-456789abcdef"}, "owner_id", "type"),
        ({"archived": 1}, "archived", "type"),
        ({"version": 0}, "version", "type"),
        ({"version": True}, "version", "type"),
        ({"created_at": datetime(2026, 1, 5)}, "created_at", "naive_datetime"),
        ({"id": "not-a-uuid"}, "id", "type"),
    ],
)
def test_bad_values_name_the_field(values: dict[str, Any], field: str, code: str) -> None:
    """Each bad value raises ValidationError with its field path and a code."""
    with pytest.raises(ValidationError) as info:
        Organization(**{**_base(name="Acme"), **values})
    assert (field, code) == (info.value.field, info.value.code)


@pytest.mark.parametrize(
    "at",
    [
        datetime.min.replace(tzinfo=timezone(timedelta(hours=14))),
        datetime.max.replace(tzinfo=timezone(timedelta(hours=-14))),
    ],
)
def test_datetimes_outside_the_utc_range_are_rejected(at: datetime) -> None:
    """A time that has no UTC equivalent (stores keep UTC) is refused."""
    with pytest.raises(ValidationError) as info:
        User(**_base(name="Ana", updated_at=at))
    assert ("updated_at", "out_of_range") == (info.value.field, info.value.code)


def test_non_utc_offsets_are_kept() -> None:
    """An aware datetime in another offset is valid and kept as given."""
    at = datetime(2026, 1, 5, 10, 0, tzinfo=timezone(timedelta(hours=1)))
    user = User(**_base(name="Ana", created_at=at))
    assert at == user.created_at
    assert NOW == user.created_at


@pytest.mark.parametrize("key", ["referral", "a", "web_2", "x" * 64, "0-9"])
def test_master_keys_are_slugs(key: str) -> None:
    """Master keys are 1-64 lower-case letters, digits, ``-`` and ``_``."""
    assert key == Source(**_base(key=key, name="X")).key


@pytest.mark.parametrize("key", ["", "Referral", "-web", "web\n", "x" * 65, "a b", "ñu"])
def test_bad_master_keys_are_rejected(key: str) -> None:
    """Upper case, spaces, a leading dash or a trailing newline are not keys."""
    with pytest.raises(ValidationError) as info:
        Market(**_base(key=key, name="X"))
    assert ("key", "key") == (info.value.field, info.value.code)


def test_master_label_falls_back_to_english() -> None:
    """``label("es")`` is the Spanish name when there is one."""
    both = Source(**_base(key="referral", name="Referral", name_es="Referido"))
    english = Source(**_base(key="web", name="Web"))
    assert ("Referido", "Referral") == (both.label("es"), both.label("en"))
    assert "Web" == english.label("es")


def test_slugify_makes_keys_from_labels() -> None:
    """``slugify`` drops accents and joins words with dashes."""
    assert "gran-cuenta-publica" == slugify("Gran Cuenta Pública")
    assert (
        "gran-cuenta-publica" == Source(**_base(key=slugify("Gran Cuenta Pública"), name="x")).key
    )


@pytest.mark.parametrize("kind", ["", "sources", "SOURCE", None, 1, ["source"]])
def test_master_seed_kind_must_be_a_master_type(kind: object) -> None:
    """A seed's kind is one of source, market, position, zone."""
    with pytest.raises(ValidationError) as info:
        MasterSeed(kind=kind, key="web", name="Web")
    assert ("kind", "choice") == (info.value.field, info.value.code)


def test_master_seeds_cover_every_master_type() -> None:
    """Each master type accepts seeds."""
    for kind in MASTER_TYPES:
        assert kind == MasterSeed(kind=kind, key="web", name="Web").kind


def test_contact_full_name_joins_first_and_last() -> None:
    """``full_name`` (and ``display_name``) join the names present."""
    ana = Contact(**_base(first_name="Ana", last_name="Pérez"))
    solo = Contact(**_base(first_name="Ana"))
    assert ("Ana Pérez", "Ana Pérez", "Ana") == (ana.full_name, ana.display_name, solo.full_name)


def test_user_defaults_to_contributor() -> None:
    """A new user is a contributor unless a role is given."""
    assert Role.CONTRIBUTOR == User(**_base(name="Ana")).role
    assert Role.ADMIN == User(**_base(name="Ana", role="admin")).role


# ----------------------------------------------------------------- shape


@given(st.sampled_from(ENTITY_TYPES).flatmap(entity_of))
def test_entities_are_frozen(entity: Entity) -> None:
    """No one changes an entity in place."""
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        entity.version = 2  # type: ignore[misc]


@pytest.mark.parametrize("cls", ENTITY_TYPES, ids=lambda c: c.__name__)
def test_declared_fields_exist(cls: type[Entity]) -> None:
    """QUERYABLE, UNIQUE and REFERENCES name real fields; references point to entity types."""
    names = {a.name for a in attrs.fields(cls)}
    assert set(cls.QUERYABLE) <= names
    assert set(cls.UNIQUE) <= names
    assert set(cls.REFERENCES) <= names
    assert all(issubclass(t, Entity) for t in cls.REFERENCES.values())
    assert {"id", "version", "created_at", "updated_at", "external_ref", "archived"} <= names
    assert cls.SYSTEM_FIELDS <= names
    assert "entity" != cls.ENTITY


@pytest.mark.parametrize("cls", ENTITY_TYPES, ids=lambda c: c.__name__)
def test_set_fields_hold_collections(cls: type[Entity]) -> None:
    """Every field of kind SET is a tuple or frozenset on the entity."""
    example = SAMPLES[cls][0]
    for name, kind in cls.QUERYABLE.items():
        if kind is FieldKind.SET:
            assert isinstance(getattr(example, name), tuple | frozenset)


def test_addresses_must_be_address_objects() -> None:
    """An organization's addresses are Address values."""
    org = Organization(**_base(name="A", addresses=[Address(city="Madrid", country="ES")]))
    assert "ES" == org.addresses[0].country
    assert isinstance(org.id, UUID)
