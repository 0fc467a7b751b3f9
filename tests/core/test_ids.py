"""Identifiers: time-ordered UUIDv7 and one NewType per entity."""

from __future__ import annotations

import itertools
import os
import threading
import time
from collections.abc import Callable
from uuid import UUID

import pytest

from crmkit.core import ids
from crmkit.core.ids import (
    CampaignEmailId,
    CampaignId,
    CaseId,
    ContactId,
    EmailTemplateId,
    InteractionId,
    LeadId,
    LossReasonId,
    MarketId,
    OpportunityId,
    OrganizationId,
    OutcomeId,
    PositionId,
    ProductId,
    RuleFiringId,
    RuleId,
    SalesTargetId,
    SegmentId,
    SourceId,
    TeamId,
    UserId,
    ZoneId,
    uuid7,
)

_ID_TYPES = (
    OrganizationId,
    ContactId,
    SourceId,
    MarketId,
    PositionId,
    ZoneId,
    UserId,
    OpportunityId,
    ProductId,
    LossReasonId,
    CampaignId,
    InteractionId,
    OutcomeId,
    LeadId,
    CaseId,
    SegmentId,
    RuleId,
    RuleFiringId,
    TeamId,
    SalesTargetId,
    EmailTemplateId,
    CampaignEmailId,
)


def test_uuid7_has_version_7_and_the_rfc_variant() -> None:
    """Every id is a version 7 UUID of the RFC 9562 variant."""
    for _ in range(1000):
        value = uuid7()
        assert 7 == value.version
        assert "specified in RFC 4122" == value.variant


def test_uuid7_strictly_increases_over_10000_calls() -> None:
    """Ids made one after another sort in creation order, even within one millisecond."""
    made = [uuid7() for _ in range(10_000)]
    assert all(a < b for a, b in itertools.pairwise(made))
    assert 10_000 == len(set(made))


def test_uuid7_starts_with_the_current_unix_milliseconds() -> None:
    """The first 48 bits are the creation time in milliseconds."""
    before = time.time_ns() // 1_000_000
    value = uuid7()
    after = time.time_ns() // 1_000_000
    assert before <= value.int >> 80 <= after + 1


def test_uuid7_is_unique_across_threads() -> None:
    """Four threads making ids at once never collide."""
    made: list[list[UUID]] = [[] for _ in range(4)]

    def work(bucket: list[UUID]) -> None:
        bucket.extend(uuid7() for _ in range(2000))

    threads = [threading.Thread(target=work, args=(bucket,)) for bucket in made]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert 8000 == len({value for bucket in made for value in bucket})
    assert all(bucket == sorted(bucket) for bucket in made)


def test_uuid7_equals_the_uuid_of_its_text() -> None:
    """Ids built without UUID's checks are ordinary UUIDs: equal, hashed and ordered alike."""
    made = [uuid7() for _ in range(100)]
    again = [UUID(str(value)) for value in made]

    assert again == made
    assert [hash(v) for v in again] == [hash(v) for v in made]
    assert all(7 == value.version and "specified in RFC 4122" == value.variant for value in made)


def test_uuid7_random_bits_are_not_shared_with_a_forked_child() -> None:
    """A child process does not reuse the random bytes its parent read ahead."""
    if not hasattr(os, "fork"):
        pytest.skip("no fork on this platform")
    uuid7()  # the parent has read random bytes ahead
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its next id's random bits, then exit at once
        os.write(write, str(uuid7().int & ((1 << 62) - 1)).encode())
        os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    with os.fdopen(read) as pipe:
        childs = int(pipe.read())

    assert uuid7().int & ((1 << 62) - 1) != childs


@pytest.mark.parametrize("id_type", _ID_TYPES, ids=lambda t: t.__name__)
def test_id_types_are_plain_uuids_at_runtime(id_type: Callable[[UUID], UUID]) -> None:
    """A NewType costs nothing: the value is the UUID itself."""
    value = uuid7()
    typed = id_type(value)
    assert value is typed
    assert isinstance(typed, UUID)


def test_id_types_are_distinct() -> None:
    """Each entity has its own id type (mypy keeps them apart)."""
    names = {t.__name__ for t in _ID_TYPES}
    assert len(_ID_TYPES) == len(names)
    assert all(getattr(t, "__supertype__", None) is UUID for t in _ID_TYPES)
    assert set(ids.__all__) == names | {"uuid7"}
