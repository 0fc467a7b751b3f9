"""The send_template rule action: one e-mail per firing, opt-outs respected, failures retried."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import crmkit
from crmkit import (
    CRM,
    Action,
    ActionContext,
    ActionKind,
    AutomationError,
    Contact,
    FiringStatus,
    HookError,
    Money,
    Opportunity,
    OutgoingEmail,
    Rule,
    SendOutcome,
    SmtpSettings,
    TemplateError,
    Trigger,
    ValidationError,
    hookimpl,
)
from crmkit.core.events import StageChanged
from tests.conftest import FixedClock
from tests.smtp_server import RecordingHandler, smtp_server
from tests.test_app_campaign_mail import _unsubscribe_elsewhere

SENDER = "ventas@example.com"


class Outbox:
    """A ``crmkit_send_email`` plugin that keeps the messages (or refuses them)."""

    def __init__(self) -> None:
        self.sent: list[OutgoingEmail] = []
        self.refuse = False

    @hookimpl
    def crmkit_send_email(self, messages: list[OutgoingEmail]) -> list[SendOutcome]:
        if self.refuse:
            return [
                SendOutcome(message_id=m.message_id, ok=False, code="connection", reason="down")
                for m in messages
            ]
        self.sent.extend(messages)
        return [SendOutcome(message_id=m.message_id, ok=True) for m in messages]


@pytest.fixture
def outbox() -> Outbox:
    return Outbox()


@pytest.fixture
def mail_crm(backend_url: str, clock: FixedClock, outbox: Outbox) -> Iterator[CRM]:
    """A CRM on each store (memory, SQLite, PostgreSQL) sending into ``outbox``."""
    with crmkit.open(backend_url, clock=clock, default_region="ES", plugins=[outbox]) as crm:
        yield crm


def _book(crm: CRM, *, do_not_contact: bool = False) -> tuple[Contact, Opportunity]:
    """Eva (Spanish, at Acme) and an opportunity about her, in ``lead``."""
    ana = crm.users.create(name="Ana Ruiz")
    acme = crm.organizations.create(name="Acme", owner=ana)
    eva = crm.contacts.create(
        first_name="Eva",
        email="eva@acme.es",
        organization=acme,
        language="es",
        do_not_contact=do_not_contact,
    )
    deal = crm.opportunities.create(
        name="ERP", organization=acme, contact=eva, amount=Money("9000", "EUR"), owner=ana
    )
    crm.templates.create(
        name="propuesta",
        variants={
            "es": {
                "subject": "{{ opportunity.name }}: nuestra propuesta",
                "text": "Hola {{ contact.first_name }}, de {{ organization.name }}.",
            },
            "en": {"subject": "{{ opportunity.name }}: our offer", "text": "Hi"},
        },
    )
    return eva, deal


def _rule(crm: CRM, template: str = "propuesta") -> Rule:
    return crm.automation.create(
        name="Negotiation e-mail",
        trigger=Trigger.stage_changed("negotiation"),
        actions=[Action.send_template(template, sender=SENDER, sender_name="Ventas")],
    )


def _to_negotiation(crm: CRM, deal: Opportunity) -> Opportunity:
    for stage in ("qualified", "proposal", "negotiation"):
        deal = crm.opportunities.advance(deal.id, to=stage)
    return deal


def _emails(crm: CRM) -> list[object]:
    return list(crm.interactions.find(kind="email"))


# ------------------------------------------------------------------ sending


def test_reaching_negotiation_emails_the_contact_once_and_logs_one_interaction(
    mail_crm: CRM, outbox: Outbox
) -> None:
    """One message in the contact's language, one e-mail interaction on the deal, firing done."""
    eva, deal = _book(mail_crm)
    rule = _rule(mail_crm)

    deal = _to_negotiation(mail_crm, deal)

    [message] = outbox.sent
    assert ("eva@acme.es", SENDER, "Ventas") == (
        message.to.value,
        message.sender.value,
        message.sender_name,
    )
    assert ("ERP: nuestra propuesta", "Hola Eva, de Acme.") == (message.subject, message.text)
    [logged] = mail_crm.interactions.find(kind="email")
    assert (eva.id, deal.id, "ERP: nuestra propuesta") == (
        logged.contact_id,
        logged.opportunity_id,
        logged.subject,
    )
    assert f"Message-ID: {message.message_id}" == logged.description
    [firing] = mail_crm.automation.firings(rule)
    assert (FiringStatus.DONE, 1, None) == (firing.status, firing.attempts, firing.error)
    assert mail_crm.automation.last_report.ok


