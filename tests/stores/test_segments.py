"""Segment criteria pushed down to SQL give exactly the members the in-memory evaluation gives."""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st

import crmkit
from crmkit import (
    And,
    CampaignEmail,
    Contains,
    CustomField,
    Eq,
    Has,
    In,
    Interaction,
    InteractionStatus,
    Lifecycle,
    Money,
    NoInteraction,
    Not,
    OpenedEmail,
    OpenOpportunity,
    Opportunity,
    Or,
    Organization,
    OrganizationKind,
    Range,
    StageKind,
    WonValue,
)
from crmkit.core import changes
from crmkit.core.custom_fields import CustomValues
from crmkit.core.ids import ContactId, uuid7
from crmkit.core.mail import campaign_email_id
from crmkit.core.segments import Criteria
from tests.postgres_server import PostgresServer

AS_OF = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
#: look-backs, also used to place interactions exactly on a boundary
DAYS = (0, 1, 30, 90, 365)
#: the instants periods start and end at, and wins close at
INSTANTS = tuple(AS_OF - timedelta(days=d) for d in (400, 200, 100, 30, 0))
WORDS = ("Acme", "Beta", "Cañas", "Delta", "ÉPSILON", "acme norte")
TAGS = ("vip", "feria", "b2b")
STAGES = ("lead", "qualified", "proposal", "negotiation")
_CREATED = datetime(2026, 1, 1, tzinfo=UTC)

_database_counter = itertools.count()


