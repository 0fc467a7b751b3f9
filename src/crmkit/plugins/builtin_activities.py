"""Built-in plugin: the default interaction kinds and case types.

Calls, e-mails, meetings, visits, documents sent, presentations and notes;
claims, incidents and service requests with their SLA targets.  Written on
the public hooks like any plugin.

.. versionadded:: 0.1
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from crmkit.core.cases import BUILTIN_CASE_TYPES, CaseType
from crmkit.core.interactions import BUILTIN_INTERACTION_KINDS, InteractionKind
from crmkit.plugins import hookimpl

if TYPE_CHECKING:
    from crmkit.app import CRM


@hookimpl
def crmkit_register_interaction_kinds(crm: CRM) -> list[InteractionKind]:
    """Call, e-mail, meeting, visit, document, presentation, note."""
    return list(BUILTIN_INTERACTION_KINDS)


@hookimpl
def crmkit_register_case_types(crm: CRM) -> list[CaseType]:
    """Claim, incident, service request."""
    return list(BUILTIN_CASE_TYPES)
