"""The built-in pipelines plugin: sales, gestión comercial and expediente."""

from __future__ import annotations

from typing import Final

import pytest

import crmkit
from crmkit.core.fields import KEY_RE
from crmkit.core.pipelines import OPPORTUNITY_FIELDS_REQUIRABLE, Pipeline, StageKind, check_pipeline
from crmkit.plugins import builtin_pipelines
from crmkit.plugins.builtin_pipelines import PIPELINES
from crmkit.plugins.host import BUILTIN_PLUGINS, PluginHost

#: The design's pipelines: stage keys in order, with their kinds.
DESIGN: Final = {
    "sales": [
        ("lead", StageKind.OPEN),
        ("qualified", StageKind.OPEN),
        ("proposal", StageKind.OPEN),
        ("negotiation", StageKind.OPEN),
        ("won", StageKind.WON),
        ("lost", StageKind.LOST),
        ("on-hold", StageKind.ON_HOLD),
    ],
    "gestion-comercial": [
        ("generar-interes", StageKind.OPEN),
        ("presentar-productos", StageKind.OPEN),
        ("dimensionar-propuesta", StageKind.OPEN),
        ("negociar-propuesta", StageKind.OPEN),
        ("generar-pedido-de-venta", StageKind.WON),
        ("standby", StageKind.ON_HOLD),
        ("cliente-rechaza", StageKind.LOST),
        ("cliente-no-califica", StageKind.LOST),
    ],
    "expediente": [
        ("identificando-necesidades", StageKind.OPEN),
        ("presentacion", StageKind.OPEN),
        ("decision", StageKind.OPEN),
        ("decision-aplazada", StageKind.ON_HOLD),
        ("cerrado-positivo", StageKind.WON),
        ("cerrado-negativo", StageKind.LOST),
    ],
}

_IDS: Final = [p.key for p in PIPELINES]


def test_the_plugin_is_builtin() -> None:
    """Every CRM registers the default pipelines unless builtins are turned off."""
    assert "crmkit.plugins.builtin_pipelines" in BUILTIN_PLUGINS


def test_the_hook_registers_the_three_design_pipelines(crm: crmkit.CRM) -> None:
    """The hook returns sales, gestion-comercial and expediente, in that order."""
    pipelines = builtin_pipelines.crmkit_register_pipelines(crm=crm)
    assert list(DESIGN) == [p.key for p in pipelines]


def test_the_host_accepts_the_builtin_pipelines(crm: crmkit.CRM) -> None:
    """Registration through the plugin host checks and keeps every built-in pipeline."""
    assert list(PIPELINES) == PluginHost().register_pipelines(crm)


@pytest.mark.parametrize("pipeline", PIPELINES, ids=_IDS)
def test_every_builtin_pipeline_passes_check_pipeline(pipeline: Pipeline) -> None:
    """Each stage reachable, finals closed, no dead end, won/lost probabilities right."""
    assert pipeline is check_pipeline(pipeline)


@pytest.mark.parametrize("pipeline", PIPELINES, ids=_IDS)
def test_stage_keys_and_kinds_are_the_designs(pipeline: Pipeline) -> None:
    """Keys are the design's accent-free slugs, in order, with their kinds."""
    assert DESIGN[pipeline.key] == [(s.key, s.kind) for s in pipeline.stages]
    assert all(KEY_RE.fullmatch(s.key) and s.key.isascii() for s in pipeline.stages)


@pytest.mark.parametrize("pipeline", PIPELINES, ids=_IDS)
def test_every_stage_has_english_and_spanish_labels(pipeline: Pipeline) -> None:
    """Labels exist in both languages, and at least one stage really is translated."""
    assert all(s.label.strip() and s.label_es.strip() for s in pipeline.stages)
    assert any(s.label != s.label_es for s in pipeline.stages)
    assert all((pipeline.name.strip(), pipeline.name_es.strip()))
    assert pipeline.name != pipeline.name_es


def test_spanish_labels_carry_their_accents() -> None:
    """Keys drop accents; the Spanish labels keep them."""
    labels = {s.key: s.label_es for p in PIPELINES for s in p.stages}
    assert ("Generar interés", "Presentación", "Decisión aplazada", "Negociación") == (
        labels["generar-interes"],
        labels["presentacion"],
        labels["decision-aplazada"],
        labels["negotiation"],
    )


@pytest.mark.parametrize("pipeline", PIPELINES, ids=_IDS)
def test_every_open_stage_can_be_lost_and_finals_have_no_exit(pipeline: Pipeline) -> None:
    """Any open stage may move to every lost stage; won and lost stages lead nowhere."""
    lost = [s.key for s in pipeline.of_kind(StageKind.LOST)]
    opens = [s.key for s in pipeline.of_kind(StageKind.OPEN)]
    assert all(pipeline.allows(s, t) for s in opens for t in lost)
    finals = {s.key for s in pipeline.stages if s.is_final}
    assert not {source for source, _ in pipeline.transitions} & finals


@pytest.mark.parametrize("pipeline", PIPELINES, ids=_IDS)
def test_open_probabilities_rise_along_the_pipeline(pipeline: Pipeline) -> None:
    """Default probabilities grow stage by stage and stay below certainty."""
    probabilities = [s.probability for s in pipeline.of_kind(StageKind.OPEN)]
    assert sorted(set(probabilities)) == probabilities
    assert all(0 < p < 1 for p in probabilities)


@pytest.mark.parametrize(
    ("pipeline", "stage", "requires"),
    [
        ("sales", "proposal", {"amount"}),
        ("sales", "won", {"amount", "expected_close"}),
        ("sales", "lost", {"close_reason_id"}),
        ("gestion-comercial", "dimensionar-propuesta", {"amount"}),
        ("gestion-comercial", "generar-pedido-de-venta", {"amount", "expected_close"}),
        ("gestion-comercial", "cliente-rechaza", {"close_reason_id"}),
        ("expediente", "cerrado-negativo", {"close_reason_id"}),
    ],
)
def test_stage_requirements_are_the_designs(pipeline: str, stage: str, requires: set[str]) -> None:
    """A proposal needs an amount; a win, amount and close date; a loss, its reason."""
    found = {p.key: p for p in PIPELINES}[pipeline].stage(stage).requires
    assert (frozenset(requires), True) == (found, found <= OPPORTUNITY_FIELDS_REQUIRABLE)
