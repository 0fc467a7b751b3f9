"""Custom fields through the facade: writes, removed definitions, history, search on every store."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import crmkit
from crmkit import (
    Contains,
    CustomField,
    DuplicateError,
    Eq,
    Has,
    In,
    Money,
    NotFoundError,
    Organization,
    Range,
    Sequence,
    SequenceStep,
    ValidationError,
)
from crmkit.core import changes
from crmkit.core.custom_fields import CustomValues
from crmkit.core.entities import FieldKind
from crmkit.core.ids import uuid7
from crmkit.core.query import Filter, Order, Query, check_query
from crmkit.serialization import converter
from crmkit.stores.memory import MemoryStore
from crmkit.stores.sql import SqlStore, sqlite_url

ORG = "organization"


def _define(crm: crmkit.CRM, key: str, type: str, entity: str = ORG, **extra: Any) -> CustomField:
    return crm.custom_fields.register(
        CustomField(entity=entity, key=key, label=key.title(), type=type, **extra)
    )


@pytest.fixture
def tiers(any_crm: crmkit.CRM) -> crmkit.CRM:
    """any_crm with organization fields tier (choice, default), score (integer), credit (money)."""
    _define(any_crm, "tier", "choice", choices=["gold", "silver", "bronze"], default="bronze")
    _define(any_crm, "score", "integer", min_value=0, max_value=100)
    _define(any_crm, "credit", "money")
    return any_crm


# ------------------------------------------------------------------ writes


def test_a_created_record_keeps_its_values_and_defaults(tiers: crmkit.CRM) -> None:
    """Given values are stored normalized; a missing one with a default gets it."""
    acme = tiers.organizations.create(
        name="Acme", custom={"score": 80, "credit": Money("5000", "EUR")}
    )

    expected = {"tier": "bronze", "score": 80, "credit": Money("5000.00", "EUR")}
    assert expected == acme.custom
    assert expected == tiers.organizations.get(acme.id).custom


def test_a_record_without_definitions_has_no_values(any_crm: crmkit.CRM) -> None:
    """custom is empty by default."""
    assert {} == any_crm.organizations.create(name="Acme").custom


def test_a_required_field_is_needed_on_creation(tiers: crmkit.CRM) -> None:
    """A required field without default refuses a creation without it; nothing is written."""
    _define(tiers, "region", "text", required=True)

    with pytest.raises(ValidationError) as info:
        tiers.organizations.create(name="Acme")

    assert ("custom.region", "required") == (info.value.field, info.value.code)
    assert 0 == tiers.organizations.count()


def test_an_unknown_key_is_refused(tiers: crmkit.CRM) -> None:
    """A key without definition is unknown_field, naming custom.<key>."""
    with pytest.raises(ValidationError) as info:
        tiers.organizations.create(name="Acme", custom={"colour": "red"})

    assert ("custom.colour", "unknown_field") == (info.value.field, info.value.code)


def test_an_update_merges_and_none_removes(tiers: crmkit.CRM) -> None:
    """Keys given change, others stay, None removes; the version goes up once."""
    acme = tiers.organizations.create(name="Acme", custom={"tier": "gold", "score": 10})

    updated = tiers.organizations.update(
        acme.id, expected_version=1, custom={"score": 20, "tier": None}
    )

    assert {"score": 20} == updated.custom
    assert 2 == updated.version


def test_an_update_without_custom_keeps_the_values(tiers: crmkit.CRM) -> None:
    """Renaming leaves custom values alone."""
    acme = tiers.organizations.create(name="Acme", custom={"score": 10})

    renamed = tiers.organizations.update(acme.id, expected_version=1, name="ACME")

    assert {"tier": "bronze", "score": 10} == renamed.custom


def test_an_update_with_the_same_values_changes_nothing(tiers: crmkit.CRM) -> None:
    """Passing the stored values again is no change: no new version."""
    acme = tiers.organizations.create(name="Acme", custom={"score": 10})

    same = tiers.organizations.update(acme.id, expected_version=1, custom={"score": 10})

    assert 1 == same.version


def test_a_reference_must_exist(any_crm: crmkit.CRM) -> None:
    """A reference field takes a record or its id, and refuses an id that exists nowhere."""
    _define(any_crm, "manager", "reference", reference="user")
    eva = any_crm.users.create(name="Eva")

    acme = any_crm.organizations.create(name="Acme", custom={"manager": eva})
    with pytest.raises(ValidationError) as info:
        any_crm.organizations.create(name="Beta", custom={"manager": uuid7()})

    assert {"manager": eva.id} == acme.custom
    assert ("custom.manager", "reference") == (info.value.field, info.value.code)


@pytest.mark.parametrize(
    ("entity", "create"),
    [
        ("contact", lambda crm, custom: crm.contacts.create(first_name="Ana", custom=custom)),
        ("lead", lambda crm, custom: crm.leads.create(company="Acme", custom=custom)),
        (
            "opportunity",
            lambda crm, custom: crm.opportunities.create(
                name="ERP", organization=crm.organizations.create(name="Acme"), custom=custom
            ),
        ),
        (
            "interaction",
            lambda crm, custom: crm.interactions.log(
                kind="call", organization=crm.organizations.create(name="Acme"), custom=custom
            ),
        ),
        (
            "interaction",
            lambda crm, custom: crm.interactions.plan(
                kind="call",
                organization=crm.organizations.create(name="Acme"),
                scheduled_at=datetime(2026, 2, 1, 9, tzinfo=UTC),
                custom=custom,
            ),
        ),
        (
            "case",
            lambda crm, custom: crm.cases.open(
                subject="Broken",
                case_type="claim",
                organization=crm.organizations.create(name="Acme"),
                custom=custom,
            ),
        ),
    ],
)
def test_every_entity_type_takes_custom_values(
    any_crm: crmkit.CRM, entity: str, create: Any
) -> None:
    """Contacts, leads, opportunities, interactions and cases store and check values."""
    _define(any_crm, "budget", "decimal", entity=entity)

    record = create(any_crm, {"budget": "12.50"})
    with pytest.raises(ValidationError) as info:
        create(any_crm, {"budget": "lots"})

    assert {"budget": Decimal("12.50")} == record.custom
    assert "custom.budget" == info.value.field


def test_updates_of_every_service_take_custom(any_crm: crmkit.CRM) -> None:
    """contacts, leads, opportunities, interactions and cases: update(custom=...) merges."""
    for entity in ("contact", "lead", "opportunity", "interaction", "case"):
        _define(any_crm, "n", "integer", entity=entity)
    acme = any_crm.organizations.create(name="Acme")
    services: list[tuple[Any, Any]] = [
        (any_crm.contacts, any_crm.contacts.create(first_name="Ana")),
        (any_crm.leads, any_crm.leads.create(company="Acme")),
        (any_crm.opportunities, any_crm.opportunities.create(name="ERP", organization=acme)),
        (any_crm.interactions, any_crm.interactions.log(kind="call", organization=acme)),
        (any_crm.cases, any_crm.cases.open(subject="X", case_type="claim", organization=acme)),
    ]

    updated = [s.update(r.id, expected_version=r.version, custom={"n": 5}) for s, r in services]

    assert [{"n": 5}] * 5 == [r.custom for r in updated]


def test_bulk_creation_checks_and_defaults_every_item(tiers: crmkit.CRM) -> None:
    """Items without custom get defaults; an invalid item names its index; nothing is written."""
    created = tiers.organizations.bulk_create(
        [{"name": "A"}, {"name": "B", "custom": {"score": 1}}]
    )
    with pytest.raises(ValidationError) as info:
        tiers.organizations.bulk_create([{"name": "C"}, {"name": "D", "custom": {"score": -1}}])

    assert [{"tier": "bronze"}, {"tier": "bronze", "score": 1}] == [o.custom for o in created]
    assert ("[1].custom.score", "out_of_range") == (info.value.field, info.value.code)
    assert 2 == tiers.organizations.count()


def test_records_crmkit_creates_itself_get_the_defaults(any_crm: crmkit.CRM) -> None:
    """A converted lead's organization and contact, follow-ups and sequence steps."""
    for entity in ("organization", "contact", "interaction"):
        _define(any_crm, "tier", "choice", entity=entity, choices=["a", "b"], default="b")
    lead = any_crm.leads.create(company="Foo S.L.", first_name="Ana", last_name="Ruiz")
    conversion = any_crm.leads.convert(lead.id)
    assert conversion.organization is not None
    assert conversion.contact is not None

    call = any_crm.interactions.log(
        kind="call", organization=conversion.organization.id, next_step="Send the proposal"
    )
    follow_up = any_crm.interactions.follow_ups(call.id)
    two_calls = Sequence(
        key="two-calls",
        name="Two calls",
        steps=[SequenceStep(kind="call"), SequenceStep(kind="call", after=timedelta(days=2))],
    )
    steps = any_crm.interactions.apply_sequence(two_calls, contact=conversion.contact.id)

    assert {"tier": "b"} == any_crm.organizations.get(conversion.organization.id).custom
    assert {"tier": "b"} == any_crm.contacts.get(conversion.contact.id).custom
    assert [{"tier": "b"}] == [i.custom for i in follow_up]
    assert [{"tier": "b"}] * 2 == [i.custom for i in steps]


