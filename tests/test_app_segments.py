"""Segments through the facade: saving trees, members, counts, snapshots, history criteria."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, timedelta
from typing import Any

import pytest

import crmkit
from crmkit import (
    And,
    Contains,
    CustomField,
    DuplicateError,
    Eq,
    Has,
    In,
    Money,
    NoInteraction,
    Not,
    NotFoundError,
    OpenOpportunity,
    Or,
    Range,
    Segment,
    SegmentMode,
    ValidationError,
    WonValue,
)
from crmkit.stores.memory import MemoryStore
from tests.conftest import FixedClock


@pytest.fixture
def book(any_crm: crmkit.CRM) -> dict[str, crmkit.Organization]:
    """Three organizations in two markets and zones, with tags, kinds and a custom tier."""
    crm = any_crm
    crm.custom_fields.register(
        CustomField(entity="organization", key="tier", label="Tier", type="text")
    )
    for key in ("retail", "banca"):
        crm.markets.create(key=key, name=key.title())
    for key in ("norte", "sur"):
        crm.zones.create(key=key, name=key.title())
    return {
        "acme": crm.organizations.create(
            name="Acme S.A.",
            market="retail",
            zone="norte",
            tags=["vip"],
            kinds=["customer"],
            lifecycle="customer",
            custom={"tier": "gold"},
        ),
        "beta": crm.organizations.create(
            name="Beta S.L.", market="retail", zone="sur", kinds=["prospect"]
        ),
        "gamma": crm.organizations.create(name="Gamma", market="banca", tags=["vip"]),
    }


def _names(orgs: list[crmkit.Organization]) -> list[str]:
    return [o.name for o in orgs]


# ==================================================================== fields


def test_a_saved_segment_resolves_friendly_references_to_ids(
    any_crm: crmkit.CRM, book: dict[str, crmkit.Organization]
) -> None:
    """Eq("market", "retail") is saved as Eq("market_id", <id>) and read back the same."""
    segment = any_crm.segments.create(name="Retail", criteria=Eq("market", "retail"))
    retail = any_crm.markets.get_by_key("retail").id
    assert Eq("market_id", retail) == segment.criteria
    assert segment == any_crm.segments.get(segment.id)
    assert segment == any_crm.segments.get_by_name("Retail")
    assert ["Acme S.A.", "Beta S.L."] == _names(any_crm.segments.members("Retail"))
    assert 2 == any_crm.segments.member_count(segment.id)


def test_and_or_not_combine_fields_kinds_tags_and_custom_fields(
    any_crm: crmkit.CRM, book: dict[str, crmkit.Organization]
) -> None:
    """(retail and not zone sur) or (vip and custom tier missing): Acme and Gamma."""
    criteria = Or(
        And(Eq("market", "retail"), Not(Eq("zone", "sur"))),
        And(Has("tags", "vip"), Eq("custom.tier", None)),
    )
    assert ["Acme S.A.", "Gamma"] == _names(
        any_crm.segments.members(any_crm.segments.create(name="mix", criteria=criteria))
    )
    assert [book["beta"].id] == any_crm.segments.preview(
        And(Has("kinds", "prospect"), Contains("name", "beta"), In("lifecycle", ["target"]))
    )


def test_not_of_a_missing_value_holds_as_in_memory(
    any_crm: crmkit.CRM, book: dict[str, crmkit.Organization]
) -> None:
    """Not(zone = norte) includes the organization with no zone at all (no SQL NULL trap)."""
    found = any_crm.segments.preview(Not(Eq("zone", "norte")))
    assert [book["beta"].id, book["gamma"].id] == found


def test_dates_filter_by_range(
    any_crm: crmkit.CRM, book: dict[str, crmkit.Organization], clock: FixedClock
) -> None:
    """created_at from a moment on: only what was created after it."""
    start = clock.advance(days=1)
    late = any_crm.organizations.create(name="Late")
    assert [late.id] == any_crm.segments.preview(Range("created_at", start, None))


def test_archived_organizations_are_never_members(
    any_crm: crmkit.CRM, book: dict[str, crmkit.Organization]
) -> None:
    """An archived organization meeting the criteria is left out."""
    beta = book["beta"]
    any_crm.organizations.archive(beta.id, expected_version=beta.version)
    assert [book["acme"].id] == any_crm.segments.preview(Eq("market", "retail"))


@pytest.mark.parametrize(
    ("criteria", "field", "code"),
    [
        (Eq("colour", "red"), "criteria.field", "unknown_field"),
        (And(Eq("name", "x"), Has("name", "x")), "criteria.parts[1].field", "operator"),
        (Not(Eq("market", "nope")), "criteria.part.field", "reference"),
        (NoInteraction(-1), "criteria.days", "invalid"),
        ("market = retail", "criteria", "type"),
        (OpenOpportunity(""), "criteria.stage", "type"),
    ],
)
def test_a_bad_tree_names_the_node_at_fault_and_saves_nothing(
    any_crm: crmkit.CRM,
    book: dict[str, crmkit.Organization],
    criteria: object,
    field: str,
    code: str,
) -> None:
    """Unknown field, wrong operator, unknown key, bad history value, not a tree."""
    with pytest.raises(ValidationError) as info:
        any_crm.segments.create(name="bad", criteria=criteria)  # type: ignore[arg-type]
    assert (field, code) == (info.value.field, info.value.code)
    assert 0 == any_crm.segments.count()


def test_segment_names_are_unique(any_crm: crmkit.CRM) -> None:
    """A second segment with the same name: DuplicateError, nothing saved."""
    any_crm.segments.create(name="Todos", criteria=And())
    with pytest.raises(DuplicateError):
        any_crm.segments.create(name="Todos", criteria=Or())
    assert 1 == any_crm.segments.count()


def test_an_unknown_segment_is_not_found(any_crm: crmkit.CRM) -> None:
    """By name or id."""
    with pytest.raises(NotFoundError):
        any_crm.segments.members("nope")


# =================================================================== history


def test_no_interaction_in_n_days_counts_only_done_interactions_in_the_window(
    any_crm: crmkit.CRM, book: dict[str, crmkit.Organization], clock: FixedClock
) -> None:
    """A call 10 days ago keeps Acme out of "none in 30 days"; a planned one does not count."""
    now = clock()
    any_crm.interactions.log(
        kind="call", organization=book["acme"], occurred_at=now - timedelta(days=10)
    )
    any_crm.interactions.plan(
        kind="visit", organization=book["beta"], scheduled_at=now + timedelta(days=1)
    )
    quiet = any_crm.segments.create(name="quiet", criteria=NoInteraction(30))
    assert [book["beta"].id, book["gamma"].id] == any_crm.segments.member_ids(quiet)
    assert 3 == any_crm.segments.member_count(quiet, as_of=now + timedelta(days=21))


def _won(crm: crmkit.CRM, org: crmkit.Organization, amount: str) -> crmkit.Opportunity:
    opp = crm.opportunities.create(
        name=f"deal {amount}",
        organization=org,
        stage="negotiation",
        amount=Money(amount, "EUR"),
        expected_close=date(2026, 2, 1),
    )
    return crm.opportunities.win(opp.id)


def test_won_value_sums_the_wins_of_the_period(
    any_crm: crmkit.CRM, book: dict[str, crmkit.Organization], clock: FixedClock
) -> None:
    """Two wins of 600 reach 1000; one of 900 does not; wins outside the period do not count."""
    start = clock()
    _won(any_crm, book["acme"], "600")
    _won(any_crm, book["acme"], "600")
    _won(any_crm, book["beta"], "900")
    end = clock.advance(days=1)
    clock.advance(days=1)
    _won(any_crm, book["beta"], "900")
    criteria = WonValue(Money("1000", "EUR"), start, end)
    assert [book["acme"].id] == any_crm.segments.preview(criteria)


def test_open_opportunity_in_stage(
    any_crm: crmkit.CRM, book: dict[str, crmkit.Organization]
) -> None:
    """Open in proposal: Gamma; a won opportunity does not count as open."""
    any_crm.opportunities.create(
        name="ERP", organization=book["gamma"], stage="proposal", amount=Money("5", "EUR")
    )
    _won(any_crm, book["acme"], "10")
    assert [book["gamma"].id] == any_crm.segments.preview(OpenOpportunity("proposal"))
    assert [] == any_crm.segments.preview(OpenOpportunity("proposal", pipeline="expediente"))


# ================================================================ snapshots


def test_a_static_segment_keeps_its_snapshot_until_the_next(
    any_crm: crmkit.CRM, book: dict[str, crmkit.Organization], clock: FixedClock
) -> None:
    """New matches join a dynamic segment at once, a static one only at its next snapshot."""
    dynamic = any_crm.segments.create(name="vip", criteria=Has("tags", "vip"))
    static = any_crm.segments.create(name="vip-frozen", criteria=Has("tags", "vip"), mode="static")
    assert (SegmentMode.STATIC, clock()) == (static.mode, static.snapshot_at)
    later = any_crm.organizations.create(name="Later", tags=["vip"])
    assert 3 == any_crm.segments.member_count(dynamic)
    assert 2 == any_crm.segments.member_count(static)
    clock.advance(hours=1)
    again = any_crm.segments.snapshot(static)
    assert (later.id in again.members, clock()) == (True, again.snapshot_at)
    assert 3 == any_crm.segments.member_count("vip-frozen")


def test_snapshot_freezes_a_dynamic_segment(
    any_crm: crmkit.CRM, book: dict[str, crmkit.Organization]
) -> None:
    """snapshot() turns a dynamic segment static, with today's members."""
    segment = any_crm.segments.create(name="retail", criteria=Eq("market", "retail"))
    frozen = any_crm.segments.snapshot(segment.id)
    assert (SegmentMode.STATIC, (book["acme"].id, book["beta"].id)) == (
        frozen.mode,
        frozen.members,
    )


