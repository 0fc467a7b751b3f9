"""The opportunity state machine: pure transition functions and their invariants."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any, Final

import attrs
import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from crmkit import InvalidTransition, Money, ValidationError
from crmkit.core import changes
from crmkit.core.entities import LossReason
from crmkit.core.events import Created, FieldChange, StageChanged, Updated
from crmkit.core.ids import LossReasonId, OpportunityId, uuid7
from crmkit.core.opportunities import Opportunity, StageChange
from crmkit.core.pipelines import Pipeline, Stage, StageKind
from crmkit.core.transitions import (
    STAGE_FIELDS,
    advance,
    hold,
    lose,
    open_opportunity,
    reopen,
    replay,
    resume,
    set_probability,
    stage_durations,
    win,
)
from crmkit.plugins.builtin_pipelines import EXPEDIENTE, GESTION_COMERCIAL, PIPELINES, SALES

NOW: Final = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
AMOUNT: Final = Money("12000", "EUR")
CLOSE: Final = date(2026, 3, 31)

#: The loss-reason keys these tests assume the built-in masters seed.
LOSS_REASON_KEYS: Final = (
    "price",
    "competitor",
    "no-budget",
    "customer-rejects",
    "not-qualified",
    "no-decision",
    "other",
)


def _reason(key: str) -> LossReason:
    reason, _ = changes.create(
        LossReason, id=LossReasonId(uuid7()), now=NOW, key=key, name=key.title()
    )
    return reason


REASONS: Final = {key: _reason(key) for key in LOSS_REASON_KEYS}
PRICE: Final = REASONS["price"]
OTHER: Final = REASONS["other"]


def _at(days: int) -> datetime:
    return NOW + timedelta(days=days)


def _open(pipeline: Pipeline = SALES, stage: str | None = None, **fields: Any) -> Opportunity:
    opp, _ = open_opportunity(
        pipeline, id=OpportunityId(uuid7()), now=NOW, by="ana", stage=stage, name="Deal", **fields
    )
    return opp


def _in(stage: str, **fields: Any) -> Opportunity:
    """A sales opportunity opened straight in ``stage`` with an amount and a close date."""
    return _open(SALES, stage, amount=AMOUNT, expected_close=CLOSE, **fields)


def _won(**fields: Any) -> Opportunity:
    opp, _ = win(_in("negotiation", **fields), SALES, now=_at(1), by="ana")
    return opp


def _lost() -> Opportunity:
    opp, _ = lose(_in("negotiation"), SALES, reason=PRICE, note=None, now=_at(1), by="ana")
    return opp


def _held(stage: str = "proposal", **fields: Any) -> Opportunity:
    opp, _ = hold(_in(stage, **fields), SALES, now=_at(1), by="ana")
    return opp


def _two_won_stages() -> Pipeline:
    stages = (
        Stage(key="open", label="Open", label_es="Abierta"),
        Stage(key="won", label="Won", label_es="Ganada", kind=StageKind.WON, probability=1),
        Stage(key="won-too", label="Won too", label_es="Ganada", kind=StageKind.WON, probability=1),
        Stage(key="lost", label="Lost", label_es="Perdida", kind=StageKind.LOST),
    )
    transitions = [("open", "won"), ("open", "won-too"), ("open", "lost")]
    return Pipeline(key="two", name="Two", name_es="Dos", stages=stages, transitions=transitions)


def _no_hold_stage() -> Pipeline:
    return SALES.evolve(stages=tuple(s for s in SALES.stages if s.kind is not StageKind.ON_HOLD))


def _refused(call: Callable[[], object]) -> InvalidTransition:
    with pytest.raises(InvalidTransition) as info:
        call()
    assert "opportunity" == info.value.entity
    return info.value


def _invalid(call: Callable[[], object]) -> ValidationError:
    with pytest.raises(ValidationError) as info:
        call()
    return info.value


# ===================================================================== open


def test_open_starts_in_the_initial_stage_with_one_history_entry() -> None:
    """A new opportunity is version 1 in the first open stage, created by `by` at `now`."""
    opp, event = open_opportunity(
        SALES, id=OpportunityId(uuid7()), now=NOW, by="ana", name="ERP para Acme"
    )
    assert (1, "sales", "lead", StageKind.OPEN, Decimal("0.1"), False) == (
        opp.version,
        opp.pipeline,
        opp.stage,
        opp.status,
        opp.probability,
        opp.probability_override,
    )
    assert (StageChange(source=None, target="lead", at=NOW, by="ana"),) == opp.history
    assert Created(opp) == event


def test_open_in_a_named_open_stage_takes_its_probability() -> None:
    """stage= starts elsewhere; the probability is that stage's default."""
    opp = _open(SALES, "qualified")
    assert ("qualified", Decimal("0.25")) == (opp.stage, opp.probability)


