"""The automation API's types, as a type checker sees them (mypy checks ``assert_type``)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import assert_type

import crmkit
from crmkit import (
    Action,
    AutomationError,
    AutomationReport,
    Rule,
    RuleFiring,
    RuleId,
    Trigger,
)


def test_rules_and_reports_have_their_types() -> None:
    """create returns a Rule with a RuleId; run_due an AutomationReport of firings and errors."""
    with crmkit.open(":memory:") as crm:
        rule = crm.automation.create(
            name="Tick", trigger=Trigger.schedule(timedelta(hours=1)), actions=[Action.notify()]
        )
        assert_type(rule, Rule)
        assert_type(rule.id, RuleId)
        assert_type(crm.automation.get(rule.id), Rule)
        report = crm.automation.run_due(datetime(2026, 1, 1, tzinfo=UTC))
        assert_type(report, AutomationReport)
        assert_type(report.fired, tuple[RuleFiring, ...])
        assert_type(report.failed, tuple[AutomationError, ...])
        assert_type(crm.automation.firings(rule), list[RuleFiring])
