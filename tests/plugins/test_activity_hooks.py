"""The hooks of interactions, leads and cases, called the way plugins rely on.

Hooks tested here by name: ``crmkit_register_interaction_kinds``,
``crmkit_register_case_types``, ``crmkit_interaction_logged``,
``crmkit_lead_converted``, ``crmkit_case_opened``, ``crmkit_case_closed``.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

import crmkit
from crmkit import CRM, PluginError, hookimpl
from crmkit.core.cases import CasePriority, CaseType, SlaTarget
from crmkit.core.interactions import InteractionKind, InteractionStatus
from crmkit.testing import RecordingPlugin
from tests.conftest import FixedClock

WHATSAPP = InteractionKind(key="whatsapp", name="WhatsApp message", name_es="Mensaje de WhatsApp")
WARRANTY = CaseType(
    key="warranty",
    name="Warranty claim",
    name_es="Garantía",
    sla={p: SlaTarget(days=2) for p in CasePriority},
)


class Boom(Exception):
    """Raised by tests to abandon a block."""


class Kinds:
    """A plugin registering interaction kinds and case types."""

    def __init__(self, kinds: object = (WHATSAPP,), types: object = (WARRANTY,)) -> None:
        self.kinds = kinds
        self.types = types

    @hookimpl
    def crmkit_register_interaction_kinds(self, crm: CRM) -> object:
        return self.kinds

    @hookimpl
    def crmkit_register_case_types(self, crm: CRM) -> object:
        return self.types


def _open(*plugins: object, clock: FixedClock) -> CRM:
    return crmkit.open(":memory:", plugins=plugins, clock=clock)


# ====================================== crmkit_register_interaction_kinds, case types


def test_register_interaction_kinds_adds_a_kind_that_can_be_logged(clock: FixedClock) -> None:
    """A plugin's kind joins the built-in seven and is accepted by log()."""
    with _open(Kinds(), clock=clock) as crm:
        acme = crm.organizations.create(name="Acme S.A.")

        logged = crm.interactions.log(kind="whatsapp", organization=acme)

        assert "whatsapp" == logged.kind
        assert 8 == len(crm.interactions.kinds)
        assert "Mensaje de WhatsApp" == crm.interactions.kinds.get("whatsapp").label("es")


def test_register_case_types_adds_a_type(clock: FixedClock) -> None:
    """A plugin's case type joins claim, incident and service_request."""
    with _open(Kinds(), clock=clock) as crm:
        # pluggy calls the last registered plugin first: the built-ins come last
        assert ["warranty", "claim", "incident", "service_request"] == crm.cases.types.keys()


@pytest.mark.parametrize(
    "plugin",
    [
        Kinds(kinds=[InteractionKind(key="call", name="Another call")]),
        Kinds(types=[WARRANTY, WARRANTY]),
        Kinds(kinds="whatsapp"),
        Kinds(types=[WHATSAPP]),
    ],
    ids=["duplicate-kind", "duplicate-type", "not-a-list", "wrong-item"],
)
def test_bad_registrations_are_plugin_errors_at_open(plugin: Kinds, clock: FixedClock) -> None:
    """A key registered twice or a wrong return value stops open() with PluginError."""
    with pytest.raises(PluginError):
        _open(plugin, clock=clock)


def test_registration_hooks_receive_the_crm_being_opened(clock: FixedClock) -> None:
    """Both registration hooks are called once, at open, with crm=."""
    recorder = RecordingPlugin()
    with _open(recorder, clock=clock) as crm:
        for name in ("crmkit_register_interaction_kinds", "crmkit_register_case_types"):
            assert [{"crm": crm}] == [call.kwargs for call in recorder.calls_to(name)]


# ========================================================= crmkit_interaction_logged


