"""The types of a scoped CRM's reads, as a type checker sees them."""

from __future__ import annotations

from pathlib import Path
from typing import assert_type

import crmkit
from crmkit.core.analytics import PipelineReport, WinRate
from crmkit.core.duplicates import Matching
from crmkit.core.ids import OrganizationId
from crmkit.core.targets import SalesTarget
from crmkit.services.timeline import TimelineEntry


def test_scoped_read_types(crm: crmkit.CRM, tmp_path: Path) -> None:
    """A scope's reads return what the system's do."""
    ana = crm.users.create(name="Ana", role="contributor")
    acme = crm.organizations.create(name="Acme", owner=ana.id)
    scoped = crm.as_user(ana)

    assert_type(scoped.analytics.pipeline(currency="EUR"), PipelineReport)
    assert_type(scoped.analytics.win_rate(currency="EUR"), WinRate)
    assert_type(scoped.targets.find(), list[SalesTarget])
    assert_type(scoped.exports.csv(tmp_path / "o.csv", entity="organizations"), int)
    assert_type(scoped.timeline(acme.id), list[TimelineEntry])
    assert_type(scoped.duplicates.find("organization"), Matching)
    assert_type(scoped.segments.preview(crmkit.Eq("name", "Acme")), list[OrganizationId])
    assert scoped.segments.preview(crmkit.Eq("name", "Acme")) == [acme.id]
