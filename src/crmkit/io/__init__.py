"""Data in and out: files (CSV, JSON Lines, XLSX, plugins' formats), vCard, iCalendar, e-mail.

``crm.imports`` reads files into records through the services' own
validation; ``crm.exports`` writes the records a ``find`` returns.  Formats
are plugins (``crmkit_register_formats``); crmkit's own are in
:mod:`crmkit.io.formats`.

.. versionadded:: 0.1
"""

from __future__ import annotations

from crmkit.io.calendars import CalendarService
from crmkit.io.cards import CardService
from crmkit.io.exports import Exporter, ExportService
from crmkit.io.imports import ImportService
from crmkit.io.inbox import Attachment, Direction, InboxService, Ingested
from crmkit.io.report import ImportMode, ImportReport, RowError

__all__ = [
    "Attachment",
    "CalendarService",
    "CardService",
    "Direction",
    "ExportService",
    "Exporter",
    "ImportMode",
    "ImportReport",
    "ImportService",
    "InboxService",
    "Ingested",
    "RowError",
]
