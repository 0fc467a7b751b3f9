"""Business cards (vCard, tarjetas de visita): ``crm.cards``.

A vCard file holds one card per person.  :meth:`CardService.import_file`
reads vCard 3.0 and 4.0 cards (with the ``vobject`` library) into contacts
through the import machinery of ``crm.imports``: the same validation, dry run,
atomic or partial modes, row-level report (``line`` is the line of the card's
``BEGIN:VCARD``) and upsert by ``external_ref`` (the card's ``UID``).  The
organization a card names (``ORG``) is found by its name, or created.
:meth:`CardService.export` writes contacts with their organization as
vCard 3.0.

.. versionadded:: 0.1
"""

from __future__ import annotations

import io
import os
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final
from uuid import UUID

from crmkit.core.contact_points import Address
from crmkit.core.entities import Contact, Organization, Position
from crmkit.core.errors import ValidationError
from crmkit.core.fields import slugify
from crmkit.core.formats import MalformedRow, SourceRow
from crmkit.core.query import Filter, In
from crmkit.io.columns import Column, ReadContext, columns_of
from crmkit.io.formats import sniff_encoding
from crmkit.io.imports import DEFAULT_BATCH, _Header, _Import, _Row, file_path, run_batches
from crmkit.io.report import ImportMode, ImportReport, RowError

if TYPE_CHECKING:
    from crmkit.app import CRM

__all__ = ["CardService", "read_cards"]

#: The card properties an import reads, and the contact column each feeds.
CARD_COLUMNS: Final[Mapping[str, str]] = {
    "UID": "external_ref",
    "N": "first_name",
    "N.family": "last_name",
    "EMAIL": "email",
    "TEL": "phones",
    "ORG": "organization",
    "ORG.unit": "department",
    "TITLE": "position",
    "LANG": "language",
    "NOTE": "notes",
}

#: The extension property a crmkit export keeps the contact's language in
#: (``LANG`` exists only in vCard 4.0; crmkit writes 3.0).
LANG_PROPERTY: Final = "X-CRMKIT-LANG"

_BEGIN: Final = re.compile(r"^begin:vcard\s*$", re.IGNORECASE)
_END: Final = re.compile(r"^end:vcard\s*$", re.IGNORECASE)


# ====================================================================== reading


def _blocks(path: Path, encoding: str | None) -> Iterator[tuple[int, str] | MalformedRow]:
    """The text of each ``BEGIN:VCARD`` ... ``END:VCARD`` block, with its first line."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ValidationError(
            "path", f"cannot be read: {exc.strerror}", code="file", value=str(path)
        ) from None
    chosen = encoding or sniff_encoding(raw[: 1 << 16])
    try:
        text = raw.decode(chosen)
    except (LookupError, UnicodeDecodeError):
        raise ValidationError(
            "encoding", f"the file is not {chosen} text", code="encoding", value=chosen
        ) from None
    start: int | None = None
    lines: list[str] = []
    number = 0
    for number, content in enumerate(io.StringIO(text, newline=None), start=1):
        stripped = content.rstrip("\r\n")
        if start is None:
            if _BEGIN.match(stripped.lstrip("\ufeff")):
                start, lines = number, [stripped.lstrip("\ufeff")]
            elif stripped.strip():
                yield MalformedRow(number, "is outside any BEGIN:VCARD ... END:VCARD block")
            continue
        if _BEGIN.match(stripped) and not stripped[:1].isspace():
            yield MalformedRow(start, "has no END:VCARD before the next card")
            start, lines = number, [stripped]
            continue
        lines.append(stripped)
        if _END.match(stripped):
            yield start, "\r\n".join(lines) + "\r\n"
            start = None
    if start is not None:
        yield MalformedRow(start, "has no END:VCARD")
    if number == 0:
        raise ValidationError("path", "the file holds no card", code="empty", value=str(path))


def _text(value: object) -> str:
    """A vCard value (text, or a list of text from a structured property) as one string."""
    if isinstance(value, list | tuple):
        return " ".join(_text(v) for v in value if _text(v))
    return value.strip() if isinstance(value, str) else ""


def _preferred(lines: Sequence[Any]) -> Any:
    """The line marked preferred (3.0 ``TYPE=pref``, 4.0 ``PREF=1``), else the first."""

    def rank(line: Any) -> int:
        params = {k.upper(): v for k, v in line.params.items()}
        types = {t.strip().lower() for v in params.get("TYPE", []) for t in v.split(",")}
        if "pref" in types:
            return 0
        pref = params.get("PREF", [])
        return int(pref[0]) if pref and pref[0].isdigit() else 101

    return min(lines, key=rank)


def _card_cells(card: Any) -> dict[str, object]:
    """The cells of one parsed card, by property (see :data:`CARD_COLUMNS`)."""
    contents: dict[str, list[Any]] = {k.upper(): v for k, v in card.contents.items()}
    cells: dict[str, object] = {}

    def first(name: str) -> str:
        found = contents.get(name)
        return _text(found[0].value) if found else ""

    given = family = ""
    if "N" in contents:
        name = contents["N"][0].value
        given = _text([getattr(name, "given", ""), getattr(name, "additional", "")])
        family = _text(getattr(name, "family", ""))
    full = first("FN")
    if not given and full:
        given = full if not family else full.replace(family, "").strip() or full
    cells["N"] = given or None
    cells["N.family"] = family or None
    emails = [line for line in contents.get("EMAIL", []) if _text(line.value)]
    cells["EMAIL"] = _text(_preferred(emails).value) if emails else None
    phones = []
    for line in contents.get("TEL", []):
        number = _text(line.value)
        if number.lower().startswith("tel:"):
            number = number[4:]
        if number:
            phones.append(number)
    cells["TEL"] = phones
    if "ORG" in contents:
        parts = contents["ORG"][0].value
        parts = [parts] if isinstance(parts, str) else list(parts)
        cells["ORG"] = _text(parts[0]) if parts else None
        cells["ORG.unit"] = _text(parts[1:]) or None
    else:
        cells["ORG"] = cells["ORG.unit"] = None
    cells["TITLE"] = first("TITLE") or None
    cells["LANG"] = first("LANG") or first(LANG_PROPERTY) or None
    cells["NOTE"] = first("NOTE") or None
    cells["UID"] = first("UID") or None
    return cells


def _address(card: Any) -> Address | None:
    """The card's work address (else its first), for the organization it names."""
    lines = list(card.contents.get("adr", []))
    if not lines:
        return None
    work = [
        line
        for line in lines
        if any("work" in t.lower() for t in line.params.get("TYPE", line.params.get("type", [])))
    ]
    value = (work or lines)[0].value
    street = _text([getattr(value, "box", ""), getattr(value, "extended", "")])
    street = _text([getattr(value, "street", ""), street])
    return Address(
        street=street or None,
        city=_text(getattr(value, "city", "")) or None,
        region=_text(getattr(value, "region", "")) or None,
        postal_code=_text(getattr(value, "code", "")) or None,
        country=country_code(_text(getattr(value, "country", ""))),
    )