def test_a_required_field_without_default_stops_an_implicit_creation(
    any_crm: crmkit.CRM,
) -> None:
    """The conversion would create an organization that cannot be valid: nothing is written."""
    _define(any_crm, "vat_regime", "text", required=True)
    lead = any_crm.leads.create(company="Foo S.L.", first_name="Ana", last_name="Ruiz")

    with pytest.raises(ValidationError) as info:
        any_crm.leads.convert(lead.id)

    assert ("custom.vat_regime", "required") == (info.value.field, info.value.code)
    assert 0 == any_crm.organizations.count() == any_crm.contacts.count()
    assert any_crm.leads.get(lead.id).status is crmkit.LeadStatus.NEW


# -------------------------------------------------------- the definitions


def test_a_duplicate_definition_is_refused(any_crm: crmkit.CRM) -> None:
    """register() twice with one (entity, key) is a DuplicateError."""
    _define(any_crm, "tier", "text")

    with pytest.raises(DuplicateError):
        _define(any_crm, "tier", "integer")


def test_removing_an_unknown_definition_is_not_found(any_crm: crmkit.CRM) -> None:
    """remove() of a key never defined is a NotFoundError."""
    with pytest.raises(NotFoundError):
        any_crm.custom_fields.remove(ORG, "tier")


