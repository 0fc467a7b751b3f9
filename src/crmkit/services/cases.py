"""Post-sale cases (expedientes postventa): opening, the status flow, SLA.

.. versionadded:: 0.1
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from crmkit.core.cases import Case, CaseType
from crmkit.core.ids import CaseId
from crmkit.services.base import _Service
from crmkit.services.registry import Registry

if TYPE_CHECKING:
    from crmkit.app import CRM

__all__ = ["CaseService"]


class CaseService(_Service[Case, CaseId]):
    """Post-sale cases: claims, incidents, service requests (expedientes).

    Attributes:
        types: the registered :class:`~crmkit.CaseType` (by key).
    """

    _cls = Case

    def __init__(self, crm: CRM):
        super().__init__(crm)
        self.types: Registry[CaseType] = Registry(CaseType, "case type", "case_type")
