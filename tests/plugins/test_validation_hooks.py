"""The validation hooks: crmkit_validate_<entity> sees every record before it is written.

Hooks tested here by name: ``crmkit_validate_organization``,
``crmkit_validate_contact``, ``crmkit_validate_lead``,
``crmkit_validate_opportunity``, ``crmkit_validate_interaction``,
``crmkit_validate_case``.  The same vetoes on every store are in
``tests/test_app_validation_hooks.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, timedelta
from typing import Any

import pytest

import crmkit
from crmkit import (
    CRM,
    Case,
    Contact,
    HookError,
    Interaction,
    Lead,
    Money,
    NotFoundError,
    Opportunity,
    Organization,
    Sequence,
    SequenceStep,
    ValidationError,
    hookimpl,
)
from crmkit.core.entities import Entity
from crmkit.testing import RecordingPlugin
from tests.conftest import FixedClock

#: A rule: given the hook's name, the record and its stored version, an error to raise or None.
Rule = Callable[[str, Any, Any], Exception | None]


class Gate:
    """Implements every validation hook: logs each call and raises what ``rule`` returns."""

    def __init__(self, rule: Rule = lambda hook, entity, previous: None) -> None:
        self.rule = rule
        self.seen: list[tuple[str, Entity, Entity | None]] = []

    def _check(self, hook: str, entity: Entity, previous: Entity | None) -> None:
        self.seen.append((hook, entity, previous))
        error = self.rule(hook, entity, previous)
        if error is not None:
            raise error

    def hooks(self) -> list[str]:
        """The hooks called, in order, without the crmkit_validate_ prefix."""
        return [hook.removeprefix("crmkit_validate_") for hook, _, _ in self.seen]

    @hookimpl
    def crmkit_validate_organization(
        self, organization: Organization, previous: Organization | None
    ) -> None:
        self._check("crmkit_validate_organization", organization, previous)

    @hookimpl
    def crmkit_validate_contact(self, contact: Contact, previous: Contact | None) -> None:
        self._check("crmkit_validate_contact", contact, previous)

    @hookimpl
    def crmkit_validate_lead(self, lead: Lead, previous: Lead | None) -> None:
        self._check("crmkit_validate_lead", lead, previous)

    @hookimpl
    def crmkit_validate_opportunity(
        self, opportunity: Opportunity, previous: Opportunity | None
    ) -> None:
        self._check("crmkit_validate_opportunity", opportunity, previous)

    @hookimpl
    def crmkit_validate_interaction(
        self, interaction: Interaction, previous: Interaction | None
    ) -> None:
        self._check("crmkit_validate_interaction", interaction, previous)

    @hookimpl
    def crmkit_validate_case(self, case: Case, previous: Case | None) -> None:
        self._check("crmkit_validate_case", case, previous)


def veto(hook: str, when: Callable[[Any, Any], bool] = lambda entity, previous: True) -> Rule:
    """A rule refusing records of ``hook`` (short name) for which ``when`` holds."""

    def rule(name: str, entity: Any, previous: Any) -> Exception | None:
        if name == f"crmkit_validate_{hook}" and when(entity, previous):
            return ValidationError("name", f"refused by the {hook} rule", code="policy")
        return None

    return rule


def open_crm(*plugins: object, clock: FixedClock) -> CRM:
    """A memory CRM with ``plugins``."""
    return crmkit.open(":memory:", plugins=plugins, clock=clock, default_region="ES")


def notifications(recorder: RecordingPlugin) -> list[str]:
    """The notification hooks recorded (validation hooks left out)."""
    return [
        name
        for name in recorder.names()
        if not name.startswith(("crmkit_validate_", "crmkit_register_"))
    ]


def _negotiating(crm: CRM, org: Organization) -> Opportunity:
    opp = crm.opportunities.create(
        name="ERP", organization=org, amount=Money("12000", "EUR"), expected_close=date(2026, 3, 31)
    )
    for stage in ("qualified", "proposal", "negotiation"):
        opp = crm.opportunities.advance(opp.id, to=stage)
    return opp


# ================================================ crmkit_validate_organization


def test_validate_organization_receives_the_new_record_and_no_previous_on_create(
    clock: FixedClock,
) -> None:
    """The hook gets crm, the organization exactly as stored, and previous=None."""
    recorder = RecordingPlugin()
    with open_crm(recorder, clock=clock) as crm:
        acme = crm.organizations.create(name="Acme", emails=["ventas@acme.es"])

        assert [{"crm": crm, "organization": acme, "previous": None}] == [
            c.kwargs for c in recorder.calls_to("crmkit_validate_organization")
        ]


def test_validate_organization_receives_the_stored_version_on_update(clock: FixedClock) -> None:
    """On update, organization is the new version and previous the stored one."""
    gate = Gate()
    with open_crm(gate, clock=clock) as crm:
        acme = crm.organizations.create(name="Acme")
        renamed = crm.organizations.update(acme.id, expected_version=1, name="Acme S.A.")

        assert [
            ("organization", acme, None),
            ("organization", renamed, acme),
        ] == [(h.removeprefix("crmkit_validate_"), e, p) for h, e, p in gate.seen]
        assert 2 == renamed.version


def test_validate_organization_veto_of_a_create_reaches_the_caller_and_writes_nothing(
    clock: FixedClock,
) -> None:
    """The plugin's own ValidationError reaches the caller; no row, no notification."""
    error = ValidationError("tax_id", "a customer needs a tax id", code="policy")
    recorder = RecordingPlugin()
    gate = Gate(lambda hook, entity, previous: error if entity.tax_id is None else None)
    with open_crm(recorder, gate, clock=clock) as crm:
        with pytest.raises(ValidationError) as info:
            crm.organizations.create(name="Acme")

        assert info.value is error
        assert 0 == crm.organizations.count(archived=None)
        assert [] == notifications(recorder)

        accepted = crm.organizations.create(name="Acme", tax_id="B12345678")
        assert [accepted] == crm.organizations.find()


