"""Pipelines as data: Stage and Pipeline constructors, and check_pipeline."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from crmkit import ValidationError
from crmkit.core.pipelines import Pipeline, Stage, StageKind, check_pipeline

OPEN, WON, LOST, HOLD = StageKind.OPEN, StageKind.WON, StageKind.LOST, StageKind.ON_HOLD


def _stage(key: str, kind: StageKind = OPEN, **values: Any) -> Stage:
    probability = {WON: Decimal(1)}.get(kind, Decimal(0))
    values.setdefault("probability", probability)
    return Stage(key=key, label=key.title(), label_es=f"{key} (es)", kind=kind, **values)


def _pipeline(
    stages: list[Stage] | None = None, transitions: list[tuple[str, str]] | None = None
) -> Pipeline:
    """a -> b -> won, a/b -> lost, plus a hold stage, unless told otherwise."""
    if stages is None:
        stages = [_stage("a"), _stage("b"), _stage("won", WON), _stage("lost", LOST)]
        stages.append(_stage("hold", HOLD))
    if transitions is None:
        transitions = [("a", "b"), ("b", "a"), ("b", "won"), ("a", "lost"), ("b", "lost")]
    return Pipeline(key="p", name="P", name_es="P (es)", stages=stages, transitions=transitions)


# ------------------------------------------------------------------ Stage


def test_stage_converts_friendly_input() -> None:
    """A kind given by value, a probability as a string and a list of requirements are accepted."""
    values: dict[str, Any] = {"kind": "open", "probability": "0.5", "requires": ["amount"]}
    stage = Stage(key="proposal", label="Proposal", label_es="Propuesta", **values)
    assert (StageKind.OPEN, Decimal("0.5"), frozenset({"amount"})) == (
        stage.kind,
        stage.probability,
        stage.requires,
    )


def test_stage_label_for_picks_the_language() -> None:
    """label_for("es") and Spanish locales give the Spanish label, anything else the English."""
    stage = _stage("proposal")
    assert ["proposal (es)", "proposal (es)", "Proposal"] == [
        stage.label_for("es"),
        stage.label_for("es_ES"),
        stage.label_for("en"),
    ]


@pytest.mark.parametrize(
    ("kind", "final"), [(OPEN, False), (WON, True), (LOST, True), (HOLD, False)]
)
def test_only_won_and_lost_stages_are_final(kind: StageKind, final: bool) -> None:
    """is_final holds for won and lost stages only."""
    assert final == _stage("x", kind).is_final


@pytest.mark.parametrize(
    ("values", "field", "code"),
    [
        ({"key": "Bad Key"}, "key", "key"),
        ({"key": ""}, "key", "key"),
        ({"key": 7}, "key", "key"),
        ({"label": ""}, "label", "required"),
        ({"label_es": "   "}, "label_es", "required"),
        ({"kind": "closed"}, "kind", "choice"),
        ({"probability": 0.5}, "probability", "type"),
        ({"probability": True}, "probability", "type"),
        ({"probability": "1.5"}, "probability", "invalid"),
        ({"probability": "-0.1"}, "probability", "invalid"),
        ({"probability": "NaN"}, "probability", "invalid"),
        ({"probability": "abc"}, "probability", "invalid"),
        ({"requires": "amount"}, "requires", "invalid"),
        ({"requires": ["price"]}, "requires", "unknown_field"),
        ({"requires": [["amount"]]}, "requires", "type"),
    ],
)
def test_stage_rejects_malformed_input_naming_the_field(
    values: dict[str, Any], field: str, code: str
) -> None:
    """Each malformed argument raises ValidationError naming that argument."""
    arguments: dict[str, Any] = {"key": "ok", "label": "Ok", "label_es": "Vale", **values}
    with pytest.raises(ValidationError) as info:
        Stage(**arguments)
    assert (field, code) == (info.value.field, info.value.code)


# --------------------------------------------------------------- Pipeline


def test_pipeline_helpers_find_stages_and_transitions() -> None:
    """stage(), initial, of_kind() and allows() read the definition."""
    pipeline = _pipeline()
    assert ("b", "a", ("won",), True, False) == (
        pipeline.stage("b").key,
        pipeline.initial.key,
        tuple(s.key for s in pipeline.of_kind(WON)),
        pipeline.allows("a", "b"),
        pipeline.allows("won", "a"),
    )


def test_pipeline_stage_raises_for_an_unknown_key() -> None:
    """Asking for a stage the pipeline lacks is a ValidationError on field 'stage'."""
    with pytest.raises(ValidationError) as info:
        _pipeline().stage("nope")
    assert ("stage", "nope") == (info.value.field, info.value.value)


def test_initial_is_the_first_open_stage() -> None:
    """A pipeline listing a hold stage first still starts in its first open stage."""
    stages = [_stage("hold", HOLD), _stage("a"), _stage("won", WON), _stage("lost", LOST)]
    pipeline = _pipeline(stages, [("a", "won"), ("a", "lost")])
    assert "a" == pipeline.initial.key


def test_transitions_accept_lists_and_drop_duplicates() -> None:
    """Pairs may be lists; a repeated pair counts once."""
    pipeline = Pipeline(
        key="p",
        name="P",
        name_es="P",
        stages=[_stage("a"), _stage("won", WON), _stage("lost", LOST)],
        transitions=[["a", "won"], ("a", "won"), ("a", "lost")],
    )
    assert frozenset({("a", "won"), ("a", "lost")}) == pipeline.transitions


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ({"key": "Sales!"}, "key"),
        ({"name": ""}, "name"),
        ({"name_es": None}, "name_es"),
        ({"stages": "a"}, "stages"),
        ({"stages": 3}, "stages"),
        ({"stages": ["a"]}, "stages[0]"),
        ({"transitions": "ab"}, "transitions"),
        ({"transitions": [("a",)]}, "transitions[0]"),
        ({"transitions": [("a", "b"), ("a", 1)]}, "transitions[1]"),
        ({"transitions": ["ab"]}, "transitions[0]"),
    ],
)
def test_pipeline_rejects_malformed_input_naming_the_field(
    values: dict[str, Any], field: str
) -> None:
    """Each malformed argument raises ValidationError naming that argument."""
    arguments: dict[str, Any] = {
        "key": "p",
        "name": "P",
        "name_es": "P",
        "stages": [_stage("a")],
        "transitions": [],
        **values,
    }
    with pytest.raises(ValidationError) as info:
        Pipeline(**arguments)
    assert field == info.value.field


def test_evolve_rechecks_the_pipeline() -> None:
    """evolve() returns a checked copy and refuses a change that breaks a rule."""
    pipeline = _pipeline()
    renamed = pipeline.evolve(name="Renamed")
    with pytest.raises(ValidationError) as info:
        pipeline.evolve(transitions=[*pipeline.transitions, ("won", "a")])
    assert ("Renamed", "final") == (renamed.name, info.value.code)


# ---------------------------------------------------------- check_pipeline


def test_check_pipeline_returns_a_valid_pipeline_unchanged() -> None:
    """A valid definition passes and comes back as it was."""
    pipeline = _pipeline()
    assert pipeline is check_pipeline(pipeline)


def test_check_pipeline_accepts_several_won_and_lost_stages() -> None:
    """Several closures of each kind are fine when each is reachable."""
    stages = [
        _stage("a"),
        _stage("won", WON),
        _stage("won-partly", WON),
        _stage("lost", LOST),
        _stage("rejected", LOST),
    ]
    transitions = [("a", "won"), ("a", "won-partly"), ("a", "lost"), ("a", "rejected")]
    pipeline = _pipeline(stages, transitions)
    assert pipeline is check_pipeline(pipeline)


def test_check_pipeline_counts_hold_stages_as_reachable() -> None:
    """An on-hold stage needs no transition: hold() enters it from any open stage."""
    pipeline = _pipeline()
    assert "hold" not in {t for _, t in pipeline.transitions}
    assert pipeline is check_pipeline(pipeline)


_A_B = [_stage("a"), _stage("b"), _stage("won", WON), _stage("lost", LOST)]
_FORWARD = [("a", "b"), ("b", "won"), ("a", "lost")]


@pytest.mark.parametrize(
    ("stages", "transitions", "field", "code"),
    [
        pytest.param(
            [_stage("a"), _stage("a"), _stage("won", WON), _stage("lost", LOST)],
            [("a", "won"), ("a", "lost")],
            "stages",
            "stage",
            id="duplicate-key",
        ),
        pytest.param(
            [_stage("hold", HOLD), _stage("won", WON), _stage("lost", LOST)],
            [],
            "stages",
            "stage",
            id="no-open-stage",
        ),
        pytest.param(
            [_stage("a"), _stage("lost", LOST)],
            [("a", "lost")],
            "stages",
            "stage",
            id="no-won-stage",
        ),
        pytest.param(
            [_stage("a"), _stage("won", WON)],
            [("a", "won")],
            "stages",
            "stage",
            id="no-lost-stage",
        ),
        pytest.param(
            _A_B, [*_FORWARD, ("a", "nowhere")], "transitions", "stage", id="unknown-target"
        ),
        pytest.param(
            _A_B, [*_FORWARD, ("ghost", "a")], "transitions", "stage", id="unknown-source"
        ),
        pytest.param(_A_B, [*_FORWARD, ("won", "a")], "transitions", "final", id="won-exit"),
        pytest.param(_A_B, [*_FORWARD, ("lost", "b")], "transitions", "final", id="lost-exit"),
        pytest.param(
            [*_A_B, _stage("hold", HOLD)],
            [*_FORWARD, ("a", "hold")],
            "transitions",
            "on_hold",
            id="transition-into-hold",
        ),
        pytest.param(
            [*_A_B, _stage("hold", HOLD)],
            [*_FORWARD, ("hold", "b")],
            "transitions",
            "on_hold",
            id="transition-out-of-hold",
        ),
        pytest.param(
            [_stage("a"), _stage("won", WON, probability="0.9"), _stage("lost", LOST)],
            [("a", "won"), ("a", "lost")],
            "stages",
            "stage",
            id="won-probability-not-1",
        ),
        pytest.param(
            [_stage("a"), _stage("won", WON), _stage("lost", LOST, probability="0.1")],
            [("a", "won"), ("a", "lost")],
            "stages",
            "stage",
            id="lost-probability-not-0",
        ),
        pytest.param(
            _A_B,
            [("a", "won"), ("a", "lost"), ("b", "won")],
            "stages",
            "unreachable",
            id="unreachable-open-stage",
        ),
        pytest.param(
            _A_B,
            [("a", "b"), ("b", "won"), ("b", "a")],
            "stages",
            "unreachable",
            id="unreachable-lost-stage",
        ),
        pytest.param(
            [*_A_B, _stage("c")],
            [*_FORWARD, ("a", "c")],
            "stages",
            "dead_end",
            id="dead-end",
        ),
        pytest.param(
            [*_A_B, _stage("c"), _stage("d")],
            [*_FORWARD, ("a", "c"), ("c", "d"), ("d", "c")],
            "stages",
            "dead_end",
            id="dead-end-cycle",
        ),
    ],
)
def test_check_pipeline_rejects_each_broken_rule_with_its_code(
    stages: list[Stage], transitions: list[tuple[str, str]], field: str, code: str
) -> None:
    """Every rule broken alone raises ValidationError with that rule's field and code."""
    with pytest.raises(ValidationError) as info:
        check_pipeline(_pipeline(stages, transitions))
    assert (field, code) == (info.value.field, info.value.code)


def test_check_pipeline_accepts_loops_between_open_stages() -> None:
    """Going back and forth between open stages is fine while a closure stays reachable."""
    pipeline = _pipeline(_A_B, [("a", "b"), ("b", "a"), ("a", "won"), ("a", "lost")])
    assert pipeline is check_pipeline(pipeline)


def test_check_pipeline_rejects_a_move_from_a_stage_to_itself() -> None:
    """("a", "a") is no move at all: refused with code stage."""
    pairs = [("a", "a"), ("a", "b"), ("b", "won"), ("a", "lost"), ("b", "lost")]
    with pytest.raises(ValidationError) as info:
        check_pipeline(_pipeline(transitions=pairs))
    assert ("transitions", "stage") == (info.value.field, info.value.code)
