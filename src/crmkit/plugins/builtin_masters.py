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


@hookimpl
def crmkit_register_masters(crm: CRM) -> list[MasterSeed]:
    """Default sources and positions."""
    seeds = [MasterSeed(kind="source", key=k, name=en, name_es=es) for k, en, es in SOURCES]
    seeds += [MasterSeed(kind="position", key=k, name=en, name_es=es) for k, en, es in POSITIONS]
    return seeds