def test_update_changes_the_criteria_and_is_audited(
    any_crm: crmkit.CRM, book: dict[str, crmkit.Organization]
) -> None:
    """The new tree is resolved and saved; the audit keeps the old and new tree as JSON."""
    segment = any_crm.segments.create(name="s", criteria=Eq("market", "retail"))
    updated = any_crm.segments.update(
        segment.id, expected_version=segment.version, criteria=Eq("market", "banca")
    )
    assert [book["gamma"].id] == any_crm.segments.member_ids(updated)
    entries = any_crm.history(segment.id)
    assert ["create", "update"] == [e.action.value for e in entries]
    (change,) = [c for c in entries[1].changes if c.field == "criteria"]
    banca = str(any_crm.markets.get_by_key("banca").id)
    assert {"op": "eq", "field": "market_id", "value": {"uuid": banca}} == change.new


def test_segment_is_serializable_by_the_converter(
    any_crm: crmkit.CRM, book: dict[str, crmkit.Organization]
) -> None:
    """A segment with every kind of node survives unstructure/structure unchanged."""
    from crmkit.serialization import converter

    start = any_crm.now()
    segment = any_crm.segments.create(
        name="all",
        criteria=And(
            Or(Eq("lifecycle", "customer"), Range("custom.tier", "a", "z")),
            Not(NoInteraction(90)),
            WonValue(Money("1", "EUR"), start, start + timedelta(days=1)),
            OpenOpportunity("proposal", "sales"),
        ),
    )
    assert segment == converter.structure(converter.unstructure(segment), Segment)