def test_open_with_a_probability_overrides_the_default() -> None:
    """A given probability sticks and marks the override."""
    opp = _open(probability=Decimal("0.6"))
    assert (Decimal("0.6"), True) == (opp.probability, opp.probability_override)


def test_open_in_an_unknown_stage_is_a_validation_error() -> None:
    """A stage the pipeline lacks is reported on field 'stage'."""
    error = _invalid(lambda: _open(SALES, "nowhere"))
    assert ("stage", "nowhere") == (error.field, error.value)


@pytest.mark.parametrize("stage", ["won", "lost", "on-hold"])
def test_open_refuses_a_stage_that_is_not_open(stage: str) -> None:
    """New opportunities start in an open stage, never closed or on hold."""
    error = _invalid(lambda: _in(stage))
    assert ("stage", "stage") == (error.field, error.code)


def test_open_enforces_the_stage_requirements() -> None:
    """Opening in 'proposal' without an amount names the missing field."""
    error = _invalid(lambda: _open(SALES, "proposal"))
    assert ("amount", "required") == (error.field, error.code)


@pytest.mark.parametrize("name", sorted(STAGE_FIELDS - {"pipeline", "stage"}))
def test_open_refuses_fields_only_transitions_set(name: str) -> None:
    """Status, history, closing fields and the like are not the caller's to set."""
    values: dict[str, Any] = {name: None}
    error = _invalid(lambda: _open(**values))
    assert (name, "read_only") == (error.field, error.code)


def test_open_requires_a_name() -> None:
    """The name is required like in any creation."""
    error = _invalid(lambda: open_opportunity(SALES, id=OpportunityId(uuid7()), now=NOW, by=None))
    assert ("name", "required") == (error.field, error.code)


# ================================================================== advance


def test_advance_moves_along_an_allowed_transition() -> None:
    """The stage, probability, version, time and history all follow the move."""
    opp = _open()
    new, event = advance(opp, SALES, to="qualified", now=_at(2), by="luis")
    change = StageChange(source="lead", target="qualified", at=_at(2), by="luis")
    assert ("qualified", StageKind.OPEN, Decimal("0.25"), 2, _at(2)) == (
        new.stage,
        new.status,
        new.probability,
        new.version,
        new.updated_at,
    )
    assert (*opp.history, change) == new.history
    assert StageChanged(new, change, event.changes) == event


def test_advance_event_lists_every_changed_field() -> None:
    """The event's diff holds old and new values of stage, probability and history."""
    opp = _open()
    new, event = advance(opp, SALES, to="qualified", now=_at(2), by=None)
    assert (
        FieldChange("stage", "lead", "qualified"),
        FieldChange("probability", Decimal("0.1"), Decimal("0.25")),
        FieldChange("history", opp.history, new.history),
    ) == event.changes


def test_advance_may_step_back() -> None:
    """Realistic backward moves are allowed (negotiation back to proposal)."""
    new, _ = advance(_in("negotiation"), SALES, to="proposal", now=_at(1), by=None)
    assert ("proposal", Decimal("0.5")) == (new.stage, new.probability)


def test_advance_refuses_a_move_the_pipeline_does_not_allow() -> None:
    """Skipping stages is an InvalidTransition naming both stages."""
    error = _refused(lambda: advance(_open(), SALES, to="negotiation", now=_at(1), by=None))
    assert ("lead", "negotiation") == (error.source, error.target)


def test_advance_refuses_the_same_stage() -> None:
    """Moving to the stage the opportunity is in is refused."""
    error = _refused(lambda: advance(_open(), SALES, to="lead", now=_at(1), by=None))
    assert ("lead", "lead") == (error.source, error.target)


@pytest.mark.parametrize(
    ("target", "function"), [("won", "win()"), ("lost", "lose()"), ("on-hold", "hold()")]
)
def test_advance_refuses_closing_or_holding_and_names_the_function(
    target: str, function: str
) -> None:
    """Won, lost and on-hold stages are entered through their own functions."""
    error = _refused(lambda: advance(_in("negotiation"), SALES, to=target, now=_at(1), by=None))
    assert ("negotiation", target, True) == (error.source, error.target, function in error.reason)


@pytest.mark.parametrize("make", [_won, _lost, _held], ids=["won", "lost", "on-hold"])
def test_advance_refuses_an_opportunity_that_is_not_open(make: Callable[[], Opportunity]) -> None:
    """Only open opportunities advance."""
    opp = make()
    error = _refused(lambda: advance(opp, SALES, to="qualified", now=_at(2), by=None))
    assert (opp.stage, "qualified") == (error.source, error.target)


def test_advance_enforces_the_target_requirements() -> None:
    """Entering 'proposal' needs an amount."""
    opp = _open(SALES, "qualified")
    error = _invalid(lambda: advance(opp, SALES, to="proposal", now=_at(1), by=None))
    assert ("amount", "required") == (error.field, error.code)


