"""E-mail ingestion: ``crm.inbox``.

:meth:`InboxService.ingest` reads one e-mail (a ``.eml`` file, its bytes, or
an :class:`email.message.Message`) with the standard library's parser
(``policy.default``) and logs it as a done ``email`` interaction of the
contacts whose addresses it carries.  The ``Message-ID`` is the
interaction's ``external_ref``: the same message ingested twice is logged
once.

.. versionadded:: 0.1
"""

from __future__ import annotations

import email
import email.message
import email.policy
import email.utils
import enum
import hashlib
import os
import re
from collections.abc import Iterable
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path
from typing import TYPE_CHECKING, Final

import attrs

from crmkit.core.entities import Contact, User
from crmkit.core.errors import DuplicateError, ValidationError
from crmkit.core.interactions import Interaction
from crmkit.core.leads import Lead, LeadChannel
from crmkit.io.matching import EmailIndex, key_of

if TYPE_CHECKING:
    from crmkit.app import CRM

__all__ = ["Attachment", "Direction", "InboxService", "Ingested", "html_to_text"]

#: The interaction kind e-mails are logged as.
EMAIL_KIND: Final = "email"
#: Longest ``Message-ID`` kept as is; longer ones are stored as ``sha256:<hex>``.
MAX_REF: Final = 200
_SUBJECT_MAX: Final = 300
_TEXT_MAX: Final = 10_000


class Direction(enum.Enum):
    """Who wrote an ingested e-mail."""

    INBOUND = "inbound"  #: from outside (the sender is no CRM user)
    OUTBOUND = "outbound"  #: from one of the CRM's users


@attrs.frozen
class Attachment:
    """An attachment of an ingested e-mail (listed, never stored).

    Attributes:
        filename: its file name (``""`` when it has none).
        content_type: its MIME type (``"application/pdf"``).
        size: its decoded size in bytes.
    """

    filename: str
    content_type: str
    size: int


@attrs.frozen(kw_only=True)
class Ingested:
    """What :meth:`InboxService.ingest` did with a message.

    Attributes:
        message_id: the message's ``Message-ID`` as stored (``external_ref``).
        direction: inbound or outbound.
        duplicate: the message had been ingested before: nothing was written.
        interaction: the e-mail interaction (the earlier one for a duplicate;
            ``None`` when no contact matched).
        contacts: the contacts whose addresses the message carries (the
            interaction's contact first).
        lead: the lead created from the sender (``create_lead=True`` and no
            contact matched).
        attachments: the message's attachments.
    """

    message_id: str
    direction: Direction
    duplicate: bool = False
    interaction: Interaction | None = None
    contacts: tuple[Contact, ...] = ()
    lead: Lead | None = None
    attachments: tuple[Attachment, ...] = ()


