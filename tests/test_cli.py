"""The ``crmkit`` command: ``--version`` and ``demo``."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

import crmkit
import crmkit.testing.sample
from crmkit import CRM, Money, StorageError, ValidationError
from crmkit.cli import _forecast, _redact, _short_money, cli, main
from crmkit.testing.sample import SampleBook, build_sample_book

WIDE = {"COLUMNS": "200"}


def _count(output: str, label: str) -> int:
    """The number printed after ``label`` in the records table."""
    match = re.search(rf"^\s*{label}\s+(\d+)\s*$", output, re.MULTILINE)
    assert match is not None, output
    return int(match.group(1))


def test_version_prints_the_package_version() -> None:
    """``crmkit --version`` prints ``crmkit <version>``."""
    result = CliRunner().invoke(cli, ["--version"])
    assert 0 == result.exit_code
    assert f"crmkit {crmkit.__version__}\n" == result.output


def test_main_is_the_console_entry_point(capsys: pytest.CaptureFixture[str]) -> None:
    """``main()`` runs the command and exits with its status."""
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert 0 == info.value.code
    assert f"crmkit {crmkit.__version__}\n" == capsys.readouterr().out


def test_demo_in_memory_prints_counts_and_organizations() -> None:
    """``demo --db :memory:`` builds the book and prints what it reads back."""
    result = CliRunner().invoke(
        cli, ["demo", "--db", ":memory:", "--organizations", "12", "--seed", "3"], env=WIDE
    )
    assert 0 == result.exit_code, result.output
    with crmkit.open(":memory:") as crm:
        book = build_sample_book(crm, organizations=12, seed=3)
        first = crm.organizations.find(order_by="name", limit=10)
    assert f"Created 12 organizations, {len(book.contacts)} contacts, " in result.output
    assert 12 == _count(result.output, "Organizations")
    assert len(book.contacts) == _count(result.output, "Contacts")
    assert 6 == _count(result.output, "Zones")
    assert "Organizations by market and zone" in result.output
    assert "Organizations (first 10 of 12 by name)" in result.output
    for org in first:
        assert org.name in result.output
        assert org.phones[0].international() in result.output
    assert "Traceback" not in result.output


def test_demo_prints_the_weighted_pipeline_by_quarter() -> None:
    """The forecast table's total is crm.analytics' weighted open pipeline."""
    result = CliRunner().invoke(
        cli, ["demo", "--db", ":memory:", "--organizations", "12", "--seed", "3"], env=WIDE
    )
    with crmkit.open(":memory:") as crm:
        build_sample_book(crm, organizations=12, seed=3)
        total = crm.analytics.pipeline(by="quarter", currency="EUR").total

    assert 0 == result.exit_code, result.output
    assert "Forecast / previsión" in result.output
    [line] = [line for line in result.output.splitlines() if line.strip().startswith("total ")]
    expected = f"total {total.count} {_short_money(total.value)} {_short_money(total.weighted)}"
    assert expected == " ".join(line.split())


def test_the_forecast_table_is_left_out_without_a_rate_or_open_deals() -> None:
    """A book in dollars with no exchange-rate plugin, or with no open deal, gets no table."""
    with crmkit.open(":memory:") as crm:
        assert [] == _forecast(crm)
        acme = crm.organizations.create(name="Acme")
        crm.opportunities.create(name="Deal", organization=acme, amount=Money("10", "USD"))

        assert [] == _forecast(crm)
        assert 1 == len(_forecast(crm, currency="USD"))


def test_demo_labels_positions_in_the_contacts_language() -> None:
    """Spanish-speaking contacts show the Spanish position label, others the English one."""
    result = CliRunner().invoke(cli, ["demo", "--db", ":memory:"], env=WIDE)
    assert 0 == result.exit_code, result.output
    spanish = {"Dirección general", "Dirección comercial", "Compras", "Operaciones"}
    spanish |= {"Administración y finanzas", "Responsable de sistemas"}
    english = {"Chief executive", "Sales director", "Purchasing", "Finance", "IT manager"}
    english |= {"Operations"}
    assert any(label in result.output for label in spanish)
    assert any(label in result.output for label in english)


def test_demo_fits_a_narrow_terminal() -> None:
    """At 80 columns the tables stack fields instead of overflowing."""
    result = CliRunner().invoke(cli, ["demo", "--db", ":memory:"], env={"COLUMNS": "80"})
    assert 0 == result.exit_code, result.output
    assert max(len(line) for line in result.output.splitlines()) <= 80
    assert "Total" in result.output


def test_demo_twice_on_a_file_adds_nothing_the_second_time(tmp_path: Path) -> None:
    """Running the demo again on the same database leaves the book as it was."""
    db = str(tmp_path / "crm.db")
    runner = CliRunner()
    first = runner.invoke(cli, ["demo", "--db", db, "-n", "5"], env=WIDE)
    second = runner.invoke(cli, ["demo", "--db", db, "-n", "5"], env=WIDE)
    assert (0, 0) == (first.exit_code, second.exit_code), first.output + second.output
    assert "5 organizations were there from an earlier run" in second.output
    assert 5 == _count(second.output, "Organizations")
    assert _count(first.output, "Contacts") == _count(second.output, "Contacts")


def test_unknown_database_url_exits_1_with_a_message() -> None:
    """A URL crmkit cannot open is an error message and exit status 1, not a traceback."""
    result = CliRunner().invoke(cli, ["demo", "--db", "mysql://localhost/crm"])
    assert 1 == result.exit_code
    assert result.stderr.startswith("Error: url:")
    assert "Traceback" not in result.output
    assert "Created" not in result.output


def test_crmkit_error_exits_1_with_a_message(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any CrmkitError becomes a one-line red message and exit status 1."""

    def fail(crm: CRM, *, organizations: int = 40, seed: int = 7) -> SampleBook:
        raise StorageError("the disk is full")

    monkeypatch.setattr(crmkit.testing.sample, "build_sample_book", fail)
    result = CliRunner().invoke(cli, ["demo", "--db", ":memory:"])
    assert 1 == result.exit_code
    assert "Error: the disk is full\n" == result.stderr
    assert isinstance(result.exception, SystemExit)


