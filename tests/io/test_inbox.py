"""crm.inbox: e-mails logged as interactions of the contacts they name, once each."""

from __future__ import annotations

from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path

import pytest
from click.testing import CliRunner

import crmkit
from crmkit import ValidationError
from crmkit.cli import cli
from crmkit.io.inbox import Attachment, Direction, html_to_text
from tests.conftest import record_counts

INBOUND = b"""\
From: =?utf-8?q?Ana_P=C3=A9rez?= <Ana+crm@ACME.es>
To: Luis <luis@crm.es>, Pepe <pepe@acme.es>
Cc: otro@fuera.es
Subject: =?utf-8?q?Presupuesto_de_la_panader=C3=ADa?=
Date: Tue, 10 Mar 2026 10:15:00 +0100
Message-ID: <abc123@acme.es>
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="XX"

--XX
Content-Type: multipart/alternative; boundary="YY"

--YY
Content-Type: text/html; charset=utf-8

<html><head><style>p {color: red}</style></head><body>
<p>Hola Luis,</p><p>te env&iacute;o el presupuesto.</p></body></html>
--YY--
--XX
Content-Type: application/pdf
Content-Disposition: attachment; filename="presupuesto.pdf"
Content-Transfer-Encoding: base64

JVBERi0xLjQK
--XX--
"""


def _fill(crm: crmkit.CRM) -> crmkit.CRM:
    acme = crm.organizations.create(name="Acme S.A.")
    crm.contacts.create(first_name="Ana", last_name="Pérez", email="ana@acme.es", organization=acme)
    crm.contacts.create(first_name="Pepe", email="pepe@acme.es", organization=acme)
    crm.users.create(name="Luis", email="luis@crm.es")
    return crm


@pytest.fixture
def book(any_crm: crmkit.CRM) -> crmkit.CRM:
    """Acme with contacts Ana and Pepe, and the user Luis, on every store."""
    return _fill(any_crm)


@pytest.fixture
def small(crm: crmkit.CRM) -> crmkit.CRM:
    """The same book in memory, for behaviour that does not depend on the store."""
    return _fill(crm)


def test_an_inbound_email_is_logged_for_the_matched_contacts(book: crmkit.CRM) -> None:
    """From/To/Cc matched by normalized e-mail; HTML body as text; attachments listed."""
    done = book.inbox.ingest(INBOUND)

    ana = book.contacts.find(first_name="Ana")[0]
    luis = book.users.find(name="Luis")[0]
    assert done.direction is Direction.INBOUND
    assert [c.first_name for c in done.contacts] == ["Ana", "Pepe"]
    assert done.attachments == (Attachment("presupuesto.pdf", "application/pdf", 9),)
    logged = done.interaction
    assert logged is not None
    assert (logged.kind, logged.status) == ("email", crmkit.InteractionStatus.DONE)
    assert (logged.contact_id, logged.organization_id) == (ana.id, ana.organization_id)
    assert logged.assignee_id == luis.id
    assert logged.subject == "Presupuesto de la panadería"
    assert logged.occurred_at == datetime(2026, 3, 10, 9, 15, tzinfo=UTC)
    assert logged.tags == ("inbound",)
    assert logged.external_ref == "<abc123@acme.es>"
    assert logged.description is not None
    assert logged.description.startswith("Hola Luis,\n\nte envío el presupuesto.")
    assert "color" not in logged.description
    assert "Pepe <pepe@acme.es>" in logged.description
    assert "presupuesto.pdf (application/pdf, 9 bytes)" in logged.description


def test_the_same_message_ingested_twice_is_logged_once(book: crmkit.CRM, tmp_path: Path) -> None:
    path = tmp_path / "mensaje.eml"
    path.write_bytes(INBOUND)
    first = book.inbox.ingest(path)
    again = book.inbox.ingest(path)

    assert (first.duplicate, again.duplicate) == (False, True)
    assert again.interaction is not None
    assert first.interaction is not None
    assert again.interaction.id == first.interaction.id
    assert book.interactions.count() == 1