def test_validate_organization_veto_of_an_update_keeps_the_stored_version(
    clock: FixedClock,
) -> None:
    """A refused update leaves the record, its version and its history as they were."""
    gate = Gate(veto("organization", lambda entity, previous: previous is not None))
    with open_crm(gate, clock=clock) as crm:
        acme = crm.organizations.create(name="Acme")

        with pytest.raises(ValidationError):
            crm.organizations.update(acme.id, expected_version=1, name="Other")

        assert acme == crm.organizations.get(acme.id)
        assert 1 == len(crm.history(acme.id))


def test_validate_organization_failing_otherwise_is_a_hook_error_naming_the_plugin(
    clock: FixedClock,
) -> None:
    """Another exception becomes HookError (not committed), nothing is written."""
    gate = Gate(lambda hook, entity, previous: KeyError("rules table"))
    with open_crm(gate, clock=clock) as crm:
        with pytest.raises(HookError) as info:
            crm.organizations.create(name="Acme")

        assert ("crmkit_validate_organization", False) == (info.value.hook, info.value.committed)
        assert info.value.reason.startswith("Gate: KeyError")
        assert isinstance(info.value.__cause__, KeyError)
        assert 0 == crm.organizations.count(archived=None)


def test_validate_organization_other_crmkit_errors_pass_through(clock: FixedClock) -> None:
    """A crmkit error other than ValidationError reaches the caller unchanged too."""
    error = NotFoundError("zone", "norte")
    with open_crm(Gate(lambda hook, entity, previous: error), clock=clock) as crm:
        with pytest.raises(NotFoundError) as info:
            crm.organizations.create(name="Acme")

        assert info.value is error
        assert 0 == crm.organizations.count(archived=None)


def test_validate_organization_is_not_called_for_an_update_that_changes_nothing(
    clock: FixedClock,
) -> None:
    """Nothing to write, nothing to validate: the version stays."""
    gate = Gate()
    with open_crm(gate, clock=clock) as crm:
        acme = crm.organizations.create(name="Acme")
        gate.seen.clear()

        same = crm.organizations.update(acme.id, expected_version=1, name="Acme")

        assert (acme, []) == (same, gate.seen)