# ============================================================ other stores


class _UnitOfWorkWithoutSegments:
    """A unit of work that does everything MemoryStore's does, except evaluate segments."""

    def __init__(self, uow: Any):
        self._uow = uow

    def __getattr__(self, name: str) -> Any:
        if name == "segment":
            raise AttributeError(name)
        return getattr(self._uow, name)


class _StoreWithoutSegments:
    """A third party's store: the Store protocol and nothing more."""

    def __init__(self) -> None:
        self._store = MemoryStore()

    @contextmanager
    def unit_of_work(self, *, write: bool = True) -> Iterator[Any]:
        with self._store.unit_of_work(write=write) as uow:
            yield _UnitOfWorkWithoutSegments(uow)

    def get(self, cls: type[Any], id: Any) -> Any:
        return self._store.get(cls, id)

    def close(self) -> None:
        self._store.close()


def test_a_store_without_segment_evaluation_gets_the_same_members(clock: FixedClock) -> None:
    """The service falls back to the reference evaluation over what the store returns."""
    results = []
    for store in (MemoryStore(), _StoreWithoutSegments()):
        with crmkit.open(store=store, clock=clock) as crm:
            acme = crm.organizations.create(name="Acme", tags=["vip"])
            crm.organizations.create(name="Beta")
            crm.interactions.log(kind="call", organization=acme)
            criteria = Or(And(Has("tags", "vip"), NoInteraction(30)), Contains("name", "bet"))
            results.append(
                [
                    o.name
                    for o in crm.segments.members(crm.segments.create(name="s", criteria=criteria))
                ]
            )
    assert [["Beta"], ["Beta"]] == results