@pytest.fixture(scope="module")
def postgres_module_url(postgres_server: PostgresServer) -> Iterator[str]:
    """A database on the throwaway server for this module's property test."""
    name = f"crmkit_segments_{os.getpid()}_{next(_database_counter)}"
    admin = sa.create_engine(postgres_server.url(), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
        yield postgres_server.url(name)
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        admin.dispose()


def _prepared(crm: crmkit.CRM) -> crmkit.CRM:
    crm.custom_fields.register(
        CustomField(entity="organization", key="score", label="Score", type="integer")
    )
    crm.custom_fields.register(
        CustomField(entity="organization", key="tier", label="Tier", type="text")
    )
    for key in ("retail", "banca", "salud"):
        crm.markets.create(key=key, name=key.title())
    for key in ("norte", "sur"):
        crm.zones.create(key=key, name=key.title())
    for name in ("Ana", "Luis"):
        crm.users.create(name=name)
    for name in ("C0", "C1"):
        crm.campaigns.create(name=name, kind="email")
    return crm


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def twins(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[crmkit.CRM, crmkit.CRM]]:
    """A CRM in memory and one on a SQL backend, with the same masters and users."""
    if request.param == "sqlite":
        url = str(tmp_path_factory.mktemp("segments") / "crm.db")
    else:
        url = request.getfixturevalue("postgres_module_url")
    synchronous = "NORMAL" if request.param == "sqlite" else "FULL"  # fewer fsyncs: test speed
    with crmkit.open(":memory:") as memory, crmkit.open(url, synchronous=synchronous) as sql:
        _prepared(memory)
        _prepared(sql)
        yield memory, sql


def _ids(crm: crmkit.CRM) -> dict[str, list[Any]]:
    """The ids of the masters and users by key or name (the same keys in both twins)."""
    return {
        "market_id": sorted((m.key, m.id) for m in crm.markets.find()),
        "zone_id": sorted((z.key, z.id) for z in crm.zones.find()),
        "owner_id": sorted((u.name, u.id) for u in crm.users.find()),
        "campaign": sorted((c.name, c.id) for c in crm.campaigns.find()),
    }


# ---------------------------------------------------------------- strategies
# References are drawn as indexes (0-2, or None) and mapped to each twin's ids.


@st.composite
def books(draw: st.DrawFn) -> dict[str, list[dict[str, Any]]]:
    """A random book: organizations, their interactions and opportunities."""
    n = draw(st.integers(1, 8))
    orgs = [
        {
            "name": draw(st.sampled_from(WORDS)),
            "market_id": draw(st.none() | st.integers(0, 2)),
            "zone_id": draw(st.none() | st.integers(0, 1)),
            "owner_id": draw(st.none() | st.integers(0, 1)),
            "lifecycle": draw(st.sampled_from(Lifecycle)),
            "kinds": draw(st.frozensets(st.sampled_from(OrganizationKind), max_size=2)),
            "tags": tuple(draw(st.lists(st.sampled_from(TAGS), max_size=2, unique=True))),
            "archived": draw(st.integers(0, 4)) == 0,
            "custom": {
                k: v
                for k, v in (
                    ("score", draw(st.none() | st.integers(-5, 5))),
                    ("tier", draw(st.none() | st.sampled_from(("gold", "Silver", "")))),
                )
                if v not in (None, "")
            },
        }
        for _ in range(n)
    ]
    interactions = [
        {
            "org": draw(st.integers(0, n - 1)),
            "done": draw(st.booleans()),
            "ago": draw(st.sampled_from(DAYS) | st.integers(-3, 500)),
            "archived": draw(st.integers(0, 5)) == 0,
        }
        for _ in range(draw(st.integers(0, 10)))
    ]
    opportunities = [
        {
            "org": draw(st.integers(0, n - 1)),
            "status": draw(st.sampled_from(StageKind)),
            "stage": draw(st.sampled_from(STAGES)),
            "pipeline": draw(st.sampled_from(("sales", "expediente"))),
            "amount": draw(
                st.none()
                | st.builds(
                    Money, st.sampled_from(("0", "50", "100", "999.99", "1000")), st.just("EUR")
                )
                | st.builds(Money, st.just("1000"), st.just("USD"))
            ),
            "closed": draw(st.sampled_from(INSTANTS)),
            "archived": draw(st.integers(0, 5)) == 0,
        }
        for _ in range(draw(st.integers(0, 10)))
    ]
    emails = [
        {
            "org": draw(st.integers(0, n - 1)),
            "campaign": draw(st.integers(0, 1)),
            "opened": draw(st.none() | st.sampled_from(INSTANTS) | st.integers(-3, 500)),
            "archived": draw(st.integers(0, 5)) == 0,
        }
        for _ in range(draw(st.integers(0, 8)))
    ]
    return {
        "orgs": orgs,
        "interactions": interactions,
        "opportunities": opportunities,
        "emails": emails,
    }


def _ref(field: str) -> st.SearchStrategy[Any]:
    top = {"market_id": 2, "zone_id": 1, "owner_id": 1}[field]
    return st.none() | st.integers(0, top).map(lambda i: ("ref", field, i))


_FIELD_LEAVES: st.SearchStrategy[Any] = st.one_of(
    st.sampled_from(("market_id", "zone_id", "owner_id")).flatmap(
        lambda f: (
            st.builds(Eq, st.just(f), _ref(f))
            | st.builds(In, st.just(f), st.lists(_ref(f), max_size=3))
        )
    ),
    st.builds(Eq, st.just("lifecycle"), st.sampled_from(Lifecycle).map(lambda v: v.value)),
    st.builds(In, st.just("lifecycle"), st.lists(st.sampled_from([m.value for m in Lifecycle]))),
    st.builds(Has, st.just("kinds"), st.sampled_from([m.value for m in OrganizationKind])),
    st.builds(Has, st.just("tags"), st.sampled_from(TAGS)),
    st.builds(Contains, st.just("name"), st.sampled_from(("acme", "Ñ", "é", "ta", "z"))),
    st.builds(
        Range,
        st.just("name"),
        st.none() | st.sampled_from(WORDS),
        st.none() | st.sampled_from(WORDS),
        st.booleans(),
    ),
    st.builds(Eq, st.just("custom.tier"), st.none() | st.sampled_from(("gold", "Silver"))),
    st.builds(Contains, st.just("custom.tier"), st.sampled_from(("l", "G"))),
    st.builds(
        Range,
        st.just("custom.score"),
        st.none() | st.integers(-5, 5),
        st.none() | st.integers(-5, 5),
        st.booleans(),
    ),
    st.builds(In, st.just("custom.score"), st.lists(st.none() | st.integers(-2, 2), max_size=3)),
)

_HISTORY_LEAVES: st.SearchStrategy[Any] = st.one_of(
    st.builds(NoInteraction, st.sampled_from(DAYS)),
    st.tuples(st.sampled_from(INSTANTS), st.sampled_from(INSTANTS))
    .filter(lambda p: p[0] < p[1])
    .flatmap(
        lambda p: st.builds(
            WonValue,
            st.builds(Money, st.sampled_from(("0", "100", "1000", "1999.99")), st.just("EUR")),
            st.just(p[0]),
            st.just(p[1]),
        )
    ),
    st.builds(
        OpenOpportunity, st.sampled_from(STAGES), st.none() | st.sampled_from(("sales", "x"))
    ),
    st.tuples(st.none() | st.sampled_from(INSTANTS), st.none() | st.sampled_from(INSTANTS))
    .filter(lambda p: p[0] is None or p[1] is None or p[0] < p[1])
    .flatmap(
        lambda p: st.builds(
            OpenedEmail,
            st.integers(0, 1).map(lambda i: ("ref", "campaign", i)),
            st.just(p[0]),
            st.just(p[1]),
        )
    ),
)

trees: st.SearchStrategy[Any] = st.recursive(
    _FIELD_LEAVES | _HISTORY_LEAVES,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3).map(lambda parts: And(*parts)),
        st.lists(inner, max_size=3).map(lambda parts: Or(*parts)),
        st.builds(Not, inner),
    ),
    max_leaves=8,
)


# ---------------------------------------------------------------- the books


