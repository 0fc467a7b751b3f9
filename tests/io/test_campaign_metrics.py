"""Importing an e-mail tool's per-contact report into a campaign's e-mail metrics."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

import crmkit
from crmkit import And, OpenedEmail, ValidationError

SPANISH = """\
Correo electrónico;Enviado;Abierto;Clics;Rebotado;Baja
ana@acme.es;sí;24/11/2026 10:15;1;no;no
BOB@acme.es;1;0;0;0;x
carl@beta.es;1;;;sí;
nadie@nowhere.es;1;1;0;0;0
carl@beta.es;1;quizá;0;0;0
"""


def _book(crm: crmkit.CRM) -> dict[str, Any]:
    acme = crm.organizations.create(name="Acme")
    beta = crm.organizations.create(name="Beta")
    people = {
        name: crm.contacts.create(
            first_name=name.title(), email=f"{name}@{org_name}.es", organization=org
        )
        for name, org, org_name in (
            ("ana", acme, "acme"),
            ("bob", acme, "acme"),
            ("carl", beta, "beta"),
        )
    }
    segment = crm.segments.create(name="todos", criteria=And())
    campaign = crm.campaigns.launch(crm.campaigns.create(name="Otoño", segment=segment))
    return {"acme": acme, "beta": beta, "campaign": campaign, **people}


def _write(tmp_path: Path, text: str, name: str = "informe.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_a_spanish_report_lands_on_the_campaign_with_row_errors(
    any_crm: crmkit.CRM, tmp_path: Path
) -> None:
    book = _book(any_crm)
    path = _write(tmp_path, SPANISH)
    report = any_crm.imports.campaign_metrics(
        path, campaign="Otoño", mode="partial", date_format="%d/%m/%Y %H:%M"
    )
    assert [(5, "Correo electrónico", "reference"), (6, "Abierto", "flag")] == [
        (e.line, e.column, e.code) for e in report.errors
    ]
    assert (5, 3, 0, True) == (report.rows, report.created, report.updated, report.written)
    records = {e.contact_id: e for e in any_crm.campaigns.emails(book["campaign"])}
    ana = records[book["ana"].id]
    assert datetime(2026, 11, 24, 10, 15, tzinfo=UTC) == ana.opened_at
    assert ana.clicked_at == any_crm.now()
    assert ana.sent_at == any_crm.now()
    assert records[book["bob"].id].unsubscribed_at is not None
    assert records[book["carl"].id].bounced_at is not None
    email = any_crm.campaigns.results(book["campaign"]).email
    assert (3, 1, 2, 1, 1, 1) == (
        email.sent,
        email.bounced,
        email.delivered,
        email.opened,
        email.clicked,
        email.unsubscribed,
    )
    assert "0.5000" == str(email.open_rate)  # opened / delivered (sent - bounced)


def test_a_report_twice_changes_nothing_and_a_later_one_only_adds_facts(
    any_crm: crmkit.CRM, tmp_path: Path
) -> None:
    book = _book(any_crm)
    first = _write(tmp_path, "email,opened\nana@acme.es,2026-03-01T10:00:00+00:00\n", "a.csv")
    later = _write(
        tmp_path, "email,opened,clicked\nana@acme.es,2026-03-05T10:00:00+00:00,1\n", "b.csv"
    )
    assert 1 == any_crm.imports.campaign_metrics(first, campaign=book["campaign"]).created
    twice = any_crm.imports.campaign_metrics(first, campaign=book["campaign"])
    assert (0, 0, 1) == (twice.created, twice.updated, twice.unchanged)
    report = any_crm.imports.campaign_metrics(later, campaign=book["campaign"])
    assert 1 == report.updated
    [ana] = any_crm.campaigns.emails(book["campaign"])
    assert datetime(2026, 3, 1, 10, tzinfo=UTC) == ana.opened_at
    assert datetime(2026, 3, 1, 10, tzinfo=UTC) == ana.sent_at  # implied by the open
    assert ana.clicked_at is not None


def test_dry_run_and_atomic_imports_with_errors_write_nothing(
    any_crm: crmkit.CRM, tmp_path: Path
) -> None:
    book = _book(any_crm)
    path = _write(tmp_path, SPANISH)
    dry = any_crm.imports.campaign_metrics(
        path, campaign="Otoño", dry_run=True, date_format="%d/%m/%Y %H:%M"
    )
    assert (3, False, 2) == (dry.created, dry.written, len(dry.errors))
    atomic = any_crm.imports.campaign_metrics(path, campaign="Otoño", date_format="%d/%m/%Y %H:%M")
    assert (False, [5, 6]) == (atomic.written, atomic.failed_lines)
    assert [] == any_crm.campaigns.emails(book["campaign"])


def test_headers_can_be_mapped_and_a_file_needs_an_address_column(
    crm: crmkit.CRM, tmp_path: Path
) -> None:
    _book(crm)
    path = _write(tmp_path, "Contacto,Abrió el mensaje,Notas\nana@acme.es,1,hola\n")
    with pytest.raises(ValidationError) as caught:
        crm.imports.campaign_metrics(path, campaign="Otoño")
    assert ("mapping", "header") == (caught.value.field, caught.value.code)
    report = crm.imports.campaign_metrics(
        path, campaign="Otoño", mapping={"Contacto": "email", "Abrió el mensaje": "opened"}
    )
    assert (1, ()) == (report.created, report.errors)
    with pytest.raises(ValidationError) as caught:
        crm.imports.campaign_metrics(path, campaign="Otoño", mapping={"Notas": "notes"})
    assert "unknown_column" == caught.value.code


def test_opened_email_segments_read_the_imported_opens(any_crm: crmkit.CRM, tmp_path: Path) -> None:
    book = _book(any_crm)
    path = _write(
        tmp_path,
        "email,opened\nana@acme.es,2026-03-01T10:00:00+00:00\ncarl@beta.es,0\n",
    )
    any_crm.imports.campaign_metrics(path, campaign="Otoño")
    campaign = book["campaign"]
    assert [book["acme"].id] == any_crm.segments.preview(OpenedEmail(campaign.id))
    in_march = OpenedEmail(
        campaign.id, datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 4, 1, tzinfo=UTC)
    )
    assert [book["acme"].id] == any_crm.segments.preview(in_march)
    before = OpenedEmail(campaign.id, end=datetime(2026, 3, 1, 10, tzinfo=UTC))
    assert [] == any_crm.segments.preview(before)
    saved = any_crm.segments.create(name="abrieron", criteria=OpenedEmail("Otoño"))
    assert saved.criteria == OpenedEmail(campaign.id)
    assert 1 == any_crm.segments.member_count(saved)
