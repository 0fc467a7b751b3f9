"""The converter: exact round trips, JSON-ready output, only ValidationError on bad input."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any
from uuid import UUID

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from crmkit import (
    Address,
    AddressKind,
    Contact,
    EmailAddress,
    Entity,
    MasterSeed,
    Money,
    Organization,
    OrganizationId,
    OrganizationKind,
    PhoneNumber,
    ValidationError,
)
from crmkit.serialization import converter, make_converter
from tests.strategies import (
    ENTITY_TYPES,
    addresses,
    aimed_garbage,
    any_garbage,
    email_addresses,
    entities,
    entity_of,
    garbage,
    master_seeds,
    money,
    phone_numbers,
    starting_points,
    valid_or_rejected_at,
)

_values: st.SearchStrategy[Any] = st.one_of(
    entities, money(), email_addresses, phone_numbers, addresses, master_seeds
)


# ------------------------------------------------------------ round trips


@settings(max_examples=200)
@given(_values)
def test_every_core_type_round_trips_through_json(value: Any) -> None:
    """``structure(json.loads(json.dumps(unstructure(x))), type(x)) == x``."""
    data = converter.unstructure(value)
    text = json.dumps(data)
    assert value == converter.structure(data, type(value))
    assert value == converter.structure(json.loads(text), type(value))


@pytest.mark.parametrize("cls", ENTITY_TYPES, ids=lambda c: c.__name__)
@settings(max_examples=50)
@given(data=st.data())
def test_each_entity_type_round_trips(cls: type[Entity], data: st.DataObject) -> None:
    """Every entity type comes back equal, field by field, after a JSON round trip."""
    entity = data.draw(entity_of(cls))
    wire = json.loads(json.dumps(converter.unstructure(entity)))
    assert entity == converter.structure(wire, cls)


def test_wire_format_follows_the_documented_rules() -> None:
    """ISO datetimes, string ids and decimals, enums by value, sets as sorted lists."""
    at = datetime(2026, 1, 5, 9, 30, tzinfo=timezone(timedelta(hours=1)))
    org = Organization(
        id=OrganizationId(UUID("01234567-89ab-7def-8123-456789abcdef")),
        created_at=at,
        updated_at=at,
        name="Acme",
        kinds=frozenset([OrganizationKind.SUPPLIER, OrganizationKind.CUSTOMER]),
        emails=(EmailAddress("ventas@ACME.es"),),
        phones=(PhoneNumber("+34911234567"),),
        addresses=(Address(city="Madrid", country="es", kind=AddressKind.BILLING),),
    )
    data = converter.unstructure(org)
    assert "01234567-89ab-7def-8123-456789abcdef" == data["id"]
    assert "2026-01-05T09:30:00+01:00" == data["created_at"]
    assert ["customer", "supplier"] == data["kinds"]
    assert ["ventas@acme.es"] == data["emails"]
    assert ["+34911234567"] == data["phones"]
    assert "billing" == data["addresses"][0]["kind"]
    assert "ES" == data["addresses"][0]["country"]
    assert {"amount": "12.50", "currency": "EUR"} == converter.unstructure(Money("12.5", "EUR"))


def test_make_converter_returns_an_independent_copy() -> None:
    """Plugins may extend their own converter without touching crmkit's."""
    mine = make_converter()
    mine.register_unstructure_hook(Money, str)
    assert "1.00 EUR" == mine.unstructure(Money("1", "EUR"))
    assert {"amount": "1.00", "currency": "EUR"} == converter.unstructure(Money("1", "EUR"))


# --------------------------------------------------------- known bad input


_NOW = "2026-01-05T09:00:00+00:00"
_ORG = {"id": "01234567-89ab-7def-8123-456789abcdef", "created_at": _NOW, "updated_at": _NOW}


@pytest.mark.parametrize(
    ("data", "field", "code"),
    [
        (
            {**_ORG, "name": "A", "created_at": "2026-01-05T09:00:00"},
            "created_at",
            "naive_datetime",
        ),
        ({**_ORG, "name": "A", "updated_at": "tomorrow"}, "updated_at", "datetime"),
        ({**_ORG, "name": "A", "id": "nope"}, "id", "uuid"),
        ({**_ORG, "name": "A", "owner_id": 12}, "owner_id", "uuid"),
        ({**_ORG, "name": 12}, "name", "type"),
        ({**_ORG}, "name", "required"),
        ({**_ORG, "name": "A", "colour": "red"}, "colour", "unknown_field"),
        ({**_ORG, "name": "A", "kinds": ["customer", "alien"]}, "kinds[1]", "choice"),
        ({**_ORG, "name": "A", "emails": ["a@b.es", "nope"]}, "emails[1]", "invalid_email"),
        ({**_ORG, "name": "A", "phones": ["+34 12"]}, "phones[0]", None),
        ({**_ORG, "name": "A", "addresses": [{"country": "XX"}]}, "addresses[0].country", None),
        ({**_ORG, "name": "A", "addresses": [{"town": "X"}]}, "addresses[0].town", None),
        ({**_ORG, "name": "A", "archived": "yes"}, "archived", "type"),
        ({**_ORG, "name": "A", "version": 0}, "version", None),
        ({**_ORG, "name": "A", "tags": "vip"}, "tags", "type"),
    ],
)
def test_bad_entity_data_names_the_field(
    data: dict[str, Any], field: str, code: str | None
) -> None:
    """Each kind of bad value is a ValidationError whose ``field`` is its path."""
    with pytest.raises(ValidationError) as info:
        converter.structure(data, Organization)
    assert field == info.value.field
    if code is not None:
        assert code == info.value.code


