"""Custom field definitions, value checks, the patch a write applies, the JSON form."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any
from uuid import UUID

import pytest
from hypothesis import given
from hypothesis import strategies as st

from crmkit import Money, ValidationError
from crmkit.core.custom_fields import (
    CustomField,
    CustomFieldType,
    CustomPatch,
    CustomValues,
    custom_from_json,
    custom_to_json,
    validate_custom,
)
from crmkit.serialization import converter

REF = UUID("0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b")


def _field(key: str = "tier", type: str = "text", **extra: Any) -> CustomField:
    return CustomField(entity="organization", key=key, label=key.title(), type=type, **extra)


# ------------------------------------------------------------- definitions


def test_a_definition_takes_the_type_by_value() -> None:
    """``type="choice"`` becomes CustomFieldType.CHOICE and choices a tuple."""
    field = _field(type="choice", choices=["gold", "silver"])

    assert CustomFieldType.CHOICE == field.type
    assert ("gold", "silver") == field.choices
    assert "custom.tier" == field.path


@pytest.mark.parametrize(
    ("extra", "field_name", "code"),
    [
        ({"entity": "user"}, "entity", "choice"),
        ({"key": "Tier"}, "key", "key"),
        ({"key": "1tier"}, "key", "key"),
        ({"type": "colour"}, "type", "choice"),
        ({"type": "choice"}, "choices", "required"),
        ({"type": "choice", "choices": ["a", "a"]}, "choices[1]", "duplicate"),
        ({"choices": ["a"]}, "choices", "invalid"),
        ({"type": "reference"}, "reference", "choice"),
        ({"type": "reference", "reference": "user", "default": REF}, "default", "invalid"),
        ({"reference": "user"}, "reference", "invalid"),
        ({"min_value": 1}, "min_value", "invalid"),
        ({"type": "integer", "min_value": 5, "max_value": 1}, "max_value", "invalid"),
        ({"type": "integer", "max_length": 3}, "max_length", "invalid"),
        ({"pattern": "("}, "pattern", "pattern"),
        ({"type": "integer", "default": "x"}, "default", "type"),
        ({"label": " "}, "label", "required"),
    ],
)
def test_an_invalid_definition_names_the_argument(
    extra: dict[str, Any], field_name: str, code: str
) -> None:
    """Each wrong definition argument is a ValidationError naming it."""
    values: dict[str, Any] = {"entity": "organization", "key": "tier", "label": "Tier"}
    values["type"] = "text"
    values.update(extra)

    with pytest.raises(ValidationError) as info:
        CustomField(**values)

    assert (field_name, code) == (info.value.field, info.value.code)


def test_a_default_is_normalized_like_a_value() -> None:
    """A decimal default given as text is kept as a Decimal."""
    assert Decimal("1.50") == _field(type="decimal", default="1.50").default


def test_the_spanish_label_falls_back_to_english() -> None:
    """label_in("es") uses label_es when there is one."""
    assert "Categoría" == _field(label_es="Categoría").label_in("es")
    assert "Score" == _field("score").label_in("es")


# ------------------------------------------------------------------ values


@pytest.mark.parametrize(
    ("definition", "given", "expected"),
    [
        (_field(), "  gold ", "gold"),
        (_field(type="integer"), 7, 7),
        (_field(type="decimal"), "12.50", Decimal("12.50")),
        (_field(type="decimal"), 3, Decimal(3)),
        (_field(type="money"), Money("9.5", "EUR"), Money("9.50", "EUR")),
        (_field(type="date"), "2026-01-05", date(2026, 1, 5)),
        (
            _field(type="datetime"),
            datetime(2026, 1, 5, 10, tzinfo=timezone(timedelta(hours=1))),
            datetime(2026, 1, 5, 9, tzinfo=UTC),
        ),
        (_field(type="boolean"), False, False),
        (_field(type="choice", choices=["a", "b"]), "b", "b"),
        (_field(type="multi_choice", choices=["a", "b", "c"]), ["c", "a", "c"], ("a", "c")),
        (_field(type="reference", reference="contact"), str(REF), REF),
    ],
)
def test_values_are_normalized(definition: CustomField, given: object, expected: object) -> None:
    """Each type's accepted input becomes its normalized Python value."""
    actual = validate_custom([definition], {definition.key: given}, creating=False)

    assert {definition.key: expected} == actual
    assert type(expected) is type(actual[definition.key])


@pytest.mark.parametrize(
    ("definition", "given", "code"),
    [
        (_field(), 5, "type"),
        (_field(max_length=3), "gold", "too_long"),
        (_field(pattern=r"[A-Z]{2}\d+"), "es123", "pattern"),
        (_field(type="integer"), True, "type"),
        (_field(type="integer"), 2**63, "out_of_range"),
        (_field(type="integer", min_value=0), -1, "out_of_range"),
        (_field(type="decimal"), 1.5, "type"),
        (_field(type="decimal"), "NaN", "not_finite"),
        (_field(type="decimal"), "1.0000000000000001", "precision"),
        (_field(type="decimal", max_value="10"), "10.01", "out_of_range"),
        (_field(type="money"), "12.50", "type"),
        (_field(type="money", min_value=0), Money("-1", "EUR"), "out_of_range"),
        (_field(type="date"), datetime(2026, 1, 5, tzinfo=UTC), "type"),
        (_field(type="date"), "05/01/2026", "date"),
        (_field(type="datetime"), datetime(2026, 1, 5), "naive_datetime"),
        (_field(type="boolean"), "yes", "type"),
        (_field(type="choice", choices=["a"]), "b", "choice"),
        (_field(type="multi_choice", choices=["a"]), "a", "type"),
        (_field(type="multi_choice", choices=["a"]), ["a", "z"], "choice"),
        (_field(type="reference", reference="contact"), "not-an-id", "type"),
    ],
)
def test_a_wrong_value_names_the_custom_field(
    definition: CustomField, given: object, code: str
) -> None:
    """A value the type refuses is a ValidationError on ``custom.<key>`` with a code."""
    with pytest.raises(ValidationError) as info:
        validate_custom([definition], {definition.key: given}, creating=False)

    assert (definition.path, code) == (info.value.field, info.value.code)


