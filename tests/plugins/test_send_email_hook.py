"""The ``crmkit_send_email`` hook: any plugin can send campaign e-mail; the SMTP sender is one."""

from __future__ import annotations

import email
from collections.abc import Iterator
from email.message import EmailMessage
from email.policy import default

import pytest

import crmkit
from crmkit import (
    And,
    EmailAddress,
    HookError,
    OutgoingEmail,
    SendOutcome,
    SmtpSender,
    SmtpSettings,
    ValidationError,
    hookimpl,
)
from crmkit.plugins.smtp import build_message
from tests.conftest import FixedClock
from tests.smtp_server import smtp_server


class Outbox:
    """A sender plugin that keeps the batches it is given and accepts every message."""

    def __init__(self) -> None:
        self.batches: list[list[OutgoingEmail]] = []

    @hookimpl
    def crmkit_send_email(self, messages: list[OutgoingEmail]) -> list[SendOutcome]:
        self.batches.append(messages)
        return [SendOutcome(message_id=m.message_id, ok=True) for m in messages]


class Broken:
    @hookimpl
    def crmkit_send_email(self, messages: list[OutgoingEmail]) -> list[SendOutcome]:
        raise ConnectionResetError("the provider hung up")


class Confused:
    @hookimpl
    def crmkit_send_email(self, messages: list[OutgoingEmail]) -> object:
        return "sent, probably"


def _campaign(crm: crmkit.CRM, members: int = 5) -> crmkit.Campaign:
    for n in range(members):
        org = crm.organizations.create(name=f"Org {n}")
        crm.contacts.create(first_name=f"P{n}", email=f"p{n}@org{n}.es", organization=org)
    crm.templates.create(
        name="t", variants={"en": {"subject": "Hi {{ contact.first_name }}", "text": "Body"}}
    )
    segment = crm.segments.create(name="all", criteria=And())
    return crm.campaigns.launch(crm.campaigns.create(name="c", segment=segment))


@pytest.fixture
def outbox(clock: FixedClock) -> Iterator[tuple[crmkit.CRM, Outbox]]:
    plugin = Outbox()
    with crmkit.open(":memory:", clock=clock, plugins=[plugin]) as crm:
        yield crm, plugin


def test_a_plugin_receives_the_rendered_messages_in_batches(
    outbox: tuple[crmkit.CRM, Outbox],
) -> None:
    crm, plugin = outbox
    campaign = _campaign(crm)
    report = crm.campaigns.send(
        campaign,
        "t",
        sender="crm@example.com",
        sender_name="Ventas",
        batch_size=2,
        headers={"List-Unsubscribe": "<mailto:baja@example.com>"},
    )
    assert 5 == report.sent
    assert [2, 2, 1] == [len(b) for b in plugin.batches]
    first = plugin.batches[0][0]
    assert ("crm@example.com", "Ventas", "p0@org0.es", "Hi P0", "Body") == (
        first.sender.value,
        first.sender_name,
        first.to.value,
        first.subject,
        first.text,
    )
    assert (("List-Unsubscribe", "<mailto:baja@example.com>"),) == first.headers
    assert first.campaign_id == campaign.id
    assert first.message_id.endswith("@example.com>")


def test_a_sender_that_raises_is_a_hook_error_and_its_batch_is_not_sent(
    clock: FixedClock,
) -> None:
    with crmkit.open(":memory:", clock=clock, plugins=[Broken()]) as crm:
        campaign = _campaign(crm, members=2)
        with pytest.raises(HookError) as caught:
            crm.campaigns.send(campaign, "t", sender="crm@example.com")
        assert "crmkit_send_email" == caught.value.hook
        records = crm.campaigns.emails(campaign)
        assert [("sender", None)] * 2 == [(e.error_code, e.sent_at) for e in records]
        assert 0 == crm.interactions.count(kind="email")


def test_a_sender_that_answers_nonsense_is_a_hook_error(clock: FixedClock) -> None:
    with crmkit.open(":memory:", clock=clock, plugins=[Confused()]) as crm:
        campaign = _campaign(crm, members=1)
        with pytest.raises(HookError):
            crm.campaigns.send(campaign, "t", sender="crm@example.com")
        assert 0 == crm.campaigns.results(campaign).email.sent


def test_the_smtp_sender_is_a_plugin_on_the_hook(clock: FixedClock) -> None:
    with smtp_server() as (inbox, port):
        settings = SmtpSettings(host="127.0.0.1", port=port, security="none")
        with crmkit.open(":memory:", clock=clock, plugins=[SmtpSender(settings)]) as crm:
            campaign = _campaign(crm, members=3)
            assert 3 == crm.campaigns.send(campaign, "t", sender="crm@example.com").sent
        assert ["p0@org0.es", "p1@org1.es", "p2@org2.es"] == sorted(
            r.rcpt_tos[0] for r in inbox.received
        )


def test_smtp_settings_come_from_the_environment() -> None:
    settings = SmtpSettings.from_env(
        {
            "CRMKIT_SMTP_HOST": "smtp.example.com",
            "CRMKIT_SMTP_SECURITY": "SSL",
            "CRMKIT_SMTP_USERNAME": "crm",
            "CRMKIT_SMTP_PASSWORD": "s3cret",
        }
    )
    assert ("smtp.example.com", 465, "ssl", "crm") == (
        settings.host,
        settings.effective_port,
        settings.security,
        settings.username,
    )
    assert "s3cret" not in repr(settings)
    assert 587 == SmtpSettings(host="h").effective_port
    with pytest.raises(ValidationError) as caught:
        SmtpSettings.from_env({})
    assert "CRMKIT_SMTP_HOST" == caught.value.field
    with pytest.raises(ValidationError):
        SmtpSettings.from_env({"CRMKIT_SMTP_HOST": "h", "CRMKIT_SMTP_PORT": "x"})
    with pytest.raises(ValidationError):
        SmtpSettings(host="h", security="tls")


def test_the_mime_message_has_text_and_an_html_alternative() -> None:
    message = OutgoingEmail(
        message_id="<1@example.com>",
        sender="crm@example.com",
        sender_name="Ventas Ñ",
        to="ana@acme.es",
        to_name="Ana Pérez",
        subject="Hola",
        text="texto",
        html="<p>x</p>",
        reply_to=EmailAddress.parse("responder@example.com"),
    )
    parsed = email.message_from_bytes(build_message(message).as_bytes(), policy=default)
    assert isinstance(parsed, EmailMessage)
    assert ["text/plain", "text/html"] == [p.get_content_type() for p in parsed.iter_parts()]
    assert ("<1@example.com>", "responder@example.com") == (
        parsed["Message-ID"],
        parsed["Reply-To"],
    )
    assert "Ana Pérez <ana@acme.es>" == str(parsed["To"])
    assert "Ventas Ñ <crm@example.com>" == str(parsed["From"])
    with pytest.raises(ValidationError):
        OutgoingEmail(
            message_id="<2@x>",
            sender="crm@example.com",
            to="a@b.es",
            subject="s",
            text="t",
            headers=(("X-Evil", "a\r\nBcc: x@y.z"),),
        )