def test_advance_keeps_an_overridden_probability() -> None:
    """With an override the stage's default does not apply."""
    opp = _open(probability=Decimal("0.9"))
    new, _ = advance(opp, SALES, to="qualified", now=_at(1), by=None)
    assert (Decimal("0.9"), True) == (new.probability, new.probability_override)


def test_advance_to_an_unknown_stage_is_a_validation_error() -> None:
    """A stage the pipeline lacks is reported on field 'stage'."""
    error = _invalid(lambda: advance(_open(), SALES, to="nowhere", now=_at(1), by=None))
    assert ("stage", "nowhere") == (error.field, error.value)


def test_moves_refuse_another_pipeline() -> None:
    """The pipeline passed must be the opportunity's own."""
    error = _invalid(lambda: advance(_open(), EXPEDIENTE, to="presentacion", now=_at(1), by=None))
    assert ("pipeline", "pipeline") == (error.field, error.code)


# ====================================================================== win


def test_win_closes_with_probability_one() -> None:
    """Won: status won, probability 1, override cleared, closed now."""
    opp = _in("negotiation", probability=Decimal("0.3"))
    new, event = win(opp, SALES, now=_at(3), by="ana")
    assert ("won", StageKind.WON, Decimal(1), False, _at(3)) == (
        new.stage,
        new.status,
        new.probability,
        new.probability_override,
        new.closed_at,
    )
    assert StageChange(source="negotiation", target="won", at=_at(3), by="ana") == event.change


def test_win_sets_amount_and_close_date_before_checking_requirements() -> None:
    """amount= and expected_close= given to win() satisfy the won stage's requirements."""
    opp = _open(SALES, "proposal", amount=AMOUNT)
    new, event = win(opp, SALES, now=_at(1), by=None, expected_close=CLOSE)
    assert (CLOSE, FieldChange("expected_close", None, CLOSE)) == (
        new.expected_close,
        next(c for c in event.changes if c.field == "expected_close"),
    )


def test_win_enforces_the_won_stage_requirements() -> None:
    """Winning without a close date names 'expected_close'."""
    opp = _open(SALES, "negotiation", amount=AMOUNT)
    error = _invalid(lambda: win(opp, SALES, now=_at(1), by=None))
    assert ("expected_close", "required") == (error.field, error.code)


def test_win_refuses_a_move_the_pipeline_does_not_allow() -> None:
    """A lead cannot be won directly."""
    opp = _open(amount=AMOUNT, expected_close=CLOSE)
    error = _refused(lambda: win(opp, SALES, now=_at(1), by=None))
    assert ("lead", "won") == (error.source, error.target)


@pytest.mark.parametrize("make", [_won, _lost, _held], ids=["won", "lost", "on-hold"])
def test_win_refuses_an_opportunity_that_is_not_open(make: Callable[[], Opportunity]) -> None:
    """Only open opportunities are won (resume or reopen first)."""
    opp = make()
    error = _refused(lambda: win(opp, SALES, now=_at(2), by=None))
    assert opp.stage == error.source


def test_win_needs_a_stage_when_the_pipeline_has_several_won_stages() -> None:
    """Without stage= the choice is ambiguous; naming one works."""
    pipeline = _two_won_stages()
    opp, _ = open_opportunity(pipeline, id=OpportunityId(uuid7()), now=NOW, by=None, name="D")
    error = _refused(lambda: win(opp, pipeline, now=_at(1), by=None))
    new, _ = win(opp, pipeline, now=_at(1), by=None, stage="won-too")
    assert ("won", "won-too") == (error.target, new.stage)


def test_win_refuses_a_stage_that_is_not_won() -> None:
    """stage= must name a won stage."""
    error = _refused(lambda: win(_in("negotiation"), SALES, now=_at(1), by=None, stage="lost"))
    assert ("negotiation", "lost") == (error.source, error.target)


# ===================================================================== lose


def test_lose_records_reason_and_note_with_probability_zero() -> None:
    """Lost: reason and note stored, probability 0, closed now."""
    opp = _in("proposal", probability=Decimal("0.8"))
    new, _ = lose(opp, SALES, reason=PRICE, note="too expensive", now=_at(2), by="ana")
    assert (StageKind.LOST, PRICE.id, "too expensive", Decimal(0), False, _at(2)) == (
        new.status,
        new.close_reason_id,
        new.close_note,
        new.probability,
        new.probability_override,
        new.closed_at,
    )


@pytest.mark.parametrize("note", [None, "", "   "])
def test_lose_for_other_needs_a_note(note: str | None) -> None:
    """Reason 'other' without a real note is a ValidationError on field 'note'."""
    error = _invalid(lambda: lose(_open(), SALES, reason=OTHER, note=note, now=_at(1), by=None))
    assert ("note", "required") == (error.field, error.code)


