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
from uuid import UUID, SafeUUID

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

#: random bytes read from ``os.urandom`` at once, 10 per id (one system call per 409 ids)
_POOL_BYTES = 4096


class _Pool:
    """Random bytes read ahead, and the position of the next unused one."""

    __slots__ = ("at", "data")

    def __init__(self) -> None:
        self.data = b""
        self.at = 0


_pool = _Pool()


def _forget_pool() -> None:
    """Drop the random bytes a forked child inherited: they are its parent's."""
    _pool.data, _pool.at = b"", 0


if hasattr(os, "register_at_fork"):  # not on Windows, which does not fork
    os.register_at_fork(after_in_child=_forget_pool)

_UNKNOWN_SAFETY = SafeUUID.unknown
_new = object.__new__
_set = object.__setattr__


def uuid7() -> UUID:
    """Return a new UUIDv7, strictly increasing within this process.

    The 48-bit millisecond timestamp comes first; the 12 ``rand_a`` bits are a
    counter seeded randomly each millisecond, so ids made in the same
    millisecond still sort in creation order.  The random bits come from
    ``os.urandom``, read a few kilobytes at a time (a forked child reads its own).
    """
    with _lock:
        ms = time.time_ns() // 1_000_000
        data, at = _pool.data, _pool.at
        if at + 10 > len(data):
            data, at = os.urandom(_POOL_BYTES), 0
            _pool.data = data
        _pool.at = at + 10
        random = int.from_bytes(data[at : at + 10], "big")
        if ms > _last[0]:
            counter = (random >> 64) & 0x7FF  # leave room to count up
        else:
            ms = _last[0]
            counter = _last[1] + 1
            if counter > 0xFFF:  # 4096 ids in one millisecond: borrow the next one
                ms += 1
                counter = 0
        _last[0], _last[1] = ms, counter
    rand_b = random & ((1 << 62) - 1)
    value = (ms << 80) | (0x7 << 76) | (counter << 64) | (0b10 << 62) | rand_b
    id = _new(UUID)  # UUID(int=value) without its argument checks (value fits in 128 bits)
    _set(id, "int", value)
    _set(id, "is_safe", _UNKNOWN_SAFETY)
    return id
