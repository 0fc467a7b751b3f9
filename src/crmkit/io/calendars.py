"""Calendars (iCalendar, RFC 5545): ``crm.calendar``.

:meth:`CalendarService.export` writes planned interactions (of some users, or
everyone's) as an ``.ics`` feed a calendar application subscribes to;
:meth:`CalendarService.import_file` reads the events (``VEVENT``) of an
``.ics`` file as planned interactions, idempotently by their ``UID``.  Both
use the ``icalendar`` library.

Times: crmkit stores UTC and writes UTC (``DTSTART:20260310T090000Z``).  An
imported event's time with a ``TZID`` (an IANA name, or one its
``VTIMEZONE`` defines) is converted to UTC; a floating time (no zone) is read
in the CRM's ``timezone``; an all-day event (a date) is planned at midnight
of that day in the CRM's ``timezone``.  A ``TZID`` nothing defines is a row
error (code ``timezone``), never a guess.

.. versionadded:: 0.1
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from datetime import UTC, date, datetime, time, timedelta
from typing import TYPE_CHECKING, Any, Final
from uuid import UUID

from crmkit.core.entities import Contact, User
from crmkit.core.errors import (
    ConcurrencyError,
    CrmkitError,
    InvalidTransition,
    NotFoundError,
    ValidationError,
)
from crmkit.core.ids import TeamId
from crmkit.core.interactions import Interaction, InteractionStatus
from crmkit.core.query import In, Range
from crmkit.core.targets import Team
from crmkit.io.imports import file_path, write_units
from crmkit.io.matching import EmailIndex, address_of
from crmkit.io.report import ImportMode, ImportReport, RowError

if TYPE_CHECKING:
    import icalendar

    from crmkit.app import CRM

__all__ = ["CalendarService"]

#: The product identifier written in every feed.
PRODID: Final = "-//crmkit//crmkit calendar//EN"

#: The custom field (of interactions) holding an event's ``LOCATION``, when registered.
LOCATION_FIELD: Final = "location"

#: The domain of the ``UID`` of interactions without an ``external_ref``.
UID_DOMAIN: Final = "crmkit"

#: The event property an interaction's field comes from, to name it in row errors.
_PROPERTIES: Final = {
    "subject": "SUMMARY",
    "description": "DESCRIPTION",
    "scheduled_at": "DTSTART",
    "custom": "LOCATION",
    "external_ref": "UID",
}

_BEGIN_EVENT: Final = re.compile(rb"^BEGIN:VEVENT\s*$", re.IGNORECASE)


def event_uid(interaction: Interaction) -> str:
    """The ``UID`` of an interaction's event: its ``external_ref``, else ``<id>@crmkit``."""
    return interaction.external_ref or f"{interaction.id}@{UID_DOMAIN}"


def _own_id(uid: str) -> UUID | None:
    """The interaction id of a ``UID`` crmkit wrote (``<id>@crmkit``), if it is one."""
    head, at, domain = uid.rpartition("@")
    if not at or domain != UID_DOMAIN:
        return None
    try:
        return UUID(head)
    except ValueError:
        return None


