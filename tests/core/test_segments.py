"""Criteria trees as pure data: checking, the reference evaluation, JSON round trips."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from crmkit import (
    And,
    Contains,
    Eq,
    Has,
    In,
    Money,
    NoInteraction,
    Not,
    OpenOpportunity,
    Or,
    Organization,
    Range,
    ValidationError,
    WonValue,
)
from crmkit.core import changes
from crmkit.core.entities import FieldKind
from crmkit.core.ids import uuid7
from crmkit.core.segments import Criteria, History, check_criteria, evaluate
from crmkit.serialization import converter, structure_criteria

NOW = datetime(2026, 6, 1, tzinfo=UTC)
KINDS = {"custom.score": FieldKind.INT}


def _org(**values: Any) -> Organization:
    org, _ = changes.create(Organization, id=uuid7(), now=NOW, name="Org", **values)
    return org


@pytest.mark.parametrize(
    ("criteria", "field"),
    [
        (Eq("market", "retail"), "criteria.field"),  # friendly names are the service's business
        (And(Eq("name", "a"), Or(Contains("tags", "x"))), "criteria.parts[1].parts[0].field"),
        (Not(Range("custom.nope", 1, 2)), "criteria.part.field"),
        (NoInteraction(True), "criteria.days"),
        (WonValue(Money("1", "EUR"), NOW, NOW), "criteria.end"),
        (WonValue(Money("1", "EUR"), NOW.replace(tzinfo=None), NOW), "criteria.start"),
        (OpenOpportunity("proposal", ""), "criteria.pipeline"),
        (And(Eq("name", "a"), 7), "criteria.parts[1]"),  # type: ignore[arg-type]
    ],
)
def test_check_criteria_names_the_path_of_the_bad_node(criteria: Any, field: str) -> None:
    """Every kind of mistake is found where it is, with the path to it."""
    with pytest.raises(ValidationError) as info:
        check_criteria(criteria, KINDS)
    assert field == info.value.field


def test_a_tree_too_deep_is_refused() -> None:
    """33 nested Nots: too_deep."""
    tree: Criteria = Eq("name", "a")
    for _ in range(33):
        tree = Not(tree)
    with pytest.raises(ValidationError) as info:
        check_criteria(tree, {})
    assert "too_deep" == info.value.code


def test_empty_and_holds_and_empty_or_does_not() -> None:
    """And() is everyone (not archived), Or() is no one."""
    orgs = [_org(), _org(), changes.archive(_org(), now=NOW)[0]]
    assert sorted(o.id for o in orgs[:2]) == evaluate(orgs, And(), as_of=NOW, history=History())
    assert [] == evaluate(orgs, Or(), as_of=NOW, history=History())


def test_history_criteria_read_the_facts() -> None:
    """No interaction in 10 days counts the window's edges; won value sums one currency."""
    org = _org()
    other = _org()
    history = History(
        done={org.id: (NOW - timedelta(days=10),)},
        won={
            org.id: (
                (Money("60", "EUR"), NOW),
                (Money("50", "EUR"), NOW),
                (Money("99", "USD"), NOW),
            )
        },
        open_stages={other.id: frozenset({("sales", "proposal")})},
    )
    orgs = [org, other]
    assert [other.id] == evaluate(orgs, NoInteraction(10), as_of=NOW, history=history)
    assert [org.id, other.id] == sorted(
        evaluate(orgs, NoInteraction(9), as_of=NOW, history=history)
    )
    period = (NOW, NOW + timedelta(days=1))
    assert [org.id] == evaluate(
        orgs, WonValue(Money("110", "EUR"), *period), as_of=NOW, history=history
    )
    assert [] == evaluate(orgs, WonValue(Money("111", "EUR"), *period), as_of=NOW, history=history)
    assert [other.id] == evaluate(
        orgs, OpenOpportunity("proposal", "sales"), as_of=NOW, history=history
    )


def test_a_missing_custom_value_fails_a_filter_and_passes_its_not() -> None:
    """score < 3 is false without a score; Not(score < 3) is true."""
    org = _org()
    assert [] == evaluate(
        [org], Range("custom.score", None, 3), as_of=NOW, history=History(), kinds=KINDS
    )
    assert [org.id] == evaluate(
        [org], Not(Range("custom.score", None, 3)), as_of=NOW, history=History(), kinds=KINDS
    )