def test_an_email_from_a_user_is_outbound(small: crmkit.CRM) -> None:
    book = small
    message = EmailMessage()
    message["From"] = "Luis <LUIS@crm.es>"
    message["To"] = "Pepe <pepe@acme.es>"
    message["Subject"] = "Oferta"
    message["Message-ID"] = "<out-1@crm.es>"
    message.set_content("Adjunto la oferta.")
    done = book.inbox.ingest(message)

    luis = book.users.find(name="Luis")[0]
    assert done.direction is Direction.OUTBOUND
    assert done.interaction is not None
    assert done.interaction.assignee_id == luis.id
    assert done.interaction.tags == ("outbound",)
    assert done.interaction.description == "Adjunto la oferta."
    assert [c.first_name for c in done.contacts] == ["Pepe"]


def test_an_unknown_sender_becomes_a_lead_when_asked(book: crmkit.CRM) -> None:
    message = EmailMessage()
    message["From"] = '"Núñez, Marta" <marta@nueva.es>'
    message["To"] = "luis@crm.es"
    message["Subject"] = "Quiero información"
    message["Message-ID"] = "<lead-1@nueva.es>"
    message.set_content("¿Tenéis catálogo?")

    ignored = book.inbox.ingest(message)
    assert (ignored.interaction, ignored.lead, book.leads.count()) == (None, None, 0)
    done = book.inbox.ingest(message, create_lead=True)
    assert done.lead is not None
    assert (done.lead.first_name, done.lead.last_name) == ("Marta", "Núñez")
    assert str(done.lead.email) == "marta@nueva.es"
    assert done.lead.channel is crmkit.LeadChannel.EMAIL
    assert done.lead.message == "Quiero información\n\n¿Tenéis catálogo?"
    assert book.inbox.ingest(message, create_lead=True).duplicate
    assert book.leads.count() == 1


def test_a_message_without_sender_is_refused_and_nothing_written(book: crmkit.CRM) -> None:
    before = record_counts(book)
    for bad in (b"", b"Subject: hola\n\nsin remitente\n", b"\x00\x01garbage"):
        with pytest.raises(ValidationError) as error:
            book.inbox.ingest(bad)
        assert (error.value.field, error.value.code) == ("From", "required")
    with pytest.raises(ValidationError) as wrong:
        book.inbox.ingest(42)  # type: ignore[arg-type]
    assert wrong.value.code == "type"
    assert record_counts(book) == before
    assert book.interactions.count() == 0


def test_a_message_without_message_id_is_still_ingested_once(small: crmkit.CRM) -> None:
    book = small
    raw = b"From: ana@acme.es\nTo: luis@crm.es\nSubject: sin id\n\nhola\n"
    first = book.inbox.ingest(raw)
    assert first.message_id.startswith("sha256:")
    assert book.inbox.ingest(raw).duplicate


def test_html_to_text_drops_tags_scripts_and_styles() -> None:
    html = "<div>Uno<br>dos</div><script>alert(1)</script><p>tres &amp; cuatro</p>"
    assert html_to_text(html) == "Uno\ndos\n\ntres & cuatro"


def test_crmkit_mail_ingest(tmp_path: Path) -> None:
    db = str(tmp_path / "crm.db")
    with crmkit.open(db) as crm:
        crm.contacts.create(first_name="Ana", email="ana@acme.es")
    good = tmp_path / "bueno.eml"
    good.write_bytes(INBOUND)
    bad = tmp_path / "malo.eml"
    bad.write_bytes(b"Subject: nada\n\n")
    result = CliRunner().invoke(
        cli, ["mail", "ingest", str(good), str(good), str(bad), "--db", db], env={"COLUMNS": "200"}
    )
    assert result.exit_code == 1, result.output
    assert "logged (inbound)" in result.output
    assert "already ingested" in result.output
    assert "refused" in result.output


def test_the_sample_email_is_logged_for_the_sample_card(crm: crmkit.CRM) -> None:
    """examples/data: the card of Lucía, then her e-mail asking for an offer."""
    data = Path(__file__).parents[2] / "examples" / "data"
    crm.users.create(name="Comercial", email="comercial@miempresa.es")
    assert crm.cards.import_file(data / "tarjetas.vcf").created == 2

    done = crm.inbox.ingest(data / "correo.eml")
    assert done.interaction is not None
    lucia = crm.contacts.find(external_ref="TV-002")[0]
    assert done.interaction.contact_id == lucia.id
    assert done.interaction.subject == "Petición de oferta - ERP"
    assert [a.filename for a in done.attachments] == ["pliego-erp.pdf"]