def test_archive_and_restore_are_not_validated(clock: FixedClock) -> None:
    """Archiving hides a record without changing its data: no validation hook runs."""
    gate = Gate(veto("organization", lambda entity, previous: previous is not None))
    with open_crm(gate, clock=clock) as crm:
        acme = crm.organizations.create(name="Acme")

        archived = crm.organizations.archive(acme.id, expected_version=1)
        restored = crm.organizations.restore(acme.id, expected_version=2)

        assert (True, False, 3) == (archived.archived, restored.archived, restored.version)
        assert ["organization"] == gate.hooks()


def test_validate_organization_runs_when_a_win_makes_the_organization_a_customer(
    clock: FixedClock,
) -> None:
    """The lifecycle change of a win is validated; a veto rolls the whole win back."""
    no_customers = veto(
        "organization", lambda entity, previous: entity.lifecycle is crmkit.Lifecycle.CUSTOMER
    )
    with open_crm(Gate(no_customers), clock=clock) as crm:
        acme = crm.organizations.create(name="Acme")
        opp = _negotiating(crm, acme)

        with pytest.raises(ValidationError):
            crm.opportunities.win(opp.id)

        assert opp == crm.opportunities.get(opp.id)
        assert acme == crm.organizations.get(acme.id)


def test_validators_may_take_only_the_arguments_they_need(clock: FixedClock) -> None:
    """An implementation naming only ``organization`` is called with it alone."""
    names: list[str] = []

    class NamesOnly:
        @hookimpl
        def crmkit_validate_organization(self, organization: Organization) -> None:
            names.append(organization.name)

    with open_crm(NamesOnly(), clock=clock) as crm:
        crm.organizations.create(name="Acme")

    assert ["Acme"] == names


def test_a_validator_reads_the_transactions_own_writes(clock: FixedClock) -> None:
    """Inside crm.transaction() the hook's crm sees the records written earlier in the block."""
    seen: list[str] = []

    class EmployerExists:
        @hookimpl
        def crmkit_validate_contact(self, crm: CRM, contact: Contact) -> None:
            assert contact.organization_id is not None
            seen.append(crm.organizations.get(contact.organization_id).name)

    with open_crm(EmployerExists(), clock=clock) as crm, crm.transaction():
        acme = crm.organizations.create(name="Acme")
        crm.contacts.create(first_name="Ana", organization=acme)

    assert ["Acme"] == seen


# ===================================================== crmkit_validate_contact


def test_validate_contact_sees_creates_and_updates(clock: FixedClock) -> None:
    """Contacts are validated on create (previous None) and update (previous stored)."""
    gate = Gate()
    with open_crm(gate, clock=clock) as crm:
        ana = crm.contacts.create(first_name="Ana")
        changed = crm.contacts.update(ana.id, expected_version=1, last_name="Pérez")

        assert [("contact", ana, None), ("contact", changed, ana)] == [
            (h.removeprefix("crmkit_validate_"), e, p) for h, e, p in gate.seen
        ]


def test_validate_contact_veto_in_bulk_create_names_the_item_and_writes_nothing(
    clock: FixedClock,
) -> None:
    """The veto's field is nested under the item's index; no contact of the call is kept."""
    gate = Gate(veto("contact", lambda entity, previous: entity.first_name == "Bot"))
    recorder = RecordingPlugin()
    with open_crm(recorder, gate, clock=clock) as crm:
        with pytest.raises(ValidationError) as info:
            crm.contacts.bulk_create(
                [{"first_name": "Ana"}, {"first_name": "Bot"}, {"first_name": "Luis"}]
            )

        assert ("[1].name", "policy") == (info.value.field, info.value.code)
        assert 0 == crm.contacts.count(archived=None)
        assert [] == notifications(recorder)


def test_validate_contact_sees_every_item_of_a_bulk_create(clock: FixedClock) -> None:
    """Each new contact of bulk_create is validated once, with previous None."""
    gate = Gate()
    with open_crm(gate, clock=clock) as crm:
        made = crm.contacts.bulk_create([{"first_name": "Ana"}, {"first_name": "Luis"}])

        assert [("crmkit_validate_contact", c, None) for c in made] == gate.seen


# ======================================================== crmkit_validate_lead