def country_code(name: str) -> str | None:
    """An ISO 3166 code from a card's country: a code, or its English or Spanish name."""
    if not name:
        return None
    if re.fullmatch(r"[A-Za-z]{2}", name):
        return name.upper()
    return _country_names().get(name.casefold())


_COUNTRIES: dict[str, str] = {}


def _country_names() -> dict[str, str]:
    if not _COUNTRIES:
        from babel import Locale

        for language in ("en", "es"):
            for code, label in Locale(language).territories.items():
                if len(code) == 2 and code.isalpha():
                    _COUNTRIES.setdefault(label.casefold(), code)
    return _COUNTRIES


def read_cards(
    path: Path, *, encoding: str | None = None
) -> Iterator[tuple[SourceRow, Address | None] | MalformedRow]:
    """Each card of a vCard file: its line, its cells, and the address of its organization.

    A block that vobject cannot parse is a :class:`~crmkit.core.formats.MalformedRow`.

    Raises:
        ValidationError: the file cannot be read or decoded (codes ``file``,
            ``encoding``, ``empty``).
    """
    for block in _blocks(path, encoding):
        if isinstance(block, MalformedRow):
            yield block
            continue
        line, text = block
        try:
            import vobject  # imported when used: importing crmkit stays fast

            card = vobject.readOne(text, validate=False, ignoreUnreadable=False)
            cells = _card_cells(card)
            address = _address(card)
        except ValidationError as exc:
            yield MalformedRow(line, f"has an invalid address: {exc.reason}")
            continue
        except Exception as exc:  # vobject raises ParseError, ValueError, AttributeError...
            yield MalformedRow(line, f"is not a valid vCard: {exc}")
            continue
        yield (line, cells), address


# ====================================================================== writing


def _card(
    contact: Contact,
    organization: Organization | None,
    position: Position | None,
) -> str:
    import vobject

    card = vobject.vCard()
    card.add("n").value = vobject.vcard.Name(
        family=contact.last_name or "", given=contact.first_name
    )
    card.add("fn").value = contact.full_name
    if organization is not None:
        card.add("org").value = [
            organization.name,
            *([contact.department] if contact.department else []),
        ]
    if position is not None:
        card.add("title").value = position.name
    if contact.email is not None:
        line = card.add("email")
        line.value = str(contact.email)
        line.type_param = "INTERNET"
    for phone in contact.phones:
        line = card.add("tel")
        line.value = phone.e164
        line.type_param = "VOICE"
    if organization is not None and organization.addresses:
        found = organization.addresses[0]
        line = card.add("adr")
        line.value = vobject.vcard.Address(
            street=found.street or "",
            city=found.city or "",
            region=found.region or "",
            code=found.postal_code or "",
            country=found.country or "",
        )
        line.type_param = "WORK"
    if contact.notes:
        card.add("note").value = contact.notes
    if contact.language:
        card.add(LANG_PROPERTY.lower()).value = contact.language
    card.add("uid").value = contact.external_ref or f"urn:uuid:{contact.id}"
    text: str = card.serialize()
    return text


