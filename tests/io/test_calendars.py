"""crm.calendar: planned interactions as iCalendar feeds, and events imported back."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import icalendar
import pytest
from click.testing import CliRunner

import crmkit
from crmkit import CustomField, ValidationError
from crmkit.cli import cli

EVENTS = """\
BEGIN:VCALENDAR
VERSION:2.0
PRODID:-//Ejemplo//ES
BEGIN:VEVENT
UID:evt-1@calendario.es
DTSTART;TZID=Europe/Madrid:20260310T100000
SUMMARY:Demo del ERP
DESCRIPTION:Llevar el portátil
LOCATION:Calle Mayor 1\\, Madrid
ORGANIZER;CN=Luis:mailto:LUIS@crm.es
ATTENDEE;CN=Ana:mailto:Ana+agenda@ACME.es
END:VEVENT
BEGIN:VEVENT
UID:evt-2@calendario.es
DTSTART;VALUE=DATE:20260311
SUMMARY:Feria del sector
ATTENDEE:mailto:ana@acme.es
END:VEVENT
BEGIN:VEVENT
UID:evt-3@calendario.es
DTSTART:20260312T100000
SUMMARY:Llamada (hora flotante)
ATTENDEE:mailto:ana@acme.es
END:VEVENT
END:VCALENDAR
"""

BAD_EVENTS = """\
BEGIN:VCALENDAR
VERSION:2.0
PRODID:-//Ejemplo//ES
BEGIN:VEVENT
UID:evt-9@calendario.es
DTSTART:20260312T100000Z
ATTENDEE:mailto:nadie@fuera.es
END:VEVENT
BEGIN:VEVENT
UID:evt-10@calendario.es
DTSTART;TZID=Nowhere/Land:20260312T100000
ATTENDEE:mailto:ana@acme.es
END:VEVENT
BEGIN:VEVENT
DTSTART:20260312T100000Z
ATTENDEE:mailto:ana@acme.es
END:VEVENT
END:VCALENDAR
"""


@pytest.fixture
def book(any_crm: crmkit.CRM) -> crmkit.CRM:
    acme = any_crm.organizations.create(name="Acme S.A.")
    any_crm.contacts.create(
        first_name="Ana", last_name="Pérez", email="ana@acme.es", organization=acme
    )
    any_crm.users.create(name="Luis", email="luis@crm.es")
    any_crm.users.create(name="Marta", email="marta@crm.es")
    return any_crm


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_events_become_planned_interactions_in_utc(book: crmkit.CRM, tmp_path: Path) -> None:
    """TZID converted, floating and all-day times read in the CRM's zone (UTC here)."""
    report = book.calendar.import_file(write(tmp_path / "agenda.ics", EVENTS))

    assert (report.created, report.errors, report.written) == (3, (), True)
    ana = book.contacts.find(first_name="Ana")[0]
    luis = book.users.find(name="Luis")[0]
    demo, fair, call = book.interactions.find(order_by="scheduled_at")
    assert demo.scheduled_at == datetime(2026, 3, 10, 9, 0, tzinfo=UTC)
    assert fair.scheduled_at == datetime(2026, 3, 11, 0, 0, tzinfo=UTC)
    assert call.scheduled_at == datetime(2026, 3, 12, 10, 0, tzinfo=UTC)
    assert (demo.status, demo.kind, demo.subject) == (
        crmkit.InteractionStatus.PLANNED,
        "meeting",
        "Demo del ERP",
    )
    assert (demo.contact_id, demo.organization_id) == (ana.id, ana.organization_id)
    assert demo.assignee_id == luis.id
    assert demo.description == "Llevar el portátil\n\nLocation: Calle Mayor 1, Madrid"
    assert demo.external_ref == "evt-1@calendario.es"


def test_floating_times_use_the_crms_time_zone(tmp_path: Path) -> None:
    with crmkit.open(":memory:", timezone="Europe/Madrid") as crm:
        crm.contacts.create(first_name="Ana", email="ana@acme.es")
        crm.calendar.import_file(write(tmp_path / "agenda.ics", EVENTS))
        times = [i.scheduled_at for i in crm.interactions.find(order_by="scheduled_at")]
    assert times == [
        datetime(2026, 3, 10, 9, 0, tzinfo=UTC),
        datetime(2026, 3, 10, 23, 0, tzinfo=UTC),  # all day on the 11th in Madrid
        datetime(2026, 3, 12, 9, 0, tzinfo=UTC),
    ]


