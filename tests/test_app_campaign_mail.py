"""Campaign e-mail: templates, sends through a real SMTP server, per-recipient state, metrics."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

import crmkit
from crmkit import (
    And,
    CampaignEmail,
    SmtpSettings,
    TemplateError,
    ValidationError,
)
from crmkit.core import changes
from crmkit.core.mail import campaign_email_id
from crmkit.services import mail
from tests.conftest import FixedClock
from tests.smtp_server import RecordingHandler, smtp_server

VARIANTS = {
    "es": {
        "subject": "Hola {{ contact.first_name }}",
        "text": "Hola {{ contact.first_name }}, de {{ organization.name }}.\n{{ sender.name }}",
        "html": "<p>Hola {{ contact.first_name }} de {{ organization.name }}</p>",
    },
    "en": {
        "subject": "Hello {{ contact.first_name }}",
        "text": "Hello {{ contact.first_name }} at {{ organization.name }}.",
    },
}


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[RecordingHandler, int]]:
    with smtp_server() as running:
        yield running


@pytest.fixture
def inbox(server: tuple[RecordingHandler, int]) -> RecordingHandler:
    handler = server[0]
    handler.clear()
    return handler


@pytest.fixture
def mail_crm(
    backend_url: str, clock: FixedClock, server: tuple[RecordingHandler, int]
) -> Iterator[crmkit.CRM]:
    """A CRM on each backend, sending through the loopback SMTP server."""
    settings = SmtpSettings(host="127.0.0.1", port=server[1], security="none", timeout=10)
    with crmkit.open(backend_url, clock=clock, default_region="ES", smtp=settings) as crm:
        yield crm


@pytest.fixture
def memory_mail_crm(
    clock: FixedClock, server: tuple[RecordingHandler, int]
) -> Iterator[crmkit.CRM]:
    """The same on a MemoryStore only, for behaviour that does not depend on the store."""
    settings = SmtpSettings(host="127.0.0.1", port=server[1], security="none", timeout=10)
    with crmkit.open(":memory:", clock=clock, default_region="ES", smtp=settings) as crm:
        yield crm


def _book(crm: crmkit.CRM) -> dict[str, Any]:
    """Two members: Acme (Ana es, Bob en, Dora do-not-contact, Eva no e-mail), Beta (Carl)."""
    acme = crm.organizations.create(name="Acme & <Hijos>")
    beta = crm.organizations.create(name="Beta")
    people = {
        "ana": crm.contacts.create(
            first_name="Ana", email="ana@acme.es", organization=acme, language="es"
        ),
        "bob": crm.contacts.create(
            first_name="Bob", email="bob@acme.es", organization=acme, language="en-GB"
        ),
        "dora": crm.contacts.create(
            first_name="Dora", email="dora@acme.es", organization=acme, do_not_contact=True
        ),
        "eva": crm.contacts.create(first_name="Eva", organization=acme),
        "carl": crm.contacts.create(first_name="Carl", email="carl@beta.es", organization=beta),
    }
    segment = crm.segments.create(name="todos", criteria=And())
    campaign = crm.campaigns.launch(
        crm.campaigns.create(name="Otoño", kind="email", segment=segment)
    )
    template = crm.templates.create(name="bienvenida", variants=VARIANTS, default_language="es")
    sender = crm.users.create(name="Lucía Gil")
    return {
        "acme": acme,
        "beta": beta,
        "campaign": campaign,
        "template": template,
        "sender": sender,
        **people,
    }


def _by_address(inbox: RecordingHandler) -> dict[str, Any]:
    return {r.rcpt_tos[0]: r.message for r in inbox.received}


# ----------------------------------------------------------------- templates


def test_each_contact_gets_their_language_and_the_html_part_escapes_values(
    mail_crm: crmkit.CRM, inbox: RecordingHandler
) -> None:
    """es -> Spanish, en-GB -> English (primary language), none -> the default (es).

    Values are escaped in the HTML part and kept as they are in the text part.
    """
    book = _book(mail_crm)
    report = mail_crm.campaigns.send(
        book["campaign"], "bienvenida", sender="crm@example.com", sender_user=book["sender"]
    )
    assert 3 == report.sent
    got = _by_address(inbox)
    assert "Hola Ana" == got["ana@acme.es"]["Subject"]
    assert "Hello Bob" == got["bob@acme.es"]["Subject"]
    assert "Hola Carl" == got["carl@beta.es"]["Subject"]
    body = got["ana@acme.es"].get_body(("plain",)).get_content().replace("\r\n", "\n")
    assert "Hola Ana, de Acme & <Hijos>.\nLucía Gil" in body
    html = got["ana@acme.es"].get_body(("html",)).get_content()
    assert "<p>Hola Ana de Acme &amp; &lt;Hijos&gt;</p>" in html


def test_unknown_variable_is_refused_and_nothing_is_sent(
    mail_crm: crmkit.CRM, inbox: RecordingHandler
) -> None:
    book = _book(mail_crm)
    mail_crm.templates.create(
        name="typo", variants={"en": {"subject": "Hi", "text": "Hi {{ contact.nickname }}"}}
    )
    with pytest.raises(TemplateError) as caught:
        mail_crm.campaigns.send(book["campaign"], "typo", sender="crm@example.com")
    assert ("template_variable", "typo", "en", "text") == (
        caught.value.code,
        caught.value.template,
        caught.value.language,
        caught.value.part,
    )
    assert [] == inbox.received
    assert [] == mail_crm.campaigns.emails(book["campaign"])
    assert 0 == mail_crm.interactions.count(kind="email")


def test_a_missing_context_value_is_an_unknown_variable(memory_mail_crm: crmkit.CRM) -> None:
    """Without a sending user, ``{{ sender.name }}`` is undefined: an error, not blank."""
    book = _book(memory_mail_crm)
    with pytest.raises(TemplateError) as caught:
        memory_mail_crm.templates.render(
            "bienvenida", contact=book["ana"], organization=book["acme"]
        )
    assert "template_variable" == caught.value.code


ESCAPES = (
    "{{ ''.__class__.__mro__ }}",
    "{{ contact.__class__.__init__.__globals__ }}",
    "{{ contact.first_name.__class__.__subclasses__() }}",
    "{{ ().__class__.__bases__[0].__subclasses__() }}",
    "{{ cycler.__init__.__globals__.os.popen('id').read() }}",
)


def test_template_code_cannot_leave_the_sandbox(
    mail_crm: crmkit.CRM, inbox: RecordingHandler
) -> None:
    book = _book(mail_crm)
    for n, source in enumerate(ESCAPES):
        name = f"evil{n}"
        mail_crm.templates.create(name=name, variants={"en": {"subject": "x", "text": source}})
        with pytest.raises(TemplateError) as caught:
            mail_crm.templates.render(name, contact=book["ana"])
        assert caught.value.code in ("template_sandbox", "template_variable"), source
        with pytest.raises(TemplateError):
            mail_crm.campaigns.send(book["campaign"], name, sender="crm@example.com")
    assert [] == inbox.received
    assert [] == mail_crm.campaigns.emails(book["campaign"])


def test_a_template_that_does_not_parse_is_not_saved(memory_mail_crm: crmkit.CRM) -> None:
    with pytest.raises(TemplateError) as caught:
        memory_mail_crm.templates.create(
            name="broken", variants={"es": {"subject": "Hola", "text": "{% if %}"}}
        )
    assert ("template_syntax", "variants[es].text") == (caught.value.code, caught.value.field)
    assert 0 == memory_mail_crm.templates.count()


def test_template_checks_its_languages(memory_mail_crm: crmkit.CRM) -> None:
    with pytest.raises(ValidationError) as caught:
        memory_mail_crm.templates.create(
            name="x", variants={"es": {"subject": "a", "text": "b"}}, default_language="fr"
        )
    assert "default_language" == caught.value.field
    with pytest.raises(ValidationError) as caught:
        memory_mail_crm.templates.create(name="x", variants={"es": {"subject": "a"}})
    assert "variants[es].text" == caught.value.field
    assert 0 == memory_mail_crm.templates.count()


def test_a_newline_in_a_rendered_subject_cannot_add_headers(
    memory_mail_crm: crmkit.CRM, inbox: RecordingHandler
) -> None:
    book = _book(memory_mail_crm)
    memory_mail_crm.templates.create(
        name="inject",
        variants={"en": {"subject": "Hi{{ '\\r\\nBcc: x@evil.com' }}", "text": "t"}},
    )
    memory_mail_crm.campaigns.send(book["campaign"], "inject", sender="crm@example.com")
    for received in inbox.received:
        assert received.message["Bcc"] is None
        assert "Hi Bcc: x@evil.com" == received.message["Subject"]


# --------------------------------------------------------------------- sends


def test_send_skips_excluded_contacts_logs_each_send_and_never_sends_twice(
    mail_crm: crmkit.CRM, inbox: RecordingHandler, clock: FixedClock
) -> None:
    book = _book(mail_crm)
    _unsubscribe_elsewhere(mail_crm, book["carl"])
    report = mail_crm.campaigns.send(
        book["campaign"], "bienvenida", sender="crm@example.com", sender_user=book["sender"]
    )
    assert ["ana@acme.es", "bob@acme.es"] == sorted(_by_address(inbox))
    assert (2, {"do_not_contact": 1, "no_email": 1, "unsubscribed": 1}) == (
        report.sent,
        dict(report.skipped),
    )
    records = {e.contact_id: e for e in mail_crm.campaigns.emails(book["campaign"])}
    assert {book["ana"].id, book["bob"].id} == set(records)
    ana = records[book["ana"].id]
    assert ana.sent_at == clock.current
    assert ana.message_id == _by_address(inbox)["ana@acme.es"]["Message-ID"]
    logged = mail_crm.interactions.find(kind="email")
    assert {(i.contact_id, i.organization_id, i.campaign_id, i.status.value) for i in logged} == {
        (book["ana"].id, book["acme"].id, book["campaign"].id, "done"),
        (book["bob"].id, book["acme"].id, book["campaign"].id, "done"),
    }
    assert ana.interaction_id in {i.id for i in logged}
    again = mail_crm.campaigns.send(
        book["campaign"], "bienvenida", sender="crm@example.com", sender_user=book["sender"]
    )
    assert (0, 2) == (again.sent, again.skipped["already_sent"])
    assert 2 == len(inbox.received)
    assert 2 == mail_crm.interactions.count(kind="email")


def test_a_refused_recipient_is_reported_and_retried_next_time(
    mail_crm: crmkit.CRM, inbox: RecordingHandler
) -> None:
    book = _book(mail_crm)
    refused = mail_crm.contacts.create(
        first_name="Rafa", email="refuse@beta.es", organization=book["beta"]
    )
    report = mail_crm.campaigns.send(
        book["campaign"], "bienvenida", sender="crm@example.com", sender_user=book["sender"]
    )
    assert 3 == report.sent
    [failure] = report.failures
    assert (refused.id, "refuse@beta.es", "refused", True) == (
        failure.contact_id,
        failure.email,
        failure.code,
        failure.permanent,
    )
    assert failure.reason.startswith("550")
    record = next(
        e for e in mail_crm.campaigns.emails(book["campaign"]) if e.contact_id == refused.id
    )
    assert (None, "refused") == (record.sent_at, record.error_code)
    assert 1 == mail_crm.campaigns.results(book["campaign"]).email.failed
    again = mail_crm.campaigns.send(
        book["campaign"], "bienvenida", sender="crm@example.com", sender_user=book["sender"]
    )
    assert (0, 1) == (again.sent, len(again.failures))


def test_an_unreachable_server_is_a_typed_failure_per_recipient(clock: FixedClock) -> None:
    from tests.smtp_server import free_port

    settings = SmtpSettings(host="127.0.0.1", port=free_port(), security="none", timeout=2)
    with crmkit.open(":memory:", clock=clock, smtp=settings) as crm:
        book = _book(crm)
        report = crm.campaigns.send(
            book["campaign"], "bienvenida", sender="crm@example.com", sender_user=book["sender"]
        )
        assert 0 == report.sent
        assert {"connection"} == {f.code for f in report.failures}
        assert 3 == len(report.failures)
        assert 0 == crm.interactions.count(kind="email")


def test_a_crash_after_smtp_leaves_recipients_unconfirmed_and_never_resends(
    mail_crm: crmkit.CRM, inbox: RecordingHandler, monkeypatch: pytest.MonkeyPatch
) -> None:
    """At most once: claimed before SMTP, so a crash before the journal write resends nothing."""
    book = _book(mail_crm)

    def crash(*args: object, **kwargs: object) -> None:
        raise RuntimeError("power cut")

    with monkeypatch.context() as patch:
        patch.setattr(mail, "_record", crash)
        with pytest.raises(RuntimeError):
            mail_crm.campaigns.send(
                book["campaign"], "bienvenida", sender="crm@example.com", sender_user=book["sender"]
            )
    assert 3 == len(inbox.received)
    records = mail_crm.campaigns.emails(book["campaign"])
    assert [True] * 3 == [e.unconfirmed for e in records]
    assert 3 == mail_crm.campaigns.results(book["campaign"]).email.unconfirmed
    again = mail_crm.campaigns.send(
        book["campaign"], "bienvenida", sender="crm@example.com", sender_user=book["sender"]
    )
    assert (0, 3) == (again.sent, len(again.unconfirmed))
    assert 3 == len(inbox.received)
    retried = mail_crm.campaigns.send(
        book["campaign"],
        "bienvenida",
        sender="crm@example.com",
        sender_user=book["sender"],
        retry_unconfirmed=True,
    )
    assert 3 == retried.sent
    assert 6 == len(inbox.received)  # at least once, when asked


def test_dry_run_renders_and_counts_but_sends_and_writes_nothing(
    memory_mail_crm: crmkit.CRM, inbox: RecordingHandler
) -> None:
    book = _book(memory_mail_crm)
    report = memory_mail_crm.campaigns.send(
        book["campaign"],
        "bienvenida",
        sender="crm@example.com",
        sender_user=book["sender"],
        dry_run=True,
    )
    assert (3, True) == (report.sent, report.dry_run)
    assert [] == inbox.received
    assert [] == memory_mail_crm.campaigns.emails(book["campaign"])


def test_only_an_active_campaign_sends(memory_mail_crm: crmkit.CRM) -> None:
    memory_mail_crm.templates.create(name="t", variants={"en": {"subject": "s", "text": "t"}})
    planned = memory_mail_crm.campaigns.create(name="Borrador")
    with pytest.raises(ValidationError) as caught:
        memory_mail_crm.campaigns.send(planned, "t", sender="crm@example.com")
    assert ("campaign", "status") == (caught.value.field, caught.value.code)


def test_without_a_sender_plugin_nothing_is_claimed(crm: crmkit.CRM) -> None:
    book = _book(crm)
    with pytest.raises(ValidationError) as caught:
        crm.campaigns.send(book["campaign"], "bienvenida", sender="crm@example.com")
    assert "no_sender" == caught.value.code
    assert [] == crm.campaigns.emails(book["campaign"])


# ------------------------------------------------------------------- metrics


def _unsubscribe_elsewhere(crm: crmkit.CRM, contact: crmkit.Contact) -> None:
    """Record that ``contact`` unsubscribed from another campaign."""
    other = crm.campaigns.create(name="Anterior")
    record, _ = changes.create(
        CampaignEmail,
        id=campaign_email_id(other.id, contact.id),
        now=crm.now(),
        campaign_id=other.id,
        contact_id=contact.id,
        email=contact.email,
        sent_at=crm.now() - timedelta(days=30),
        unsubscribed_at=crm.now() - timedelta(days=29),
    )
    with crm.store.unit_of_work() as uow:
        uow.repository(CampaignEmail).add(record)
        uow.commit()


def test_results_count_email_metrics_with_rates(mail_crm: crmkit.CRM) -> None:
    book = _book(mail_crm)
    campaign = book["campaign"]
    now = mail_crm.now()
    rows = [
        {"sent_at": now, "opened_at": now, "clicked_at": now},
        {"sent_at": now, "opened_at": now},
        {"sent_at": now, "bounced_at": now},
        {"sent_at": now, "unsubscribed_at": now, "opened_at": now},
    ]
    contacts = [book["ana"], book["bob"], book["carl"], book["dora"]]
    records = [
        changes.create(
            CampaignEmail,
            id=campaign_email_id(campaign.id, c.id),
            now=now,
            campaign_id=campaign.id,
            contact_id=c.id,
            **values,
        )[0]
        for c, values in zip(contacts, rows, strict=True)
    ]
    with mail_crm.store.unit_of_work() as uow:
        uow.repository(CampaignEmail).add_many(records)
        uow.commit()
    email = mail_crm.campaigns.results(campaign).email
    assert (4, 3, 3, 1, 1, 1) == (
        email.sent,
        email.delivered,
        email.opened,
        email.clicked,
        email.bounced,
        email.unsubscribed,
    )
    assert ("0.2500", "1.0000", "0.3333", "0.3333", "0.3333") == (
        str(email.bounce_rate),
        str(email.open_rate),
        str(email.click_rate),
        str(email.click_to_open_rate),
        str(email.unsubscribe_rate),
    )


def test_templates_and_email_records_read_back_as_written_one_per_contact(
    mail_crm: crmkit.CRM,
) -> None:
    book = _book(mail_crm)
    template = book["template"]
    assert template == mail_crm.templates.get(template.id)
    assert template == mail_crm.templates.get_by_name("bienvenida")
    mail_crm.campaigns.send(
        book["campaign"], template, sender="crm@example.com", sender_user=book["sender"]
    )
    stored = mail_crm.campaigns.emails(book["campaign"])
    assert 3 == len(stored)
    with mail_crm.store.unit_of_work(write=False) as uow:
        again = uow.repository(CampaignEmail).get_many([e.id for e in stored])
    assert {e.id: e for e in stored} == again
    updated = mail_crm.templates.update(
        template.id,
        expected_version=template.version,
        variants={"en": {"subject": "s", "text": "t"}},
        default_language="en",
    )
    assert ("en",) == tuple(v.language for v in mail_crm.templates.get(updated.id).variants)
    # one record per (campaign, contact)
    campaign, dora = book["campaign"], book["dora"]

    def make() -> CampaignEmail:
        record, _ = changes.create(
            CampaignEmail,
            id=campaign_email_id(campaign.id, dora.id),
            now=mail_crm.now(),
            campaign_id=campaign.id,
            contact_id=dora.id,
        )
        return record

    with mail_crm.store.unit_of_work() as uow:
        uow.repository(CampaignEmail).add(make())
        uow.commit()
    with pytest.raises(crmkit.DuplicateError), mail_crm.store.unit_of_work() as uow:
        uow.repository(CampaignEmail).add(make())