def test_error_messages_are_printed_literally(monkeypatch: pytest.MonkeyPatch) -> None:
    """Text in an error that looks like Rich markup is shown as it is."""

    def fail(crm: CRM, *, organizations: int = 40, seed: int = 7) -> SampleBook:
        raise ValidationError("name", "contains [bold]markup[/bold]")

    monkeypatch.setattr(crmkit.testing.sample, "build_sample_book", fail)
    result = CliRunner().invoke(cli, ["demo", "--db", ":memory:"])
    assert 1 == result.exit_code
    assert "Error: name: contains [bold]markup[/bold]\n" == result.stderr


def test_negative_organizations_is_a_usage_error() -> None:
    """Click rejects a negative count before anything is opened."""
    result = CliRunner().invoke(cli, ["demo", "--db", ":memory:", "-n", "-1"])
    assert 2 == result.exit_code
    assert "--organizations" in result.stderr


def test_demo_hides_the_password_of_a_database_url() -> None:
    """The summary title never shows a password from ``--db``."""
    assert "postgresql://ana:***@db.example.com/crm" == _redact(
        "postgresql://ana:secret@db.example.com/crm"
    )
    assert "crm.db" == _redact("crm.db")


def test_demo_with_no_organizations_says_so() -> None:
    """``-n 0`` sets up the masters and says the book has no organizations."""
    result = CliRunner().invoke(cli, ["demo", "--db", ":memory:", "-n", "0"], env=WIDE)
    assert 0 == result.exit_code, result.output
    assert "The sample book has no organizations" in result.output
    assert 0 == _count(result.output, "Organizations")
    assert 6 == _count(result.output, "Zones")


def test_db_current_and_upgrade_report_the_schema_revision(tmp_path: Path) -> None:
    """db current shows an empty database; db upgrade creates it at head; again is a no-op."""
    from crmkit.stores.migrations import head_revision

    db = str(tmp_path / "crm.db")
    runner = CliRunner()
    empty = runner.invoke(cli, ["db", "current", "--db", db])
    upgraded = runner.invoke(cli, ["db", "upgrade", "--db", db])
    again = runner.invoke(cli, ["db", "upgrade", "--db", db])
    now = runner.invoke(cli, ["db", "current", "--db", db])
    assert (0, 0, 0, 0) == (empty.exit_code, upgraded.exit_code, again.exit_code, now.exit_code)
    assert "empty" in empty.output
    assert f"to {head_revision()}" in upgraded.output
    assert "already at" in again.output
    assert "up to date" in now.output


