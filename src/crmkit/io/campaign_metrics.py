"""Importing an e-mail marketing tool's per-contact report into a campaign.

Tools such as Mailchimp, Brevo or Acumbamail export one row per recipient:
the address, then whether (or when) the message was sent, opened, clicked,
bounced, and whether the recipient unsubscribed.  :func:`import_metrics`
(``crm.imports.campaign_metrics``) reads such a file and records the facts
on the campaign's :class:`~crmkit.CampaignEmail` records, through the same
report machinery as every import: row-level errors, ``dry_run``, atomic or
partial.

Headers are matched in English and Spanish (``email``/``correo``,
``opened``/``abierto``/``aperturas``...), ignoring case, accents, spaces and
hyphens; ``mapping`` names others.  A cell is a flag (``1``/``0``,
``yes``/``no``, ``sí``/``no``, ``x``, a count such as ``3`` opens) or a
date and time (ISO 8601, or ``date_format``).  A flag without a time is
dated ``at`` (default: now).

Imports add facts, never remove them: a date already recorded is kept, an
empty or ``0`` cell changes nothing, so importing the same file twice
changes nothing the second time.  A row that says opened, clicked, bounced
or unsubscribed but not sent counts as sent (at the earliest of its dates).

.. versionadded:: 0.1
"""

from __future__ import annotations

import os
import unicodedata
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import date, datetime, time
from typing import TYPE_CHECKING, Any, Final

from crmkit.core import changes
from crmkit.core.contact_points import EmailAddress
from crmkit.core.entities import Contact
from crmkit.core.errors import CrmkitError, ValidationError
from crmkit.core.formats import MalformedRow, ReadOptions
from crmkit.core.ids import CampaignId, ContactId
from crmkit.core.mail import CampaignEmail, campaign_email_id
from crmkit.core.query import In, Query
from crmkit.io.imports import DEFAULT_BATCH, check_delimiter, file_path, format_for, write_units
from crmkit.io.report import ImportMode, ImportReport, RowError

if TYPE_CHECKING:
    from crmkit.app import CRM
    from crmkit.core.campaigns import Campaign
    from crmkit.services.base import Event
    from crmkit.stores.base import UnitOfWork

__all__ = ["HEADERS", "METRICS", "import_metrics"]

#: The facts a row may carry, as :class:`~crmkit.CampaignEmail` fields.
METRICS: Final = ("sent", "opened", "clicked", "bounced", "unsubscribed")

#: Known headers (normalized: lower case, no accents, ``_`` for spaces) -> column.
HEADERS: Final[Mapping[str, str]] = {
    **dict.fromkeys(
        (
            "email",
            "e_mail",
            "email_address",
            "e_mail_address",
            "address",
            "recipient",
            "to",
            "correo",
            "correo_electronico",
            "email_del_contacto",
            "direccion",
            "direccion_de_correo",
            "destinatario",
            "mail",
        ),
        "email",
    ),
    **dict.fromkeys(
        (
            "sent",
            "sent_at",
            "delivered",
            "send_date",
            "enviado",
            "enviados",
            "envio",
            "fecha_de_envio",
            "fecha_envio",
            "entregado",
        ),
        "sent",
    ),
    **dict.fromkeys(
        (
            "opened",
            "opened_at",
            "open",
            "opens",
            "open_date",
            "abierto",
            "abiertos",
            "apertura",
            "aperturas",
            "abrio",
            "fecha_de_apertura",
            "leido",
        ),
        "opened",
    ),
    **dict.fromkeys(
        (
            "clicked",
            "clicked_at",
            "click",
            "clicks",
            "click_date",
            "clic",
            "clics",
            "click_en_enlace",
            "hizo_clic",
            "pulsado",
            "fecha_de_clic",
        ),
        "clicked",
    ),
    **dict.fromkeys(
        (
            "bounced",
            "bounced_at",
            "bounce",
            "bounces",
            "rebotado",
            "rebote",
            "rebotes",
            "fecha_de_rebote",
            "devuelto",
        ),
        "bounced",
    ),
    **dict.fromkeys(
        (
            "unsubscribed",
            "unsubscribed_at",
            "unsubscribe",
            "opted_out",
            "baja",
            "dado_de_baja",
            "dada_de_baja",
            "bajas",
            "desuscrito",
            "cancelo_suscripcion",
            "fecha_de_baja",
        ),
        "unsubscribed",
    ),
}

_TRUE: Final = frozenset({"true", "t", "yes", "y", "sí", "si", "s", "x", "verdadero", "✓"})
_FALSE: Final = frozenset({"", "false", "f", "no", "n", "0", "falso", "-"})


