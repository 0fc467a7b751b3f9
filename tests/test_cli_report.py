"""``crmkit report``: analytics as Rich tables, CSV, JSON and PNG charts."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from click.testing import CliRunner
from matplotlib.image import imread

import crmkit
from crmkit import Money
from crmkit.cli import _REPORTS, cli
from tests.conftest import FixedClock

WIDE = {"COLUMNS": "200"}


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> str:
    """Ana's 12000 deal in proposal (Q1 2026), Luis's 4000 lead (Q2), one won and one lost;
    Ana is in the Ventas and Grandes cuentas teams, Luis in Ventas."""
    clock = FixedClock()
    path = str(tmp_path_factory.mktemp("report") / "crm.db")
    with crmkit.open(path, clock=clock) as crm:
        norte = crm.zones.create(key="norte", name="Norte")
        acme = crm.organizations.create(name="Acme S.A.", zone=norte)
        ana = crm.users.create(name="=SUM(A1) Ana", email="ana@example.com")
        luis = crm.users.create(name="Luis", email="luis@example.com")
        crm.teams.create(name="Ventas", members=[ana, luis])
        crm.teams.create(name="Grandes cuentas", members=[ana])
        crm.opportunities.create(
            name="ERP", organization=acme, stage="proposal", amount=Money("12000", "EUR"),
            expected_close=date(2026, 3, 31), owner=ana,
        )  # fmt: skip
        crm.opportunities.create(
            name="CRM", organization=acme, amount=Money("4000", "EUR"),
            expected_close=date(2026, 5, 15), owner=luis,
        )  # fmt: skip
        won = crm.opportunities.create(
            name="Won", organization=acme, stage="negotiation", amount=Money("3000", "EUR"),
            owner=ana, expected_close=date(2026, 1, 31),
        )  # fmt: skip
        lost = crm.opportunities.create(name="Lost", organization=acme, amount=Money("1000", "EUR"))
        crm.interactions.log(
            kind="call", organization=acme, outcome="initial-interest", assignee=luis,
            occurred_at=clock(),
        )  # fmt: skip
        clock.advance(days=10)
        crm.opportunities.win(won.id)
        crm.opportunities.lose(lost.id, reason="price")
        crm.targets.create(user=ana, period="2026-Q1", amount=Money("2000", "EUR"))
        crm.targets.create(zone=norte, period="2026-Q1", amount=Money("6000", "EUR"))
    return path


def _run(*args: str) -> str:
    result = CliRunner().invoke(cli, ["report", *args], env=WIDE)
    assert 0 == result.exit_code, result.output
    return result.output


def test_pipeline_by_owner_prints_names_and_exact_figures(db: str) -> None:
    """The table names the owners; 12000 x 0.5 and 4000 x 0.1 weighted."""
    output = _run("pipeline", "--db", db, "--by", "owner")
    assert "Pipeline as of" in output
    assert "(EUR)" in output
    lines = {line.split()[0]: line.split()[-4:] for line in output.splitlines() if "," in line}
    assert ["1", "0", "12,000.00", "6,000.00"] == lines["=SUM(A1)"][-4:]
    assert ["1", "0", "4,000.00", "400.00"] == lines["Luis"]


def test_csv_has_ids_names_and_exact_amounts(db: str) -> None:
    """CSV rows match the report; a name that looks like a formula is escaped."""
    output = _run("pipeline", "--db", db, "--by", "owner", "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(output)))
    assert ["owner", "name", "count", "unvalued", "value", "weighted", "currency"] == list(rows[0])
    by_name = {row["name"]: row for row in rows}
    assert {"'=SUM(A1) Ana", "Luis"} == set(by_name)
    assert ("12000.00", "6000.00") == (
        by_name["'=SUM(A1) Ana"]["value"],
        by_name["'=SUM(A1) Ana"]["weighted"],
    )


def test_pipeline_and_winrate_by_team_name_the_teams(db: str) -> None:
    """Ana's 12000 deal counts for both her teams; the total counts it once and a note says
    the rows may add up to more.  Ana's win counts for both; the lost deal has no owner."""
    document = json.loads(_run("pipeline", "--db", db, "--by", "team", "--format", "json"))
    assert {"Ventas": (2, "16000.00"), "Grandes cuentas": (1, "12000.00")} == {
        row["name"]: (row["count"], row["value"]) for row in document["rows"]
    }
    assert (2, "16000.00") == (document["notes"]["deals"], document["notes"]["value"])
    assert "every team of its owner" in document["notes"]["teams"]
    table = _run("pipeline", "--db", db, "--by", "team")
    assert "Grandes cuentas" in table
    assert "teams: a deal counts under every team" in table
    rows = json.loads(_run("winrate", "--db", db, "--by", "team", "--format", "json"))["rows"]
    assert [("Grandes cuentas", 1, 0), ("Ventas", 1, 0), ("", 0, 1)] == sorted(
        ((row["name"], row["won"], row["lost"]) for row in rows), key=lambda r: (r[0] == "", r[0])
    )


def test_json_keeps_decimals_as_text(db: str) -> None:
    """JSON: counts are numbers, amounts and ratios exact strings."""
    document = json.loads(_run("winrate", "--db", db, "--format", "json"))
    [row] = document["rows"]
    assert (1, 1, "3000.00", "0.5") == (row["won"], row["lost"], row["won_value"], row["by_count"])
    assert any(label == "lost for Price" for label in document["notes"])