# ====================================================================== service


class _CardImport(_Import):
    """An import of contacts whose organization and position come by name."""

    def __init__(self, crm: CRM, header: _Header, ctx: ReadContext):
        super().__init__(crm, "contacts", Contact, header, ctx)
        self.addresses: dict[int, Address | None] = {}
        self.by_column = {c.name: c for c in header._by_name.values()}

    def process(self, batch: list[_Row]) -> None:
        """Find (or create) the organizations and positions the batch names, then import it."""
        self._organizations(batch)
        self._positions(batch)
        self._own_ids(batch)
        super().process(batch)

    def _organizations(self, batch: list[_Row]) -> None:
        names = {
            r.args["organization"] for r in batch if isinstance(r.args.get("organization"), str)
        }
        if not names:
            return
        found: dict[str, Organization] = {}
        for known in self.crm.organizations.find(In("name", sorted(names)), archived=None):
            found.setdefault(known.name, known)
        column = self.by_column["organization"]
        for row in batch:
            name = row.args.get("organization")
            if not isinstance(name, str):
                continue
            org: Organization | None = found.get(name)
            if org is None and not row.errors:
                address = self.addresses.get(row.line)
                try:
                    org = self.crm.organizations.create(
                        name=name, addresses=[address] if address is not None else []
                    )
                except ValidationError as error:
                    row.errors.append(RowError(row.line, "ORG", error.code, error.reason))
                    continue
                found[name] = org
            if org is not None:
                row.args["organization"] = org.id
                row.cells[column] = str(org.id)

    def _positions(self, batch: list[_Row]) -> None:
        titles = {r.args["position"] for r in batch if isinstance(r.args.get("position"), str)}
        if not titles:
            return
        known = self.crm.positions.find(archived=None, limit=None)
        by_name = {p.name.casefold(): p for p in known}
        by_name.update({p.key: p for p in known})
        column = self.by_column["position"]
        for row in batch:
            title = row.args.get("position")
            if not isinstance(title, str):
                continue
            position = by_name.get(title.casefold()) or by_name.get(slugify(title))
            if position is None and not row.errors:
                try:
                    position = self.crm.positions.create(name=title)
                except ValidationError as error:
                    row.errors.append(RowError(row.line, "TITLE", error.code, error.reason))
                    continue
                by_name[title.casefold()] = position
            if position is not None:
                row.args["position"] = position.key
                row.cells[column] = position.key

    def _own_ids(self, batch: list[_Row]) -> None:
        """A ``UID`` of ``urn:uuid:<id>`` (crmkit's own, for contacts without
        external_ref) matches that contact by id, and is not stored as its external_ref."""
        ids: dict[UUID, _Row] = {}
        for row in batch:
            ref = row.args.get("external_ref")
            if isinstance(ref, str) and ref.lower().startswith("urn:uuid:"):
                try:
                    ids[UUID(ref[9:])] = row
                except ValueError:
                    continue
        if not ids:
            return
        for contact in self.crm.contacts.find(In("id", sorted(ids, key=str)), archived=None):
            row = ids[contact.id]
            if contact.external_ref is None:
                del row.args["external_ref"]
                row.cells.pop(self.by_column["external_ref"], None)
                row.args["id"] = contact.id