_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**40), 2**40),
    st.text(max_size=5),
    st.uuids(),
    st.datetimes(timezones=st.just(UTC)),
    st.dates(),
    st.builds(Money, st.sampled_from(["0", "1.50", "-3"]), st.just("EUR")),
    st.builds(Money, st.sampled_from(["0", "7"]), st.just("JPY")),
)
_leaves = st.one_of(
    st.builds(Eq, st.just("f"), _values),
    st.builds(In, st.just("f"), st.lists(_values, max_size=3)),
    st.builds(Range, st.just("f"), _values, _values, st.booleans()),
    st.builds(Contains, st.just("f"), st.text(min_size=1, max_size=5)),
    st.builds(Has, st.just("f"), _values),
    st.builds(NoInteraction, st.integers(0, 1000)),
    st.builds(
        WonValue,
        st.builds(Money, st.just("10"), st.just("EUR")),
        st.datetimes(timezones=st.just(UTC)),
        st.datetimes(timezones=st.just(UTC)),
    ),
    st.builds(OpenOpportunity, st.text(min_size=1, max_size=5), st.none() | st.just("sales")),
)
_trees = st.recursive(
    _leaves,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3).map(lambda p: And(*p)),
        st.lists(inner, max_size=3).map(lambda p: Or(*p)),
        st.builds(Not, inner),
    ),
    max_leaves=10,
)


@given(_trees)
def test_a_tree_round_trips_through_json(tree: Criteria) -> None:
    """unstructure then structure gives the same tree: values keep their types."""
    assert tree == structure_criteria(converter.unstructure(tree))


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"op": "xor"}, "op"),
        ({"op": "eq", "field": "name"}, "value"),
        ({"op": "eq", "field": "name", "value": 1, "extra": 2}, "extra"),
        ({"op": "not", "part": {"op": "eq", "field": 3, "value": 1}}, "part"),
        ({"op": "eq", "field": "name", "value": {"uuid": "nope"}}, "uuid"),
        ({"op": "and", "parts": [{"op": "eq", "field": "x", "value": [1]}]}, "parts[0]"),
    ],
)
def test_bad_json_is_a_validation_error_with_a_path(data: object, field: str) -> None:
    """Unknown op, missing or unknown key, wrong types: ValidationError, never a cattrs error."""
    with pytest.raises(ValidationError) as info:
        structure_criteria(data)
    assert field == info.value.field


# ------------------------------------------------------------- opened e-mail


def test_opened_email_reads_the_opens_of_that_campaign_in_the_period() -> None:
    from crmkit import CampaignEmail, OpenedEmail
    from crmkit.core.ids import CampaignId, ContactId
    from crmkit.core.mail import campaign_email_id

    org, other = _org(), _org()
    spring, autumn = CampaignId(uuid7()), CampaignId(uuid7())

    def opened(campaign: CampaignId, at: datetime | None, *, archived: bool = False) -> Any:
        contact = ContactId(uuid7())
        record, _ = changes.create(
            CampaignEmail,
            id=campaign_email_id(campaign, contact),
            now=NOW,
            campaign_id=campaign,
            contact_id=contact,
            organization_id=org.id,
            opened_at=at,
        )
        return changes.archive(record, now=NOW)[0] if archived else record

    history = History.of(
        (),
        (),
        [
            opened(spring, NOW - timedelta(days=10)),
            opened(autumn, None),
            opened(autumn, NOW, archived=True),
        ],
    )

    def members(criteria: Criteria) -> list[Any]:
        return evaluate([org, other], criteria, as_of=NOW, history=history)

    assert [org.id] == members(OpenedEmail(spring))
    assert [] == members(OpenedEmail(autumn))  # not opened, or archived
    assert [org.id] == members(OpenedEmail(spring, NOW - timedelta(days=10), NOW))
    assert [] == members(OpenedEmail(spring, end=NOW - timedelta(days=10)))  # end excluded
    assert [other.id] == members(Not(OpenedEmail(spring)))


def test_opened_email_is_checked_and_round_trips_through_json() -> None:
    from crmkit import OpenedEmail

    tree = OpenedEmail(uuid7(), NOW - timedelta(days=1), NOW)  # type: ignore[arg-type]
    assert tree == structure_criteria(converter.unstructure(tree))
    open_ended = OpenedEmail(tree.campaign)
    assert open_ended == structure_criteria(
        {"op": "opened_email", "campaign": str(tree.campaign), "start": None, "end": None}
    )
    for bad, field in (
        (OpenedEmail("Otoño"), "criteria.campaign"),
        (OpenedEmail(uuid7(), NOW.replace(tzinfo=None)), "criteria.start"),  # type: ignore[arg-type]
        (OpenedEmail(uuid7(), NOW, NOW), "criteria.end"),  # type: ignore[arg-type]
    ):
        with pytest.raises(ValidationError) as caught:
            check_criteria(bad, {})
        assert field == caught.value.field
