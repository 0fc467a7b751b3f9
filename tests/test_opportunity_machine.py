"""Random stage moves through the facade, on the memory store and on SQLite.

A Hypothesis state machine opens opportunities in the built-in pipelines and
moves them at random (legal and illegal moves alike); after every step the
invariants of the issue hold for every opportunity, as stored.
"""

from __future__ import annotations

import shutil
import tempfile
from datetime import date, timedelta
from pathlib import Path
from typing import Any, ClassVar

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

import crmkit
from crmkit import InvalidTransition, Money, OpportunityId, StageKind, ValidationError
from crmkit.core.transitions import replay, stage_durations
from tests.conftest import FixedClock

PIPELINES = ["sales", "gestion-comercial", "expediente"]
MOVES = ["advance", "win", "lose", "hold", "resume", "reopen"]


class OpportunityMachine(RuleBasedStateMachine):
    """Drives one CRM; subclasses choose the store."""

    backend: ClassVar[str] = "memory"

    def __init__(self) -> None:
        super().__init__()
        self.directory = Path(tempfile.mkdtemp(prefix="crmkit-machine-"))
        url = ":memory:" if self.backend == "memory" else str(self.directory / "crm.db")
        self.clock = FixedClock()
        self.crm = crmkit.open(url, clock=self.clock, default_region="ES")
        self.org = self.crm.organizations.create(name="Acme S.A.")
        self.ids: list[OpportunityId] = []
        self.seen: dict[OpportunityId, crmkit.Opportunity] = {}

    def teardown(self) -> None:
        self.crm.close()
        shutil.rmtree(self.directory, ignore_errors=True)

    @rule(pipeline=st.sampled_from(PIPELINES), with_amount=st.booleans())
    def open_one(self, pipeline: str, with_amount: bool) -> None:
        amount = Money("1000", "EUR") if with_amount else None
        opp = self.crm.opportunities.create(
            name=f"opp {len(self.ids)}",
            organization=self.org,
            pipeline=pipeline,
            amount=amount,
            expected_close=date(2026, 6, 30),
        )
        self.ids.append(opp.id)
        self.seen[opp.id] = opp

    @precondition(lambda self: bool(self.ids))
    @rule(data=st.data(), move=st.sampled_from(MOVES), hours=st.integers(0, 100))
    def move(self, data: st.DataObject, move: str, hours: int) -> None:
        self.clock.advance(hours=hours)
        opp_id = data.draw(st.sampled_from(self.ids), label="opportunity")
        before = self.crm.opportunities.get(opp_id)
        pipeline = self.crm.pipelines.get(before.pipeline)
        stage = data.draw(st.sampled_from([s.key for s in pipeline.stages]), label="stage")
        service = self.crm.opportunities
        calls: dict[str, Any] = {
            "advance": lambda: service.advance(opp_id, to=stage),
            "win": lambda: service.win(opp_id),
            "lose": lambda: service.lose(
                opp_id,
                reason=data.draw(st.sampled_from(["price", "other", "competitor"]), label="reason"),
                note=data.draw(st.sampled_from([None, "a note"]), label="note"),
            ),
            "hold": lambda: service.hold(opp_id),
            "resume": lambda: service.resume(opp_id),
            "reopen": lambda: service.reopen(opp_id),
        }
        try:
            after = calls[move]()
        except (InvalidTransition, ValidationError):
            assert before == self.crm.opportunities.get(opp_id)  # a refused move changes nothing
            if before.is_closed:
                assert move != "reopen"  # reopen always leaves a final stage
            return
        if before.is_closed:
            assert move == "reopen"  # final stages only leave through reopen
        if move == "resume":
            assert before.held_from == after.stage
        assert after.history[: len(before.history)] == before.history  # append-only
        assert len(before.history) + 1 == len(after.history)
        self.seen[opp_id] = after

    @invariant()
    def stored_opportunities_keep_the_rules(self) -> None:
        now = self.clock.current
        for opp_id in self.ids:
            opp = self.crm.opportunities.get(opp_id)
            assert self.seen[opp_id] == opp  # what the call returned is what is stored
            if opp.status is StageKind.WON:
                assert opp.probability == 1
                assert opp.closed_at is not None
            if opp.status is StageKind.LOST:
                assert opp.close_reason_id is not None
            if opp.status is StageKind.ON_HOLD:
                assert opp.held_from is not None
            durations = stage_durations(opp, as_of=now)
            assert sum(durations.values(), timedelta()) == now - opp.history[0].at
            pipeline = self.crm.pipelines.get(opp.pipeline)
            assert (opp.stage, opp.status, opp.held_from, opp.closed_at) == replay(
                pipeline, opp.history
            )


class SqliteOpportunityMachine(OpportunityMachine):
    backend = "sqlite"


TestOpportunitiesInMemory = OpportunityMachine.TestCase
TestOpportunitiesInMemory.settings = settings(
    max_examples=60,
    stateful_step_count=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestOpportunitiesOnSqlite = SqliteOpportunityMachine.TestCase
TestOpportunitiesOnSqlite.settings = settings(
    max_examples=25,
    stateful_step_count=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