class CardService:
    """vCard import and export of contacts with their organization: ``crm.cards``.

    .. versionadded:: 0.1
    """

    def __init__(self, crm: CRM):
        self._crm = crm

    def import_file(
        self,
        path: str | os.PathLike[str],
        *,
        mode: ImportMode = "atomic",
        dry_run: bool = False,
        encoding: str | None = None,
        batch_size: int = DEFAULT_BATCH,
    ) -> ImportReport:
        """Import the cards of a vCard (3.0 or 4.0) file as contacts.

        Each card is a row of a contacts import (see ``crm.imports.file``):
        ``UID`` is the contact's ``external_ref`` (a card imported twice
        updates its contact), ``N`` (else ``FN``) its name, the preferred
        ``EMAIL`` (else the first) its e-mail, every ``TEL`` a phone, ``ORG``
        its organization (found by exact name, else created with the card's
        ``ADR``) and department (the unit after ``;``), ``TITLE`` its
        position (found by name or key, else created), ``LANG`` its
        language and ``NOTE`` its notes.

        Args:
            path: the ``.vcf`` file.
            mode: ``"atomic"`` (any refused card and nothing is written) or
                ``"partial"`` (valid cards are written, a batch at a time).
            dry_run: validate every card, write nothing.
            encoding: the file's encoding (default: UTF-8, else Latin-1).
            batch_size: cards validated and written together.

        Returns:
            The :class:`~crmkit.io.ImportReport`; a malformed card is a row
            error (code ``malformed``) at the line of its ``BEGIN:VCARD``.

        Raises:
            ValidationError: bad arguments, a file that cannot be read.
        """
        if mode not in ("atomic", "partial"):
            raise ValidationError(
                "mode", 'must be "atomic" or "partial"', code="choice", value=mode
            )
        if not isinstance(dry_run, bool):
            raise ValidationError("dry_run", "must be True or False", code="type", value=dry_run)
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValidationError("batch_size", "must be a positive integer", value=batch_size)
        if encoding is not None and not isinstance(encoding, str):
            raise ValidationError("encoding", "must be text", code="type", value=encoding)
        source = file_path(path)
        columns: Sequence[Column] = columns_of("contact", ())
        run = _CardImport(
            self._crm,
            _Header(columns, dict(CARD_COLUMNS)),
            ReadContext(text=False, timezone=self._crm.timezone, unescape_formulas=False),
        )

        def rows() -> Iterator[SourceRow | MalformedRow]:
            for item in read_cards(source, encoding=encoding):
                if isinstance(item, MalformedRow):
                    yield item
                else:
                    (line, cells), address = item
                    run.addresses[line] = address
                    yield line, cells

        return run_import(self._crm, run, "contacts", rows(), mode, dry_run, batch_size)

    def export(
        self,
        path: str | os.PathLike[str],
        *,
        where: Sequence[Filter] = (),
        order_by: str | Sequence[str] = (),
        limit: int | None = None,
        archived: bool | None = False,
        **equals: object,
    ) -> int:
        """Write the contacts ``crm.contacts.find(...)`` returns as vCard 3.0 cards.

        Each card holds the contact's name, e-mail, phones, organization
        (``ORG``: its name and the contact's department), position
        (``TITLE``), the organization's first address (``ADR``), notes,
        language (``X-CRMKIT-LANG``) and ``UID``: the contact's
        ``external_ref``, else ``urn:uuid:<id>`` (which an import into the
        same CRM matches to the contact again).

        Returns:
            How many cards were written.

        Raises:
            ValidationError: bad criteria; the file cannot be written (code ``file``).
        """
        from crmkit.io.exports import _pages

        target = file_path(path)
        if not isinstance(where, list | tuple):
            raise ValidationError("where", "must be a list of filters", code="type", value=where)
        service = self._crm.contacts
        service.count(*where, archived=archived, **equals)  # check the criteria first
        criteria: dict[str, Any] = {"order_by": order_by, "archived": archived, **equals}
        positions = {p.id: p for p in self._crm.positions.find(archived=None, limit=None)}
        partial = target.with_name(target.name + ".part")
        written = 0
        try:
            try:
                with partial.open("w", encoding="utf-8", newline="") as out:
                    for page in _pages(service, tuple(where), criteria, limit, 0):
                        orgs = _organizations_of(self._crm, page)
                        for entity in page:
                            assert isinstance(entity, Contact)
                            contact = entity
                            org = (
                                orgs.get(contact.organization_id)
                                if contact.organization_id
                                else None
                            )
                            position = (
                                positions.get(contact.position_id) if contact.position_id else None
                            )
                            out.write(_card(contact, org, position))
                            written += 1
                partial.replace(target)
            finally:
                partial.unlink(missing_ok=True)
        except OSError as exc:
            raise ValidationError(
                "path", f"cannot be written: {exc.strerror}", code="file", value=str(target)
            ) from None
        return written


def _organizations_of(crm: CRM, contacts: Iterable[object]) -> dict[UUID, Organization]:
    ids = sorted(
        {c.organization_id for c in contacts if isinstance(c, Contact) and c.organization_id},
        key=str,
    )
    if not ids:
        return {}
    return {o.id: o for o in crm.organizations.find(In("id", ids), archived=None)}


def run_import(
    crm: CRM,
    run: _Import,
    entity: str,
    rows: Iterable[SourceRow | MalformedRow],
    mode: ImportMode,
    dry_run: bool,
    batch_size: int,
) -> ImportReport:
    """Feed ``rows`` through ``run`` in ``mode``, as ``crm.imports.file`` does."""
    batches = run.batches(rows, batch_size, None)
    return run_batches(crm, run, batches, entity=entity, mode=mode, dry_run=dry_run)