def test_lose_for_other_with_a_note_is_accepted() -> None:
    """Reason 'other' with a note closes the opportunity."""
    new, _ = lose(_open(), SALES, reason=OTHER, note="company closed", now=_at(1), by=None)
    assert (OTHER.id, "company closed") == (new.close_reason_id, new.close_note)


def test_lose_from_hold_needs_no_transition_and_clears_held_from() -> None:
    """An opportunity on hold may be lost directly."""
    opp = _held("negotiation")
    new, event = lose(opp, SALES, reason=PRICE, note=None, now=_at(2), by=None)
    assert ("lost", None, StageChange(source="on-hold", target="lost", at=_at(2), by=None)) == (
        new.stage,
        new.held_from,
        event.change,
    )


@pytest.mark.parametrize("make", [_won, _lost], ids=["won", "lost"])
def test_lose_refuses_a_closed_opportunity(make: Callable[[], Opportunity]) -> None:
    """A won or lost opportunity is not lost (again)."""
    opp = make()
    error = _refused(lambda: lose(opp, SALES, reason=PRICE, note=None, now=_at(2), by=None))
    assert opp.stage == error.source


def test_lose_needs_a_stage_when_the_pipeline_has_several_lost_stages() -> None:
    """gestion-comercial has two closures: name one."""
    opp = _open(GESTION_COMERCIAL)
    error = _refused(
        lambda: lose(opp, GESTION_COMERCIAL, reason=PRICE, note=None, now=_at(1), by=None)
    )
    new, _ = lose(
        opp,
        GESTION_COMERCIAL,
        reason=REASONS["not-qualified"],
        note=None,
        now=_at(1),
        by=None,
        stage="cliente-no-califica",
    )
    assert ("lost", "cliente-no-califica") == (error.target, new.stage)


def test_lose_refuses_a_move_the_pipeline_does_not_allow() -> None:
    """From an open stage the pipeline must allow the move to the lost stage."""
    pipeline = SALES.evolve(transitions=SALES.transitions - {("lead", "lost")})
    error = _refused(lambda: lose(_open(), pipeline, reason=PRICE, note=None, now=_at(1), by=None))
    assert ("lead", "lost") == (error.source, error.target)


# ===================================================================== hold


def test_hold_remembers_the_stage_it_left() -> None:
    """On hold: held_from is the stage left; probability is the hold stage's default."""
    new, event = hold(_in("proposal"), SALES, now=_at(1), by="ana")
    assert ("on-hold", StageKind.ON_HOLD, "proposal", Decimal("0.1")) == (
        new.stage,
        new.status,
        new.held_from,
        new.probability,
    )
    assert StageChange(source="proposal", target="on-hold", at=_at(1), by="ana") == event.change


def test_hold_keeps_an_overridden_probability() -> None:
    """An override survives holding."""
    new, _ = hold(_in("proposal", probability=Decimal("0.65")), SALES, now=_at(1), by=None)
    assert Decimal("0.65") == new.probability


def test_hold_needs_an_on_hold_stage() -> None:
    """A pipeline without one cannot hold."""
    pipeline = _no_hold_stage()
    opp = _open()
    error = _refused(lambda: hold(opp, pipeline, now=_at(1), by=None))
    assert ("lead", "on_hold") == (error.source, error.target)


@pytest.mark.parametrize("make", [_won, _lost, _held], ids=["won", "lost", "on-hold"])
def test_hold_refuses_an_opportunity_that_is_not_open(make: Callable[[], Opportunity]) -> None:
    """Only open opportunities are put on hold."""
    opp = make()
    error = _refused(lambda: hold(opp, SALES, now=_at(2), by=None))
    assert opp.stage == error.source


def test_hold_refuses_a_stage_that_is_not_on_hold() -> None:
    """stage= must name an on-hold stage."""
    error = _refused(lambda: hold(_open(), SALES, now=_at(1), by=None, stage="qualified"))
    assert ("lead", "qualified") == (error.source, error.target)


# =================================================================== resume


def test_resume_returns_to_the_stage_it_left() -> None:
    """Resuming goes back to held_from, clears it and restores the stage's probability."""
    new, event = resume(_held("negotiation"), SALES, now=_at(2), by="ana")
    assert ("negotiation", StageKind.OPEN, None, Decimal("0.75")) == (
        new.stage,
        new.status,
        new.held_from,
        new.probability,
    )
    assert StageChange(source="on-hold", target="negotiation", at=_at(2), by="ana") == event.change


@pytest.mark.parametrize("make", [_open, _won, _lost], ids=["open", "won", "lost"])
def test_resume_refuses_an_opportunity_not_on_hold(make: Callable[[], Opportunity]) -> None:
    """Only an opportunity on hold resumes."""
    opp = make()
    error = _refused(lambda: resume(opp, SALES, now=_at(2), by=None))
    assert opp.stage == error.source


