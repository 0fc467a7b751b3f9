"""Built-in plugin: the three default pipelines, in English and Spanish.

* ``sales``: lead -> qualified -> proposal -> negotiation -> won | lost, with
  an ``on-hold`` stage.
* ``gestion-comercial`` (the commercial process of the Spanish-language CRM
  guides): generar interés -> presentar productos -> dimensionar propuesta ->
  negociar propuesta -> generar pedido de venta (won); closures standby (on
  hold), cliente rechaza and cliente no califica (lost).
* ``expediente`` (a case file): identificando necesidades -> presentación ->
  decisión -> cerrado positivo (won) | cerrado negativo (lost), with decisión
  aplazada (on hold).

Every pipeline moves forward one stage at a time, may step back one stage,
and may be lost from any open stage.  A stage with an amount to show
(proposal, negotiation) requires ``amount``; winning requires ``amount`` and
``expected_close`` where a sales order follows; losing requires the close
reason, which :func:`crmkit.core.transitions.lose` always sets.  Keys are
slugs without accents; labels carry them.  Written on the public hook like any
plugin.

.. versionadded:: 0.1
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from itertools import pairwise
from typing import TYPE_CHECKING, Final

from crmkit.core.pipelines import Pipeline, Stage, StageKind
from crmkit.plugins import hookimpl

if TYPE_CHECKING:
    from crmkit.app import CRM

__all__ = ["EXPEDIENTE", "GESTION_COMERCIAL", "PIPELINES", "SALES", "crmkit_register_pipelines"]

_AMOUNT: Final = frozenset({"amount"})
_WIN: Final = frozenset({"amount", "expected_close"})
_LOSS: Final = frozenset({"close_reason_id"})


def _stage(
    key: str,
    label: str,
    label_es: str,
    probability: str,
    kind: StageKind = StageKind.OPEN,
    requires: frozenset[str] = frozenset(),
) -> Stage:
    return Stage(
        key=key,
        label=label,
        label_es=label_es,
        kind=kind,
        probability=Decimal(probability),
        requires=requires,
    )


def _transitions(
    chain: Sequence[str], won: Sequence[tuple[str, str]], lost: Sequence[str]
) -> frozenset[tuple[str, str]]:
    """Forward and one-step-back moves along ``chain``, the wins, every open stage to ``lost``."""
    pairs = set(won)
    for earlier, later in pairwise(chain):
        pairs |= {(earlier, later), (later, earlier)}
    pairs |= {(stage, closure) for stage in chain for closure in lost}
    return frozenset(pairs)


#: Sales: the pipeline most CRMs start with.
SALES: Final = Pipeline(
    key="sales",
    name="Sales",
    name_es="Ventas",
    stages=(
        _stage("lead", "Lead", "Prospecto", "0.1"),
        _stage("qualified", "Qualified", "Cualificado", "0.25"),
        _stage("proposal", "Proposal", "Propuesta", "0.5", requires=_AMOUNT),
        _stage("negotiation", "Negotiation", "Negociación", "0.75", requires=_AMOUNT),
        _stage("won", "Won", "Ganada", "1", StageKind.WON, _WIN),
        _stage("lost", "Lost", "Perdida", "0", StageKind.LOST, _LOSS),
        _stage("on-hold", "On hold", "En espera", "0.1", StageKind.ON_HOLD),
    ),
    transitions=_transitions(
        ("lead", "qualified", "proposal", "negotiation"),
        won=(("negotiation", "won"), ("proposal", "won")),
        lost=("lost",),
    ),
)

#: Gestión comercial: the commercial process of the Spanish-language CRM guides.
GESTION_COMERCIAL: Final = Pipeline(
    key="gestion-comercial",
    name="Commercial management",
    name_es="Gestión comercial",
    stages=(
        _stage("generar-interes", "Generate interest", "Generar interés", "0.1"),
        _stage("presentar-productos", "Present products", "Presentar productos", "0.2"),
        _stage(
            "dimensionar-propuesta",
            "Size the proposal",
            "Dimensionar propuesta",
            "0.4",
            requires=_AMOUNT,
        ),
        _stage(
            "negociar-propuesta",
            "Negotiate the proposal",
            "Negociar propuesta",
            "0.7",
            requires=_AMOUNT,
        ),
        _stage(
            "generar-pedido-de-venta",
            "Sales order",
            "Generar pedido de venta",
            "1",
            StageKind.WON,
            _WIN,
        ),
        _stage("standby", "On standby", "En standby", "0.1", StageKind.ON_HOLD),
        _stage(
            "cliente-rechaza", "Customer rejects", "Cliente rechaza", "0", StageKind.LOST, _LOSS
        ),
        _stage(
            "cliente-no-califica",
            "Customer does not qualify",
            "Cliente no califica",
            "0",
            StageKind.LOST,
            _LOSS,
        ),
    ),
    transitions=_transitions(
        ("generar-interes", "presentar-productos", "dimensionar-propuesta", "negociar-propuesta"),
        won=(("negociar-propuesta", "generar-pedido-de-venta"),),
        lost=("cliente-rechaza", "cliente-no-califica"),
    ),
)

#: Expediente: a case file that ends in a positive or negative decision.
EXPEDIENTE: Final = Pipeline(
    key="expediente",
    name="Case file",
    name_es="Expediente",
    stages=(
        _stage(
            "identificando-necesidades", "Identifying needs", "Identificando necesidades", "0.1"
        ),
        _stage("presentacion", "Presentation", "Presentación", "0.3"),
        _stage("decision", "Decision", "Decisión", "0.6"),
        _stage(
            "decision-aplazada", "Decision postponed", "Decisión aplazada", "0.2", StageKind.ON_HOLD
        ),
        _stage("cerrado-positivo", "Closed, positive", "Cerrado positivo", "1", StageKind.WON),
        _stage(
            "cerrado-negativo", "Closed, negative", "Cerrado negativo", "0", StageKind.LOST, _LOSS
        ),
    ),
    transitions=_transitions(
        ("identificando-necesidades", "presentacion", "decision"),
        won=(("decision", "cerrado-positivo"),),
        lost=("cerrado-negativo",),
    ),
)

#: The default pipelines, in the order they are registered.
PIPELINES: Final[tuple[Pipeline, ...]] = (SALES, GESTION_COMERCIAL, EXPEDIENTE)


@hookimpl
def crmkit_register_pipelines(crm: CRM) -> list[Pipeline]:
    """The default pipelines: sales, gestión comercial and expediente."""
    return list(PIPELINES)
