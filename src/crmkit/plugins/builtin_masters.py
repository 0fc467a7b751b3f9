"""Built-in plugin: the default master lists, in English and Spanish.

Sources of business (originación) and common positions (cargos) that the
Spanish-language CRM guides use.  Markets and zones are specific to each
business, so none are seeded.  Written on the public hook like any plugin.

.. versionadded:: 0.1
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from crmkit.core.entities import MasterSeed
from crmkit.plugins import hookimpl

if TYPE_CHECKING:
    from crmkit.app import CRM

#: (key, English, Spanish) of the default sources of business (originación).
SOURCES: Final = (
    ("web", "Website", "Sitio web"),
    ("referral", "Referral", "Referido"),
    ("trade-fair", "Trade fair", "Feria"),
    ("campaign", "Campaign", "Campaña"),
    ("inbound-call", "Inbound call", "Llamada entrante"),
    ("cold-call", "Cold call", "Llamada en frío"),
    ("prescriber", "Prescriber", "Prescriptor"),
    ("partner", "Partner", "Socio"),
)

#: (key, English, Spanish) of the default contact positions (cargos).
POSITIONS: Final = (
    ("ceo", "Chief executive", "Dirección general"),
    ("sales-director", "Sales director", "Dirección comercial"),
    ("purchasing", "Purchasing", "Compras"),
    ("finance", "Finance", "Administración y finanzas"),
    ("it", "IT manager", "Responsable de sistemas"),
    ("operations", "Operations", "Operaciones"),
    ("marketing", "Marketing", "Marketing"),
)


#: (key, English, Spanish) of the default reasons an opportunity is lost.
LOSS_REASONS: Final = (
    ("price", "Price", "Precio"),
    ("competitor", "Chose a competitor", "Eligió a la competencia"),
    ("no-budget", "No budget", "Sin presupuesto"),
    ("customer-rejects", "Customer rejects", "Cliente rechaza"),
    ("not-qualified", "Customer does not qualify", "Cliente no califica"),
    ("no-decision", "No decision", "Sin decisión"),
    ("other", "Other (explain in a note)", "Otro (explicar en una nota)"),
)

#: (key, English, Spanish) of the default interaction outcomes (resultados).
OUTCOMES: Final = (
    ("initial-interest", "Initial interest", "Interés inicial"),
    ("schedule-meeting", "Schedule a meeting", "Agendar reunión"),
    ("send-information", "Send information", "Enviar información"),
    ("send-proposal", "Send a proposal", "Enviar propuesta"),
    ("call-back", "Call back later", "Volver a llamar"),
    ("no-answer", "No answer", "Sin respuesta"),
    ("not-interested", "Not interested", "Sin interés"),
)


@hookimpl
def crmkit_register_masters(crm: CRM) -> list[MasterSeed]:
    """Default sources, positions, loss reasons and interaction outcomes."""
    seeds = [MasterSeed(kind="source", key=k, name=en, name_es=es) for k, en, es in SOURCES]
    seeds += [MasterSeed(kind="position", key=k, name=en, name_es=es) for k, en, es in POSITIONS]
    seeds += [
        MasterSeed(kind="loss_reason", key=k, name=en, name_es=es) for k, en, es in LOSS_REASONS
    ]
    seeds += [MasterSeed(kind="outcome", key=k, name=en, name_es=es) for k, en, es in OUTCOMES]
    return seeds
