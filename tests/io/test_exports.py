"""crm.exports: find results to files, formula-safe, and back again without loss."""

from __future__ import annotations

import csv
import json
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import crmkit
from crmkit import Address, CustomField, Entity, Eq, LineItem, Money, ValidationError
from crmkit.core import changes
from crmkit.core.ids import uuid7
from crmkit.io import Exporter
from crmkit.io.columns import FORMULA_TRIGGERS, columns_of, escape_formula, unescape_formula
from tests.conftest import FixedClock

#: Fields two records may differ in and still hold the same data.
SYSTEM = {"id", "version", "created_at", "updated_at"}


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def define_fields(crm: crmkit.CRM) -> None:
    """Custom fields of every type on organizations and one on contacts."""
    fields: list[tuple[str, str, dict[str, Any]]] = [
        ("tier", "choice", {"choices": ["gold", "silver"]}),
        ("score", "integer", {}),
        ("ratio", "decimal", {}),
        ("credit", "money", {}),
        ("since", "date", {}),
        ("checked", "datetime", {}),
        ("vip", "boolean", {}),
        ("sectors", "multi_choice", {"choices": ["food", "retail", "a|b"]}),
        ("motto", "text", {}),
    ]
    for key, kind, extra in fields:
        crm.custom_fields.register(
            CustomField(entity="organization", key=key, label=key, type=kind, **extra)
        )
    crm.custom_fields.register(
        CustomField(
            entity="contact",
            key="referrer",
            label="Referrer",
            type="reference",
            reference="contact",
        )
    )


def fill(crm: crmkit.CRM) -> None:
    """Organizations and contacts using every column, with awkward text."""
    define_fields(crm)
    crm.markets.create(name="Retail", key="retail")
    owner = crm.users.create(name="Rosa", external_ref="U-1")
    acme = crm.organizations.create(
        name='=Acme; "S.A."',
        legal_name="Acme Sociedad Anónima",
        kinds=["customer", "partner"],
        lifecycle="customer",
        tax_id="A12345678",
        addresses=[Address(street="Gran Vía 1", city="Madrid", postal_code="28013", country="ES")],
        phones=["+34 911 234 567"],
        emails=["ventas@acme.es", "info@acme.es"],
        website="https://acme.es",
        market="retail",
        owner=owner,
        tags=["a|b", "back\\slash", "+vip"],
        notes="línea 1\nlínea 2, con coma",
        external_ref="A-1",
        custom={
            "tier": "gold",
            "score": -5,
            "ratio": Decimal("0.125"),
            "credit": Money("5000.50", "EUR"),
            "since": date(2020, 1, 31),
            "checked": datetime(2026, 1, 2, 3, 4, 5, 600, tzinfo=UTC),
            "vip": True,
            "sectors": ["food", "a|b"],
            "motto": "@home",
        },
    )
    crm.organizations.create(name="Beta", parent=acme, status="inactive")  # no external_ref
    ana = crm.contacts.create(
        first_name="Ana",
        last_name="Pérez",
        email="ana@acme.es",
        organization=acme,
        do_not_contact=True,
        role="decision_maker",
        preferred_channel="email",
        external_ref="C-1",
    )
    crm.contacts.create(first_name="Luis", custom={"referrer": ana}, external_ref="C-2")


def data(entity: Entity, refs: dict[Any, Any]) -> dict[str, Any]:
    """A record's values without system fields, its references by external_ref or name."""
    values = {}
    for a in attrs.fields(type(entity)):
        if a.name in SYSTEM:
            continue
        value = getattr(entity, a.name)
        if a.name == "custom":
            value = {k: refs.get(v, v) for k, v in value.items()}
        values[a.name] = refs.get(value, value) if not isinstance(value, list | dict) else value
    return values


def reference_names(crm: crmkit.CRM) -> dict[Any, Any]:
    refs: dict[Any, Any] = {}
    services: list[Any] = [crm.organizations, crm.contacts, crm.users, crm.markets]
    for service in services:
        for record in service.find(archived=None):
            refs[record.id] = record.external_ref or getattr(record, "key", None) or record.id
    return refs


