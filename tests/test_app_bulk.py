"""bulk_create's fast paths change nothing a caller can see.

Items are validated stage by stage (arguments, e-mail addresses, entities)
with the garbage collector paused, records are made by generated builders that
skip re-converting defaults, and creations are audited from compact
(field, value) pairs.  These tests pin what must stay as it was: the first
invalid item is the one reported, nothing is written on failure, the audit
trail and ``history()`` hold the same entries as for records created one by
one, and the caller's items and the collector are left as they were.
"""

from __future__ import annotations

import gc
import inspect
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import crmkit
from crmkit import AuditAction, AuditChange, EmailAddress, Organization, ValidationError
from crmkit.app import _created_changes, _json
from crmkit.core import changes
from crmkit.core.custom_fields import CustomValues
from crmkit.core.entities import Entity
from crmkit.core.ids import uuid7
from crmkit.serialization import converter
from crmkit.services.base import _builder, _checked_builder
from tests.conftest import FixedClock
from tests.conftest import record_counts as counts
from tests.strategies import any_garbage, entities

# ------------------------------------------------------------- audit values


@given(entity=entities)
def test_json_form_of_every_field_is_the_converters(entity: Entity) -> None:
    """The audit's JSON form of each field value is converter.unstructure's."""
    for field in attrs.fields(type(entity)):
        value = getattr(entity, field.name)
        assert converter.unstructure(value) == _json(value)


def _reference_created_changes(entity: Entity) -> list[AuditChange]:
    """A creation's audit changes as crmkit 0.1 computed them (empty custom values left out)."""
    changes = []
    for field in attrs.fields(type(entity)):
        if not field.init or field.name in Entity.SYSTEM_FIELDS:
            continue
        value = getattr(entity, field.name)
        if value is None or value is False or value in ((), frozenset(), CustomValues()):
            continue
        json_value = value if type(value) in (str, int) else converter.unstructure(value)
        changes.append(AuditChange(field.name, None, json_value))
    return changes


@given(entity=entities)
def test_creation_changes_are_every_field_that_holds_a_value(entity: Entity) -> None:
    """A creation audits each field with a value, in field order, as it always did."""
    assert _reference_created_changes(entity) == list(_created_changes(entity))


def _acme(**extra: Any) -> dict[str, Any]:
    return {
        "name": "Acme S.L.",
        "tax_id": "B12345678",
        "market": "retail",
        "kinds": ["partner", "customer"],
        "emails": ["Ventas@ACME.es"],
        "phones": ["911 234 567"],
        "tags": ["vip"],
        **extra,
    }


def _setup(crm: crmkit.CRM) -> None:
    if not crm.markets.find(key="retail"):
        crm.markets.create(name="Retail", key="retail")


def test_bulk_created_records_have_the_history_of_records_created_one_by_one(
    any_crm: crmkit.CRM,
) -> None:
    """history() of a bulk-created organization equals that of one created alone."""
    _setup(any_crm)
    alone = any_crm.organizations.create(**_acme())
    (bulk,) = any_crm.organizations.bulk_create([_acme()])

    def entries(id: Any) -> list[tuple[object, ...]]:
        return [
            (e.entity, e.version, e.action, e.changes, e.actor, e.at) for e in any_crm.history(id)
        ]

    assert 1 == len(entries(bulk.id))
    assert entries(alone.id) == entries(bulk.id)
    assert AuditChange("emails", None, ["Ventas@acme.es"]) in any_crm.history(bulk.id)[0].changes


def test_history_of_a_bulk_created_record_keeps_its_creation_after_updates(
    any_crm: crmkit.CRM, clock: FixedClock
) -> None:
    """Later updates add entries; the creation entry keeps the values it was created with."""
    _setup(any_crm)
    (acme,) = any_crm.organizations.bulk_create([_acme()])
    clock.advance(hours=1)
    any_crm.organizations.update(acme.id, expected_version=1, name="Acme Iberia", tags=[])

    created, updated = any_crm.history(acme.id)

    assert (AuditAction.CREATE, 1) == (created.action, created.version)
    assert AuditChange("name", None, "Acme S.L.") == created.changes[0]
    assert AuditChange("tags", None, ["vip"]) in created.changes
    assert (AuditAction.UPDATE, 2) == (updated.action, updated.version)
    assert (
        AuditChange("name", "Acme S.L.", "Acme Iberia"),
        AuditChange("tags", ["vip"], []),
    ) == updated.changes


# ------------------------------------------------------------- builders


def _outcome(call: Callable[[], Entity]) -> object:
    """What ``call`` gives: every field of the record, or the error it raises."""
    try:
        entity = call()
    except ValidationError as error:
        return ("error", error.field, error.code, error.reason)
    return [(a.name, getattr(entity, a.name)) for a in attrs.fields(type(entity))]