def test_validate_lead_sees_capture_moves_and_conversion(clock: FixedClock) -> None:
    """A lead is validated when captured, moved and converted; conversion also validates
    the organization and contact it creates."""
    gate = Gate()
    with open_crm(gate, clock=clock) as crm:
        lead = crm.leads.create(first_name="Ana", company="Acme S.A.", email="ana@acme.es")
        working = crm.leads.work(lead.id)
        conversion = crm.leads.convert(lead.id)

        assert ["lead", "lead", "organization", "contact", "lead"] == gate.hooks()
        assert (lead, None) == gate.seen[0][1:]
        assert (working, lead) == gate.seen[1][1:]
        assert (conversion.lead, working) == gate.seen[4][1:]


def test_validate_lead_veto_of_a_conversion_writes_nothing(clock: FixedClock) -> None:
    """Vetoing the converted lead undoes the organization and contact made for it."""
    gate = Gate(veto("lead", lambda entity, previous: entity.status is crmkit.LeadStatus.CONVERTED))
    with open_crm(gate, clock=clock) as crm:
        lead = crm.leads.create(first_name="Ana", company="Acme S.A.")

        with pytest.raises(ValidationError):
            crm.leads.convert(lead.id)

        assert lead == crm.leads.get(lead.id)
        assert (0, 0) == (crm.organizations.count(), crm.contacts.count())


# ================================================= crmkit_validate_opportunity


def test_validate_opportunity_sees_create_update_and_every_move(clock: FixedClock) -> None:
    """Creation, update and each stage move are validated with the stored version."""
    gate = Gate()
    with open_crm(gate, clock=clock) as crm:
        acme = crm.organizations.create(name="Acme")
        gate.seen.clear()
        opp = crm.opportunities.create(name="ERP", organization=acme)
        renamed = crm.opportunities.update(opp.id, expected_version=1, name="ERP 2026")
        moved = crm.opportunities.advance(opp.id, to="qualified")

        assert [
            ("crmkit_validate_opportunity", opp, None),
            ("crmkit_validate_opportunity", renamed, opp),
            ("crmkit_validate_opportunity", moved, renamed),
        ] == gate.seen


def test_validate_opportunity_veto_of_a_win_asks_for_no_sales_order(clock: FixedClock) -> None:
    """A move refused by the opportunity rule runs before the ERP is asked for an order."""
    big_wins_need_an_owner = veto(
        "opportunity",
        lambda entity, previous: entity.status is crmkit.StageKind.WON and entity.owner_id is None,
    )
    recorder = RecordingPlugin()  # registered last, so called first: it sees the veto coming
    with open_crm(Gate(big_wins_need_an_owner), recorder, clock=clock) as crm:
        acme = crm.organizations.create(name="Acme")
        opp = _negotiating(crm, acme)
        recorder.clear()

        with pytest.raises(ValidationError):
            crm.opportunities.win(opp.id)

        assert opp == crm.opportunities.get(opp.id)
        assert [] == recorder.calls_to("crmkit_create_sales_order")
        assert [] == notifications(recorder)
        assert ["crmkit_validate_transition", "crmkit_validate_opportunity"] == recorder.names()


# ================================================= crmkit_validate_interaction


def test_validate_interaction_sees_the_logged_one_and_its_follow_up(clock: FixedClock) -> None:
    """log() with a next step validates the done interaction, then the planned follow-up."""
    gate = Gate()
    with open_crm(gate, clock=clock) as crm:
        acme = crm.organizations.create(name="Acme")
        gate.seen.clear()

        done = crm.interactions.log(kind="call", organization=acme, next_step="Send the offer")
        [follow_up] = crm.interactions.follow_ups(done)

        assert [
            ("crmkit_validate_interaction", done, None),
            ("crmkit_validate_interaction", follow_up, None),
        ] == gate.seen