def snapshot(crm: crmkit.CRM) -> dict[str, list[dict[str, Any]]]:
    refs = reference_names(crm)
    return {
        "organizations": sorted(
            (data(o, refs) for o in crm.organizations.find()), key=lambda d: d["name"]
        ),
        "contacts": sorted(
            (data(c, refs) for c in crm.contacts.find()), key=lambda d: d["first_name"]
        ),
    }


# ================================================================ round trips


@pytest.mark.parametrize(
    ("extension", "lossless"),
    [(".csv", False), (".csv", True), (".jsonl", False), (".xlsx", False)],
)
def test_export_then_import_into_a_new_crm_gives_the_same_records(
    any_crm: crmkit.CRM, clock: FixedClock, tmp_path: Path, extension: str, lossless: bool
) -> None:
    """Every field and custom field survives, in every format; references by external_ref."""
    fill(any_crm)
    files = {}
    for entity in ("organizations", "contacts"):
        files[entity] = tmp_path / f"{entity}{extension}"
        any_crm.exports.file(files[entity], entity=entity, lossless=lossless)

    with crmkit.open(":memory:", clock=clock, default_region="ES") as other:
        define_fields(other)
        other.markets.create(name="Retail", key="retail")
        other.users.create(name="Rosa", external_ref="U-1")
        reports = [
            other.imports.file(files[e], entity=e, unescape_formulas=not lossless)
            for e in ("organizations", "contacts")
        ]

        assert [(2, ()), (2, ())] == [(r.created, r.errors) for r in reports]
        assert snapshot(any_crm) == snapshot(other)


@pytest.mark.parametrize("extension", [".csv", ".jsonl", ".xlsx"])
def test_importing_an_export_into_its_own_crm_changes_nothing(
    any_crm: crmkit.CRM, tmp_path: Path, extension: str
) -> None:
    """Export -> import matches every record (by external_ref, else id) and writes nothing."""
    fill(any_crm)
    before = {o.id: o.version for o in any_crm.organizations.find()}
    path = tmp_path / f"orgs{extension}"
    any_crm.exports.file(path, entity="organizations")

    report = any_crm.imports.file(path, entity="organizations")

    assert (0, 0, 2, ()) == (report.created, report.updated, report.unchanged, report.errors)
    assert before == {o.id: o.version for o in any_crm.organizations.find()}


def test_leads_opportunities_and_interactions_round_trip(
    any_crm: crmkit.CRM, tmp_path: Path
) -> None:
    """Their importable fields come back equal; re-importing changes nothing."""
    acme = any_crm.organizations.create(name="Acme", external_ref="A-1")
    any_crm.leads.create(first_name="Eva", company="Beta", phone="+34 600 000 000")
    opportunity = any_crm.opportunities.create(
        name="ERP",
        organization=acme,
        amount=Money("1200", "EUR"),
        probability=Decimal("0.35"),
        expected_close=date(2026, 6, 30),
        competitors=["Otro"],
        line_items=[LineItem(description="Licencia", quantity=2, unit_price=Money("600", "EUR"))],
        external_ref="O-1",
    )
    any_crm.interactions.log(
        kind="call",
        organization=acme,
        opportunity=opportunity,
        subject="Llamada",
        occurred_at=datetime(2026, 1, 2, 10, tzinfo=UTC),
    )
    for entity in ("leads", "opportunities", "interactions"):
        before = {r.id: r.version for r in getattr(any_crm, entity).find()}
        path = tmp_path / f"{entity}.csv"
        any_crm.exports.csv(path, entity=entity)

        report = any_crm.imports.csv(path, entity=entity)

        assert (0, 0, ()) == (report.created, report.updated, report.errors), entity
        assert before == {r.id: r.version for r in getattr(any_crm, entity).find()}


# ======================================================= formula safety