def normal_header(header: str) -> str:
    """A header as :data:`HEADERS` spells it: lower case, no accents, ``_`` separators."""
    folded = unicodedata.normalize("NFKD", header.strip().lower())
    plain = "".join(c for c in folded if not unicodedata.combining(c))
    return "_".join(plain.replace("-", " ").replace(".", " ").split())


def _columns(headers: Sequence[str], mapping: Mapping[str, str | None] | None) -> dict[str, str]:
    """File header -> column (``email`` or a metric) for the headers read."""
    given = dict(mapping or {})
    for header, column in given.items():
        if column is not None and column not in ("email", *METRICS):
            raise ValidationError(
                "mapping",
                f"maps {header!r} to no column: use email, {', '.join(METRICS)} or None",
                code="unknown_column",
                value=column,
            )
    found: dict[str, str] = {}
    for header in headers:
        column = given[header] if header in given else HEADERS.get(normal_header(header))
        if column is not None:
            if column in found.values():
                raise ValidationError(
                    "mapping",
                    f"two headers fill {column}: map one of them to None",
                    code="conflict",
                    value=header,
                )
            found[header] = column
    if "email" not in found.values():
        raise ValidationError(
            "mapping",
            "no header names the e-mail address: map one to 'email'",
            code="header",
        )
    return found


def _when(cell: object, at: datetime, date_format: str | None, crm: CRM) -> datetime | None:
    """The moment a cell records, ``at`` for a bare yes, ``None`` for no.

    Raises:
        ValidationError: neither a flag, a count nor a date (code ``flag``).
    """
    if cell is None or isinstance(cell, bool):
        return at if cell else None
    if isinstance(cell, int | float):
        return at if cell > 0 else None
    if isinstance(cell, datetime):
        return cell if cell.tzinfo is not None else cell.replace(tzinfo=crm.timezone)
    if isinstance(cell, date):
        return datetime.combine(cell, time(), tzinfo=crm.timezone)
    if isinstance(cell, str):
        text = cell.strip()
        lowered = text.lower()
        if lowered in _FALSE:
            return None
        if lowered in _TRUE or (text.isdigit() and int(text) > 0):
            return at
        parsed: datetime | None = None
        try:
            parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            if date_format is not None:
                try:
                    parsed = datetime.strptime(text, date_format)
                except ValueError:
                    parsed = None
        if parsed is not None:
            return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=crm.timezone)
    raise ValidationError(
        "",
        "must be a flag (1/0, yes/no, sí/no, x), a count or a date and time",
        code="flag",
        value=cell,
    )


def import_metrics(
    crm: CRM,
    path: str | os.PathLike[str],
    *,
    campaign: Campaign | CampaignId | str,
    mapping: Mapping[str, str | None] | None = None,
    format: str | None = None,
    mode: ImportMode = "atomic",
    dry_run: bool = False,
    encoding: str | None = None,
    delimiter: str | None = None,
    date_format: str | None = None,
    at: datetime | None = None,
    batch_size: int = DEFAULT_BATCH,
) -> ImportReport:
    """The work of :meth:`crmkit.io.ImportService.campaign_metrics`."""
    if mode not in ("atomic", "partial"):
        raise ValidationError("mode", 'must be "atomic" or "partial"', code="choice", value=mode)
    if not isinstance(dry_run, bool):
        raise ValidationError("dry_run", "must be True or False", code="type", value=dry_run)
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValidationError("batch_size", "must be a positive integer", value=batch_size)
    check_delimiter(delimiter)
    when = crm.now() if at is None else at
    if not isinstance(when, datetime) or when.utcoffset() is None:
        raise ValidationError("at", "must be a timezone-aware datetime", value=at)
    target = crm._read(lambda uow: crm.campaigns._get(uow, campaign))
    source = file_path(path)
    chosen = format_for(crm, source, format, reading=True)
    assert chosen.read is not None
    rows = chosen.read(source, ReadOptions(encoding=encoding, delimiter=delimiter))
    run = _MetricsImport(crm, target, mapping, when, date_format)

    written = write_units(
        crm,
        run.batches(rows, batch_size),
        run.process,
        mode=mode,
        dry_run=dry_run,
        failed=lambda: bool(run.errors),
    )
    return ImportReport(
        entity="campaign_emails",
        mode=mode,
        dry_run=dry_run,
        rows=run.rows,
        created=run.created,
        updated=run.updated,
        unchanged=run.unchanged,
        errors=tuple(sorted(run.errors, key=lambda e: e.line)),
        written=written,
    )