def test_a_time_zone_the_file_defines_is_converted(crm: crmkit.CRM, tmp_path: Path) -> None:
    """A Windows zone name with its VTIMEZONE (as Outlook writes) is no IANA name, yet exact."""
    crm.contacts.create(first_name="Ana", email="ana@acme.es")
    outlook = EVENTS.replace(
        "PRODID:-//Ejemplo//ES\n",
        "PRODID:-//Microsoft Corporation//Outlook 16.0//ES\n"
        "BEGIN:VTIMEZONE\nTZID:Romance Standard Time\n"
        "BEGIN:STANDARD\nDTSTART:16010101T030000\nTZOFFSETFROM:+0200\nTZOFFSETTO:+0100\n"
        "RRULE:FREQ=YEARLY;BYDAY=-1SU;BYMONTH=10\nEND:STANDARD\n"
        "BEGIN:DAYLIGHT\nDTSTART:16010101T020000\nTZOFFSETFROM:+0100\nTZOFFSETTO:+0200\n"
        "RRULE:FREQ=YEARLY;BYDAY=-1SU;BYMONTH=3\nEND:DAYLIGHT\nEND:VTIMEZONE\n",
    ).replace("TZID=Europe/Madrid:20260310T100000", "TZID=Romance Standard Time:20260710T100000")
    report = crm.calendar.import_file(write(tmp_path / "outlook.ics", outlook))

    assert report.errors == ()
    demo = crm.interactions.find(external_ref="evt-1@calendario.es")[0]
    assert demo.scheduled_at == datetime(2026, 7, 10, 8, 0, tzinfo=UTC)  # summer: UTC+2


def test_a_summary_too_long_is_reported_on_its_property(crm: crmkit.CRM, tmp_path: Path) -> None:
    crm.contacts.create(first_name="Ana", email="ana@acme.es")
    long = EVENTS.replace("SUMMARY:Demo del ERP", "SUMMARY:" + "x" * 301)
    report = crm.calendar.import_file(write(tmp_path / "agenda.ics", long))

    assert [(e.line, e.column, e.code) for e in report.errors] == [(4, "SUMMARY", "too_long")]


def test_importing_the_same_calendar_twice_changes_nothing(
    book: crmkit.CRM, tmp_path: Path
) -> None:
    path = write(tmp_path / "agenda.ics", EVENTS)
    book.calendar.import_file(path)
    again = book.calendar.import_file(path)

    assert (again.created, again.updated, again.unchanged) == (0, 0, 3)
    assert {i.version for i in book.interactions.find()} == {1}


def test_a_moved_or_cancelled_event_updates_its_interaction(
    book: crmkit.CRM, tmp_path: Path
) -> None:
    book.calendar.import_file(write(tmp_path / "agenda.ics", EVENTS))
    moved = EVENTS.replace("20260310T100000", "20260310T120000").replace(
        "SUMMARY:Feria del sector", "SUMMARY:Feria del sector\nSTATUS:CANCELLED"
    )
    report = book.calendar.import_file(write(tmp_path / "agenda2.ics", moved))

    assert (report.updated, report.unchanged) == (2, 1)
    demo = book.interactions.find(external_ref="evt-1@calendario.es")[0]
    fair = book.interactions.find(external_ref="evt-2@calendario.es")[0]
    assert demo.scheduled_at == datetime(2026, 3, 10, 11, 0, tzinfo=UTC)
    assert fair.status is crmkit.InteractionStatus.CANCELLED


def test_bad_events_are_row_errors_and_an_atomic_import_writes_nothing(
    book: crmkit.CRM, tmp_path: Path
) -> None:
    """No matching contact, an undefined TZID, no UID: reported at their BEGIN:VEVENT line."""
    path = write(
        tmp_path / "agenda.ics",
        EVENTS.replace("END:VCALENDAR\n", "") + BAD_EVENTS.split("PRODID:-//Ejemplo//ES\n", 1)[1],
    )
    report = book.calendar.import_file(path)

    assert [(e.line, e.column, e.code) for e in report.errors] == [
        (25, "ATTENDEE", "no_contact"),
        (30, "DTSTART", "timezone"),
        (35, "UID", "required"),
    ]
    assert (report.written, book.interactions.count()) == (False, 0)
    dry = book.calendar.import_file(path, dry_run=True)
    assert (dry.created, book.interactions.count()) == (3, 0)
    partial = book.calendar.import_file(path, mode="partial")
    assert (partial.created, book.interactions.count()) == (3, 3)


def test_a_file_that_is_not_a_calendar_is_a_validation_error(
    crm: crmkit.CRM, tmp_path: Path
) -> None:
    with pytest.raises(ValidationError) as error:
        crm.calendar.import_file(write(tmp_path / "x.ics", "this is not a calendar\n"))
    assert error.value.code == "calendar"
    with pytest.raises(ValidationError) as kind:
        crm.calendar.import_file(tmp_path / "x.ics", kind="party")
    assert kind.value.field == "kind"