@pytest.mark.parametrize(
    ("data", "field", "code"),
    [
        ({"amount": "NaN", "currency": "EUR"}, "amount", "not_finite"),
        ({"amount": "sNaN", "currency": "EUR"}, "amount", "not_finite"),
        ({"amount": "Infinity", "currency": "EUR"}, "amount", "not_finite"),
        ({"amount": 1.5, "currency": "EUR"}, "amount", "type"),
        ({"amount": "1.234", "currency": "EUR"}, "amount", "precision"),
        ({"amount": "1", "currency": "ZZZ"}, "currency", "currency"),
        ({"amount": "1"}, "currency", "required"),
        ({"amount": "1", "currency": "EUR", "rate": "1"}, "rate", "unknown_field"),
    ],
)
def test_bad_money_data_names_the_field(data: dict[str, Any], field: str, code: str) -> None:
    """NaN decimals, floats, extra precision, unknown currencies: ValidationError at the key."""
    with pytest.raises(ValidationError) as info:
        converter.structure(data, Money)
    assert (field, code) == (info.value.field, info.value.code)


@pytest.mark.parametrize("value", ["NaN", "-Infinity", "sNaN", 1.5, True, None, "x"])
def test_bad_decimals_are_rejected(value: object) -> None:
    """A decimal is a finite decimal string or an int, never a float or NaN."""
    with pytest.raises(ValidationError) as info:
        converter.structure(value, Decimal)
    assert "" == info.value.field


def test_structure_accepts_datetimes_and_uuids_already_parsed() -> None:
    """Rows from a database driver may already hold datetime and UUID objects."""
    at = datetime(2026, 1, 5, tzinfo=UTC)
    ident = UUID("01234567-89ab-7def-8123-456789abcdef")
    contact = converter.structure(
        {"id": ident, "created_at": at, "updated_at": at, "first_name": "Ana"}, Contact
    )
    assert (ident, at) == (contact.id, contact.created_at)


# ------------------------------------------------------------ malformed input


def _list_keys(data: dict[str, Any]) -> list[str]:
    return sorted(k for k, v in data.items() if isinstance(v, list))


_extra_keys = st.text(min_size=1, max_size=12)


@st.composite
def _malformed(draw: st.DrawFn, cls: type[Any], values: st.SearchStrategy[Any]) -> Any:
    """A valid value's unstructured dict with one mutation; returns ``(data, key, how)``."""
    data: dict[str, Any] = converter.unstructure(draw(values))
    how = draw(st.sampled_from(["garbage", "aimed", "delete", "extra", "nested"]))
    if how == "nested" and not _list_keys(data):
        how = "aimed"
    if how == "extra":
        key = draw(_extra_keys)
        while key in data:
            key += "_"
        data[key] = draw(garbage)
        return data, key, how
    if how == "nested":
        key = draw(st.sampled_from(_list_keys(data)))
        items = list(data[key])
        bad = draw(any_garbage(key))
        if items and isinstance(items[0], dict) and draw(st.booleans()):
            index = draw(st.integers(0, len(items) - 1))
            inner = dict(items[index])
            inner[draw(st.sampled_from(sorted(inner)))] = bad
            items[index] = inner
        else:
            items.insert(draw(st.integers(0, len(items))), bad)
        data[key] = items
        return data, key, how
    key = draw(st.sampled_from(sorted(data)))
    if how == "delete":
        del data[key]
    elif how == "aimed":
        data[key] = draw(aimed_garbage(key))
    else:
        data[key] = draw(garbage)
    return data, key, how


def _check_structure(cls: type[Any], case: tuple[dict[str, Any], str, str]) -> None:
    data, key, how = case
    result = valid_or_rejected_at(lambda: converter.structure(data, cls), key)
    event(f"{how}: {'rejected' if result is None else 'accepted'}")
    if result is not None:  # the mutation happened to be valid: it must round-trip
        assert isinstance(result, cls)
        assert result == converter.structure(converter.unstructure(result), cls)


@pytest.mark.parametrize("cls", ENTITY_TYPES, ids=lambda c: c.__name__)
@settings(max_examples=1000)
@given(data=st.data())
def test_malformed_entity_data_raises_only_validation_error_naming_the_key(
    cls: type[Entity], data: st.DataObject
) -> None:
    """1,000 mutated dicts per entity: each is structured or rejected at the mutated key."""
    _check_structure(cls, data.draw(_malformed(cls, starting_points(cls))))


@pytest.mark.parametrize(
    ("cls", "values"),
    [
        (Address, starting_points(Address)),
        (MasterSeed, starting_points(MasterSeed)),
        (Money, money()),
    ],
    ids=["Address", "MasterSeed", "Money"],
)
@settings(max_examples=300)
@given(data=st.data())
def test_malformed_value_data_raises_only_validation_error_naming_the_key(
    cls: type[Any], values: st.SearchStrategy[Any], data: st.DataObject
) -> None:
    """Mutated addresses, seeds and amounts are structured or rejected at the key."""
    _check_structure(cls, data.draw(_malformed(cls, values)))


@pytest.mark.parametrize("cls", [EmailAddress, PhoneNumber, Money, Address, *ENTITY_TYPES])
@settings(max_examples=100)
@given(value=garbage)
def test_garbage_at_the_top_level_is_a_validation_error(cls: type[Any], value: object) -> None:
    """A non-dict (or a dict of nonsense) where a record belongs is rejected as a whole."""
    error: ValidationError | None = None
    try:
        converter.structure(value, cls)
    except ValidationError as exc:
        error = exc
    if error is None:  # some garbage text is an address, and ``{}`` is an empty Address
        assert cls in (EmailAddress, PhoneNumber, Address)
    else:
        assert error.code
