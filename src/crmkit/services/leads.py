"""Leads (prospectos): capture, qualification and conversion.

.. versionadded:: 0.1
"""

from __future__ import annotations

from crmkit.core.ids import LeadId
from crmkit.core.leads import Lead
from crmkit.services.base import _Service

__all__ = ["LeadService"]


class LeadService(_Service[Lead, LeadId]):
    """Leads (prospectos, clientes potenciales)."""

    _cls = Lead