def _bind(tree: Any, ids: dict[str, list[Any]]) -> Criteria:
    """The tree with each drawn ("ref", field, i) replaced by that twin's id."""

    def value(v: Any) -> Any:
        if isinstance(v, tuple) and len(v) == 3 and v[0] == "ref":
            return ids[v[1]][v[2]][1]
        return v

    if isinstance(tree, Eq):
        return Eq(tree.field, value(tree.value))
    if isinstance(tree, In):
        return In(tree.field, [value(v) for v in tree.values])
    if isinstance(tree, And):
        return And(*(_bind(p, ids) for p in tree.parts))
    if isinstance(tree, Or):
        return Or(*(_bind(p, ids) for p in tree.parts))
    if isinstance(tree, Not):
        return Not(_bind(tree.part, ids))
    if isinstance(tree, OpenedEmail):
        return OpenedEmail(value(tree.campaign), tree.start, tree.end)
    return tree  # type: ignore[no-any-return]


def _add_book(crm: crmkit.CRM, book: dict[str, list[dict[str, Any]]]) -> list[Any]:
    """Write the book straight through the store, in one transaction; the org ids."""
    ids = _ids(crm)
    orgs = []
    for o in book["orgs"]:
        values = {k: v for k, v in o.items() if k not in ("archived", "custom")}
        for field in ("market_id", "zone_id", "owner_id"):
            if values[field] is not None:
                values[field] = ids[field][values[field]][1]
        org, _ = changes.create(
            Organization, id=uuid7(), now=_CREATED, custom=CustomValues(o["custom"]), **values
        )
        orgs.append(org if not o["archived"] else changes.archive(org, now=_CREATED)[0])
    interactions = []
    for i in book["interactions"]:
        at = AS_OF - timedelta(days=i["ago"])
        values = (
            {"status": InteractionStatus.DONE, "occurred_at": at}
            if i["done"]
            else {"status": InteractionStatus.PLANNED, "scheduled_at": at}
        )
        interaction, _ = changes.create(
            Interaction,
            id=uuid7(),
            now=_CREATED,
            kind="call",
            organization_id=orgs[i["org"]].id,
            **values,
        )
        if i["archived"]:
            interaction = changes.archive(interaction, now=_CREATED)[0]
        interactions.append(interaction)
    opportunities = []
    for p in book["opportunities"]:
        closed = p["status"] in (StageKind.WON, StageKind.LOST)
        opportunity, _ = changes.create(
            Opportunity,
            id=uuid7(),
            now=_CREATED,
            name="deal",
            organization_id=orgs[p["org"]].id,
            pipeline=p["pipeline"],
            stage=p["stage"],
            status=p["status"],
            amount=p["amount"],
            closed_at=p["closed"] if closed else None,
        )
        if p["archived"]:
            opportunity = changes.archive(opportunity, now=_CREATED)[0]
        opportunities.append(opportunity)
    emails = []
    for e in book["emails"]:
        campaign = ids["campaign"][e["campaign"]][1]
        contact = ContactId(uuid7())  # e-mail records name contacts without a foreign key
        opened = e["opened"]
        if isinstance(opened, int):
            opened = AS_OF - timedelta(days=opened)
        record, _ = changes.create(
            CampaignEmail,
            id=campaign_email_id(campaign, contact),
            now=_CREATED,
            campaign_id=campaign,
            contact_id=contact,
            organization_id=orgs[e["org"]].id,
            sent_at=_CREATED,
            opened_at=opened,
        )
        if e["archived"]:
            record = changes.archive(record, now=_CREATED)[0]
        emails.append(record)
    with crm.store.unit_of_work() as uow:
        uow.repository(Organization).add_many(orgs)
        uow.repository(Interaction).add_many(interactions)
        uow.repository(Opportunity).add_many(opportunities)
        uow.repository(CampaignEmail).add_many(emails)
        uow.commit()
    return [o.id for o in orgs]


@pytest.mark.slow
@settings(max_examples=30, deadline=None)
@given(book=books(), batch=st.lists(trees, min_size=10, max_size=10))
def test_segment_members_are_identical_in_memory_and_in_sql(
    twins: tuple[crmkit.CRM, crmkit.CRM], book: dict[str, list[dict[str, Any]]], batch: list[Any]
) -> None:
    """300 random trees (30 books x 10) over growing random books: the same members everywhere.

    Each example adds a new book to both twins; members are compared by
    position in creation order, since the twins give records different ids.
    """
    memory, sql = twins
    memory_orgs = _add_book(memory, book)
    sql_orgs = _add_book(sql, book)
    assert len(memory_orgs) == len(sql_orgs)
    position_memory = _positions(memory)
    position_sql = _positions(sql)
    assert len(position_memory) == len(position_sql)
    memory_ids, sql_ids = _ids(memory), _ids(sql)
    for tree in batch:
        in_memory = memory.segments.preview(_bind(tree, memory_ids), as_of=AS_OF)
        in_sql = sql.segments.preview(_bind(tree, sql_ids), as_of=AS_OF)
        assert [position_memory[i] for i in in_memory] == [position_sql[i] for i in in_sql], tree


def _positions(crm: crmkit.CRM) -> dict[Any, int]:
    """Each organization's place in creation (id) order: the same in both twins."""
    return {o.id: n for n, o in enumerate(crm.organizations.find(archived=None, order_by="id"))}
