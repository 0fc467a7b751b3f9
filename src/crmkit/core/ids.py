"""Distinct identifier types over time-ordered UUIDs.

Each entity has its own :func:`~typing.NewType` over :class:`uuid.UUID`, so
``mypy`` rejects a ``ContactId`` where an ``OrganizationId`` belongs, at no
runtime cost.  New ids are UUIDv7 (RFC 9562): they sort by creation time,
which keeps B-tree inserts local in SQLite and PostgreSQL.

.. versionadded:: 0.1
"""

from __future__ import annotations

import os
import threading
import time
from typing import NewType
from uuid import UUID

__all__ = [
    "CampaignEmailId",
    "CampaignId",
    "CaseId",
    "ContactId",
    "EmailTemplateId",
    "InteractionId",
    "LeadId",
    "LossReasonId",
    "MarketId",
    "OpportunityId",
    "OrganizationId",
    "OutcomeId",
    "PositionId",
    "ProductId",
    "RuleFiringId",
    "RuleId",
    "SalesTargetId",
    "SegmentId",
    "SourceId",
    "TeamId",
    "UserId",
    "ZoneId",
    "uuid7",
]

OrganizationId = NewType("OrganizationId", UUID)
ContactId = NewType("ContactId", UUID)
SourceId = NewType("SourceId", UUID)
MarketId = NewType("MarketId", UUID)
PositionId = NewType("PositionId", UUID)
ZoneId = NewType("ZoneId", UUID)
UserId = NewType("UserId", UUID)
OpportunityId = NewType("OpportunityId", UUID)
ProductId = NewType("ProductId", UUID)
LossReasonId = NewType("LossReasonId", UUID)
CampaignId = NewType("CampaignId", UUID)
InteractionId = NewType("InteractionId", UUID)
OutcomeId = NewType("OutcomeId", UUID)
LeadId = NewType("LeadId", UUID)
CaseId = NewType("CaseId", UUID)
SegmentId = NewType("SegmentId", UUID)
TeamId = NewType("TeamId", UUID)
SalesTargetId = NewType("SalesTargetId", UUID)
RuleId = NewType("RuleId", UUID)
RuleFiringId = NewType("RuleFiringId", UUID)
CampaignEmailId = NewType("CampaignEmailId", UUID)
EmailTemplateId = NewType("EmailTemplateId", UUID)

_lock = threading.Lock()
_last = [0, 0]  # [unix milliseconds, 12-bit counter] of the previous id


def uuid7() -> UUID:
    """Return a new UUIDv7, strictly increasing within this process.

    The 48-bit millisecond timestamp comes first; the 12 ``rand_a`` bits are a
    counter seeded randomly each millisecond, so ids made in the same
    millisecond still sort in creation order.
    """
    with _lock:
        ms = time.time_ns() // 1_000_000
        if ms > _last[0]:
            counter = int.from_bytes(os.urandom(2), "big") & 0x7FF  # leave room to count up
        else:
            ms = _last[0]
            counter = _last[1] + 1
            if counter > 0xFFF:  # 4096 ids in one millisecond: borrow the next one
                ms += 1
                counter = 0
        _last[0], _last[1] = ms, counter
    rand_b = int.from_bytes(os.urandom(8), "big") & ((1 << 62) - 1)
    value = (ms << 80) | (0x7 << 76) | (counter << 64) | (0b10 << 62) | rand_b
    return UUID(int=value)
