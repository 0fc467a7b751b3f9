"""Tests of crmkit.io: imports, exports, formats, cells."""

from __future__ import annotations

from decimal import Decimal

from crmkit import CustomField

#: An organization's integer custom field, 0 to 100.
SCORE = CustomField(
    entity="organization",
    key="score",
    label="Score",
    type="integer",
    min_value=Decimal(0),
    max_value=Decimal(100),
)
