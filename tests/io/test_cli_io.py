"""``crmkit import`` and ``crmkit export``: progress, error table, exit status."""

from __future__ import annotations

import csv
from pathlib import Path

from click.testing import CliRunner

import crmkit
from crmkit.cli import cli

WIDE = {"COLUMNS": "200"}


def write_orgs(path: Path) -> Path:
    path.write_bytes(
        "Código;Razón social;Correo;Notas\n"
        "C-1;Panadería Núñez;pedidos@nunez.es;x\n"
        "C-2;Talleres;not-an-email;y\n"
        "C-3;=Fórmulas S.L.;;z\n".encode("latin-1")
    )
    return path


def test_import_then_export_from_the_command_line(tmp_path: Path) -> None:
    """import --partial writes the valid rows, prints the table, writes --errors and exits 1."""
    source = write_orgs(tmp_path / "clientes.csv")
    db = str(tmp_path / "crm.db")
    errors = tmp_path / "errores.csv"
    maps = ["--map", "Código=external_ref", "--map", "Razón social=name", "--map", "Correo=emails"]

    imported = CliRunner().invoke(
        cli,
        [
            "import",
            str(source),
            "-e",
            "organizations",
            "--db",
            db,
            *maps,
            "--map",
            "Notas=",
            "--partial",
            "--errors",
            str(errors),
        ],
        env=WIDE,
    )
    exported = CliRunner().invoke(
        cli,
        [
            "export",
            str(tmp_path / "out.csv"),
            "-e",
            "organizations",
            "--db",
            db,
            "--order-by",
            "external_ref",
            "--columns",
            "external_ref,name",
            "--where",
            "status=active",
        ],
        env=WIDE,
    )

    assert 1 == imported.exit_code, imported.output
    assert "3 rows: 2 created, 0 updated, 0 unchanged; 1 rows refused" in imported.output
    assert "invalid_email" in imported.output
    assert "Importing clientes.csv" in imported.output
    assert [["line", "column", "code", "message"], ["3", "Correo", "invalid_email"]] == [
        row[:4] if i == 0 else row[:3]
        for i, row in enumerate(csv.reader(errors.read_text("utf-8").splitlines()))
    ]
    assert 0 == exported.exit_code, exported.output
    assert "2 organizations written to" in exported.output
    assert "external_ref,name\r\nC-1,Panadería Núñez\r\nC-3,'=Fórmulas S.L.\r\n" == (
        (tmp_path / "out.csv").read_bytes().decode("utf-8")
    )


def test_import_dry_run_writes_nothing_and_atomic_errors_write_nothing(tmp_path: Path) -> None:
    """--dry-run and the default atomic mode leave the database empty when a row is bad."""
    source = write_orgs(tmp_path / "clientes.csv")
    db = str(tmp_path / "crm.db")
    maps = [
        "--map",
        "Código=external_ref",
        "--map",
        "Razón social=name",
        "--map",
        "Correo=emails",
        "--map",
        "Notas=notes",
    ]

    dry = CliRunner().invoke(
        cli,
        ["import", str(source), "-e", "organizations", "--db", db, *maps, "--dry-run"],
        env=WIDE,
    )
    atomic = CliRunner().invoke(
        cli, ["import", str(source), "-e", "organizations", "--db", db, *maps], env=WIDE
    )

    assert (1, 1) == (dry.exit_code, atomic.exit_code)
    assert "dry run, nothing written" in dry.output
    assert "nothing written (atomic import with errors)" in atomic.output
    with crmkit.open(db) as crm:
        assert 0 == crm.organizations.count(archived=None)


def test_command_line_mistakes_are_one_line_errors(tmp_path: Path) -> None:
    """A bad --map, an unknown column or a bad --where end with a message, not a traceback."""
    source = write_orgs(tmp_path / "clientes.csv")
    db = str(tmp_path / "crm.db")

    bad_map = CliRunner().invoke(
        cli, ["import", str(source), "-e", "organizations", "--db", db, "--map", "Código"]
    )
    unknown = CliRunner().invoke(cli, ["import", str(source), "-e", "organizations", "--db", db])
    bad_where = CliRunner().invoke(
        cli, ["export", str(tmp_path / "o.csv"), "-e", "contacts", "--db", db, "--where", "x"]
    )

    assert [1, 1, 1] == [r.exit_code for r in (bad_map, unknown, bad_where)]
    assert "Error: map:" in bad_map.output
    assert "Código" in unknown.output
    assert "Error: where:" in bad_where.output
    assert all("Traceback" not in r.output for r in (bad_map, unknown, bad_where))


def test_import_duplicate_check_refuses_or_warns(tmp_path: Path) -> None:
    """--duplicate-check refuse: a likely duplicate row is refused; warn: imported, counted."""
    source = tmp_path / "orgs.csv"
    source.write_text(
        "external_ref,name,tax_id\nO1,Acme S.L.,B12345678\nO2,ACME SL,B-12345678\n",
        encoding="utf-8",
    )
    db = str(tmp_path / "crm.db")
    command = ["import", str(source), "-e", "organizations", "--db", db]

    refused = CliRunner().invoke(cli, [*command, "--duplicate-check", "refuse"], env=WIDE)
    warned = CliRunner().invoke(cli, [*command, "--duplicate-check", "warn"], env=WIDE)

    assert (1, 0) == (refused.exit_code, warned.exit_code)
    assert "duplicate" in refused.output
    assert "1 likely duplicates" in warned.output
    with crmkit.open(db) as crm:
        assert 2 == crm.organizations.count()