def test_resume_enforces_the_requirements_again() -> None:
    """An amount removed while on hold must be given back before resuming to 'proposal'."""
    opp, _ = changes.update(_held("proposal"), {"amount": None}, now=_at(1))
    error = _invalid(lambda: resume(opp, SALES, now=_at(2), by=None))
    assert ("amount", "required") == (error.field, error.code)


# =================================================================== reopen


def test_reopen_a_won_opportunity_returns_to_its_last_open_stage() -> None:
    """Closing fields are cleared; the sales order reference and notes stay."""
    won = _won(notes="first deal", sales_order_ref="SO-1")
    new, event = reopen(won, SALES, now=_at(5), by="boss")
    assert ("negotiation", StageKind.OPEN, Decimal("0.75"), None, "SO-1", "first deal") == (
        new.stage,
        new.status,
        new.probability,
        new.closed_at,
        new.sales_order_ref,
        new.notes,
    )
    assert StageChange(source="won", target="negotiation", at=_at(5), by="boss") == event.change


def test_reopen_a_lost_opportunity_clears_reason_and_note() -> None:
    """The loss reason and note go away with the loss."""
    lost, _ = lose(_in("proposal"), SALES, reason=PRICE, note="dear", now=_at(1), by=None)
    new, _ = reopen(lost, SALES, now=_at(2), by=None)
    assert ("proposal", None, None, None) == (
        new.stage,
        new.close_reason_id,
        new.close_note,
        new.closed_at,
    )


def test_reopen_after_losing_from_hold_returns_to_the_stage_before_the_hold() -> None:
    """The last open stage of the history is the one held from."""
    lost, _ = lose(_held("negotiation"), SALES, reason=PRICE, note=None, now=_at(2), by=None)
    new, _ = reopen(lost, SALES, now=_at(3), by=None)
    assert "negotiation" == new.stage


def test_reopen_to_a_named_open_stage() -> None:
    """to= picks the stage, whatever the transitions say."""
    new, _ = reopen(_won(), SALES, now=_at(2), by=None, to="lead")
    assert ("lead", Decimal("0.1")) == (new.stage, new.probability)


@pytest.mark.parametrize("to", ["lost", "on-hold"])
def test_reopen_refuses_a_target_that_is_not_open(to: str) -> None:
    """Reopening lands in an open stage."""
    error = _refused(lambda: reopen(_won(), SALES, now=_at(2), by=None, to=to))
    assert ("won", to) == (error.source, error.target)


@pytest.mark.parametrize("make", [_open, _held], ids=["open", "on-hold"])
def test_reopen_refuses_an_opportunity_that_is_not_closed(make: Callable[[], Opportunity]) -> None:
    """Only won or lost opportunities reopen."""
    opp = make()
    error = _refused(lambda: reopen(opp, SALES, now=_at(2), by=None))
    assert opp.stage == error.source


def test_reopen_enforces_the_target_requirements() -> None:
    """Reopening into 'proposal' needs an amount like any entry."""
    lost, _ = lose(_open(), SALES, reason=PRICE, note=None, now=_at(1), by=None)
    error = _invalid(lambda: reopen(lost, SALES, now=_at(2), by=None, to="proposal"))
    assert ("amount", "required") == (error.field, error.code)


# ============================================================== probability


def test_set_probability_overrides_and_clearing_restores_the_default() -> None:
    """A value sets the override; None goes back to the stage's default."""
    opp = _open()
    overridden, first = set_probability(opp, SALES, Decimal("0.4"), now=_at(1))
    cleared, second = set_probability(overridden, SALES, None, now=_at(2))
    assert (Decimal("0.4"), True, 2) == (
        overridden.probability,
        overridden.probability_override,
        overridden.version,
    )
    assert (Decimal("0.1"), False, 3) == (
        cleared.probability,
        cleared.probability_override,
        cleared.version,
    )
    assert isinstance(first, Updated)
    assert (
        FieldChange("probability", Decimal("0.4"), Decimal("0.1")),
        FieldChange("probability_override", True, False),
    ) == (second.changes if second is not None else ())


def test_set_probability_without_change_returns_no_event() -> None:
    """Clearing an override that is not there changes nothing."""
    opp = _open()
    assert (opp, None) == set_probability(opp, SALES, None, now=_at(1))


@pytest.mark.parametrize("make", [_won, _lost], ids=["won", "lost"])
def test_set_probability_refuses_a_closed_opportunity(make: Callable[[], Opportunity]) -> None:
    """Won and lost probabilities are fixed at 1 and 0."""
    opp = make()
    error = _invalid(lambda: set_probability(opp, SALES, Decimal("0.5"), now=_at(2)))
    assert ("probability", "closed") == (error.field, error.code)


