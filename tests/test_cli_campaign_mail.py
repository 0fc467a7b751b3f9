"""``crmkit campaign send`` and ``crmkit campaign import-metrics``."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

import crmkit
from crmkit import And
from crmkit.cli import cli
from tests.smtp_server import smtp_server


def _database(tmp_path: Path) -> str:
    db = str(tmp_path / "crm.db")
    with crmkit.open(db) as crm:
        acme = crm.organizations.create(name="Acme")
        crm.contacts.create(first_name="Ana", email="ana@acme.es", organization=acme)
        crm.contacts.create(first_name="Rafa", email="refuse@acme.es", organization=acme)
        crm.contacts.create(
            first_name="Dora", email="dora@acme.es", organization=acme, do_not_contact=True
        )
        crm.templates.create(
            name="hola",
            variants={"es": {"subject": "Hola {{ contact.first_name }}", "text": "¿Qué tal?"}},
        )
        segment = crm.segments.create(name="todos", criteria=And())
        crm.campaigns.launch(crm.campaigns.create(name="Otoño", segment=segment))
    return db


def test_campaign_send_uses_the_smtp_server_of_the_environment(tmp_path: Path) -> None:
    db = _database(tmp_path)
    with smtp_server() as (inbox, port):
        env = {
            "CRMKIT_SMTP_HOST": "127.0.0.1",
            "CRMKIT_SMTP_PORT": str(port),
            "CRMKIT_SMTP_SECURITY": "none",
        }
        args = ["campaign", "send", "Otoño", "-t", "hola", "--from", "crm@example.com"]
        result = CliRunner(env=env).invoke(cli, [*args, "--db", db])
        assert 1 == result.exit_code, result.output  # one recipient refused
        assert "refuse@acme.es" in result.output
        assert "skipped: do_not_contact" in result.output
        assert ["ana@acme.es"] == [r.rcpt_tos[0] for r in inbox.received]
        again = CliRunner(env=env).invoke(cli, [*args, "--db", db])
        assert 1 == len(inbox.received), again.output


def test_campaign_send_without_smtp_settings_is_a_one_line_error(tmp_path: Path) -> None:
    db = _database(tmp_path)
    result = CliRunner(env={"CRMKIT_SMTP_HOST": ""}).invoke(
        cli, ["campaign", "send", "Otoño", "-t", "hola", "--from", "a@b.es", "--db", db]
    )
    assert 1 == result.exit_code
    assert "CRMKIT_SMTP_HOST" in result.output
    dry = CliRunner(env={"CRMKIT_SMTP_HOST": ""}).invoke(
        cli,
        ["campaign", "send", "Otoño", "-t", "hola", "--from", "a@b.es", "--dry-run", "--db", db],
    )
    assert 0 == dry.exit_code, dry.output
    assert "would be sent" in dry.output


def test_campaign_import_metrics_reports_refused_rows(tmp_path: Path) -> None:
    db = _database(tmp_path)
    report = tmp_path / "informe.csv"
    report.write_text("Correo;Abierto;Clics\nana@acme.es;sí;1\nnadie@x.es;1;0\n", "utf-8")
    errors = tmp_path / "errores.csv"
    result = CliRunner().invoke(
        cli,
        [
            "campaign",
            "import-metrics",
            str(report),
            "--campaign",
            "Otoño",
            "--partial",
            "--db",
            db,
            "--errors",
            str(errors),
        ],
    )
    assert 1 == result.exit_code, result.output
    assert "1 created" in result.output
    assert "reference" in errors.read_text("utf-8")
    with crmkit.open(db) as crm:
        assert 1 == crm.campaigns.results("Otoño").email.opened