@settings(max_examples=10_000)
@given(
    text=st.builds(
        lambda trigger, rest: trigger + rest,
        st.sampled_from(FORMULA_TRIGGERS),
        st.text(st.characters(blacklist_categories=["Cs", "Cc"]), max_size=30),
    )
)
def test_no_cell_of_a_default_export_starts_with_a_formula_trigger(text: str) -> None:
    """10,000 strings starting with = + - @ tab or CR: every text cell of the row is escaped."""
    organization, _ = changes.create(
        crmkit.Organization,
        id=uuid7(),
        now=datetime(2026, 1, 1, tzinfo=UTC),
        name=text.strip() or "x",
        notes=text,
        tags=[text.strip()] if text.strip() else [],
        legal_name=text,
    )
    exporter = Exporter(columns_of("organization", []), text=True, formula_safe=True)

    cells = exporter.row(organization, {})

    assert [] == [c for c in cells if isinstance(c, str) and c.startswith(FORMULA_TRIGGERS)]
    assert text == unescape_formula(escape_formula(text))


@given(st.text())
def test_escaping_formulas_is_undone_exactly(text: str) -> None:
    """unescape(escape(x)) == x for every text, and escape changes only what it must."""
    escaped = escape_formula(text)

    assert text == unescape_formula(escaped)
    assert not escaped.startswith(FORMULA_TRIGGERS)


def test_csv_and_xlsx_exports_escape_formulas_unless_lossless(
    crm: crmkit.CRM, tmp_path: Path
) -> None:
    """The default escapes; lossless writes the text as it is (XLSX as text, never formulas)."""
    import openpyxl

    crm.organizations.create(name='=HYPERLINK("http://x")', notes="+1", tags=["@x"])
    crm.exports.csv(tmp_path / "safe.csv", entity="organizations")
    crm.exports.csv(tmp_path / "raw.csv", entity="organizations", lossless=True)
    crm.exports.xlsx(tmp_path / "safe.xlsx", entity="organizations")
    crm.exports.xlsx(tmp_path / "raw.xlsx", entity="organizations", lossless=True)
    crm.exports.jsonl(tmp_path / "o.jsonl", entity="organizations")

    safe, raw = read_csv(tmp_path / "safe.csv")[0], read_csv(tmp_path / "raw.csv")[0]
    sheet = openpyxl.load_workbook(tmp_path / "raw.xlsx").active
    assert sheet is not None
    raw_cells = {c.value: c.data_type for c in sheet[2]}
    safe_sheet = openpyxl.load_workbook(tmp_path / "safe.xlsx").active
    assert safe_sheet is not None
    link = '=HYPERLINK("http://x")'
    assert ("'" + link, "'+1", "'@x") == (safe["name"], safe["notes"], safe["tags"])
    assert ('=HYPERLINK("http://x")', "+1", "@x") == (raw["name"], raw["notes"], raw["tags"])
    assert "s" == raw_cells['=HYPERLINK("http://x")']
    assert '\'=HYPERLINK("http://x")' in {c.value for c in safe_sheet[2]}
    assert '=HYPERLINK("http://x")' == json.loads((tmp_path / "o.jsonl").read_text())["name"]


# ======================================================= criteria, columns


def test_an_export_holds_exactly_what_find_returns(any_crm: crmkit.CRM, tmp_path: Path) -> None:
    """Criteria, order and limits are find's; paging keeps the order."""
    any_crm.markets.create(name="Retail", key="retail")
    for i in range(12):
        any_crm.organizations.create(name=f"Org {i:02}", market="retail" if i % 3 else None)
    path = tmp_path / "o.csv"

    written = any_crm.exports.csv(
        path, entity="organizations", market="retail", order_by="-name", limit=5, offset=1
    )
    expected = any_crm.organizations.find(market="retail", order_by="-name", limit=5, offset=1)

    assert 5 == written
    assert [o.name for o in expected] == [r["name"] for r in read_csv(path)]
    assert {"retail"} == {r["market"] for r in read_csv(path)}


