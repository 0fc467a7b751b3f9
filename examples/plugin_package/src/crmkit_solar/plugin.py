"""The hooks of crmkit-solar (entry point ``solar`` in the ``crmkit`` group).

A module is a plugin: crmkit registers it and calls the functions below by
name.  Each takes only the arguments it uses (here none), so a hook gaining
arguments in a later crmkit keeps them working.
"""

from __future__ import annotations

# --8<-- [start:pipeline]
from decimal import Decimal

from crmkit import CustomField, InteractionKind, Pipeline, Stage, StageKind, hookimpl

#: The key of the pipeline this plugin registers.
PIPELINE = "solar-install"


@hookimpl
def crmkit_register_pipelines() -> list[Pipeline]:
    """From the technician's visit to a working installation."""
    stages = (
        Stage(
            key="survey", label="Site survey", label_es="Visita técnica", probability=Decimal("0.2")
        ),
        Stage(
            key="design",
            label="System design",
            label_es="Diseño de la instalación",
            probability=Decimal("0.4"),
        ),
        Stage(
            key="proposal",
            label="Proposal sent",
            label_es="Propuesta enviada",
            probability=Decimal("0.6"),
            requires={"amount"},
        ),
        Stage(
            key="permit",
            label="Waiting for the permit",
            label_es="Pendiente de licencia",
            kind=StageKind.ON_HOLD,
            probability=Decimal("0.5"),
        ),
        Stage(
            key="installed",
            label="Installed",
            label_es="Instalada",
            kind=StageKind.WON,
            probability=Decimal(1),
            requires={"amount"},
        ),
        Stage(key="dropped", label="Not going ahead", label_es="Descartada", kind=StageKind.LOST),
    )
    moves = {
        ("survey", "design"),
        ("design", "proposal"),
        ("proposal", "design"),  # the customer asks for a smaller system
        ("proposal", "installed"),
        ("survey", "dropped"),
        ("design", "dropped"),
        ("proposal", "dropped"),
    }
    return [
        Pipeline(
            key=PIPELINE,
            name="Solar installation",
            name_es="Instalación solar",
            stages=stages,
            transitions=moves,
        )
    ]


# --8<-- [end:pipeline]


# --8<-- [start:fields]
@hookimpl
def crmkit_register_custom_fields() -> list[CustomField]:
    """The size of the system an opportunity sells, in kWp."""
    return [
        CustomField(
            entity="opportunity",
            key="system_kwp",
            label="System size (kWp)",
            label_es="Potencia (kWp)",
            type="decimal",
            min_value=Decimal("0.5"),
            max_value=Decimal(1000),
        )
    ]


@hookimpl
def crmkit_register_interaction_kinds() -> list[InteractionKind]:
    """The technician's visit to measure the roof."""
    return [InteractionKind(key="site-survey", name="Site survey", name_es="Visita técnica")]


# --8<-- [end:fields]
