"""Shared fixtures: a fixed clock and CRMs on every backend that is available."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, settings

import crmkit

settings.register_profile(
    "default", deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile("default")


class FixedClock:
    """A clock tests move by hand; starts at 2026-01-05 09:00 UTC."""

    def __init__(self, start: datetime = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)):
        self.current = start

    def __call__(self) -> datetime:
        return self.current

    def advance(self, **delta: float) -> datetime:
        self.current += timedelta(**delta)
        return self.current


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock()


@pytest.fixture
def crm(clock: FixedClock) -> Iterator[crmkit.CRM]:
    """A CRM on a fresh MemoryStore with the fixed clock and Spain as phone region."""
    with crmkit.open(":memory:", clock=clock, default_region="ES") as crm:
        yield crm