def test_the_feed_of_a_team_holds_its_members_planned_interactions(book: crmkit.CRM) -> None:
    ana = book.contacts.find(first_name="Ana")[0]
    luis, marta = book.users.find(order_by="name")
    book.teams.create(name="Norte", members=[luis])
    at = datetime(2026, 3, 10, 9, 0, tzinfo=UTC)
    mine = book.interactions.plan(kind="visit", scheduled_at=at, contact=ana, assignee=luis)
    theirs = book.interactions.plan(kind="call", scheduled_at=at, contact=ana, assignee=marta)

    def uids(**options: Any) -> set[str]:
        feed = icalendar.Calendar.from_ical(book.calendar.feed(**options))
        return {str(e["UID"]) for e in feed.walk("VEVENT")}

    assert uids(team="Norte") == {f"{mine.id}@crmkit"}
    assert uids(team="Norte", users=[marta]) == {f"{mine.id}@crmkit", f"{theirs.id}@crmkit"}
    with pytest.raises(ValidationError) as unknown:
        book.calendar.feed(team="Sur")
    assert (unknown.value.field, unknown.value.code) == ("team", "reference")


def test_the_feed_holds_the_planned_interactions_of_the_chosen_users(book: crmkit.CRM) -> None:
    ana = book.contacts.find(first_name="Ana")[0]
    luis, marta = book.users.find(order_by="name")
    at = datetime(2026, 3, 10, 9, 0, tzinfo=UTC)
    planned = book.interactions.plan(
        kind="visit", scheduled_at=at, contact=ana, assignee=luis, subject="Visita, ¿qué tal?"
    )
    book.interactions.plan(kind="call", scheduled_at=at, contact=ana, assignee=marta)
    book.interactions.log(kind="call", contact=ana, assignee=luis)  # done: not in the feed
    gone = book.interactions.plan(kind="call", scheduled_at=at, contact=ana, assignee=luis)
    book.interactions.cancel(gone.id)

    feed = icalendar.Calendar.from_ical(book.calendar.feed(users=["Luis"]))
    [found] = feed.walk("VEVENT")
    event: Any = found
    assert str(event["UID"]) == f"{planned.id}@crmkit"
    assert event["DTSTART"].dt == at
    assert event["DTEND"].dt == at + timedelta(minutes=30)
    assert str(event["SUMMARY"]) == "Visita, ¿qué tal?"
    assert str(event["STATUS"]) == "CONFIRMED"
    assert str(event["ATTENDEE"]) == "mailto:ana@acme.es"
    assert str(event["ORGANIZER"]) == "mailto:luis@crm.es"

    everyone = icalendar.Calendar.from_ical(book.calendar.feed(cancelled=True))
    statuses = sorted(str(e["STATUS"]) for e in everyone.walk("VEVENT"))
    assert statuses == ["CANCELLED", "CONFIRMED", "CONFIRMED"]
    with pytest.raises(ValidationError) as unknown:
        book.calendar.feed(users=["Nadie"])
    assert unknown.value.code == "reference"


def test_an_exported_feed_imports_back_unchanged(book: crmkit.CRM, tmp_path: Path) -> None:
    """UIDs <id>@crmkit match their interactions by id: exporting then importing changes nothing."""
    ana = book.contacts.find(first_name="Ana")[0]
    book.custom_fields.register(
        CustomField(entity="interaction", key="location", label="Lugar", type="text")
    )
    book.interactions.plan(
        kind="visit",
        scheduled_at=datetime(2026, 3, 10, 9, 0, tzinfo=UTC),
        contact=ana,
        custom={"location": "Bilbao"},
    )
    path = tmp_path / "feed.ics"
    assert book.calendar.export(path) == 1
    assert "LOCATION:Bilbao" in path.read_text(encoding="utf-8")
    report = book.calendar.import_file(path)
    assert (report.created, report.updated, report.unchanged) == (0, 0, 1)


def test_crmkit_calendar_import_and_export(tmp_path: Path) -> None:
    db = str(tmp_path / "crm.db")
    with crmkit.open(db) as crm:
        crm.contacts.create(first_name="Ana", email="ana@acme.es")
        crm.users.create(name="Luis", email="luis@crm.es")
    source = write(tmp_path / "agenda.ics", EVENTS)
    imported = CliRunner().invoke(cli, ["calendar", "import", str(source), "--db", db])
    assert imported.exit_code == 0, imported.output
    assert "3 created" in imported.output
    out = tmp_path / "luis.ics"
    exported = CliRunner().invoke(
        cli, ["calendar", "export", str(out), "--user", "Luis", "--db", db]
    )
    assert exported.exit_code == 0, exported.output
    assert "1 events written" in exported.output