def test_interaction_logged_fires_once_for_a_logged_interaction(clock: FixedClock) -> None:
    """Logging a done interaction notifies once, after commit, with the interaction."""
    recorder = RecordingPlugin()
    with _open(recorder, clock=clock) as crm:
        acme = crm.organizations.create(name="Acme S.A.")

        logged = crm.interactions.log(kind="call", organization=acme, next_step="Send the offer")

        calls = recorder.calls_to("crmkit_interaction_logged")
        assert [logged] == [call.kwargs["interaction"] for call in calls]


def test_interaction_logged_fires_when_a_planned_one_is_completed(clock: FixedClock) -> None:
    """Planning does not fire it; completing does, with the done interaction."""
    recorder = RecordingPlugin()
    with _open(recorder, clock=clock) as crm:
        acme = crm.organizations.create(name="Acme S.A.")
        planned = crm.interactions.plan(
            kind="visit", organization=acme, scheduled_at=clock.current + timedelta(days=1)
        )
        assert [] == recorder.calls_to("crmkit_interaction_logged")

        done = crm.interactions.complete(planned.id)

        calls = recorder.calls_to("crmkit_interaction_logged")
        assert [done] == [call.kwargs["interaction"] for call in calls]
        assert InteractionStatus.DONE is done.status


def test_interaction_logged_does_not_fire_when_the_transaction_rolls_back(
    clock: FixedClock,
) -> None:
    """An interaction logged in a transaction that fails was never logged."""
    recorder = RecordingPlugin()
    with _open(recorder, clock=clock) as crm:
        acme = crm.organizations.create(name="Acme S.A.")

        def work() -> None:
            with crm.transaction():
                crm.interactions.log(kind="call", organization=acme)
                raise Boom

        with pytest.raises(Boom):
            work()

        assert [] == recorder.calls_to("crmkit_interaction_logged")
        assert 0 == crm.interactions.count()


# ============================================================= crmkit_lead_converted


def test_lead_converted_fires_once_with_the_conversion(clock: FixedClock) -> None:
    """Converting notifies once; converting again returns the same links, silently."""
    recorder = RecordingPlugin()
    with _open(recorder, clock=clock) as crm:
        lead = crm.leads.create(first_name="Ana", company="Acme S.A.", email="ana@acme.es")

        conversion = crm.leads.convert(lead.id)
        again = crm.leads.convert(lead.id)

        calls = recorder.calls_to("crmkit_lead_converted")
        assert 1 == len(calls)
        assert conversion.lead == calls[0].kwargs["lead"]
        assert conversion == calls[0].kwargs["conversion"]
        assert conversion.organization == again.organization
        assert conversion.contact == again.contact


# ======================================================== crmkit_case_opened, closed


def test_case_opened_and_closed_fire_once_each(clock: FixedClock) -> None:
    """Opening and closing a case notify once each, after commit."""
    recorder = RecordingPlugin()
    with _open(recorder, clock=clock) as crm:
        acme = crm.organizations.create(name="Acme S.A.")

        case = crm.cases.open(subject="Broken delivery", case_type="claim", organization=acme)
        resolved = crm.cases.resolve(case.id, resolution="Replaced")
        closed = crm.cases.close(resolved.id)

        assert [case] == [c.kwargs["case"] for c in recorder.calls_to("crmkit_case_opened")]
        assert [closed] == [c.kwargs["case"] for c in recorder.calls_to("crmkit_case_closed")]


def test_case_opened_does_not_fire_when_the_transaction_rolls_back(clock: FixedClock) -> None:
    """A case opened in a failed transaction was never opened."""
    recorder = RecordingPlugin()
    with _open(recorder, clock=clock) as crm:
        acme = crm.organizations.create(name="Acme S.A.")

        def work() -> None:
            with crm.transaction():
                crm.cases.open(subject="Broken delivery", case_type="claim", organization=acme)
                raise Boom

        with pytest.raises(Boom):
            work()

        assert [] == recorder.calls_to("crmkit_case_opened")
        assert 0 == crm.cases.count()
