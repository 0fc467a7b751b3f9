"""The error hierarchy: one base, builtin twins, structured attributes, picklable."""

from __future__ import annotations

import pickle
from uuid import UUID

import pytest

import crmkit
from crmkit.core import errors
from crmkit.core.errors import (
    AccessDenied,
    AutomationError,
    ConcurrencyError,
    CrmkitError,
    CurrencyMismatchError,
    DuplicateError,
    HookError,
    InvalidTransition,
    NotFoundError,
    PluginError,
    StorageError,
    TemplateError,
    ValidationError,
)

ID = UUID("01234567-89ab-7def-8123-456789abcdef")

#: one instance of every error, the builtin it also is, and the attributes it carries
CASES: list[tuple[CrmkitError, type[Exception], dict[str, object]]] = [
    (
        ValidationError("emails[1]", "is not an address", code="invalid_email", value="x"),
        ValueError,
        {"field": "emails[1]", "reason": "is not an address", "code": "invalid_email"},
    ),
    (CurrencyMismatchError("EUR", "USD"), ValueError, {"left": "EUR", "right": "USD"}),
    (
        InvalidTransition("opportunity", "won", "lead", "won is final"),
        ValueError,
        {"entity": "opportunity", "source": "won", "target": "lead", "reason": "won is final"},
    ),
    (NotFoundError("contact", ID), LookupError, {"entity": "contact", "id": ID}),
    (
        DuplicateError("organization", "external_ref", "ERP-1"),
        ValueError,
        {"entity": "organization", "field": "external_ref"},
    ),
    (
        ConcurrencyError("organization", ID, 3, 4),
        CrmkitError,
        {"entity": "organization", "id": ID, "expected_version": 3, "actual_version": 4},
    ),
    (
        ConcurrencyError("organization", ID, 3),
        CrmkitError,
        {"expected_version": 3, "actual_version": None},
    ),
    (AccessDenied("update", "organization"), PermissionError, {"action": "update"}),
    (
        AutomationError("Follow-up", "r:k", 1, "send_template", "RuntimeError: down"),
        CrmkitError,
        {"rule": "Follow-up", "key": "r:k", "action": 1, "kind": "send_template"},
    ),
    (
        HookError("crmkit_create_sales_order", "ERP down", committed=True),
        CrmkitError,
        {"hook": "crmkit_create_sales_order", "reason": "ERP down", "committed": True},
    ),
    (
        TemplateError(
            "variants[es].text",
            "names something the context lacks",
            code="template_variable",
            template="bienvenida",
            language="es",
            part="text",
            line=2,
        ),
        ValueError,
        {
            "field": "variants[es].text",
            "code": "template_variable",
            "template": "bienvenida",
            "language": "es",
            "part": "text",
            "line": 2,
        },
    ),
    (PluginError("bad plugin"), CrmkitError, {}),
    (StorageError("disk full"), CrmkitError, {}),
]


def _name(case: tuple[CrmkitError, type[Exception], dict[str, object]]) -> str:
    return type(case[0]).__name__


@pytest.mark.parametrize("case", CASES, ids=_name)
def test_every_error_is_a_crmkit_error_and_its_builtin_twin(
    case: tuple[CrmkitError, type[Exception], dict[str, object]],
) -> None:
    """``except ValueError`` (or LookupError, PermissionError) keeps working."""
    error, twin, attributes = case
    assert isinstance(error, CrmkitError)
    assert isinstance(error, twin)
    for name, value in attributes.items():
        assert value == getattr(error, name)


@pytest.mark.parametrize("case", CASES, ids=_name)
def test_errors_survive_pickling(
    case: tuple[CrmkitError, type[Exception], dict[str, object]],
) -> None:
    """Errors cross process boundaries with their type, message and attributes."""
    error, _, attributes = case
    copy = pickle.loads(pickle.dumps(error))
    assert type(error) is type(copy)
    assert str(error) == str(copy)
    for name, value in attributes.items():
        assert value == getattr(copy, name)


def test_every_public_error_is_covered_and_exported() -> None:
    """Each class in ``crmkit.core.errors`` subclasses CrmkitError and is re-exported."""
    covered = {type(error).__name__ for error, _, _ in CASES} | {"CrmkitError"}
    assert set(errors.__all__) == covered
    for name in errors.__all__:
        cls = getattr(errors, name)
        assert issubclass(cls, CrmkitError)
        assert cls is getattr(crmkit, name)


def test_validation_error_keeps_the_value_out_of_the_message() -> None:
    """The offending value is an attribute, never pasted into the text."""
    error = ValidationError("name", "contains control characters", value="<script>x</script>")
    assert "<script>x</script>" == error.value
    assert "<script>" not in str(error)
    assert "name: contains control characters" == str(error)


def test_duplicate_error_keeps_the_value_out_of_the_message() -> None:
    """A duplicate's value (say, a tax id) is kept but not shown."""
    error = DuplicateError("organization", "tax_id", "B-12345678")
    assert "B-12345678" == error.value
    assert "B-12345678" not in str(error)


@pytest.mark.parametrize(
    ("field", "prefix", "expected"),
    [
        ("country", "addresses[0]", "addresses[0].country"),
        ("[0].country", "addresses", "addresses[0].country"),
        ("", "emails[2]", "emails[2]"),
        ("name", "", "name"),
    ],
)
def test_validation_error_at_nests_the_field_path(field: str, prefix: str, expected: str) -> None:
    """``at(prefix)`` places a nested error under its parent's path, keeping the rest."""
    error = ValidationError(field, "is wrong", code="choice", value=1).at(prefix)
    assert (expected, "is wrong", "choice", 1) == (
        error.field,
        error.reason,
        error.code,
        error.value,
    )


def test_validation_error_without_field_reads_as_its_reason() -> None:
    """An error about the input as a whole has an empty field."""
    assert "input is empty" == str(ValidationError("", "input is empty"))
    assert "invalid" == ValidationError("", "input is empty").code


def test_concurrency_error_message_names_both_versions() -> None:
    """The message says which version was expected and which was found."""
    assert "expected version 3, found version 4" in str(ConcurrencyError("contact", ID, 3, 4))
    assert "found" not in str(ConcurrencyError("contact", ID, 3))
