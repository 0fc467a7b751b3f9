"""placeholder"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from crmkit.app import CRM


class CalendarService:
    def __init__(self, crm: CRM):
        self._crm = crm