def test_removing_a_definition_keeps_the_stored_values(tiers: crmkit.CRM) -> None:
    """Values of a removed definition are returned, kept by updates, removed only by None."""
    acme = tiers.organizations.create(name="Acme", custom={"credit": Money("10", "EUR")})
    tiers.custom_fields.remove(ORG, "credit")
    read = tiers.organizations.get(acme.id)

    kept = tiers.organizations.update(acme.id, expected_version=1, custom={"score": 5})
    with pytest.raises(ValidationError) as info:
        tiers.organizations.update(
            kept.id, expected_version=2, custom={"credit": Money("1", "EUR")}
        )
    removed = tiers.organizations.update(kept.id, expected_version=2, custom={"credit": None})

    assert Money("10", "EUR") == read.custom["credit"]
    assert Money("10", "EUR") == kept.custom["credit"]
    assert ("custom.credit", "unknown_field") == (info.value.field, info.value.code)
    assert {"tier": "bronze", "score": 5} == removed.custom


def test_a_removed_definitions_values_are_in_history_and_exports(tiers: crmkit.CRM) -> None:
    """The audit trail and the converter carry values whose definition is gone."""
    acme = tiers.organizations.create(name="Acme", custom={"credit": Money("10", "EUR")})
    tiers.custom_fields.remove(ORG, "credit")
    stored = tiers.organizations.get(acme.id)

    created = tiers.history(acme.id)[0]
    exported = converter.unstructure(stored)

    assert {"credit": {"amount": "10.00", "currency": "EUR"}, "tier": "bronze"} == next(
        c.new for c in created.changes if c.field == "custom"
    )
    assert stored == converter.structure(exported, Organization)


def test_a_change_of_custom_values_is_audited(tiers: crmkit.CRM) -> None:
    """The update's audit entry holds the old and new custom values in JSON form."""
    acme = tiers.organizations.create(name="Acme", custom={"score": 1})
    tiers.organizations.update(acme.id, expected_version=1, custom={"score": 2})

    change = next(c for c in tiers.history(acme.id)[1].changes if c.field == "custom")

    assert ({"tier": "bronze", "score": 1}, {"tier": "bronze", "score": 2}) == (
        change.old,
        change.new,
    )


# ----------------------------------------------------------------- search


def test_find_filters_and_sorts_by_custom_fields(tiers: crmkit.CRM) -> None:
    """Eq, In, Range and order_by on custom.<key>; missing values sort last."""
    a = tiers.organizations.create(name="A", custom={"tier": "gold", "score": 50})
    b = tiers.organizations.create(name="B", custom={"tier": "silver", "score": 90})
    c = tiers.organizations.create(name="C", custom={"tier": "gold"})

    assert [a, c] == tiers.organizations.find(Eq("custom.tier", "gold"))
    assert [b, a, c] == tiers.organizations.find(order_by="-custom.score")
    assert [a, b, c] == tiers.organizations.find(order_by="custom.score")
    assert [b] == tiers.organizations.find(Range("custom.score", low=60))
    assert 3 == tiers.organizations.count(In("custom.tier", ["gold", "silver"]))
    assert [c] == tiers.organizations.find(Eq("custom.score", None))