@settings(max_examples=400)
@given(data=st.data(), entity=entities)
def test_builders_make_what_changes_create_makes(data: st.DataObject, entity: Entity) -> None:
    """Any field subset, valid values or garbage: the same record or the same error."""
    cls = type(entity)
    settable = [
        a for a in attrs.fields(cls) if a.init and a.name not in {*cls.SYSTEM_FIELDS, "custom"}
    ]
    required = [a.name for a in settable if a.default is attrs.NOTHING]
    optional = [a.name for a in settable if a.default is not attrs.NOTHING]
    names = required + data.draw(st.lists(st.sampled_from(optional), unique=True), label="names")
    values: dict[str, Any] = {name: getattr(entity, name) for name in names}
    spoil: bool = data.draw(st.booleans(), label="garbage")
    if spoil:
        spoiled = data.draw(st.sampled_from(names), label="spoiled")
        values[spoiled] = data.draw(any_garbage(spoiled), label="value")
    id, now = uuid7(), datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
    build = _builder(cls, tuple(values))
    assert build is not None

    expected = _outcome(lambda: changes.create(cls, id=id, now=now, **values)[0])

    assert expected == _outcome(lambda: build(values, id, now))


@pytest.mark.parametrize(
    "names",
    [("name", "version"), ("name", "colour"), ("tax_id",), ("name", "custom")],
    ids=["system field", "unknown field", "required field missing", "custom values"],
)
def test_no_builder_where_changes_create_does_more(names: tuple[str, ...]) -> None:
    """System, unknown or missing fields and custom values are left to changes.create."""
    assert _builder(Organization, names) is None


def test_a_builder_that_disagrees_with_changes_create_is_not_used(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """If changes.create makes something else of the first record, every record uses it."""
    original = changes.create

    def shouting(cls: type[Entity], **values: Any) -> Any:
        return original(cls, **{**values, "name": values["name"].upper()})

    monkeypatch.setattr(changes, "create", shouting)
    now = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)

    entity, build = _checked_builder(Organization, {"name": "Acme", "tax_id": "B1"}, now)

    assert "ACME" == entity.name
    assert build is None


def test_bulk_created_records_equal_those_created_one_by_one(memory_crm: crmkit.CRM) -> None:
    """Records from builders equal create()'s, derived name key included."""
    bulk = memory_crm.organizations.bulk_create([_acme(), _acme(name="Beta S.A.", tags=[])])
    alone = memory_crm.organizations.create(**_acme())

    def fields(record: Entity) -> list[tuple[str, object]]:
        return [
            (a.name, getattr(record, a.name))
            for a in attrs.fields(type(record))
            if a.name not in ("id",)
        ]

    assert fields(alone) == fields(bulk[0])
    assert ("beta", ()) == (bulk[1].name_key, bulk[1].tags)


# --------------------------------------------------------- invalid items

_ITEM_KINDS: dict[str, dict[str, Any]] = {
    "valid": {},
    "bad e-mail": {"emails": ["not an address"]},
    "bad phone": {"phones": ["12"]},
    "bad e-mail and phone": {"emails": ["@"], "phones": ["+34 1"]},
    "no name": {"name": " "},
    "bad tag": {"tags": ["ok", ""]},
    "unknown argument": {"colour": "red"},
    "unknown market": {"market": "nope"},
}


@pytest.fixture
def memory_crm(clock: FixedClock) -> Iterator[crmkit.CRM]:
    with crmkit.open(":memory:", clock=clock, default_region="ES") as crm:
        _setup(crm)
        yield crm


def test_bulk_names_the_first_invalid_item_as_create_would(memory_crm: crmkit.CRM) -> None:
    """Whatever is wrong and wherever, the error is the first bad item's, as create reports it."""
    crm = memory_crm
    before = counts(crm)

    @settings(max_examples=150)
    @given(kinds=st.lists(st.sampled_from(sorted(_ITEM_KINDS)), min_size=1, max_size=6))
    def check(kinds: list[str]) -> None:
        items = [{**_acme(name=f"Org {i}"), **_ITEM_KINDS[kind]} for i, kind in enumerate(kinds)]
        first_bad = next((i for i, kind in enumerate(kinds) if kind != "valid"), None)
        if first_bad is None:
            return
        if kinds[first_bad] == "unknown argument":  # create() itself would be a TypeError
            expected = ("colour", "unknown_field")
        else:
            with pytest.raises(ValidationError) as alone:
                crm.organizations.create(**items[first_bad])
            expected = (alone.value.field, alone.value.code)

        with pytest.raises(ValidationError) as bulk:
            crm.organizations.bulk_create(items)

        assert (f"[{first_bad}].{expected[0]}", expected[1]) == (bulk.value.field, bulk.value.code)
        assert before == counts(crm)

    check()


