"""crm.cards: vCard business cards in and out, on every store."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import crmkit
from crmkit import ValidationError
from crmkit.cli import cli

CARDS = """\
BEGIN:VCARD
VERSION:4.0
FN:José Núñez
N:Núñez;José;;;
ORG:Panadería Núñez S.L.;Ventas
TITLE:Jefe de compras
EMAIL;TYPE=work:otro@panaderia.es
EMAIL;TYPE=work;PREF=1:jose@panaderia.es
TEL;VALUE=uri;TYPE="voice,cell":tel:+34-600-123-456
TEL;TYPE=work:912 345 678
ADR;TYPE=work:;;Calle Mayor 1;Madrid;;28001;España
LANG:es
UID:urn:uuid:5f1c0e1e-0000-4000-8000-000000000001
NOTE:Cliente desde 2019\\, paga a 30 días
END:VCARD
BEGIN:VCARD
VERSION:3.0
N:Pérez;Ana;;;
FN:Ana Pérez
ORG:Panadería Núñez S.L.
EMAIL;TYPE=INTERNET,pref:ana@panaderia.es
UID:card-ana
END:VCARD
"""

BAD = """\
BEGIN:VCARD
VERSION:3.0
N:Gil;Luis;;;
EMAIL:not-an-email
UID:card-luis
END:VCARD
BEGIN:VCARD
VERSION:3.0
N:Roca;Eva
this line is not a property
END:VCARD
"""


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_cards_become_contacts_with_their_organization_and_position(
    any_crm: crmkit.CRM, tmp_path: Path
) -> None:
    """ORG finds or creates the organization (with the card's ADR), TITLE the position."""
    report = any_crm.cards.import_file(write(tmp_path / "cards.vcf", CARDS))

    assert (report.created, report.errors, report.written) == (2, (), True)
    jose = any_crm.contacts.find(external_ref="urn:uuid:5f1c0e1e-0000-4000-8000-000000000001")[0]
    ana = any_crm.contacts.find(external_ref="card-ana")[0]
    [org] = any_crm.organizations.find()
    assert org.name == "Panadería Núñez S.L."
    assert (org.addresses[0].city, org.addresses[0].country) == ("Madrid", "ES")
    assert (jose.first_name, jose.last_name, str(jose.email)) == (
        "José",
        "Núñez",
        "jose@panaderia.es",
    )
    assert [p.e164 for p in jose.phones] == ["+34600123456", "+34912345678"]
    assert (jose.organization_id, ana.organization_id) == (org.id, org.id)
    assert jose.department == "Ventas"
    assert jose.language == "es"
    assert jose.notes == "Cliente desde 2019, paga a 30 días"
    assert jose.position_id is not None
    assert any_crm.positions.get(jose.position_id).name == "Jefe de compras"
    assert str(ana.email) == "ana@panaderia.es"


def test_importing_the_same_cards_twice_changes_nothing(
    any_crm: crmkit.CRM, tmp_path: Path
) -> None:
    """The UID is the external_ref: the second import finds every contact unchanged."""
    path = write(tmp_path / "cards.vcf", CARDS)
    any_crm.cards.import_file(path)
    again = any_crm.cards.import_file(path)

    assert (again.created, again.updated, again.unchanged) == (0, 0, 2)
    assert any_crm.contacts.count() == 2
    assert any_crm.organizations.count() == 1
    assert {c.version for c in any_crm.contacts.find()} == {1}


def test_a_bad_card_is_a_row_error_and_an_atomic_import_writes_nothing(
    any_crm: crmkit.CRM, tmp_path: Path
) -> None:
    """Errors name the line of the card's BEGIN:VCARD; nothing is written, no organization."""
    path = write(tmp_path / "cards.vcf", CARDS + BAD)
    positions = any_crm.positions.count()
    report = any_crm.cards.import_file(path)

    assert [(e.line, e.column, e.code) for e in report.errors] == [
        (24, "EMAIL", "invalid_email"),
        (30, "", "malformed"),
    ]
    assert report.written is False
    assert (any_crm.contacts.count(), any_crm.organizations.count()) == (0, 0)
    assert any_crm.positions.count() == positions


def test_a_dry_run_writes_nothing_and_a_partial_import_writes_the_valid_cards(
    any_crm: crmkit.CRM, tmp_path: Path
) -> None:
    path = write(tmp_path / "cards.vcf", CARDS + BAD)

    dry = any_crm.cards.import_file(path, dry_run=True, mode="partial")
    assert (dry.created, dry.written, any_crm.contacts.count()) == (2, False, 0)

    partial = any_crm.cards.import_file(path, mode="partial")
    assert (partial.created, partial.failed_lines) == (2, [24, 30])
    assert any_crm.contacts.count() == 2


def test_a_card_without_a_name_or_end_is_refused(crm: crmkit.CRM, tmp_path: Path) -> None:
    path = write(
        tmp_path / "cards.vcf",
        "BEGIN:VCARD\nVERSION:3.0\nEMAIL:x@y.es\nEND:VCARD\nBEGIN:VCARD\nVERSION:3.0\nFN:Eva\n",
    )
    report = crm.cards.import_file(path, mode="partial")

    assert [(e.line, e.column, e.code) for e in report.errors] == [
        (1, "N", "required"),
        (5, "", "malformed"),
    ]


def test_an_unreadable_file_is_a_validation_error(crm: crmkit.CRM, tmp_path: Path) -> None:
    with pytest.raises(ValidationError) as missing:
        crm.cards.import_file(tmp_path / "none.vcf")
    assert missing.value.code == "file"
    with pytest.raises(ValidationError) as mode:
        crm.cards.import_file(tmp_path / "none.vcf", mode="sometimes")  # type: ignore[arg-type]
    assert mode.value.field == "mode"


def test_exported_cards_import_back_to_the_same_contacts(
    any_crm: crmkit.CRM, tmp_path: Path
) -> None:
    """A contact without external_ref gets UID urn:uuid:<id>, matched to it again by id."""
    acme = any_crm.organizations.create(
        name="Acme S.A.", addresses=[crmkit.Address(city="Bilbao", country="ES")]
    )
    any_crm.contacts.create(
        first_name="Ana",
        last_name="Pérez",
        email="ana@acme.es",
        phones=["+34 911 234 567", "600 111 222"],
        organization=acme,
        department="Compras",
        language="es",
    )
    any_crm.contacts.create(first_name="Luis", external_ref="L-1")
    path = tmp_path / "out.vcf"

    assert any_crm.cards.export(path, order_by="first_name") == 2
    text = path.read_text(encoding="utf-8")
    assert "VERSION:3.0" in text
    assert "ORG:Acme S.A.;Compras" in text
    again = any_crm.cards.import_file(path)
    assert (again.created, again.updated, again.unchanged, again.errors) == (0, 0, 2, ())
    assert any_crm.contacts.find(first_name="Ana")[0].external_ref is None


_LETTERS = "abcdefghijklmnñopqrstuvwxyzáéíóúüçàèòøßłÁÉÍÓÚÑÇ"
_names = st.text(alphabet=_LETTERS + " -',;:\\\"", min_size=1, max_size=20).filter(
    lambda s: any(c.isalpha() for c in s)
)
_notes = st.text(alphabet=_LETTERS + " ,;:\\\n.", min_size=1, max_size=60).filter(
    lambda s: s.strip() != ""
)
_phones = st.lists(
    st.sampled_from(["+34911234567", "+34600111222", "+34933334444", "+447911123456"]),
    max_size=3,
    unique=True,
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    first=_names,
    last=st.none() | _names,
    org=st.none() | _names,
    department=st.none() | _names,
    notes=st.none() | _notes,
    phones=_phones,
    local=st.from_regex(r"[a-z][a-z0-9]{0,5}(\.[a-z0-9]{1,4})?", fullmatch=True),  # no ".."
)
def test_vcard_round_trip_keeps_every_field(
    tmp_path_factory: pytest.TempPathFactory,
    first: str,
    last: str | None,
    org: str | None,
    department: str | None,
    notes: str | None,
    phones: list[str],
    local: str,
) -> None:
    """Export from one CRM, import into another: the same names, e-mail, phones,
    organization, department and notes, whatever the characters."""
    folder = tmp_path_factory.mktemp("cards")
    with crmkit.open(":memory:") as source, crmkit.open(":memory:") as target:
        organization = source.organizations.create(name=org) if org else None
        made = source.contacts.create(
            first_name=first,
            last_name=last,
            email=f"{local}@ejemplo.es",
            phones=phones,
            organization=organization,
            department=department if organization else None,
            notes=notes,
        )
        source.cards.export(folder / "c.vcf")
        report = target.cards.import_file(folder / "c.vcf")
        assert report.errors == ()
        [back] = target.contacts.find()
        assert (back.first_name, back.last_name) == (made.first_name, made.last_name)
        assert (back.email, back.phones, back.notes) == (made.email, made.phones, made.notes)
        assert back.department == made.department
        if organization is None:
            assert back.organization_id is None
        else:
            assert target.organizations.get(back.organization_id).name == organization.name  # type: ignore[arg-type]


def test_crmkit_import_and_export_read_and_write_vcf(tmp_path: Path) -> None:
    db = str(tmp_path / "crm.db")
    source = write(tmp_path / "tarjetas.vcf", CARDS.replace(":912", ":+34 912"))

    imported = CliRunner().invoke(cli, ["import", str(source), "-e", "contacts", "--db", db])
    assert imported.exit_code == 0, imported.output
    assert "2 created" in imported.output
    out = tmp_path / "salida.vcf"
    exported = CliRunner().invoke(cli, ["export", str(out), "-e", "contacts", "--db", db])
    assert exported.exit_code == 0, exported.output
    assert out.read_text(encoding="utf-8").count("BEGIN:VCARD") == 2
    wrong = CliRunner().invoke(cli, ["export", str(out), "-e", "leads", "--db", db])
    assert wrong.exit_code != 0