def _utc(value: object, crm: CRM) -> datetime:
    """An event's ``DTSTART`` in UTC (floating and all-day times in the CRM's zone).

    Raises:
        ValidationError: not a date or time (code ``datetime``), or a ``TZID``
            that nothing defines (code ``timezone``).
    """
    if isinstance(value, datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            return value.replace(tzinfo=crm.timezone).astimezone(UTC)
        return value.astimezone(UTC)
    if isinstance(value, date):
        return datetime.combine(value, time(0), crm.timezone).astimezone(UTC)
    raise ValidationError("DTSTART", "is not a date or a date-time", code="datetime", value=value)


class CalendarService:
    """iCalendar export and import of planned interactions: ``crm.calendar``.

    .. versionadded:: 0.1
    """

    def __init__(self, crm: CRM):
        self._crm = crm

    # ----------------------------------------------------------------- export
    def feed(
        self,
        *,
        users: Iterable[User | UUID | str] | None = None,
        team: Team | UUID | str | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
        cancelled: bool = False,
        duration: timedelta = timedelta(minutes=30),
        name: str = "crmkit",
    ) -> bytes:
        """The planned interactions as an iCalendar feed (``VCALENDAR`` bytes).

        Each interaction is one ``VEVENT``: ``UID`` from :func:`event_uid`
        (stable while its ``external_ref`` stays), ``DTSTART`` its scheduled
        time and ``DTEND`` that plus ``duration`` (in UTC), ``SUMMARY`` its
        subject (else its kind), ``DESCRIPTION``, ``LOCATION`` (the custom
        field ``location``, when interactions have one), ``ORGANIZER`` its
        assignee and ``ATTENDEE`` its contact (when they have an e-mail),
        ``CATEGORIES`` its kind, ``STATUS`` ``CONFIRMED`` (``CANCELLED`` for
        cancelled ones) and ``SEQUENCE`` its version, so calendars take updates.

        Args:
            users: only the interactions assigned to these users (records,
                ids or names); default: everyone's.
            team: only those assigned to the team's members (a ``Team``, its
                id or name); with ``users`` too, those of either.
            start: only those scheduled at or after this time.
            end: only those scheduled before this time.
            cancelled: also write cancelled interactions (``STATUS:CANCELLED``),
                so that subscribed calendars remove them.
            duration: how long each event lasts (interactions have no end).
            name: the calendar's name (``X-WR-CALNAME``).

        Raises:
            ValidationError: bad arguments; an unknown user or team (code
                ``reference``).
        """
        import icalendar  # imported when used: importing crmkit stays fast

        if not isinstance(duration, timedelta) or duration <= timedelta(0):
            raise ValidationError(
                "duration", "must be a positive timedelta", code="type", value=duration
            )
        if not isinstance(cancelled, bool):
            raise ValidationError(
                "cancelled", "must be True or False", code="type", value=cancelled
            )
        if not isinstance(name, str) or not name.strip():
            raise ValidationError("name", "must be text", code="type", value=name)
        for label, bound in (("start", start), ("end", end)):
            if bound is not None and (not isinstance(bound, datetime) or bound.utcoffset() is None):
                raise ValidationError(
                    label, "must be a timezone-aware datetime", code="datetime", value=bound
                )
        statuses = [InteractionStatus.PLANNED]
        if cancelled:
            statuses.append(InteractionStatus.CANCELLED)
        where: list[Any] = [In("status", statuses)]
        assignees: dict[UUID, User] = {}
        if users is not None or team is not None:
            if users is not None and (
                isinstance(users, str | bytes) or not isinstance(users, Iterable)
            ):
                raise ValidationError("users", "must be a list of users", code="type", value=users)
            chosen = [self._user(u) for u in users or ()]
            if team is not None:
                members = self._team(team).member_ids
                chosen += [self._user(m) for m in members]
            assignees = {u.id: u for u in chosen}
            where.append(In("assignee_id", sorted(assignees, key=str)))
        if start is not None or end is not None:
            where.append(Range("scheduled_at", start, end))
        found = self._crm.interactions.find(*where, order_by="scheduled_at", limit=None)
        contacts = self._records(self._crm.contacts, {i.contact_id for i in found})
        people = assignees or self._records(self._crm.users, {i.assignee_id for i in found})
        location = self._location_field()
        calendar = icalendar.Calendar()
        calendar.add("prodid", PRODID)
        calendar.add("version", "2.0")
        calendar.add("calscale", "GREGORIAN")
        calendar.add("x-wr-calname", name)
        stamp = self._crm.now().astimezone(UTC)
        for interaction in found:
            calendar.add_component(
                self._vevent(interaction, stamp, duration, contacts, people, location)
            )
        data: bytes = calendar.to_ical()
        return data

    def export(self, path: str | os.PathLike[str], **options: Any) -> int:
        """Write :meth:`feed` (same options) to an ``.ics`` file.

        Returns:
            How many events were written.

        Raises:
            ValidationError: as :meth:`feed`; the file cannot be written (code ``file``).
        """
        target = file_path(path)
        data = self.feed(**options)
        partial = target.with_name(target.name + ".part")
        try:
            try:
                partial.write_bytes(data)
                partial.replace(target)
            finally:
                partial.unlink(missing_ok=True)
        except OSError as exc:
            raise ValidationError(
                "path", f"cannot be written: {exc.strerror}", code="file", value=str(target)
            ) from None
        return data.count(b"BEGIN:VEVENT")

    def _vevent(
        self,
        interaction: Interaction,
        stamp: datetime,
        duration: timedelta,
        contacts: dict[UUID, Any],
        people: dict[UUID, Any],
        location: bool,
    ) -> icalendar.Event:
        """One interaction as a ``VEVENT``."""
        import icalendar

        assert interaction.scheduled_at is not None
        event = icalendar.Event()
        event.add("uid", event_uid(interaction))
        event.add("dtstamp", stamp)
        begin = interaction.scheduled_at.astimezone(UTC)
        event.add("dtstart", begin)
        event.add("dtend", begin + duration)
        kinds = self._crm.interactions.kinds
        label = kinds.get(interaction.kind).name if interaction.kind in kinds else None
        event.add("summary", interaction.subject or label or interaction.kind)
        if interaction.description:
            event.add("description", interaction.description)
        place = interaction.custom.get(LOCATION_FIELD) if location else None
        if isinstance(place, str) and place:
            event.add("location", place)
        event.add("categories", [interaction.kind])
        cancelled_one = interaction.status is InteractionStatus.CANCELLED
        event.add("status", "CANCELLED" if cancelled_one else "CONFIRMED")
        event.add("sequence", interaction.version)
        event.add("last-modified", interaction.updated_at.astimezone(UTC))
        user = people.get(interaction.assignee_id) if interaction.assignee_id else None
        if isinstance(user, User) and user.email is not None:
            organizer = icalendar.vCalAddress(f"mailto:{user.email}")
            organizer.params["cn"] = icalendar.vText(user.name)
            event.add("organizer", organizer)
        contact = contacts.get(interaction.contact_id) if interaction.contact_id else None
        if isinstance(contact, Contact) and contact.email is not None:
            attendee = icalendar.vCalAddress(f"mailto:{contact.email}")
            attendee.params["cn"] = icalendar.vText(contact.full_name)
            attendee.params["role"] = icalendar.vText("REQ-PARTICIPANT")
            event.add("attendee", attendee)
        return event

    # ----------------------------------------------------------------- import
    def import_file(
        self,
        path: str | os.PathLike[str],
        *,
        kind: str = "meeting",
        assignee: User | UUID | str | None = None,
        mode: ImportMode = "atomic",
        dry_run: bool = False,
    ) -> ImportReport:
        """Import the events of an ``.ics`` file as planned interactions.

        An event's ``UID`` is its interaction's ``external_ref`` (a ``UID``
        crmkit wrote, ``<id>@crmkit``, matches that interaction by id), so
        importing the same file twice changes nothing; an event seen again
        with another time, summary or description updates its (still planned)
        interaction, and one now ``STATUS:CANCELLED`` cancels it.  Cancelled
        events never seen before are skipped.

        ``ATTENDEE`` and ``ORGANIZER`` addresses are matched to contacts by
        normalized e-mail (case-folded, without ``+tag``): the first match is
        the interaction's contact (and its organization); an event matching no
        contact is refused (code ``no_contact``).  The assignee is the CRM
        user whose e-mail is the ``ORGANIZER`` (else an attendee's), else
        ``assignee``.  ``SUMMARY`` is the subject, ``DESCRIPTION`` the
        description, ``LOCATION`` goes to the custom field ``location`` when
        interactions have one, else on a last line of the description.
        A recurring event (``RRULE``) is imported as its first occurrence.

        Args:
            path: the ``.ics`` file.
            kind: the kind of the new interactions (``"meeting"``).
            assignee: the user of events whose organizer is no CRM user.
            mode: ``"atomic"`` (any refused event and nothing is written) or
                ``"partial"`` (each valid event is written).
            dry_run: check every event, write nothing.

        Returns:
            The :class:`~crmkit.io.ImportReport` (entity ``"interactions"``);
            ``line`` is the line of the event's ``BEGIN:VEVENT``.

        Raises:
            ValidationError: bad arguments; a file that cannot be read or is
                not iCalendar (codes ``file``, ``calendar``).
        """
        if mode not in ("atomic", "partial"):
            raise ValidationError(
                "mode", 'must be "atomic" or "partial"', code="choice", value=mode
            )
        if not isinstance(dry_run, bool):
            raise ValidationError("dry_run", "must be True or False", code="type", value=dry_run)
        if kind not in self._crm.interactions.kinds:
            raise ValidationError("kind", "is not an interaction kind", code="choice", value=kind)
        default_user = self._user(assignee) if assignee is not None else None
        import icalendar

        source = file_path(path)
        try:
            raw = source.read_bytes()
        except OSError as exc:
            raise ValidationError(
                "path", f"cannot be read: {exc.strerror}", code="file", value=str(source)
            ) from None
        try:
            calendars = icalendar.Calendar.from_ical(raw, multiple=True)
        except Exception as exc:  # icalendar raises ValueError and friends
            raise ValidationError(
                "path", f"is not an iCalendar file: {exc}", code="calendar", value=str(source)
            ) from None
        events = [e for c in calendars for e in c.walk("VEVENT")]
        lines = _event_lines(raw)
        run = _CalendarImport(self._crm, kind, default_user, self._location_field())
        written = write_units(
            self._crm,
            zip(lines, events, strict=False),
            lambda item: run.event(*item),
            mode=mode,
            dry_run=dry_run,
            failed=lambda: bool(run.errors),
        )
        return ImportReport(
            entity="interactions",
            mode=mode,
            dry_run=dry_run,
            rows=len(events),
            created=run.created,
            updated=run.updated,
            unchanged=run.unchanged,
            errors=tuple(sorted(run.errors, key=lambda e: e.line)),
            written=written,
        )

    # ---------------------------------------------------------------- helpers
    def _user(self, value: object) -> User:
        if isinstance(value, User):
            return value
        if isinstance(value, UUID):
            found = self._crm.users.find(In("id", [value]), archived=None)
        elif isinstance(value, str):
            found = self._crm.users.find(name=value, archived=None)
        else:
            raise ValidationError("users", "must be users, ids or names", code="type", value=value)
        if not found:
            raise ValidationError(
                "users", f"there is no user {value}", code="reference", value=value
            )
        return found[0]

    def _team(self, value: object) -> Team:
        try:
            if isinstance(value, Team):
                return self._crm.teams.get(value.id)
            if isinstance(value, UUID):
                return self._crm.teams.get(TeamId(value))
            if isinstance(value, str):
                return self._crm.teams.get_by_name(value)
        except NotFoundError:
            raise ValidationError(
                "team", f"there is no team {value}", code="reference", value=value
            ) from None
        raise ValidationError("team", "must be a team, its id or name", code="type", value=value)

    @staticmethod
    def _records(service: Any, ids: Iterable[UUID | None]) -> dict[UUID, Any]:
        wanted = sorted({i for i in ids if i is not None}, key=str)
        if not wanted:
            return {}
        return {r.id: r for r in service.find(In("id", wanted), archived=None, limit=None)}

    def _location_field(self) -> bool:
        return any(
            f.key == LOCATION_FIELD for f in self._crm.custom_fields.for_entity("interaction")
        )


def _event_lines(raw: bytes) -> list[int]:
    """The 1-based line of each ``BEGIN:VEVENT`` of a file, in order."""
    return [
        number for number, line in enumerate(raw.splitlines(), start=1) if _BEGIN_EVENT.match(line)
    ]


class _CalendarImport:
    """The state of one calendar import: lookups, counts and errors."""

    def __init__(self, crm: CRM, kind: str, assignee: User | None, location: bool):
        self.crm = crm
        self.kind = kind
        self.assignee = assignee
        self.location = location
        self.created = self.updated = self.unchanged = 0
        self.errors: list[RowError] = []
        self.contacts = EmailIndex(crm)

    def event(self, line: int, event: Any) -> None:
        """Import one event in a savepoint: it is written whole or not at all."""
        try:
            with self.crm.transaction():
                self._event(line, event)
        except _Refused as refused:
            self.errors.append(RowError(line, refused.column, refused.code, refused.message))
        except ValidationError as error:
            column = _PROPERTIES.get(error.field.split("[", 1)[0].split(".", 1)[0], error.field)
            self.errors.append(RowError(line, column, error.code, error.reason))
        except (ConcurrencyError, InvalidTransition, NotFoundError) as error:
            self.errors.append(RowError(line, "", "conflict", str(error)))
        except CrmkitError as error:
            self.errors.append(RowError(line, "", "invalid", str(error)))

    def _event(self, line: int, event: Any) -> None:
        try:
            uid = str(event.get("UID", "")).strip()
            start = event.get("DTSTART")
            summary = str(event.get("SUMMARY", "")).strip() or None
            description = str(event.get("DESCRIPTION", "")).strip() or None
            place = str(event.get("LOCATION", "")).strip() or None
            status = str(event.get("STATUS", "")).strip().upper()
            organizer = event.get("ORGANIZER")
            attendees = event.get("ATTENDEE", [])
            if not isinstance(attendees, list):
                attendees = [attendees]
            value = start.dt if start is not None else None
            tzid = start.params.get("TZID") if start is not None else None
        except Exception as exc:  # a damaged event: icalendar's own errors
            raise _Refused("", "malformed", f"is not a valid event: {exc}") from None
        if not uid:
            raise _Refused("UID", "required", "an event needs a UID")
        if value is None:
            raise _Refused("DTSTART", "required", "an event needs a DTSTART")
        if isinstance(value, datetime) and value.tzinfo is None and tzid:
            raise _Refused("DTSTART", "timezone", f"the time zone {tzid!r} is not defined")
        when = _utc(value, self.crm)
        if place and not self.location:
            description = (
                f"{description}\n\nLocation: {place}" if description else f"Location: {place}"
            )
        custom: dict[str, object] | None = (
            {LOCATION_FIELD: place} if place and self.location else None
        )
        current = self._existing(uid)
        if current is not None:
            self._update(current, when, summary, description, custom, status)
            return
        if status == "CANCELLED":
            self.unchanged += 1
            return
        addresses = [a for a in (address_of(organizer), *map(address_of, attendees)) if a]
        contact = next(
            (c for c in (self.contacts.contact(a) for a in addresses) if c is not None), None
        )
        if contact is None:
            raise _Refused(
                "ATTENDEE", "no_contact", "no attendee or organizer is a contact of the CRM"
            )
        user = next((u for u in map(self.contacts.user, addresses) if u is not None), None)
        self.crm.interactions.plan(
            kind=self.kind,
            scheduled_at=when,
            contact=contact,
            organization=contact.organization_id,
            subject=summary,
            description=description,
            assignee=user or self.assignee,
            external_ref=None if _own_id(uid) else uid,
            custom=custom,
        )
        self.created += 1

    def _label(self, kind: str) -> str | None:
        kinds = self.crm.interactions.kinds
        return kinds.get(kind).name if kind in kinds else None

    def _existing(self, uid: str) -> Interaction | None:
        found = self.crm.interactions.find(external_ref=uid, archived=None)
        if found:
            return found[0]
        own = _own_id(uid)
        if own is not None:
            by_id = self.crm.interactions.find(In("id", [own]), archived=None)
            if by_id and by_id[0].external_ref is None:
                return by_id[0]
        return None

    def _update(
        self,
        current: Interaction,
        when: datetime,
        summary: str | None,
        description: str | None,
        custom: dict[str, object] | None,
        status: str,
    ) -> None:
        if current.status is not InteractionStatus.PLANNED:
            self.unchanged += 1  # done or cancelled here: the CRM's word stands
            return
        if status == "CANCELLED":
            self.crm.interactions.cancel(current.id, expected_version=current.version)
            self.updated += 1
            return
        changed = current
        values: dict[str, Any] = {}
        if current.subject is None and summary in (self._label(current.kind), current.kind):
            summary = None  # the kind's name an export writes for an interaction without subject
        if summary != current.subject:
            values["subject"] = summary
        if description != current.description:
            values["description"] = description
        if custom is not None and current.custom.get(LOCATION_FIELD) != custom[LOCATION_FIELD]:
            values["custom"] = {**current.custom, **custom}
        if values:
            changed = self.crm.interactions.update(
                current.id, expected_version=current.version, **values
            )
        if current.scheduled_at != when:
            changed = self.crm.interactions.reschedule(
                current.id, to=when, expected_version=changed.version
            )
        if changed.version != current.version:
            self.updated += 1
        else:
            self.unchanged += 1


class _Refused(Exception):
    def __init__(self, column: str, code: str, message: str):
        super().__init__(message)
        self.column, self.code, self.message = column, code, message
