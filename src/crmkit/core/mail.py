"""Campaign e-mail: templates, the messages sent, and what became of each.

* :class:`EmailTemplate` is a named template with one :class:`TemplateVariant`
  per language (``es``, ``en``...): subject, text body and optional HTML body.
  :func:`choose_variant` picks the variant for a contact's language.  The
  templates are *rendered* outside the domain (Jinja2's sandbox, in
  :mod:`crmkit.services.mail`): this module only holds their text.
* :class:`CampaignEmail` is the per-recipient state of a campaign e-mail: one
  record per (campaign, contact), with the message id and when it was sent,
  opened, clicked, bounced or unsubscribed.
* :class:`OutgoingEmail` is the message handed to the ``crmkit_send_email``
  hook, and :class:`SendOutcome` what a sender answers for each message.
* :func:`email_metrics` adds the records up (:class:`EmailMetrics`).

.. versionadded:: 0.1
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal
from typing import ClassVar, Final

from attrs import field, frozen

from crmkit.core.contact_points import EmailAddress
from crmkit.core.entities import _BASE_FIELDS, Entity, FieldKind
from crmkit.core.errors import ValidationError
from crmkit.core.fields import (
    email_item,
    optional_datetime,
    optional_email,
    optional_id,
    required_id,
    tuple_field,
)
from crmkit.core.fields import text as text_field
from crmkit.core.ids import (
    CampaignEmailId,
    CampaignId,
    ContactId,
    EmailTemplateId,
    InteractionId,
    OrganizationId,
)

__all__ = [
    "MAX_BATCH",
    "CampaignEmail",
    "EmailMetrics",
    "EmailTemplate",
    "OutgoingEmail",
    "SendOutcome",
    "TemplateVariant",
    "campaign_email_id",
    "choose_variant",
    "email_metrics",
    "language_tag",
]

#: Rates are rounded to this many decimal places.
RATE_PLACES: Final = Decimal("0.0001")
#: The most messages one ``crmkit_send_email`` call carries.
MAX_BATCH: Final = 1000

_LANGUAGE: Final = re.compile(r"[a-z]{2,3}(-[a-z0-9]{1,8})*")
#: The namespace of :func:`campaign_email_id`.
_NAMESPACE: Final = uuid.UUID("5f0b8a52-6c1e-4d35-9a43-0a6e1b7c2d19")


def language_tag(value: object, name: str = "language") -> str:
    """A language tag, lower case (``"es"``, ``"en"``, ``"es-mx"``).

    Raises:
        ValidationError: not a tag like ``es`` or ``es-MX`` (code ``language``).
    """
    if isinstance(value, str):
        tag = value.strip().replace("_", "-").lower()
        if _LANGUAGE.fullmatch(tag):
            return tag
    raise ValidationError(
        name, "must be a language tag such as 'es' or 'en-GB'", code="language", value=value
    )


# ----------------------------------------------------------------- templates


@frozen
class TemplateVariant:
    """A template in one language.

    Attributes:
        language: the language tag (``"es"``, ``"en"``).
        subject: the subject line (a template too).
        text: the plain-text body.
        html: the HTML body, if any (values are HTML-escaped in it).
    """

    language: str = field(converter=language_tag)
    subject: str = text_field("subject", required=True, max_length=1000)
    text: str = text_field("text", required=True, max_length=200_000)
    html: str | None = text_field("html", max_length=500_000)


def _variant(value: object, path: str) -> TemplateVariant:
    if isinstance(value, TemplateVariant):
        return value
    raise ValidationError(path, "must be a TemplateVariant", code="type", value=value)


@frozen(kw_only=True)
class EmailTemplate(Entity):
    """A named e-mail template (plantilla) with a variant per language.

    ``default_language`` names the variant used when a contact's language has
    none (see :func:`choose_variant`).
    """

    ENTITY: ClassVar[str] = "email_template"
    QUERYABLE: ClassVar[dict[str, FieldKind]] = {
        **_BASE_FIELDS,
        "name": FieldKind.TEXT,
        "default_language": FieldKind.TEXT,
    }
    UNIQUE: ClassVar[tuple[str, ...]] = ("external_ref", "name")

    id: EmailTemplateId = required_id()
    name: str = text_field("name", required=True, max_length=200)
    description: str | None = text_field("description", max_length=2000)
    variants: tuple[TemplateVariant, ...] = tuple_field(_variant, "variants", max_items=20)
    default_language: str = field(default="en", converter=language_tag)

    def __attrs_post_init__(self) -> None:
        if not self.variants:
            raise ValidationError("variants", "needs at least one language", code="required")
        seen: set[str] = set()
        for i, v in enumerate(self.variants):
            if v.language in seen:
                raise ValidationError(
                    f"variants[{i}].language",
                    "appears twice",
                    code="duplicate_language",
                    value=v.language,
                )
            seen.add(v.language)
        if self.default_language not in seen:
            raise ValidationError(
                "default_language",
                "must be the language of one of the variants",
                code="language",
                value=self.default_language,
            )


def choose_variant(template: EmailTemplate, language: str | None) -> TemplateVariant:
    """The variant of ``template`` for a contact who reads ``language``.

    The exact tag first (``es-mx``), then its primary language (``es``), then
    any variant of that primary language (``es-mx`` for ``es``), and finally
    the template's ``default_language``.  A contact without a language gets
    the default.
    """
    by_language = {v.language: v for v in template.variants}
    if language:
        tag = language.strip().replace("_", "-").lower()
        primary = tag.split("-", 1)[0]
        for candidate in (tag, primary):
            if candidate in by_language:
                return by_language[candidate]
        for v in template.variants:
            if v.language.split("-", 1)[0] == primary:
                return v
    return by_language[template.default_language]


# ------------------------------------------------------- per-recipient state


def campaign_email_id(campaign_id: CampaignId, contact_id: ContactId) -> CampaignEmailId:
    """The id of the e-mail record of ``contact_id`` in ``campaign_id``.

    Derived from the pair (UUIDv5), so a second record for the same pair
    clashes on the primary key in every store.
    """
    return CampaignEmailId(uuid.uuid5(_NAMESPACE, f"{campaign_id}/{contact_id}"))


@frozen(kw_only=True)
class CampaignEmail(Entity):
    """The e-mail of one campaign to one contact, and what became of it.

    One record per (campaign, contact).  ``claimed_at`` is set when a send
    begins; ``sent_at`` when the sender accepted the message (or when an
    imported report says it was sent).  A claimed record without ``sent_at``
    and without ``error`` is *unconfirmed*: the process stopped between
    handing it to the sender and recording the answer.

    ``organization_id`` is the campaign member the e-mail went to on behalf
    of.  ``contact_id`` and ``organization_id`` are not rewritten by merges:
    they keep naming the records the e-mail went to.
    """

    ENTITY: ClassVar[str] = "campaign_email"
    QUERYABLE: ClassVar[dict[str, FieldKind]] = {
        **_BASE_FIELDS,
        "campaign_id": FieldKind.ID,
        "contact_id": FieldKind.ID,
        "organization_id": FieldKind.ID,
        "email": FieldKind.TEXT,
        "template": FieldKind.TEXT,
        "message_id": FieldKind.TEXT,
        "claimed_at": FieldKind.DATETIME,
        "sent_at": FieldKind.DATETIME,
        "opened_at": FieldKind.DATETIME,
        "clicked_at": FieldKind.DATETIME,
        "bounced_at": FieldKind.DATETIME,
        "unsubscribed_at": FieldKind.DATETIME,
        "error_code": FieldKind.TEXT,
    }

    id: CampaignEmailId = required_id()
    campaign_id: CampaignId = required_id()
    contact_id: ContactId = required_id()
    organization_id: OrganizationId | None = optional_id()
    email: EmailAddress | None = optional_email("email")
    template: str | None = text_field("template", max_length=200)
    language: str | None = text_field("language", max_length=16)
    message_id: str | None = text_field("message_id", max_length=998)
    claimed_at: datetime | None = optional_datetime()
    sent_at: datetime | None = optional_datetime()
    opened_at: datetime | None = optional_datetime()
    clicked_at: datetime | None = optional_datetime()
    bounced_at: datetime | None = optional_datetime()
    unsubscribed_at: datetime | None = optional_datetime()
    #: the last send failure, if the last attempt failed
    error_code: str | None = text_field("error_code", max_length=64)
    error: str | None = text_field("error", max_length=2000)
    interaction_id: InteractionId | None = optional_id()

    @property
    def unconfirmed(self) -> bool:
        """Claimed for sending, with no answer recorded (see the class docstring)."""
        return self.claimed_at is not None and self.sent_at is None and self.error_code is None


# ----------------------------------------------------------------- messages


def _header(value: object, path: str) -> tuple[str, str]:
    if (
        isinstance(value, tuple)
        and len(value) == 2
        and isinstance(value[0], str)
        and isinstance(value[1], str)
        and not any(c in value[0] + value[1] for c in "\r\n")
    ):
        return (value[0], value[1])
    raise ValidationError(path, "must be a (name, value) pair of one-line text", value=value)


def _sender(value: object) -> EmailAddress:
    return email_item(value, "sender")


def _to(value: object) -> EmailAddress:
    return email_item(value, "to")


@frozen(kw_only=True)
class OutgoingEmail:
    """A rendered message, handed to the ``crmkit_send_email`` hook.

    Attributes:
        message_id: the ``Message-ID`` header crmkit chose (``<...@...>``),
            recorded before the message is sent.
        sender: the ``From`` address.
        sender_name: the display name of ``From``, if any.
        to: the recipient's address.
        to_name: the recipient's display name.
        subject: the rendered subject.
        text: the rendered plain-text body.
        html: the rendered HTML body, if the template has one.
        reply_to: a ``Reply-To`` address, if any.
        headers: extra headers (``List-Unsubscribe``...), one-line values.
        campaign_id: the campaign it belongs to.
        contact_id: the contact it goes to.

    .. versionadded:: 0.1
    """

    message_id: str
    sender: EmailAddress = field(converter=_sender)
    sender_name: str | None = None
    to: EmailAddress = field(converter=_to)
    to_name: str | None = None
    subject: str
    text: str
    html: str | None = None
    reply_to: EmailAddress | None = optional_email("reply_to")
    headers: tuple[tuple[str, str], ...] = tuple_field(_header, "headers", max_items=50)
    campaign_id: CampaignId | None = None
    contact_id: ContactId | None = None


@frozen(kw_only=True)
class SendOutcome:
    """What a sender answers for one message of a ``crmkit_send_email`` batch.

    Attributes:
        message_id: the message's ``message_id``.
        ok: the server accepted it for delivery.
        code: on failure, a stable code: ``"refused"`` (the server refused
            the recipient or the message), ``"connection"`` (no connection,
            timeout), ``"auth"`` (login failed), ``"tls"``, ``"sender"``
            (anything else).
        reason: on failure, the server's answer or the error's text.
        permanent: on failure, whether retrying cannot help (a 5xx answer).

    .. versionadded:: 0.1
    """

    message_id: str
    ok: bool
    code: str | None = None
    reason: str | None = None
    permanent: bool = False


# ------------------------------------------------------------------ metrics


@frozen(kw_only=True)
class EmailMetrics:
    """What became of a campaign's e-mails.

    Counts are records (one per contact) with that date set.  *Delivered* is
    ``sent - bounced``.  Rates are rounded to 4 places, ``None`` when their
    denominator is 0:

    * ``bounce_rate`` = bounced / sent;
    * ``open_rate`` = opened / delivered;
    * ``click_rate`` = clicked / delivered;
    * ``click_to_open_rate`` = clicked / opened;
    * ``unsubscribe_rate`` = unsubscribed / delivered.
    """

    sent: int = 0
    delivered: int = 0
    opened: int = 0
    clicked: int = 0
    bounced: int = 0
    unsubscribed: int = 0
    failed: int = 0  #: last attempt failed, not sent
    unconfirmed: int = 0  #: claimed, no answer recorded
    bounce_rate: Decimal | None = None
    open_rate: Decimal | None = None
    click_rate: Decimal | None = None
    click_to_open_rate: Decimal | None = None
    unsubscribe_rate: Decimal | None = None


def _rate(part: int, whole: int) -> Decimal | None:
    return (Decimal(part) / whole).quantize(RATE_PLACES) if whole else None


def email_metrics(emails: Iterable[CampaignEmail]) -> EmailMetrics:
    """Add up e-mail records (each counted once, by id)."""
    rows = {e.id: e for e in emails}.values()
    sent = sum(1 for e in rows if e.sent_at is not None)
    bounced = sum(1 for e in rows if e.bounced_at is not None)
    opened = sum(1 for e in rows if e.opened_at is not None)
    clicked = sum(1 for e in rows if e.clicked_at is not None)
    unsubscribed = sum(1 for e in rows if e.unsubscribed_at is not None)
    delivered = max(sent - bounced, 0)
    return EmailMetrics(
        sent=sent,
        delivered=delivered,
        opened=opened,
        clicked=clicked,
        bounced=bounced,
        unsubscribed=unsubscribed,
        failed=sum(1 for e in rows if e.sent_at is None and e.error_code is not None),
        unconfirmed=sum(1 for e in rows if e.unconfirmed),
        bounce_rate=_rate(bounced, sent),
        open_rate=_rate(opened, delivered),
        click_rate=_rate(clicked, delivered),
        click_to_open_rate=_rate(clicked, opened),
        unsubscribe_rate=_rate(unsubscribed, delivered),
    )