def test_db_upgrade_of_a_database_from_a_newer_crmkit_fails_cleanly(tmp_path: Path) -> None:
    """An unknown revision: exit status 1, a one-line error, the database untouched."""
    import sqlite3

    db = tmp_path / "crm.db"
    crmkit.open(db).close()
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE alembic_version SET version_num = 'ffff'")
    result = CliRunner().invoke(cli, ["db", "upgrade", "--db", str(db)])
    assert 1 == result.exit_code
    assert "unknown to this crmkit" in result.output
    assert "Traceback" not in result.output


def test_dedupe_lists_likely_duplicates_with_their_reasons(tmp_path: Path) -> None:
    """``crmkit dedupe`` prints each pair's probability, both names and why."""
    path = str(tmp_path / "crm.db")
    with crmkit.open(path, default_region="ES") as crm:
        crm.contacts.create(first_name="Ana", last_name="Pérez", email="ana@acme.es")
        crm.contacts.create(first_name="Perez", last_name="Ana", email="ANA+x@acme.es")
        crm.contacts.create(first_name="Luis", last_name="Gómez", email="luis@acme.es")

    result = CliRunner().invoke(cli, ["dedupe", "--db", path], env=WIDE)

    assert 0 == result.exit_code, result.output
    assert "3 contacts, 1 pairs compared, 1 likely duplicates" in result.output
    assert "Ana Pérez" in result.output
    assert "Perez Ana" in result.output
    assert "same names, first and last swapped" in result.output
    assert "the default model" in result.output


def test_dedupe_of_organizations_with_none_says_so(tmp_path: Path) -> None:
    path = str(tmp_path / "crm.db")
    with crmkit.open(path) as crm:
        crm.organizations.create(name="Acme")

    result = CliRunner().invoke(cli, ["dedupe", "--db", path, "--entity", "organization"])

    assert 0 == result.exit_code, result.output
    assert "0 likely duplicates" in result.output


PROBE_PLUGIN = """
from crmkit import StoreBackend, hookimpl
from crmkit.stores.memory import MemoryStore


@hookimpl
def crmkit_register_store_backends():
    return [StoreBackend(scheme="probe", open=lambda url: MemoryStore())]
"""