def test_set_probability_validates_the_range() -> None:
    """A probability above 1 is refused on field 'probability'."""
    error = _invalid(lambda: set_probability(_open(), SALES, Decimal("1.5"), now=_at(1)))
    assert "probability" == error.field


# ================================================================== history


def _journey() -> Opportunity:
    """lead 1d, qualified 2d, lead 3d, qualified 4d, proposal 0d, won on day 10."""
    opp = _open(amount=AMOUNT, expected_close=CLOSE)
    for day, to in [(1, "qualified"), (3, "lead"), (6, "qualified"), (10, "proposal")]:
        opp, _ = advance(opp, SALES, to=to, now=_at(day), by=None)
    opp, _ = win(opp, SALES, now=_at(10), by=None)
    return opp


def test_stage_durations_add_up_revisits_and_count_the_last_stage_until_as_of() -> None:
    """Each stage's time sums over its visits; the final stage counts until as_of."""
    durations = stage_durations(_journey(), as_of=_at(12))
    assert {
        "lead": timedelta(days=4),
        "qualified": timedelta(days=6),
        "proposal": timedelta(0),
        "won": timedelta(days=2),
    } == durations


def test_stage_durations_as_of_a_past_moment_ignore_later_changes() -> None:
    """A snapshot in the past sees only the history up to then."""
    durations = stage_durations(_journey(), as_of=_at(4))
    assert {"lead": timedelta(days=2), "qualified": timedelta(days=2)} == durations


def test_stage_durations_before_the_opening_are_empty() -> None:
    """Before the first history entry the opportunity did not exist."""
    assert {} == stage_durations(_journey(), as_of=_at(-1))


def test_replay_rebuilds_the_stored_state() -> None:
    """Stage, status, held_from and closed_at follow from the history alone."""
    opp = _journey()
    held = _held("negotiation")
    assert [
        ("won", StageKind.WON, None, _at(10)),
        ("on-hold", StageKind.ON_HOLD, "negotiation", None),
    ] == [
        replay(SALES, opp.history),
        replay(SALES, held.history),
    ]


def test_replay_of_an_empty_history_is_a_validation_error() -> None:
    """There is no state without a first entry."""
    error = _invalid(lambda: replay(SALES, ()))
    assert ("history", "required") == (error.field, error.code)


# ============================================================ state machine

_AMOUNTS: Final = st.sampled_from([None, AMOUNT, Money("250.50", "EUR")])
_DATES: Final = st.sampled_from([None, CLOSE, date(2026, 6, 30)])
_NOTES: Final = st.sampled_from([None, "", "  ", "went with a competitor"])
_PROBABILITIES: Final = st.sampled_from([None, Decimal(0), Decimal("0.35"), Decimal(1)])