class _MetricsImport:
    def __init__(
        self,
        crm: CRM,
        campaign: Campaign,
        mapping: Mapping[str, str | None] | None,
        at: datetime,
        date_format: str | None,
    ) -> None:
        self.crm = crm
        self.campaign = campaign
        self.mapping = mapping
        self.at = at
        self.date_format = date_format
        self.columns: dict[str, str] | None = None
        self.members = frozenset(campaign.members)
        self.rows = self.created = self.updated = self.unchanged = 0
        self.errors: list[RowError] = []

    def batches(
        self, rows: Iterable[tuple[int, Mapping[str, object]] | MalformedRow], size: int
    ) -> Iterator[list[tuple[int, EmailAddress, dict[str, datetime], str]]]:
        """Rows read into (line, address, {metric: when}, e-mail header), in batches."""
        batch: list[tuple[int, EmailAddress, dict[str, datetime], str]] = []
        for source in rows:
            self.rows += 1
            if isinstance(source, MalformedRow):
                self.errors.append(RowError(source.line, "", "malformed", source.reason))
                continue
            line, cells = source
            if self.columns is None:
                self.columns = _columns(list(cells), self.mapping)
            read = self._read(line, cells)
            if read is not None:
                batch.append(read)
            if len(batch) >= size:
                yield batch
                batch = []
        if batch:
            yield batch

    def _read(
        self, line: int, cells: Mapping[str, object]
    ) -> tuple[int, EmailAddress, dict[str, datetime], str] | None:
        assert self.columns is not None
        address: EmailAddress | None = None
        header_of_email = ""
        facts: dict[str, datetime] = {}
        failed = False
        for header, column in self.columns.items():
            cell = cells.get(header)
            if column == "email":
                header_of_email = header
                text = cell.strip() if isinstance(cell, str) else cell
                if not text:
                    self.errors.append(RowError(line, header, "required", "is required"))
                    failed = True
                    continue
                try:
                    address = EmailAddress.parse(str(text))
                except ValidationError as error:
                    self.errors.append(RowError(line, header, error.code, error.reason))
                    failed = True
                continue
            try:
                moment = _when(cell, self.at, self.date_format, self.crm)
            except ValidationError as error:
                self.errors.append(RowError(line, header, error.code, error.reason))
                failed = True
                continue
            if moment is not None:
                facts[column] = moment
        if failed or address is None:
            return None
        if facts and "sent" not in facts:
            facts["sent"] = min(facts.values())
        return line, address, facts, header_of_email

    def process(self, batch: list[tuple[int, EmailAddress, dict[str, datetime], str]]) -> None:
        def run(uow: UnitOfWork, events: list[Event]) -> None:
            contacts = self._contacts(uow, {a.value for _, a, _, _ in batch})
            repo = uow.repository(CampaignEmail)
            for line, address, facts, header in batch:
                contact = contacts.get(address.match_key)
                if contact is None:
                    self.errors.append(
                        RowError(line, header, "reference", "no contact has this e-mail address")
                    )
                    continue
                try:
                    with uow.savepoint():
                        self._write(uow, events, repo, contact, address, facts)
                except CrmkitError as error:
                    code = getattr(error, "code", "conflict")
                    self.errors.append(RowError(line, "", str(code), str(error)))

        self.crm._write(run)

    def _contacts(self, uow: UnitOfWork, addresses: set[str]) -> dict[str, Contact]:
        """Contact by address (case-insensitive); a campaign member's contact first."""
        found: dict[str, Contact] = {}
        wanted = sorted(addresses | {a.lower() for a in addresses})
        for contact in uow.repository(Contact).find(
            Query(filters=(In("email", wanted),), archived=None)
        ):
            if contact.email is None:
                continue
            key = contact.email.match_key
            held = found.get(key)
            if held is None or (
                held.organization_id not in self.members and contact.organization_id in self.members
            ):
                found[key] = contact
        return found

    def _write(
        self,
        uow: UnitOfWork,
        events: list[Event],
        repo: Any,
        contact: Contact,
        address: EmailAddress,
        facts: Mapping[str, datetime],
    ) -> None:
        now = self.crm.now()
        rid = campaign_email_id(self.campaign.id, ContactId(contact.id))
        current: CampaignEmail | None = repo.get_many([rid]).get(rid)
        if current is None:
            record, created = changes.create(
                CampaignEmail,
                id=rid,
                now=now,
                campaign_id=self.campaign.id,
                contact_id=contact.id,
                organization_id=contact.organization_id,
                email=address,
                **{f"{k}_at": v for k, v in facts.items()},
            )
            repo.add(record)
            self.crm._record(uow, events, created)
            self.created += 1
            return
        values = {f"{k}_at": v for k, v in facts.items() if getattr(current, f"{k}_at") is None}
        record, updated = changes.update(current, values, now=now)
        if updated is None:
            self.unchanged += 1
            return
        repo.update(record, expected_version=current.version)
        self.crm._record(uow, events, updated)
        self.updated += 1