def test_typed_filters_and_archived_records(crm: crmkit.CRM, tmp_path: Path) -> None:
    """where= takes find's filters; archived= works as in find."""
    kept = crm.organizations.create(name="Kept")
    gone = crm.organizations.create(name="Gone")
    crm.organizations.archive(gone.id, expected_version=gone.version)

    crm.exports.csv(tmp_path / "a.csv", entity="organizations", archived=True)
    crm.exports.csv(tmp_path / "b.csv", entity="organizations", where=[Eq("name", "Kept")])

    assert ["Gone"] == [r["name"] for r in read_csv(tmp_path / "a.csv")]
    assert [str(kept.id)] == [r["id"] for r in read_csv(tmp_path / "b.csv")]


def test_columns_choose_and_order_the_columns(crm: crmkit.CRM, tmp_path: Path) -> None:
    """columns= writes only the columns named, in that order, with the delimiter asked."""
    crm.organizations.create(name="Acme", tax_id="B1")

    crm.exports.csv(
        tmp_path / "o.csv", entity="organizations", columns=["tax_id", "name"], delimiter=";"
    )

    assert "tax_id;name\r\nB1;Acme\r\n" == (tmp_path / "o.csv").read_bytes().decode("utf-8")


@pytest.mark.parametrize(
    ("options", "field", "code"),
    [
        ({"entity": "users"}, "entity", "choice"),
        ({"columns": ["shoe_size"]}, "columns", "unknown_column"),
        ({"lossless": "yes"}, "lossless", "type"),
        ({"order_by": "shoe_size"}, "shoe_size", "unknown_field"),
        ({"encoding": "latin-1", "columns": ["name"]}, "encoding", "encoding"),
        ({"encoding": "klingon"}, "encoding", "encoding"),
        ({"delimiter": ""}, "delimiter", "delimiter"),
    ],
)
def test_bad_export_arguments_are_validation_errors(
    crm: crmkit.CRM, tmp_path: Path, options: dict[str, Any], field: str, code: str
) -> None:
    """Criteria and options are checked; an encoding that cannot hold the text is refused."""
    crm.organizations.create(name="日本")
    arguments: dict[str, Any] = {"entity": "organizations", **options}

    with pytest.raises(ValidationError) as caught:
        crm.exports.csv(tmp_path / "o.csv", **arguments)

    assert (field, code) == (caught.value.field, caught.value.code)


def test_values_under_removed_definitions_are_exported(any_crm: crmkit.CRM, tmp_path: Path) -> None:
    """After the defined fields, in key order: nothing stored is left out of a file."""
    for key, type in (("tier", "text"), ("credit", "money"), ("sectors", "multi_choice")):
        extra: dict[str, Any] = {"choices": ["food", "retail"]} if type == "multi_choice" else {}
        any_crm.custom_fields.register(
            CustomField(entity="organization", key=key, label=key, type=type, **extra)
        )
    any_crm.organizations.create(
        name="Acme",
        custom={"tier": "gold", "credit": Money("10", "EUR"), "sectors": ["retail", "food"]},
    )
    any_crm.organizations.create(name="Beta")
    any_crm.custom_fields.remove("organization", "credit")
    any_crm.custom_fields.remove("organization", "sectors")

    any_crm.exports.csv(tmp_path / "all.csv", entity="organizations", order_by="name")
    any_crm.exports.csv(
        tmp_path / "one.csv", entity="organizations", columns=["name", "custom.credit"]
    )

    rows = read_csv(tmp_path / "all.csv")
    assert ["custom.tier", "custom.credit", "custom.sectors"] == [
        name for name in rows[0] if name.startswith("custom.")
    ]
    assert ("gold", "10.00 EUR", "food|retail") == (
        rows[0]["custom.tier"],
        rows[0]["custom.credit"],
        rows[0]["custom.sectors"],
    )
    assert ("", "") == (rows[1]["custom.credit"], rows[1]["custom.sectors"])
    assert [{"name": "Acme", "custom.credit": "10.00 EUR"}] == [
        r for r in read_csv(tmp_path / "one.csv") if r["name"] == "Acme"
    ]