def _machine(pipeline: Pipeline) -> type[RuleBasedStateMachine]:
    """A state machine driving random calls of every transition on ``pipeline``."""
    keys = [s.key for s in pipeline.stages]
    open_keys = [s.key for s in pipeline.of_kind(StageKind.OPEN)]

    def keys_of(kind: StageKind) -> st.SearchStrategy[str | None]:
        return st.none() | st.sampled_from([s.key for s in pipeline.of_kind(kind)])

    class OpportunityMachine(RuleBasedStateMachine):
        """Random transitions; the model predicts which calls must be refused."""

        def __init__(self) -> None:
            super().__init__()
            self.now = NOW
            self.opp: Opportunity | None = None

        # ---------------------------------------------------------- setup
        @initialize(
            stage=st.sampled_from(open_keys),
            amount=_AMOUNTS,
            expected_close=_DATES,
            probability=_PROBABILITIES,
        )
        def open(
            self,
            stage: str,
            amount: Money | None,
            expected_close: date | None,
            probability: Decimal | None,
        ) -> None:
            fields = {"amount": amount, "expected_close": expected_close}
            missing = self._missing(pipeline.stage(stage), fields)

            def call() -> tuple[Opportunity, Created[Opportunity]]:
                return open_opportunity(
                    pipeline,
                    id=OpportunityId(uuid7()),
                    now=self.now,
                    by="tester",
                    stage=stage,
                    name="Deal",
                    probability=probability,
                    **fields,
                )

            if missing:  # fall back to the initial stage, which requires nothing here
                with pytest.raises(ValidationError) as invalid:
                    call()
                assert (missing[0], "required") == (invalid.value.field, invalid.value.code)
                stage = pipeline.initial.key
            self.opp, _ = call()
            assert (stage, probability is not None) == (
                self.current.stage,
                self.current.probability_override,
            )

        # ----------------------------------------------------------- rules
        @rule(seconds=st.integers(0, 30 * 86_400))
        def wait(self, seconds: int) -> None:
            self.now += timedelta(seconds=seconds)

        @rule(amount=_AMOUNTS, expected_close=_DATES)
        def edit(self, amount: Money | None, expected_close: date | None) -> None:
            values = {"amount": amount, "expected_close": expected_close}
            self.opp, _ = changes.update(self.current, values, now=self.now)

        @rule(to=st.sampled_from(keys))
        def advance(self, to: str) -> None:
            self._advance(to)

        @rule(choice=st.integers(0, 15))
        def advance_along_a_transition(self, choice: int) -> None:
            """Mostly legal moves, so deals get far enough to be won."""
            allowed = sorted(t for s, t in pipeline.transitions if s == self.current.stage)
            self._advance(allowed[choice % len(allowed)] if allowed else open_keys[0])

        def _advance(self, to: str) -> None:
            opp, target = self.current, pipeline.stage(to)
            legal = (
                opp.status is StageKind.OPEN
                and target.kind is StageKind.OPEN
                and pipeline.allows(opp.stage, to)
            )
            self._attempt(
                lambda: advance(opp, pipeline, to=to, now=self.now, by="tester"),
                legal=legal,
                missing=self._missing(target, {}),
            )

        @rule(stage=keys_of(StageKind.WON), amount=_AMOUNTS, expected_close=_DATES)
        def win(self, stage: str | None, amount: Money | None, expected_close: date | None) -> None:
            opp, target = self.current, self._target(stage, StageKind.WON)
            legal = (
                target is not None
                and opp.status is StageKind.OPEN
                and pipeline.allows(opp.stage, target.key)
            )
            given = {
                k: v
                for k, v in [("amount", amount), ("expected_close", expected_close)]
                if v is not None
            }
            new = self._attempt(
                lambda: win(
                    opp,
                    pipeline,
                    now=self.now,
                    by="tester",
                    stage=stage,
                    amount=amount,
                    expected_close=expected_close,
                ),
                legal=legal,
                missing=self._missing(target, given),
            )
            if new is not None:
                assert (StageKind.WON, self.now) == (new.status, new.closed_at)

        @rule(reason=st.sampled_from(LOSS_REASON_KEYS), note=_NOTES, stage=keys_of(StageKind.LOST))
        def lose(self, reason: str, note: str | None, stage: str | None) -> None:
            opp, target = self.current, self._target(stage, StageKind.LOST)
            legal = target is not None and (
                opp.status is StageKind.ON_HOLD
                or (opp.status is StageKind.OPEN and pipeline.allows(opp.stage, target.key))
            )
            blank = reason == "other" and not (note or "").strip()
            new = self._attempt(
                lambda: lose(
                    opp,
                    pipeline,
                    reason=REASONS[reason],
                    note=note,
                    now=self.now,
                    by="tester",
                    stage=stage,
                ),
                legal=legal,
                missing=(
                    ["note"]
                    if blank
                    else self._missing(target, {"close_reason_id": REASONS[reason].id})
                ),
            )
            if new is not None:
                assert (REASONS[reason].id, None) == (new.close_reason_id, new.held_from)

        @rule(stage=keys_of(StageKind.ON_HOLD))
        def hold(self, stage: str | None) -> None:
            opp, target = self.current, self._target(stage, StageKind.ON_HOLD)
            new = self._attempt(
                lambda: hold(opp, pipeline, now=self.now, by="tester", stage=stage),
                legal=target is not None and opp.status is StageKind.OPEN,
                missing=self._missing(target, {}),
            )
            if new is not None:
                assert opp.stage == new.held_from

        @rule()
        def resume(self) -> None:
            opp = self.current
            target = pipeline.stage(opp.held_from) if opp.held_from is not None else None
            new = self._attempt(
                lambda: resume(opp, pipeline, now=self.now, by="tester"),
                legal=opp.status is StageKind.ON_HOLD,
                missing=self._missing(target, {}),
            )
            if new is not None:
                assert (opp.held_from, None) == (new.stage, new.held_from)

        @rule(to=st.none() | st.sampled_from(keys))
        def reopen(self, to: str | None) -> None:
            opp = self.current
            if to is None:
                opens = [c.target for c in opp.history if c.target in open_keys]
                target = pipeline.stage(opens[-1] if opens else pipeline.initial.key)
            else:
                target = pipeline.stage(to)
            new = self._attempt(
                lambda: reopen(opp, pipeline, now=self.now, by="tester", to=to),
                legal=opp.is_closed and target.kind is StageKind.OPEN,
                missing=self._missing(target, {"close_reason_id": None}),
                reopening=True,
            )
            if new is not None:
                assert (None, None, None) == (new.closed_at, new.close_reason_id, new.close_note)

        @rule(probability=_PROBABILITIES)
        def set_probability(self, probability: Decimal | None) -> None:
            opp = self.current
            if opp.is_closed:
                with pytest.raises(ValidationError) as invalid:
                    set_probability(opp, pipeline, probability, now=self.now)
                assert "closed" == invalid.value.code
                return
            new, event = set_probability(opp, pipeline, probability, now=self.now)
            assert (probability is not None) == new.probability_override
            assert (opp.version if event is None else opp.version + 1) == new.version
            self.opp = new

        # ------------------------------------------------------ invariants
        @invariant()
        def closed_fields_match_the_status(self) -> None:
            opp = self.current
            if opp.status is StageKind.WON:
                assert (Decimal(1), False, True) == (
                    opp.probability,
                    opp.probability_override,
                    opp.closed_at is not None,
                )
            elif opp.status is StageKind.LOST:
                assert (Decimal(0), True, True) == (
                    opp.probability,
                    opp.close_reason_id is not None,
                    opp.closed_at is not None,
                )
            else:
                assert (None, None, None) == (opp.closed_at, opp.close_reason_id, opp.close_note)

        @invariant()
        def probability_is_the_default_unless_overridden(self) -> None:
            opp = self.current
            if not opp.probability_override:
                assert pipeline.stage(opp.stage).probability == opp.probability

        @invariant()
        def held_from_is_an_open_stage_exactly_when_on_hold(self) -> None:
            opp = self.current
            if opp.status is StageKind.ON_HOLD:
                assert opp.held_from in open_keys
            else:
                assert opp.held_from is None

        @invariant()
        def durations_add_up_to_the_age(self) -> None:
            opp = self.current
            for as_of in (self.now, self.now + timedelta(days=1)):
                durations = stage_durations(opp, as_of=as_of)
                assert as_of - opp.history[0].at == sum(durations.values(), timedelta(0))

        @invariant()
        def replay_equals_the_stored_state(self) -> None:
            opp = self.current
            assert (opp.stage, opp.status, opp.held_from, opp.closed_at) == replay(
                pipeline, opp.history
            )

        # --------------------------------------------------------- helpers
        @property
        def current(self) -> Opportunity:
            assert self.opp is not None
            return self.opp

        def _target(self, stage: str | None, kind: StageKind) -> Stage | None:
            """The stage a call with ``stage=`` aims at; None when ambiguous or absent."""
            if stage is not None:
                return pipeline.stage(stage)
            candidates = pipeline.of_kind(kind)
            return candidates[0] if len(candidates) == 1 else None

        def _missing(self, target: Stage | None, values: dict[str, Any]) -> list[str]:
            """The target's requirements unset once ``values`` are applied, sorted."""
            if target is None:
                return []
            current = {n: getattr(self.opp, n, None) for n in target.requires}
            return sorted(n for n in target.requires if {**current, **values}.get(n) is None)

        def _attempt(
            self,
            call: Callable[[], tuple[Opportunity, StageChanged]],
            *,
            legal: bool,
            missing: list[str],
            reopening: bool = False,
        ) -> Opportunity | None:
            """Run a transition; check the refusal the model predicts or the move's shape."""
            opp = self.current
            if not legal:
                with pytest.raises(InvalidTransition) as refused:
                    call()
                assert ("opportunity", opp.stage) == (refused.value.entity, refused.value.source)
                return None
            assert reopening or not opp.is_closed, "final stages only leave through reopen"
            if missing:
                with pytest.raises(ValidationError) as invalid:
                    call()
                assert (missing[0], "required") == (invalid.value.field, invalid.value.code)
                return None
            new, event = call()
            change = new.history[-1]
            assert (opp.history, len(opp.history) + 1) == (new.history[:-1], len(new.history))
            assert (opp.stage, new.stage, self.now) == (change.source, change.target, change.at)
            assert (opp.version + 1, self.now) == (new.version, new.updated_at)
            assert (new, change) == (event.entity, event.change)
            differing = {
                a.name
                for a in attrs.fields(Opportunity)
                if getattr(opp, a.name) != getattr(new, a.name)
            }
            assert differing - {"version", "updated_at"} == {c.field for c in event.changes}
            for c in event.changes:
                assert (getattr(opp, c.field), getattr(new, c.field)) == (c.old, c.new)
            self.opp = new
            return new

    OpportunityMachine.__name__ = f"OpportunityMachine_{pipeline.key.replace('-', '_')}"
    return OpportunityMachine


_MACHINE_SETTINGS: Final = settings(max_examples=200, stateful_step_count=30, deadline=None)

TestSalesMachine = _machine(SALES).TestCase
TestSalesMachine.settings = _MACHINE_SETTINGS
TestGestionComercialMachine = _machine(GESTION_COMERCIAL).TestCase
TestGestionComercialMachine.settings = _MACHINE_SETTINGS
TestExpedienteMachine = _machine(EXPEDIENTE).TestCase
TestExpedienteMachine.settings = _MACHINE_SETTINGS


def test_the_machines_cover_every_builtin_pipeline() -> None:
    """One state machine runs per built-in pipeline."""
    assert {"sales", "gestion-comercial", "expediente"} == {p.key for p in PIPELINES}