def test_find_by_money_compares_within_one_currency(tiers: crmkit.CRM) -> None:
    """A money range matches values in its currency only."""
    eur = tiers.organizations.create(name="A", custom={"credit": Money("100", "EUR")})
    tiers.organizations.create(name="B", custom={"credit": Money("100", "USD")})

    assert [eur] == tiers.organizations.find(Range("custom.credit", low=Money("50", "EUR")))


def test_find_by_multi_choice_and_text(any_crm: crmkit.CRM) -> None:
    """Has on a multi_choice field, Contains (any case) on a text field."""
    _define(any_crm, "sectors", "multi_choice", choices=["retail", "food"])
    _define(any_crm, "motto", "text")
    a = any_crm.organizations.create(name="A", custom={"sectors": ["food"], "motto": "Ñandú Feliz"})
    any_crm.organizations.create(name="B", custom={"sectors": ["retail"], "motto": "otro"})

    assert [a] == any_crm.organizations.find(Has("custom.sectors", "food"))
    assert [a] == any_crm.organizations.find(Contains("custom.motto", "ñandú"))


@pytest.mark.parametrize(
    ("where", "code"),
    [
        (Eq("custom.colour", "red"), "unknown_field"),
        (Eq("custom.score", "high"), "type"),
        (Contains("custom.score", "1"), "operator"),
        (Eq("custom.tier", 1), "type"),
    ],
)
def test_a_wrong_custom_filter_is_refused(tiers: crmkit.CRM, where: Filter, code: str) -> None:
    """Unknown custom fields and wrong values or operators are ValidationErrors."""
    with pytest.raises(ValidationError) as info:
        tiers.organizations.find(where)

    assert (where.field, code) == (info.value.field, info.value.code)


# ---------------------------------- the same results on every store (Hypothesis)

KINDS: dict[str, FieldKind] = {
    "custom.t": FieldKind.TEXT,
    "custom.i": FieldKind.INT,
    "custom.d": FieldKind.DECIMAL,
    "custom.m": FieldKind.MONEY,
    "custom.on": FieldKind.DATE,
    "custom.at": FieldKind.DATETIME,
    "custom.b": FieldKind.BOOL,
    "custom.mc": FieldKind.SET,
    "custom.r": FieldKind.ID,
}
REFS = [UUID(int=n) for n in (1, 2**127, 2**128 - 1)]
TEXTS = ["Álava", "álava", "abc", "ABD", "zoë", "Zoe", "a_b", "a%b"]
INTS = [-3, 0, 7, 2**62]
DECIMALS = [
    Decimal("1.5"),
    Decimal("1.50"),
    Decimal("-2"),
    Decimal("0"),
    Decimal("123456789012345"),
]
MONIES = [Money("10", "EUR"), Money("9.99", "EUR"), Money("10", "USD"), Money("1000", "JPY")]
DATES = [date(2026, 1, 5), date(2025, 12, 31), date(1, 1, 1)]
DATETIMES = [
    datetime(2026, 1, 5, 9, tzinfo=UTC),
    datetime(2026, 1, 5, 10, tzinfo=timezone(timedelta(hours=1))),  # the same instant
    datetime(2026, 1, 5, 9, 0, 0, 500_000, tzinfo=UTC),
    datetime(2025, 6, 1, tzinfo=UTC),
]
POOLS: dict[str, list[Any]] = {
    "t": TEXTS,
    "i": INTS,
    "d": DECIMALS,
    "m": MONIES,
    "on": DATES,
    "at": DATETIMES,
    "b": [True, False],
    "mc": [("a",), ("a", "b"), ("c",), ()],
    "r": REFS,
}
#: values of another type under a key: they count as missing
STRANGERS = ["7", 3, Decimal("2"), date(2026, 1, 5), REFS[0], True, ("a",)]


@st.composite
def _custom(draw: st.DrawFn) -> dict[str, object]:
    values: dict[str, object] = {}
    for key, pool in POOLS.items():
        choice = draw(st.integers(0, 9))
        if choice < 6:
            values[key] = draw(st.sampled_from(pool))
        elif choice == 6:
            values[key] = draw(st.sampled_from(STRANGERS))
    return {k: v for k, v in values.items() if v != ()}