def test_as_of_a_date_is_the_end_of_that_day(db: str) -> None:
    """On the first day both closed deals were still open: four deals in the pipeline."""
    output = _run("pipeline", "--db", db, "--as-of", "2026-01-05", "--format", "json")
    assert 4 == json.loads(output)["notes"]["deals"]
    assert 2 == json.loads(_run("pipeline", "--db", db, "--format", "json"))["notes"]["deals"]


def test_by_quarter_keeps_the_year_and_follows_the_fiscal_start(db: str) -> None:
    """Quarters carry the year; from July, March 2026 is in FY2026-Q3 and May in FY2026-Q4."""
    rows = json.loads(_run("pipeline", "--db", db, "--by", "quarter", "--format", "json"))["rows"]
    assert ["2026-Q1", "2026-Q2"] == [row["quarter"] for row in rows]
    fiscal = _run(
        "pipeline", "--db", db, "--by", "quarter", "--fiscal-start", "7", "--format", "json"
    )
    assert ["FY2026-Q3", "FY2026-Q4"] == [row["quarter"] for row in json.loads(fiscal)["rows"]]


@pytest.mark.parametrize("kind", sorted(_REPORTS))
def test_every_kind_prints_a_table(db: str, kind: str) -> None:
    """Each registered kind runs on a real database and prints its title."""
    output = _run(kind, "--db", db)
    assert " as of " in output or " to " in output


def test_chart_writes_a_png(db: str, tmp_path: Path) -> None:
    """--chart draws the funnel as a PNG next to the table."""
    path = tmp_path / "funnel.png"
    output = _run("funnel", "--db", db, "--chart", str(path))
    assert f"Chart written to {path}" in output.replace("\n", "")
    assert (400, 700, 4) == imread(path).shape


def test_forecast_prints_consecutive_periods_and_draws_a_fan(db: str, tmp_path: Path) -> None:
    """--by picks the period kind, --period the first one, --periods how many."""
    path = tmp_path / "fan.png"
    output = _run(
        "forecast", "--db", db, "--by", "month", "--period", "2026-03", "--periods", "3",
        "--format", "json", "--chart", str(path),
    )  # fmt: skip
    rows = json.loads(output[: output.rindex("}") + 1])["rows"]
    assert ["2026-03", "2026-04", "2026-05"] == [row["period"] for row in rows]
    for row in rows:
        assert Decimal(row["p10"]) <= Decimal(row["p50"]) <= Decimal(row["p90"])
    assert (400, 700, 4) == imread(path).shape


def test_targets_report_names_each_target_and_its_attainment(db: str, tmp_path: Path) -> None:
    """Ana won 3000 of her 2000 target (1.5); the Norte zone 3000 of 6000 (0.5)."""
    path = tmp_path / "targets.png"
    output = _run(
        "targets", "--db", db, "--period", "2026-Q1", "--format", "csv", "--chart", str(path)
    )
    rows = {row["name"]: row for row in csv.DictReader(io.StringIO(output)) if row.get("scope")}
    assert "1.5000" == rows["'=SUM(A1) Ana"]["attainment"]
    assert "0.5000" == rows["Norte"]["attainment"]
    assert "1.0000" == rows["'=SUM(A1) Ana"]["probability"]  # the quarter is over
    assert (400, 700, 4) == imread(path).shape


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["pipeline", "--by", "colour"], "by: must be one of: stage"),
        (["funnel", "--by", "owner"], "this report has no groups"),
        (["cycle", "--chart", "c.png"], "the cycle report has no chart"),
        (["pipeline", "--as-of", "yesterday"], "must be an ISO 8601 date"),
        (["pipeline", "--currency", "XYZ"], "currency"),
        (["targets", "--period", "2026-Q5"], "period: must be a period label"),
        (["forecast", "--by", "owner"], "by: must be one of: month"),
    ],
)
def test_bad_options_exit_1_with_a_message(db: str, args: list[str], message: str) -> None:
    """Bad input is a one-line error and status 1, never a traceback."""
    result = CliRunner().invoke(cli, ["report", *args, "--db", db], env=WIDE)
    assert 1 == result.exit_code
    assert message in result.output
    assert "Traceback" not in result.output


def test_the_report_equals_the_api(db: str) -> None:
    """The CSV figures are those of crm.analytics (as of the same moment)."""
    moment = datetime(2026, 2, 1, tzinfo=UTC)
    output = _run(
        "pipeline",
        "--db",
        db,
        "--by",
        "stage",
        "--format",
        "csv",
        "--as-of",
        "2026-02-01T00:00:00+00:00",
    )
    with crmkit.open(db) as crm:
        expected = crm.analytics.pipeline(currency="EUR", by="stage", as_of=moment)
    rows = list(csv.DictReader(io.StringIO(output)))
    assert [(r.key, r.value.amount) for r in expected.rows] == [
        (row["stage"], Decimal(row["value"])) for row in rows
    ]


def test_interactions_by_user_and_reps_name_the_users(db: str) -> None:
    """Ids become names: Luis made the call; Ana won 3000."""
    rows = json.loads(_run("interactions", "--db", db, "--by", "user", "--format", "json"))["rows"]
    assert [("Luis", 1)] == [(row["name"], row["done"]) for row in rows]
    reps = {
        row["name"]: row for row in json.loads(_run("reps", "--db", db, "--format", "json"))["rows"]
    }
    assert ("3000.00", 1) == (reps["=SUM(A1) Ana"]["won_value"], reps["Luis"]["activities"])