def test_an_unknown_key_is_refused_unless_it_is_removed() -> None:
    """A key without definition takes only None (removing a value of a removed definition)."""
    with pytest.raises(ValidationError) as info:
        validate_custom([_field()], {"colour": "red"}, creating=False)

    assert ("custom.colour", "unknown_field") == (info.value.field, info.value.code)
    assert {"colour": None} == validate_custom([_field()], {"colour": None}, creating=False)


def test_a_creation_gets_defaults_and_needs_required_fields() -> None:
    """creating=True fills defaults and refuses a missing required field."""
    definitions = [_field(default="bronze"), _field("score", type="integer", required=True)]

    assert {"tier": "bronze", "score": 3} == validate_custom(
        definitions, {"score": 3}, creating=True
    )
    with pytest.raises(ValidationError) as info:
        validate_custom(definitions, {}, creating=True)
    assert ("custom.score", "required") == (info.value.field, info.value.code)


def test_an_update_cannot_remove_a_required_value() -> None:
    """``None`` for a required field on update is refused."""
    with pytest.raises(ValidationError) as info:
        validate_custom([_field(required=True)], {"tier": None}, creating=False)

    assert ("custom.tier", "required") == (info.value.field, info.value.code)


def test_a_patch_merges_into_the_stored_values_and_none_removes() -> None:
    """applied_to keeps keys not given (a removed definition's included) and drops None."""
    stored = CustomValues({"tier": "gold", "old": Decimal("1.5"), "score": 3})
    patch = CustomPatch((("score", 4), ("tier", None)))

    assert CustomValues({"old": Decimal("1.5"), "score": 4}) == patch.applied_to(stored)


def test_a_patch_creates_with_defaults_and_checks_required() -> None:
    """created() applies defaults under the given values and needs required keys."""
    patch = CustomPatch((("score", 4),), defaults=(("tier", "bronze"),), required=("score",))

    assert {"tier": "bronze", "score": 4} == patch.created()
    with pytest.raises(ValidationError) as info:
        CustomPatch((), required=("score",)).created()
    assert "custom.score" == info.value.field


# ------------------------------------------------------ the mapping, JSON


def test_custom_values_compare_by_value_and_hash() -> None:
    """Two mappings with the same items are equal (to dicts too) and hash alike."""
    a = CustomValues({"b": 1, "a": (" x",)})
    b = CustomValues({"a": [" x"], "b": 1})

    assert a == b
    assert hash(a) == hash(b)
    assert {"a": (" x",), "b": 1} == a
    assert ["a", "b"] == list(a)


def test_custom_values_refuse_unknown_python_types() -> None:
    """A float is not a custom value (decimals are exact)."""
    with pytest.raises(ValidationError) as info:
        CustomValues({"score": 1.5})

    assert ("custom.score", "type") == (info.value.field, info.value.code)


def test_the_json_form_names_non_text_strings() -> None:
    """Decimals, dates, datetimes and references are strings named in ``$types``."""
    values = CustomValues(
        {
            "d": Decimal("12.50"),
            "m": Money("3", "EUR"),
            "on": date(2026, 1, 5),
            "at": datetime(2026, 1, 5, 9, tzinfo=UTC),
            "ref": REF,
            "t": "gold",
            "n": 3,
            "b": True,
            "mc": ("a", "b"),
        }
    )

    assert {
        "at": "2026-01-05T09:00:00.000000+00:00",
        "b": True,
        "d": "12.50",
        "m": {"amount": "3.00", "currency": "EUR"},
        "mc": ["a", "b"],
        "n": 3,
        "on": "2026-01-05",
        "ref": str(REF),
        "t": "gold",
        "$types": {"at": "datetime", "d": "decimal", "on": "date", "ref": "reference"},
    } == custom_to_json(values)


def test_a_broken_json_form_is_a_validation_error() -> None:
    """A tag that does not read is refused, naming the key."""
    with pytest.raises(ValidationError) as info:
        custom_from_json({"d": "x", "$types": {"d": "decimal"}})

    assert "custom.d" == info.value.field


_values = st.one_of(
    st.text(min_size=1, max_size=10),
    st.integers(min_value=-(2**63) + 1, max_value=2**63 - 1),
    st.booleans(),
    st.decimals(
        allow_nan=False, allow_infinity=False, places=3, max_value=10**9, min_value=-(10**9)
    ),
    st.dates(),
    st.datetimes(timezones=st.just(UTC)),
    st.uuids(),
    st.lists(st.text(min_size=1, max_size=5), max_size=3).map(lambda v: tuple(sorted(set(v)))),
    st.builds(
        Money, st.integers(min_value=-(10**6), max_value=10**6), st.sampled_from(["EUR", "USD"])
    ),
)


@given(st.dictionaries(st.from_regex(r"[a-z][a-z0-9_]{0,10}", fullmatch=True), _values, max_size=6))
def test_custom_values_round_trip_through_the_converter(values: dict[str, object]) -> None:
    """unstructure then structure gives the same values, types included."""
    original = CustomValues(values)

    again = converter.structure(converter.unstructure(original), CustomValues)

    assert original == again
    assert [type(v) for v in original.values()] == [type(v) for v in again.values()]