def test_a_redelivered_stage_change_sends_nothing(mail_crm: CRM, outbox: Outbox) -> None:
    """The firing journal makes the second delivery a no-op: no message, no interaction."""
    _, deal = _book(mail_crm)
    _rule(mail_crm)
    deal = _to_negotiation(mail_crm, deal)

    report = mail_crm.automation.deliver([StageChanged(deal, deal.history[-1], ())])

    assert (0, 1) == (len(report.fired), report.skipped)
    assert 1 == len(outbox.sent)
    assert 1 == len(_emails(mail_crm))


def test_a_do_not_contact_contact_gets_nothing_and_the_skip_is_journaled(
    mail_crm: CRM, outbox: Outbox
) -> None:
    """No message, no interaction; the firing is done (not retried) with the reason noted."""
    eva, deal = _book(mail_crm, do_not_contact=True)
    rule = _rule(mail_crm)

    _to_negotiation(mail_crm, deal)

    assert [] == outbox.sent
    assert [] == _emails(mail_crm)
    [firing] = mail_crm.automation.firings(rule)
    assert FiringStatus.DONE == firing.status
    assert f"send_template: {eva.id} not e-mailed (do_not_contact)" == firing.error


def test_a_contact_who_unsubscribed_from_a_campaign_gets_nothing(
    mail_crm: CRM, outbox: Outbox
) -> None:
    """An unsubscribe anywhere is honoured, as campaign sends honour it."""
    eva, deal = _book(mail_crm)
    _unsubscribe_elsewhere(mail_crm, eva)
    rule = _rule(mail_crm)

    _to_negotiation(mail_crm, deal)

    assert [] == outbox.sent
    [firing] = mail_crm.automation.firings(rule)
    assert (FiringStatus.DONE, True) == (firing.status, "(unsubscribed)" in (firing.error or ""))


def test_a_later_failing_action_undoes_the_firing_before_anything_is_sent(
    mail_crm: CRM, outbox: Outbox
) -> None:
    """The message waits for the firing's commit: a firing undone sends nothing."""
    _, deal = _book(mail_crm)

    def explode(context: ActionContext) -> None:
        raise RuntimeError("the ERP is down")

    mail_crm.automation.actions.register(ActionKind(key="explode", run=explode))
    mail_crm.automation.create(
        name="E-mail then explode",
        trigger=Trigger.stage_changed("negotiation"),
        actions=[Action.send_template("propuesta", sender=SENDER), Action("explode")],
    )

    _to_negotiation(mail_crm, deal)

    [error] = mail_crm.automation.last_report.failed
    assert (1, "explode") == (error.action, error.kind)
    assert [] == outbox.sent
    assert [] == _emails(mail_crm)


def test_an_unknown_template_variable_fails_the_firing_and_keeps_the_stage_change(
    mail_crm: CRM, outbox: Outbox
) -> None:
    """Nothing is sent nor logged; the firing is failed with the TemplateError; the move stays."""
    _, deal = _book(mail_crm)
    mail_crm.templates.create(
        name="roto", variants={"en": {"subject": "Hi {{ contact.nickname }}", "text": "x"}}
    )
    rule = _rule(mail_crm, "roto")

    deal = _to_negotiation(mail_crm, deal)

    assert "negotiation" == mail_crm.opportunities.get(deal.id).stage
    assert [] == outbox.sent
    assert [] == _emails(mail_crm)
    [error] = mail_crm.automation.last_report.failed
    assert isinstance(error, AutomationError)
    assert (0, "send_template") == (error.action, error.kind)
    assert isinstance(error.__cause__, TemplateError)
    assert "template_variable" == error.__cause__.code
    [firing] = mail_crm.automation.firings(rule)
    assert FiringStatus.FAILED == firing.status