def test_bulk_reports_an_earlier_bad_e_mail_before_a_later_bad_phone(
    memory_crm: crmkit.CRM,
) -> None:
    """Phones are parsed before e-mails, yet item 1's e-mail is reported, not item 2's phone."""
    items = [_acme(), _acme(emails=["nope"]), _acme(phones=["12"])]

    with pytest.raises(ValidationError) as info:
        memory_crm.organizations.bulk_create(items)

    assert ("[1].emails[0]", "invalid_email") == (info.value.field, info.value.code)
    assert 0 == memory_crm.organizations.count()


# ------------------------------------------------------- what it leaves


def test_bulk_accepts_a_generator_of_items(memory_crm: crmkit.CRM) -> None:
    """Items may be any iterable, read once."""
    created = memory_crm.organizations.bulk_create(_acme(name=f"Org {i}") for i in range(3))

    assert ["Org 0", "Org 1", "Org 2"] == [o.name for o in created]
    assert 3 == memory_crm.organizations.count()


def test_bulk_leaves_the_callers_items_unchanged(memory_crm: crmkit.CRM) -> None:
    """The e-mail and phone lists given are read, never rewritten."""
    item = _acme()
    emails, phones = item["emails"], item["phones"]

    (acme,) = memory_crm.organizations.bulk_create([item])

    assert ["Ventas@ACME.es"] == emails
    assert ["911 234 567"] == phones
    assert emails is item["emails"]
    assert (EmailAddress("Ventas@acme.es"),) == acme.emails


def test_contacts_bulk_parses_their_single_e_mail(memory_crm: crmkit.CRM) -> None:
    """A contact's e-mail text becomes an EmailAddress; an empty one means none."""
    ana, luis = memory_crm.contacts.bulk_create(
        [{"first_name": "Ana", "email": " Ana@Example.ES"}, {"first_name": "Luis", "email": ""}]
    )

    assert EmailAddress("Ana@example.es") == ana.email
    assert luis.email is None


@pytest.mark.parametrize("enabled", [True, False])
def test_bulk_leaves_the_garbage_collector_as_it_was(memory_crm: crmkit.CRM, enabled: bool) -> None:
    """The collector is paused only while items are validated, also when one is invalid."""
    was = gc.isenabled()
    try:
        if enabled:
            gc.enable()
        else:
            gc.disable()
        memory_crm.organizations.bulk_create([_acme()])
        assert enabled == gc.isenabled()
        with pytest.raises(ValidationError):
            memory_crm.organizations.bulk_create([_acme(phones=["12"])])
        assert enabled == gc.isenabled()
    finally:
        if was:
            gc.enable()
        else:
            gc.disable()


# ------------------------------------------------------- carried defaults

_MINIMAL = {
    "organizations": {"name": "Acme S.L."},
    "contacts": {"first_name": "Ana"},
    "leads": {"first_name": "Ana", "company": "Acme"},
}


def _creation_defaults(service: Any) -> dict[str, Any]:
    create = getattr(service, service._bulk_create_like)
    return {
        name: p.default
        for name, p in inspect.signature(create).parameters.items()
        if p.kind is inspect.Parameter.KEYWORD_ONLY and p.default is not inspect.Parameter.empty
    }


@pytest.mark.parametrize("entity", ["organizations", "contacts", "leads"])
def test_an_item_without_the_defaults_left_out_makes_the_same_record(
    crm: crmkit.CRM, entity: str
) -> None:
    """The defaults an import need not carry give each field the value it has anyway."""
    service = getattr(crm, entity)
    defaults = _creation_defaults(service)
    carried = service._carried_defaults(defaults)
    assert set(carried) < set(defaults)  # some are left out: the point of it

    every, fewer = crm._read(
        lambda uow: service._build_each(
            uow, [{**defaults, **_MINIMAL[entity]}, {**carried, **_MINIMAL[entity]}]
        )
    )

    system = {"id", "created_at", "updated_at"}
    assert {
        a.name: getattr(every, a.name) for a in attrs.fields(type(every)) if a.name not in system
    } == {a.name: getattr(fewer, a.name) for a in attrs.fields(type(fewer)) if a.name not in system}


@pytest.mark.parametrize("entity", ["opportunities", "interactions"])
def test_a_service_reading_its_items_itself_gets_every_default(
    crm: crmkit.CRM, entity: str
) -> None:
    service = getattr(crm, entity)
    defaults = _creation_defaults(service)

    assert defaults == service._carried_defaults(defaults)


def test_custom_values_are_always_carried(crm: crmkit.CRM) -> None:
    """A required custom field must still be checked on a row that leaves it out."""
    assert "custom" in crm.organizations._carried_defaults({"custom": None, "notes": None})