def test_validate_interaction_sees_every_change(clock: FixedClock) -> None:
    """complete, reschedule, cancel, reassign, update and apply_sequence are validated."""
    gate = Gate()
    with open_crm(gate, clock=clock) as crm:
        acme = crm.organizations.create(name="Acme")
        luis = crm.users.create(name="Luis")
        at = clock.current + timedelta(days=1)
        first = crm.interactions.plan(kind="call", scheduled_at=at, organization=acme)
        second = crm.interactions.plan(kind="visit", scheduled_at=at, organization=acme)
        gate.seen.clear()

        crm.interactions.reschedule(first.id, to=at + timedelta(hours=2))
        crm.interactions.reassign([first.id], to=luis)
        crm.interactions.update(first.id, expected_version=3, subject="Price list")
        crm.interactions.complete(first.id)
        crm.interactions.cancel(second.id)
        steps = (SequenceStep(kind="call"), SequenceStep(kind="email", after=timedelta(days=2)))
        crm.interactions.apply_sequence(
            Sequence(key="welcome", name="Welcome", steps=steps), organization=acme
        )

        assert ["interaction"] * 7 == gate.hooks()
        assert [2, 3, 4, 5, 2, 1, 1] == [entity.version for _, entity, _ in gate.seen]
        assert [1, 2, 3, 4, 1, None, None] == [
            None if previous is None else previous.version for _, _, previous in gate.seen
        ]


def test_validate_interaction_veto_of_a_follow_up_writes_nothing(clock: FixedClock) -> None:
    """Refusing the planned follow-up undoes the logged interaction too (one transaction)."""
    planned_only = veto(
        "interaction",
        lambda entity, previous: entity.status is crmkit.InteractionStatus.PLANNED,
    )
    recorder = RecordingPlugin()
    with open_crm(recorder, Gate(planned_only), clock=clock) as crm:
        acme = crm.organizations.create(name="Acme")
        recorder.clear()

        with pytest.raises(ValidationError):
            crm.interactions.log(kind="call", organization=acme, next_step="Call again")

        assert 0 == crm.interactions.count(archived=None)
        assert [] == notifications(recorder)


def test_validate_interaction_and_opportunity_see_create_opportunity(clock: FixedClock) -> None:
    """An opportunity opened from an interaction is validated, and so is the linked interaction."""
    gate = Gate()
    with open_crm(gate, clock=clock) as crm:
        acme = crm.organizations.create(name="Acme")
        call = crm.interactions.log(kind="call", organization=acme)
        gate.seen.clear()

        opp = crm.interactions.create_opportunity(call.id, name="ERP")

        linked = crm.interactions.get(call.id)
        assert [
            ("crmkit_validate_opportunity", opp, None),
            ("crmkit_validate_interaction", linked, call),
        ] == gate.seen


# ======================================================== crmkit_validate_case


def test_validate_case_sees_opening_moves_and_updates(clock: FixedClock) -> None:
    """open, start, update, resolve, close and reopen are each validated once."""
    gate = Gate()
    with open_crm(gate, clock=clock) as crm:
        acme = crm.organizations.create(name="Acme")
        gate.seen.clear()

        case = crm.cases.open(subject="Broken", case_type="claim", organization=acme)
        crm.cases.start(case.id)
        crm.cases.update(case.id, expected_version=2, priority="high")
        crm.cases.resolve(case.id, resolution="Replaced")
        crm.cases.close(case.id)
        reopened = crm.cases.reopen(case.id)

        assert ["case"] * 6 == gate.hooks()
        assert (case, None) == gate.seen[0][1:]
        assert reopened == gate.seen[-1][1]


def test_validate_case_veto_in_bulk_opening_keeps_and_announces_no_case(
    clock: FixedClock,
) -> None:
    """cases.bulk_create with one refused case opens none and announces none."""
    gate = Gate(veto("case", lambda entity, previous: entity.subject == "Spam"))
    recorder = RecordingPlugin()
    with open_crm(recorder, gate, clock=clock) as crm:
        acme = crm.organizations.create(name="Acme")
        recorder.clear()
        items = [
            {"subject": "Broken", "case_type": "claim", "organization": acme},
            {"subject": "Spam", "case_type": "claim", "organization": acme},
        ]

        with pytest.raises(ValidationError) as info:
            crm.cases.bulk_create(items)

        assert "[1].name" == info.value.field
        assert 0 == crm.cases.count(archived=None)
        assert [] == notifications(recorder)