@st.composite
def _filter(draw: st.DrawFn) -> Filter:
    key = draw(st.sampled_from(sorted(POOLS)))
    name = f"custom.{key}"
    pool = POOLS[key]
    if key == "mc":
        return Has(name, draw(st.sampled_from(["a", "b", "c"])))
    value = st.sampled_from(pool)
    ops = ["eq", "in", "range"] if key != "b" else ["eq", "in"]
    if key == "t":
        ops.append("contains")
    op = draw(st.sampled_from(ops))
    if op == "eq":
        return Eq(name, draw(st.one_of(value, st.none())))
    if op == "in":
        return In(name, draw(st.lists(st.one_of(value, st.none()), max_size=3)))
    if op == "contains":
        return Contains(name, draw(st.sampled_from(["a", "Á", "zo", "%", "_", "ÁLAVA"])))
    low, high = draw(st.one_of(value, st.none())), draw(st.one_of(value, st.none()))
    if key == "m" and isinstance(low, Money) and isinstance(high, Money):
        high = Money(high.amount, low.currency)
    return Range(name, low, high, include_high=draw(st.booleans()))


_orders = st.lists(
    st.builds(
        Order, st.sampled_from([k for k in KINDS if k != "custom.mc"] + ["name"]), st.booleans()
    ),
    max_size=2,
)


@pytest.fixture
def three_stores(tmp_path: Path, postgres_url: str) -> Iterator[list[Any]]:
    """A memory store, a SQLite file and a PostgreSQL database."""
    stores: list[Any] = [
        MemoryStore(),
        SqlStore(sqlite_url(tmp_path / "crm.db")),
        SqlStore(postgres_url),
    ]
    yield stores
    for store in stores[1:]:
        store.close()


@pytest.mark.postgres
@settings(
    max_examples=50,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    records=st.lists(_custom(), min_size=1, max_size=8),
    filters=st.lists(_filter(), max_size=2),
    order=_orders,
    limit=st.one_of(st.none(), st.integers(0, 5)),
)
def test_custom_field_queries_give_the_same_results_on_every_store(
    three_stores: list[Any],
    records: list[dict[str, object]],
    filters: list[Filter],
    order: list[Order],
    limit: int | None,
) -> None:
    """Random records, filters and sorts on custom fields: memory, SQLite and PostgreSQL agree."""
    now = datetime(2026, 1, 5, 9, tzinfo=UTC)
    entities = [
        changes.create(
            Organization, id=uuid7(), now=now, name=f"o{n % 3}", custom=CustomValues(values)
        )[0]
        for n, values in enumerate(records)
    ]
    ids = [e.id for e in entities]
    query = Query(filters=(*filters, In("id", ids)), order=order, limit=limit, custom_kinds=KINDS)
    check_query(Organization, query)
    found: list[list[UUID]] = []
    counts: list[int] = []
    for store in three_stores:
        with store.unit_of_work() as uow:
            uow.repository(Organization).add_many(entities)
            uow.commit()
        with store.unit_of_work(write=False) as uow:
            repo = uow.repository(Organization)
            assert entities == [repo.get(i) for i in ids]
            found.append([e.id for e in repo.find(query)])
            counts.append(repo.count(query))

    assert [found[0]] * 3 == found
    assert [counts[0]] * 3 == counts


# -------------------------------------------------------------- migration


@pytest.mark.parametrize(
    "backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def test_migration_0004_gives_existing_records_no_values(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """Records stored before 0004 read back with empty custom values, and take new ones."""
    import sqlalchemy as sa
    from alembic import command

    from crmkit.stores import migrations
    from crmkit.stores.sql import upgrade_database

    url = (
        sqlite_url(tmp_path / "crm.db")
        if backend == "sqlite"
        else request.getfixturevalue("postgres_url")
    )
    with crmkit.open(url) as crm:
        acme = crm.organizations.create(name="Acme")
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        command.downgrade(migrations._config(conn), "0003")
        assert "custom" not in {c["name"] for c in sa.inspect(conn).get_columns("organizations")}
    engine.dispose()

    assert ("0003", migrations.head_revision()) == upgrade_database(url)

    with crmkit.open(url) as crm:
        _define(crm, "score", "integer")
        assert {} == crm.organizations.get(acme.id).custom
        updated = crm.organizations.update(acme.id, expected_version=1, custom={"score": 3})
        assert [acme.id] == [o.id for o in crm.organizations.find(Eq("custom.score", 3))]
        assert {"score": 3} == updated.custom