class _Text(HTMLParser):
    """The text of an HTML document: tags dropped, blocks on their own lines."""

    _BLOCKS: Final = frozenset(
        {"p", "div", "br", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "table"}
    )
    _HIDDEN: Final = frozenset({"script", "style", "head", "title"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._hidden = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self._HIDDEN:
            self._hidden += 1
        elif tag in self._BLOCKS:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in self._HIDDEN:
            self._hidden = max(0, self._hidden - 1)
        elif tag in self._BLOCKS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self._hidden:
            self.parts.append(data)


def html_to_text(html: str) -> str:
    """The readable text of an HTML e-mail body (tags, scripts and styles dropped)."""
    parser = _Text()
    parser.feed(html)
    parser.close()
    lines = (
        re.sub(r"[ \t\r\f\v]+", " ", line).strip() for line in "".join(parser.parts).split("\n")
    )
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def _shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _parse(source: object) -> tuple[email.message.EmailMessage, bytes | None]:
    """The message (with ``policy.default``) and its raw bytes when known.

    Raises:
        ValidationError: not a path, bytes or Message (code ``type``); a file
            that cannot be read (code ``file``).
    """
    if isinstance(source, email.message.EmailMessage):
        return source, None
    if isinstance(source, email.message.Message):
        raw = source.as_bytes()
    elif isinstance(source, bytes | bytearray):
        raw = bytes(source)
    elif isinstance(source, str | os.PathLike):
        path = Path(os.fspath(source))
        try:
            raw = path.read_bytes()
        except OSError as exc:
            raise ValidationError(
                "path", f"cannot be read: {exc.strerror}", code="file", value=str(path)
            ) from None
    else:
        raise ValidationError(
            "message",
            "must be a .eml path, the message's bytes or an email.message.Message",
            code="type",
            value=source,
        )
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(parsed, email.message.EmailMessage)
    return parsed, raw


def _addresses(message: email.message.EmailMessage, *names: str) -> list[tuple[str, str]]:
    """The (display name, address) pairs of some headers, in order, without repeats.

    Raises:
        ValidationError: a header that cannot be read (code ``invalid_email``).
    """
    found: list[tuple[str, str]] = []
    seen: set[str] = set()
    for name in names:
        try:
            values = message.get_all(name, [])
            pairs = email.utils.getaddresses([str(v) for v in values])
        except Exception as exc:  # the header parser's own errors
            raise ValidationError(
                name, f"cannot be read: {exc}", code="invalid_email", value=name
            ) from None
        for display, given in pairs:
            address = given.strip()
            if "@" not in address or key_of(address) in seen:
                continue
            seen.add(key_of(address))
            found.append((display.strip(), address))
    return found


def _text_body(message: email.message.EmailMessage) -> str:
    """The message's text: its text/plain part, else its HTML part as text."""
    part = message.get_body(preferencelist=("plain", "html"))
    if part is None:
        return ""
    try:
        content = part.get_content()
    except (LookupError, UnicodeError, KeyError, ValueError):
        payload = part.get_payload(decode=True)
        content = payload.decode("utf-8", "replace") if isinstance(payload, bytes) else ""
    if not isinstance(content, str):
        return ""
    if part.get_content_subtype() == "html":
        return html_to_text(content)
    return content.strip()


def _attachments(message: email.message.EmailMessage) -> tuple[Attachment, ...]:
    found = []
    for part in message.walk():
        if part.is_multipart() or part.get_content_disposition() not in ("attachment", "inline"):
            continue
        if part.get_content_disposition() == "inline" and not part.get_filename():
            continue  # an inline body part, not a file
        payload = part.get_payload(decode=True)
        found.append(
            Attachment(
                filename=part.get_filename() or "",
                content_type=part.get_content_type(),
                size=len(payload) if isinstance(payload, bytes) else 0,
            )
        )
    return tuple(found)


def _message_id(message: email.message.EmailMessage, raw: bytes | None) -> str:
    """The ``Message-ID`` (``<...>``), hashed when too long; a digest of the
    message when it has none (the same bytes always give the same id)."""
    value = str(message.get("Message-ID", "") or "").strip()
    if value and len(value) <= MAX_REF:
        return value
    digest = hashlib.sha256(value.encode() if value else (raw or message.as_bytes())).hexdigest()
    return f"sha256:{digest}"


def _sent_at(message: email.message.EmailMessage, crm: CRM) -> datetime:
    header = message.get("Date")
    when = getattr(header, "datetime", None) if header is not None else None
    if not isinstance(when, datetime):
        return crm.now()
    if when.tzinfo is None:
        when = when.replace(tzinfo=crm.timezone)
    return when.astimezone(UTC)


def _names(display: str, address: str) -> tuple[str, str | None]:
    """First and last name from a display name (``"Pérez, Ana"`` too), else the mailbox."""
    display = display.strip().strip('"')
    if "," in display:
        last, _, first = display.partition(",")
        if first.strip():
            return first.strip(), last.strip() or None
    parts = display.split()
    if len(parts) >= 2:
        return parts[0], " ".join(parts[1:])
    if parts:
        return parts[0], None
    return address.partition("@")[0], None


class InboxService:
    """E-mail ingestion: ``crm.inbox``.

    .. versionadded:: 0.1
    """

    def __init__(self, crm: CRM):
        self._crm = crm

    def ingest(
        self,
        message: str | os.PathLike[str] | bytes | email.message.Message,
        *,
        create_lead: bool = False,
        assignee: User | None = None,
    ) -> Ingested:
        """Log an e-mail as a done ``email`` interaction of the contacts it names.

        The message is read with ``email.policy.default``.  Its ``From``,
        ``To`` and ``Cc`` addresses are matched to contacts by normalized
        e-mail (case-folded, without ``+tag``).  It is **outbound** when the
        sender is a CRM user (who becomes the assignee), else **inbound**
        (the assignee is the first recipient who is a user, else
        ``assignee``); the interaction is tagged ``inbound`` or ``outbound``.
        Its contact is the first match (the sender of an inbound message,
        else the first recipient), with that contact's organization; the
        subject is the ``Subject``, the time the ``Date`` (else now), the
        description the text body (``text/plain``, else the HTML part as
        text), then the other matched contacts and the attachments (file
        name, type, size; their content is not stored).

        The ``Message-ID`` is the interaction's ``external_ref``: a message
        ingested again is reported as a ``duplicate`` and nothing is
        written.  When no contact matches and ``create_lead`` is true, a lead
        (channel ``email``) is created from the sender of an inbound message
        (from the first recipient of an outbound one), with the message as
        its ``message`` and the ``Message-ID`` as its ``external_ref``; an
        interaction needs a contact, so none is logged.

        Args:
            message: a ``.eml`` path, the message's bytes, or a Message.
            create_lead: create a lead when no contact matches.
            assignee: whose agenda an inbound message goes on when no
                recipient is a CRM user.

        Returns:
            An :class:`Ingested` saying what was done.

        Raises:
            ValidationError: not a message (code ``type``), an unreadable
                file (``file``), no sender (``required`` on ``From``), an
                unreadable address header (``invalid_email``).  Nothing is
                written.
        """
        if not isinstance(create_lead, bool):
            raise ValidationError(
                "create_lead", "must be True or False", code="type", value=create_lead
            )
        if assignee is not None and not isinstance(assignee, User):
            raise ValidationError("assignee", "must be a User", code="type", value=assignee)
        parsed, raw = _parse(message)
        senders = _addresses(parsed, "From")
        if not senders:
            raise ValidationError(
                "From", "the message has no sender address", code="required", value=None
            )
        recipients = [
            r for r in _addresses(parsed, "To", "Cc") if key_of(r[1]) != key_of(senders[0][1])
        ]
        message_id = _message_id(parsed, raw)
        index = EmailIndex(self._crm)
        sender_user = index.user(senders[0][1])
        direction = Direction.OUTBOUND if sender_user is not None else Direction.INBOUND
        attachments = _attachments(parsed)
        earlier = self._earlier(message_id)
        if earlier is not None:
            return Ingested(
                message_id=message_id,
                direction=direction,
                duplicate=True,
                interaction=earlier if isinstance(earlier, Interaction) else None,
                lead=earlier if isinstance(earlier, Lead) else None,
                attachments=attachments,
            )
        parties = recipients if direction is Direction.OUTBOUND else [senders[0], *recipients]
        contacts = _unique(c for c in (index.contact(a) for _, a in parties) if c is not None)
        if direction is Direction.OUTBOUND:
            owner: User | None = sender_user
        else:
            owner = next(
                (u for u in (index.user(a) for _, a in recipients) if u is not None), assignee
            )
        subject = _shorten(str(parsed.get("Subject", "") or "").strip(), _SUBJECT_MAX) or None
        body = _text_body(parsed)
        when = _sent_at(parsed, self._crm)
        if not contacts:
            return self._lead(
                index,
                create_lead,
                message_id,
                direction,
                parties,
                owner,
                subject,
                body,
                attachments,
            )
        description = _description(body, contacts[1:], attachments)
        try:
            interaction = self._crm.interactions.log(
                kind=EMAIL_KIND,
                contact=contacts[0],
                organization=contacts[0].organization_id,
                subject=subject,
                description=description or None,
                occurred_at=when,
                assignee=owner,
                tags=[direction.value],
                external_ref=message_id,
            )
        except DuplicateError:  # ingested at the same time by someone else
            found = self._earlier(message_id)
            return Ingested(
                message_id=message_id,
                direction=direction,
                duplicate=True,
                interaction=found if isinstance(found, Interaction) else None,
                attachments=attachments,
            )
        return Ingested(
            message_id=message_id,
            direction=direction,
            interaction=interaction,
            contacts=tuple(contacts),
            attachments=attachments,
        )

    def _earlier(self, message_id: str) -> Interaction | Lead | None:
        """The interaction (or lead) an earlier ingestion of the message made."""
        found = self._crm.interactions.find(external_ref=message_id, archived=None)
        if found:
            return found[0]
        leads = self._crm.leads.find(external_ref=message_id, archived=None)
        return leads[0] if leads else None

    def _lead(
        self,
        index: EmailIndex,
        create_lead: bool,
        message_id: str,
        direction: Direction,
        parties: list[tuple[str, str]],
        owner: User | None,
        subject: str | None,
        body: str,
        attachments: tuple[Attachment, ...],
    ) -> Ingested:
        outside = [(d, a) for d, a in parties if index.user(a) is None]
        if not create_lead or not outside:
            return Ingested(message_id=message_id, direction=direction, attachments=attachments)
        display, address = outside[0]
        first, last = _names(display, address)
        text = "\n\n".join(p for p in (subject, body) if p)
        lead = self._crm.leads.create(
            first_name=first,
            last_name=last,
            email=address,
            message=_shorten(text, _TEXT_MAX) or None,
            owner=owner,
            channel=LeadChannel.EMAIL,
            external_ref=message_id,
        )
        return Ingested(
            message_id=message_id, direction=direction, lead=lead, attachments=attachments
        )


def _unique(contacts: Iterable[Contact]) -> list[Contact]:
    seen: set[object] = set()
    found = []
    for contact in contacts:
        if contact.id not in seen:
            seen.add(contact.id)
            found.append(contact)
    return found


def _description(body: str, others: Iterable[Contact], attachments: tuple[Attachment, ...]) -> str:
    """The body, then the other contacts and the attachments, within the field's limit."""
    tail: list[str] = []
    others = list(others)
    if others:
        tail.append("Other contacts: " + ", ".join(f"{c.full_name} <{c.email}>" for c in others))
    if attachments:
        tail.append("Attachments:")
        tail.extend(
            f"- {a.filename or '(no name)'} ({a.content_type}, {a.size} bytes)" for a in attachments
        )
    end = "\n".join(tail)
    room = _TEXT_MAX - len(end) - 2
    text = _shorten(body, max(room, 0)) if body else ""
    return "\n\n".join(p for p in (text, end) if p)[:_TEXT_MAX]
