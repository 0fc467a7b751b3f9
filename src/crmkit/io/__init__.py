"""Data in and out: import and export of files (CSV, JSON Lines, XLSX, plugins' formats).

``crm.imports`` reads files into records through the services' own
validation; ``crm.exports`` writes the records a ``find`` returns.  Formats
are plugins (``crmkit_register_formats``); crmkit's own are in
:mod:`crmkit.io.formats`.

.. versionadded:: 0.1
"""

from __future__ import annotations

from crmkit.io.exports import Exporter, ExportService
from crmkit.io.imports import ImportService
from crmkit.io.report import ImportMode, ImportReport, RowError

__all__ = [
    "ExportService",
    "Exporter",
    "ImportMode",
    "ImportReport",
    "ImportService",
    "RowError",
]
