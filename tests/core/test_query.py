"""Find criteria: the reference ``select`` semantics and the allow-list checks."""

from __future__ import annotations

import enum
import functools
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from uuid import UUID

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crmkit import (
    Contact,
    Contains,
    EmailAddress,
    Eq,
    Has,
    In,
    Organization,
    OrganizationId,
    OrganizationKind,
    OrganizationStatus,
    Range,
    Source,
    UserId,
    ValidationError,
)
from crmkit.core.entities import Entity, Lifecycle
from crmkit.core.query import MAX_LIMIT, Filter, Order, Query, check_query, matches, select

T0 = datetime(2026, 1, 1, tzinfo=UTC)
_OWNERS = (UserId(UUID(int=1)), UserId(UUID(int=2)), UserId(UUID(int=3)))
_NAMES = ("Acme", "acme", "Beta", "Ñandú", "Zeta", "beta s.l.", "ACME Norte", "Straße", "STRASSE")
_TAGS = ("vip", "erp", "Norte")


# ------------------------------------------------------------- strategies


_org_fields: dict[str, st.SearchStrategy[Any]] = {
    "version": st.integers(1, 3),
    "created_at": st.builds(
        lambda h, o: (T0 + timedelta(hours=h)).astimezone(timezone(timedelta(hours=o))),
        st.integers(-3, 3),
        st.integers(-5, 5),
    ),
    "archived": st.booleans(),
    "name": st.sampled_from(_NAMES),
    "legal_name": st.none() | st.sampled_from(_NAMES),
    "status": st.sampled_from(OrganizationStatus),
    "lifecycle": st.sampled_from(Lifecycle),
    "kinds": st.frozensets(st.sampled_from(OrganizationKind), max_size=2),
    "tags": st.lists(st.sampled_from(_TAGS), max_size=2, unique=True).map(tuple),
    "owner_id": st.none() | st.sampled_from(_OWNERS),
    "tax_id": st.none() | st.sampled_from(["A1", "B2", "a1"]),
}
_ids = st.lists(st.integers(1, 10**6), max_size=12, unique=True)


@st.composite
def _organizations(draw: st.DrawFn) -> list[Organization]:
    """Organizations drawn from small pools, so that filters hit and sort keys tie."""
    return [
        Organization(
            id=OrganizationId(UUID(int=n)),
            updated_at=T0,
            **{name: draw(strategy) for name, strategy in _org_fields.items()},
        )
        for n in draw(_ids)
    ]


_times = st.integers(-4, 4).map(lambda h: T0 + timedelta(hours=h))

_filters: st.SearchStrategy[Filter] = st.one_of(
    st.builds(Eq, st.just("name"), st.sampled_from(_NAMES)),
    st.builds(Eq, st.just("legal_name"), st.none() | st.sampled_from(_NAMES)),
    st.builds(Eq, st.just("owner_id"), st.none() | st.sampled_from(_OWNERS)),
    st.builds(Eq, st.just("archived"), st.booleans()),
    st.builds(Eq, st.just("status"), st.sampled_from(OrganizationStatus)),
    st.builds(Eq, st.just("lifecycle"), st.sampled_from([m.value for m in Lifecycle])),
    st.builds(In, st.just("status"), st.lists(st.sampled_from(OrganizationStatus), max_size=2)),
    st.builds(In, st.just("owner_id"), st.lists(st.none() | st.sampled_from(_OWNERS), max_size=3)),
    st.builds(In, st.just("tax_id"), st.lists(st.sampled_from(["A1", "a1", "C3"]), max_size=2)),
    st.builds(Range, st.just("created_at"), st.none() | _times, st.none() | _times, st.booleans()),
    st.builds(
        Range, st.just("name"), st.none() | st.sampled_from(_NAMES), st.none() | st.just("b")
    ),
    st.builds(Range, st.just("version"), st.none() | st.integers(0, 4), st.none() | st.just(3)),
    st.builds(
        Contains,
        st.just("name"),
        st.sampled_from(["acme", "ACME", "ñ", "Ñ", "eta", "x", "ss", "ß"]),
    ),
    st.builds(Contains, st.just("legal_name"), st.sampled_from(["a", "norte"])),
    st.builds(Has, st.just("tags"), st.sampled_from(_TAGS)),
    st.builds(Has, st.just("kinds"), st.sampled_from(OrganizationKind)),
)

_orders: st.SearchStrategy[Order] = st.builds(
    Order,
    st.sampled_from(
        ["name", "legal_name", "created_at", "status", "owner_id", "version", "tax_id", "id"]
    ),
    st.booleans(),
)

_queries: st.SearchStrategy[Query] = st.builds(
    Query,
    filters=st.lists(_filters, max_size=3),
    archived=st.sampled_from([False, True, None]),
    order=st.lists(_orders, max_size=3),
    limit=st.none() | st.integers(0, 15),
    offset=st.integers(0, 15),
)