@pytest.fixture
def installed_probe(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A plugin installed under the crmkit entry-point group, serving probe:// books."""
    (tmp_path / "crmkit_cli_probe.py").write_text(PROBE_PLUGIN, encoding="utf-8")
    dist = tmp_path / "crmkit_cli_probe-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: crmkit-cli-probe\nVersion: 1.0\n", encoding="utf-8"
    )
    (dist / "entry_points.txt").write_text("[crmkit]\nprobe = crmkit_cli_probe\n", "utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delenv("CRMKIT_LOAD_ENTRY_POINTS", raising=False)


@pytest.mark.usefixtures("installed_probe")
def test_installed_plugins_load_only_with_the_load_entry_points_flag() -> None:
    """Without -P the plugin's URL scheme is unknown; with -P (or the variable) it works."""
    runner = CliRunner()
    without = runner.invoke(cli, ["dedupe", "--db", "probe://book"], env=WIDE)
    flag = runner.invoke(cli, ["-P", "dedupe", "--db", "probe://book"], env=WIDE)
    variable = runner.invoke(
        cli, ["dedupe", "--db", "probe://book"], env={**WIDE, "CRMKIT_LOAD_ENTRY_POINTS": "1"}
    )

    assert 1 == without.exit_code
    assert "registered: none" in without.output
    assert "Traceback" not in without.output
    assert (0, 0) == (flag.exit_code, variable.exit_code), flag.output + variable.output
    assert "0 contacts" in flag.output


# ------------------------------------------------------------------ automation


def test_demo_runs_a_campaign_to_roi_and_the_negotiation_rule(tmp_path: Path) -> None:
    """The demo prints the campaign's results (ROI as crm.campaigns computes it) and the
    follow-up call the negotiation rule planned; a second run adds neither again."""
    db = str(tmp_path / "crm.db")
    runner = CliRunner()
    first = runner.invoke(cli, ["demo", "--db", db, "-n", "12", "--seed", "3"], env=WIDE)
    second = runner.invoke(cli, ["demo", "--db", db, "-n", "12", "--seed", "3"], env=WIDE)
    assert (0, 0) == (first.exit_code, second.exit_code), first.output + second.output

    with crmkit.open(db) as crm:
        campaign = crm.campaigns.get_by_name("Spring push / Campaña de primavera")
        results = crm.campaigns.results(campaign)
        rule = crm.automation.get_by_name("Negotiation follow-up")
        [firing] = crm.automation.firings(rule)
        deal = crm.opportunities.get(firing.record_id)  # type: ignore[arg-type]
        [call] = crm.interactions.find(opportunity=deal.id, kind="call", status="planned")
        assert 1 == crm.campaigns.count()
    assert (2, 4) == (results.won, results.leads)
    assert results.roi is not None
    for output in (first.output, second.output):
        assert "Campaign Spring push / Campaña de primavera" in output
        assert f"{results.roi:.0%}" in output
        assert "Automation rule Negotiation follow-up" in output
        assert deal.name in output
    assert "negotiation" == deal.stage
    assert "Negotiation follow-up" == call.subject


def test_automation_run_fires_due_rules_once(tmp_path: Path) -> None:
    """``automation run --now`` fires an overdue rule once; the second run skips it."""
    from datetime import UTC, datetime

    from crmkit import Action, Trigger

    db = str(tmp_path / "crm.db")
    with crmkit.open(db, clock=lambda: datetime(2026, 3, 2, 9, tzinfo=UTC)) as crm:
        acme = crm.organizations.create(name="Acme")
        crm.interactions.plan(
            kind="call", scheduled_at=datetime(2026, 3, 2, 10, tzinfo=UTC), organization=acme
        )
        crm.automation.create(
            name="Chase",
            trigger=Trigger.interaction_overdue(),
            actions=[Action.plan_interaction("email", due_in=timedelta(days=1))],
        )
    runner = CliRunner()
    early = runner.invoke(cli, ["automation", "run", "--db", db, "--now", "2026-03-02T09:30Z"])
    first = runner.invoke(cli, ["automation", "run", "--db", db, "--now", "2026-03-02T11:00Z"])
    again = runner.invoke(cli, ["automation", "run", "--db", db, "--now", "2026-03-02T11:05Z"])
    listed = runner.invoke(cli, ["automation", "list", "--db", db], env=WIDE)

    assert (0, 0, 0, 0) == (early.exit_code, first.exit_code, again.exit_code, listed.exit_code)
    assert early.output.startswith("0 fired")
    assert first.output.startswith("1 fired, 0 already done, 0 failed.")
    assert "fired Chase for interaction" in first.output
    assert again.output.startswith("0 fired, 1 already done")
    assert "Chase" in listed.output
    assert "interaction_overdue" in listed.output


def test_automation_run_refuses_a_time_without_offset(tmp_path: Path) -> None:
    """``--now`` needs a UTC offset: usage error, exit status 2."""
    db = str(tmp_path / "crm.db")
    result = CliRunner().invoke(cli, ["automation", "run", "--db", db, "--now", "2026-03-02"])
    assert 2 == result.exit_code
    assert "--now" in result.stderr


def test_automation_run_exits_1_when_a_firing_fails(tmp_path: Path) -> None:
    """A failed firing is printed and the exit status is 1 (cron mails it)."""
    from datetime import UTC, datetime

    from crmkit import Action, Trigger

    db = str(tmp_path / "crm.db")
    with crmkit.open(db) as crm:
        crm.organizations.create(name="Acme")
        crm.automation.create(  # the sequence is registered by code this process lacks
            name="Hourly",
            trigger=Trigger.schedule(timedelta(hours=1)),
            actions=[Action.apply_sequence("onboarding")],
        )
    result = CliRunner().invoke(
        cli, ["automation", "run", "--db", db, "--now", datetime.now(UTC).isoformat()]
    )
    assert 1 == result.exit_code, result.output
    assert "failed: an automation rule failed in action 0 (apply_sequence)" in result.stderr