def test_a_refused_message_fails_the_firing_and_a_redelivery_sends_it(
    mail_crm: CRM, outbox: Outbox
) -> None:
    """A send failure after the commit is recorded (failed) and retried by the next delivery."""
    _, deal = _book(mail_crm)
    rule = _rule(mail_crm)
    outbox.refuse = True

    deal = _to_negotiation(mail_crm, deal)

    [error] = mail_crm.automation.last_report.failed
    assert isinstance(error.__cause__, HookError)
    assert [] == _emails(mail_crm)
    [firing] = mail_crm.automation.firings(rule)
    assert (FiringStatus.FAILED, 1) == (firing.status, firing.attempts)

    outbox.refuse = False
    report = mail_crm.automation.deliver([StageChanged(deal, deal.history[-1], ())])

    assert 1 == len(report.fired)
    assert 1 == len(outbox.sent)
    assert 1 == len(_emails(mail_crm))
    [firing] = mail_crm.automation.firings(rule)
    assert (FiringStatus.DONE, 2) == (firing.status, firing.attempts)


def test_delivering_inside_a_transaction_sends_nothing(mail_crm: CRM, outbox: Outbox) -> None:
    """The send waits for a commit the caller owns: refused (code transaction), recorded."""
    _, deal = _book(mail_crm)
    deal = _to_negotiation(mail_crm, deal)
    rule = _rule(mail_crm)

    with mail_crm.transaction():
        report = mail_crm.automation.deliver([StageChanged(deal, deal.history[-1], ())])

    [error] = report.failed
    assert isinstance(error.__cause__, ValidationError)
    assert "transaction" == error.__cause__.code
    assert [] == outbox.sent
    [firing] = mail_crm.automation.firings(rule)
    assert FiringStatus.FAILED == firing.status


# --------------------------------------------------------------- refusals


def test_saving_a_rule_with_an_unknown_template_is_refused(mail_crm: CRM) -> None:
    """The action's check names the template; no rule is written."""
    with pytest.raises(ValidationError) as info:
        _rule(mail_crm, "missing")

    assert ("actions[0].params.template", "reference") == (info.value.field, info.value.code)
    assert 0 == mail_crm.automation.count()


def test_without_a_sender_the_firing_fails_with_no_sender(clock: FixedClock) -> None:
    """No crmkit_send_email plugin: a typed error, the firing failed (retried later)."""
    with crmkit.open(":memory:", clock=clock) as crm:
        _, deal = _book(crm)
        rule = _rule(crm)

        _to_negotiation(crm, deal)

        [error] = crm.automation.last_report.failed
        assert isinstance(error.__cause__, ValidationError)
        assert ("sender", "no_sender") == (error.__cause__.field, error.__cause__.code)
        [firing] = crm.automation.firings(rule)
        assert FiringStatus.FAILED == firing.status


def test_a_lead_without_a_contact_fails_clearly(mail_crm: CRM, outbox: Outbox) -> None:
    """Only contacts can opt out, so a lead is e-mailed once converted; before, no_recipient."""
    _book(mail_crm)
    mail_crm.automation.create(
        name="Welcome",
        trigger=Trigger.lead_created(),
        actions=[Action.send_template("propuesta", sender=SENDER)],
    )

    mail_crm.leads.create(first_name="Leo", email="leo@beta.es")

    [error] = mail_crm.automation.last_report.failed
    assert isinstance(error.__cause__, ValidationError)
    assert "no_recipient" == error.__cause__.code
    assert [] == outbox.sent


# --------------------------------------------------------------- real SMTP


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[RecordingHandler, int]]:
    with smtp_server() as running:
        yield running


def test_the_rule_sends_through_the_built_in_smtp_sender(
    clock: FixedClock, server: tuple[RecordingHandler, int]
) -> None:
    """A loopback aiosmtpd server receives exactly one message for the firing."""
    handler, port = server
    handler.clear()
    settings = SmtpSettings(host="127.0.0.1", port=port, security="none", timeout=10)
    with crmkit.open(":memory:", clock=clock, smtp=settings) as crm:
        _, deal = _book(crm)
        _rule(crm)

        _to_negotiation(crm, deal)

        [received] = handler.received
        assert ["eva@acme.es"] == received.rcpt_tos
        assert "ERP: nuestra propuesta" == received.message["Subject"]
        assert 1 == len(crm.interactions.find(kind="email"))