# ------------------------------------------------------------- the oracle
# An independent, deliberately naive statement of the documented semantics.


def _plain(value: object) -> Any:
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, EmailAddress):
        return value.value
    return value


def _holds(entity: Entity, f: Filter) -> bool:
    raw = getattr(entity, f.field)
    if isinstance(f, Has):
        return any(_plain(item) == _plain(f.value) for item in raw)
    value = _plain(raw)
    if isinstance(f, Eq):
        return bool(value == _plain(f.value))
    if isinstance(f, In):
        return any(value == _plain(v) for v in f.values)
    if isinstance(f, Contains):
        return value is not None and f.text.lower() in value.lower()
    if value is None:
        return False
    if f.low is not None and value < _plain(f.low):
        return False
    if f.high is None:
        return True
    return bool(value <= _plain(f.high)) if f.include_high else bool(value < _plain(f.high))


def _compare(order: tuple[Order, ...], a: Entity, b: Entity) -> int:
    for o in order:
        x, y = _plain(getattr(a, o.field)), _plain(getattr(b, o.field))
        if x is None and y is None:
            continue
        if x is None:
            return 1  # None last, whatever the direction
        if y is None:
            return -1
        if x == y:
            continue
        less = x < y
        return (1 if less else -1) if o.descending else (-1 if less else 1)
    return -1 if a.id < b.id else (1 if a.id > b.id else 0)


def _oracle(entities: list[Organization], query: Query) -> list[Organization]:
    kept = [
        e
        for e in entities
        if (query.archived is None or e.archived == query.archived)
        and all(_holds(e, f) for f in query.filters)
    ]
    kept.sort(key=functools.cmp_to_key(functools.partial(_compare, query.order)))
    kept = kept[query.offset :]
    return kept if query.limit is None else kept[: query.limit]


# ------------------------------------------------------------- properties


@settings(max_examples=200)
@given(_organizations(), _queries)
def test_select_filters_orders_and_pages_as_documented(
    entities: list[Organization], query: Query
) -> None:
    """``select`` equals a naive reading of the rules: filters, None last, ties by id, paging."""
    check_query(Organization, query)
    assert _oracle(entities, query) == select(entities, query)


@given(_organizations(), _queries)
def test_paging_is_a_slice_of_the_full_ordered_result(
    entities: list[Organization], query: Query
) -> None:
    """``limit`` and ``offset`` cut the unpaged result; ``matches`` agrees with ``select``."""
    unpaged = Query(filters=query.filters, archived=query.archived, order=query.order)
    full = select(entities, unpaged)
    end = None if query.limit is None else query.offset + query.limit
    assert full[query.offset : end] == select(entities, query)
    assert {e.id for e in entities if matches(e, unpaged)} == {e.id for e in full}


@given(_organizations(), st.sampled_from([False, True, None]))
def test_archived_is_a_tri_state(entities: list[Organization], archived: bool | None) -> None:
    """``False`` hides archived records, ``True`` shows only them, ``None`` shows all."""
    chosen = select(entities, Query(archived=archived))
    expected = [e for e in entities if archived is None or e.archived is archived]
    assert sorted(e.id for e in expected) == [e.id for e in chosen]


@given(_organizations(), st.booleans())
def test_none_sorts_last_in_both_directions(entities: list[Organization], descending: bool) -> None:
    """Records without a value come after all others, ascending or descending."""
    chosen = select(entities, Query(archived=None, order=[Order("legal_name", descending)]))
    flags = [e.legal_name is None for e in chosen]
    assert sorted(flags) == flags
    present = [e.legal_name for e in chosen if e.legal_name is not None]
    assert sorted(present, reverse=descending) == present


def test_ties_are_broken_by_id() -> None:
    """Equal sort keys come out in id order, in both directions."""
    orgs = [_org(n, name="Same") for n in (3, 1, 2)]
    for descending in (False, True):
        query = Query(order=[Order("name", descending)])
        assert [UUID(int=1), UUID(int=2), UUID(int=3)] == [e.id for e in select(orgs, query)]


def test_text_sorts_by_code_point() -> None:
    """Upper case before lower case, as ``COLLATE "C"`` and SQLite's BINARY sort."""
    orgs = [_org(1, name="beta"), _org(2, name="Zeta"), _org(3, name="Acme")]
    assert ["Acme", "Zeta", "beta"] == [e.name for e in select(orgs, Query(order=[Order("name")]))]


def test_contains_ignores_case() -> None:
    """``Contains`` matches regardless of case, accents kept."""
    orgs = [_org(1, name="ACME Norte"), _org(2, name="Ñandú"), _org(3, name="Beta")]
    assert [1] == [e.id.int for e in select(orgs, Query(filters=[Contains("name", "acme")]))]
    assert [2] == [e.id.int for e in select(orgs, Query(filters=[Contains("name", "ñan")]))]


def test_contains_lower_cases_as_postgresql_does() -> None:
    """Case folding is Unicode lower-casing: ``ß`` stays ``ß`` (no ``ss`` expansion)."""
    orgs = [_org(1, name="Straße"), _org(2, name="STRASSE")]
    assert [1] == [e.id.int for e in select(orgs, Query(filters=[Contains("name", "ß")]))]
    assert [2] == [e.id.int for e in select(orgs, Query(filters=[Contains("name", "ss")]))]


def test_eq_none_matches_missing_values() -> None:
    """``Eq(field, None)`` selects records where the field is empty."""
    orgs = [_org(1, name="A", tax_id="X1"), _org(2, name="B")]
    assert [2] == [e.id.int for e in select(orgs, Query(filters=[Eq("tax_id", None)]))]


def test_order_parse_reads_a_leading_dash_as_descending() -> None:
    """``"-name"`` is name descending."""
    assert Order("name", descending=True) == Order.parse("-name")
    assert Order("name") == Order.parse("name")


def _org(n: int, **values: Any) -> Organization:
    return Organization(id=OrganizationId(UUID(int=n)), created_at=T0, updated_at=T0, **values)


# --------------------------------------------------------------- checking


@pytest.mark.parametrize(
    ("cls", "query", "field", "code"),
    [
        (Organization, Query(filters=[Eq("colour", "red")]), "colour", "unknown_field"),
        (Organization, Query(filters=[Eq("notes", "x")]), "notes", "unknown_field"),
        (Organization, Query(order=[Order("notes")]), "notes", "unknown_field"),
        (Organization, Query(filters=[Contains("status", "act")]), "status", "operator"),
        (Organization, Query(filters=[Contains("name", "")]), "name", "type"),
        (Organization, Query(filters=[Has("name", "x")]), "name", "operator"),
        (Organization, Query(filters=[Eq("tags", "vip")]), "tags", "operator"),
        (Organization, Query(order=[Order("tags")]), "tags", "order"),
        (Organization, Query(filters=[Eq("owner_id", "abc")]), "owner_id", "type"),
        (Organization, Query(filters=[In("owner_id", [UUID(int=1), 5])]), "owner_id", "type"),
        (Organization, Query(filters=[Eq("archived", "yes")]), "archived", "type"),
        (Organization, Query(filters=[Eq("name", True)]), "name", "type"),
        (Organization, Query(filters=[Eq("name", 1.5)]), "name", "type"),
        (
            Organization,
            Query(filters=[Range("created_at", datetime(2026, 1, 1))]),
            "created_at",
            "naive_datetime",
        ),
        (
            Organization,
            Query(filters=[Range("created_at", "2026-01-01")]),
            "created_at",
            "type",
        ),
        (
            Organization,
            Query(filters=[Eq("updated_at", datetime.min.replace(tzinfo=timezone.max))]),
            "updated_at",
            "out_of_range",
        ),
        (Contact, Query(filters=[Eq("name", "Ana")]), "name", "unknown_field"),
        (Source, Query(filters=[Eq("tags", "x")]), "tags", "unknown_field"),
    ],
)
def test_check_query_rejects_what_the_allow_list_does_not_permit(
    cls: type[Entity], query: Query, field: str, code: str
) -> None:
    """Unknown fields, wrong operators and wrong value kinds raise ValidationError."""
    with pytest.raises(ValidationError) as info:
        check_query(cls, query)
    assert (field, code) == (info.value.field, info.value.code)


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ({"limit": -1}, "limit"),
        ({"limit": MAX_LIMIT + 1}, "limit"),
        ({"limit": True}, "limit"),
        ({"limit": 1.5}, "limit"),
        ({"limit": "10"}, "limit"),
        ({"offset": -1}, "offset"),
        ({"offset": None}, "offset"),
        ({"offset": False}, "offset"),
    ],
)
def test_check_query_rejects_bad_limits_and_offsets(values: dict[str, Any], field: str) -> None:
    """``limit`` is 0..MAX_LIMIT or None; ``offset`` is a non-negative integer."""
    with pytest.raises(ValidationError) as info:
        check_query(Organization, Query(**values))
    assert field == info.value.field


@given(_queries)
def test_generated_queries_pass_the_check(query: Query) -> None:
    """Every query the strategies build is allowed for organizations."""
    check_query(Organization, query)


def test_limits_at_the_bounds_are_allowed() -> None:
    """0 and MAX_LIMIT are valid limits."""
    check_query(Organization, Query(limit=0))
    check_query(Organization, Query(limit=MAX_LIMIT, offset=10**9))
