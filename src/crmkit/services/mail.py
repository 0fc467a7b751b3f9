"""E-mail templates, their rendering, and campaign sends.

:class:`TemplateService` (``crm.templates``) keeps named
:class:`~crmkit.EmailTemplate` records with a variant per language, and
renders them with Jinja2's :class:`~jinja2.sandbox.SandboxedEnvironment`:
``StrictUndefined`` makes an unknown variable an error, the HTML body is
autoescaped, and any error becomes a :class:`~crmkit.TemplateError`.

:func:`send_campaign` (``crm.campaigns.send``) renders a template for every
eligible contact of a campaign's members and hands the messages, in batches,
to the ``crmkit_send_email`` hook, recording each recipient in a
:class:`~crmkit.CampaignEmail` and each accepted message as an ``email``
interaction.

Delivery is **at most once**: a recipient is *claimed* (``claimed_at`` and
the ``Message-ID``, committed) before its batch goes to the sender, and
marked sent (with its interaction) after.  If the process dies in between,
the claimed recipients stay *unconfirmed* and a new send skips them (the
report lists them); ``retry_unconfirmed=True`` sends to them again (at least
once).  See ``docs/guides/campaigns.md``.

.. versionadded:: 0.1
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final, cast
from uuid import UUID

import attrs
from attrs import frozen

from crmkit.core import changes
from crmkit.core.automation import ActionContext
from crmkit.core.campaigns import Campaign, CampaignStatus
from crmkit.core.contact_points import EmailAddress
from crmkit.core.entities import Contact, Organization, User
from crmkit.core.errors import (
    ConcurrencyError,
    CrmkitError,
    DuplicateError,
    HookError,
    NotFoundError,
    TemplateError,
    ValidationError,
)
from crmkit.core.fields import email_item
from crmkit.core.ids import CampaignId, ContactId, EmailTemplateId, uuid7
from crmkit.core.interactions import Interaction, InteractionStatus
from crmkit.core.mail import (
    MAX_BATCH,
    CampaignEmail,
    EmailTemplate,
    OutgoingEmail,
    SendOutcome,
    TemplateVariant,
    campaign_email_id,
    choose_variant,
)
from crmkit.core.query import Eq, In, Query, Range
from crmkit.services.base import (
    UNSET,
    Event,
    Notice,
    Unset,
    UserRef,
    _check_uuid,
    _ref_id,
    _Service,
)
from crmkit.stores.base import UnitOfWork

if TYPE_CHECKING:
    import jinja2
    import jinja2.sandbox

    from crmkit.app import CRM

__all__ = [
    "RenderedEmail",
    "SendFailure",
    "SendReport",
    "TemplateRef",
    "TemplateService",
    "logger",
    "send_campaign",
    "send_for_rule",
]

#: Where a sent message that could not be logged is reported.
logger: Final = logging.getLogger("crmkit.mail")

#: What a template argument accepts: the record, its id or its name.
TemplateRef = EmailTemplate | EmailTemplateId | str

#: The template parts, in the order they are rendered.
PARTS: Final = ("subject", "text", "html")
#: Recipients per ``crmkit_send_email`` call (one SMTP connection each).
DEFAULT_BATCH: Final = 500
#: Ids per ``In`` filter when reading contacts of many members.
_CHUNK: Final = 900
_SPACES: Final = re.compile(r"\s+")


# ----------------------------------------------------------------- rendering


_ENVIRONMENTS: dict[bool, jinja2.sandbox.SandboxedEnvironment] = {}


def _environment(*, html: bool) -> jinja2.sandbox.SandboxedEnvironment:
    """The sandboxed environment for HTML (autoescaped) or plain parts (imported lazily)."""
    found = _ENVIRONMENTS.get(html)
    if found is None:
        import jinja2
        import jinja2.sandbox

        found = jinja2.sandbox.SandboxedEnvironment(
            undefined=jinja2.StrictUndefined,
            autoescape=html,
            keep_trailing_newline=True,
            auto_reload=False,
        )
        _ENVIRONMENTS[html] = found
    return found


def _compile(
    template: str, variant: TemplateVariant, part: str, cache: dict[Any, jinja2.Template]
) -> jinja2.Template | None:
    source = cast(str | None, getattr(variant, part))
    if source is None:
        return None
    key = (template, variant.language, part, source)
    found = cache.get(key)
    if found is not None:
        return found
    env = _environment(html=part == "html")
    import jinja2

    try:
        compiled = env.from_string(source)
    except jinja2.TemplateSyntaxError as exc:
        raise _template_error(template, variant.language, part, exc) from exc
    cache[key] = compiled
    return compiled


def _template_error(template: str, language: str, part: str, exc: Exception) -> TemplateError:
    import jinja2

    line = getattr(exc, "lineno", None)
    if isinstance(exc, jinja2.TemplateSyntaxError):
        code, reason = "template_syntax", f"does not parse: {exc.message}"
    elif isinstance(exc, jinja2.exceptions.SecurityError):
        code, reason = "template_sandbox", f"is refused by the sandbox: {exc}"
    elif isinstance(exc, jinja2.UndefinedError):
        code, reason = "template_variable", f"names something the context lacks: {exc.message}"
    else:
        code, reason = "template_render", f"failed to render: {type(exc).__name__}: {exc}"
    return TemplateError(
        f"variants[{language}].{part}",
        reason,
        code=code,
        template=template,
        language=language,
        part=part,
        line=line if isinstance(line, int) else None,
    )


@frozen(kw_only=True)
class RenderedEmail:
    """A template rendered for one recipient.

    Attributes:
        template: the template's name.
        language: the variant used.
        subject: the subject, on one line.
        text: the plain-text body.
        html: the HTML body (values escaped), if the template has one.

    .. versionadded:: 0.1
    """

    template: str
    language: str
    subject: str
    text: str
    html: str | None


def _render(
    template: EmailTemplate,
    language: str | None,
    context: Mapping[str, object],
    cache: dict[Any, jinja2.Template],
) -> RenderedEmail:
    variant = choose_variant(template, language)
    out: dict[str, str | None] = {}
    for part in PARTS:
        compiled = _compile(template.name, variant, part, cache)
        if compiled is None:
            out[part] = None
            continue
        try:
            out[part] = compiled.render(context)
        except CrmkitError:
            raise
        except Exception as exc:  # Jinja2's errors and whatever template code raised
            raise _template_error(template.name, variant.language, part, exc) from exc
    subject = _SPACES.sub(" ", out["subject"] or "").strip()  # never a header injection
    return RenderedEmail(
        template=template.name,
        language=variant.language,
        subject=subject,
        text=out["text"] or "",
        html=out["html"],
    )


def _variants(value: object) -> tuple[TemplateVariant, ...]:
    """Variants from records or ``{language: {"subject":..., "text":..., "html":...}}``."""
    if isinstance(value, Mapping):
        items: list[TemplateVariant] = []
        for language, parts in value.items():
            if not isinstance(parts, Mapping):
                raise ValidationError(
                    f"variants[{language}]",
                    "must map subject, text and html to text",
                    code="type",
                    value=parts,
                )
            unknown = set(parts) - set(PARTS)
            if unknown:
                raise ValidationError(
                    f"variants[{language}].{sorted(map(str, unknown))[0]}",
                    "is not a template part (subject, text, html)",
                    code="unknown_field",
                )
            try:
                items.append(
                    TemplateVariant(
                        language,
                        cast(str, parts.get("subject")),
                        cast(str, parts.get("text")),
                        parts.get("html"),
                    )
                )
            except ValidationError as error:
                raise error.at(f"variants[{language}]") from None
        return tuple(items)
    if isinstance(value, str | bytes) or not isinstance(value, Iterable):
        raise ValidationError(
            "variants", "must be TemplateVariants or a mapping by language", code="type"
        )
    return tuple(value)  # checked by the entity


# ----------------------------------------------------------------- templates


class TemplateService(_Service[EmailTemplate, EmailTemplateId]):
    """Named e-mail templates with a variant per language (``crm.templates``).

    Every part is parsed when a template is saved: a syntax error raises
    :class:`~crmkit.TemplateError` and nothing is saved.
    """

    _cls = EmailTemplate

    def create(
        self,
        *,
        name: str,
        variants: Mapping[str, Mapping[str, str | None]] | Sequence[TemplateVariant],
        default_language: str | None = None,
        description: str | None = None,
        external_ref: str | None = None,
    ) -> EmailTemplate:
        """Save a template.

        Args:
            name: unique name.
            variants: ``{"es": {"subject": ..., "text": ..., "html": ...}, "en": {...}}``
                (``html`` optional), or :class:`~crmkit.TemplateVariant` records.
            default_language: the variant for contacts whose language has none
                (default: ``en`` if there is one, else the first variant's).
            description: what it is for.
            external_ref: the host system's id for it.

        Raises:
            TemplateError: a part does not parse (code ``template_syntax``).
            ValidationError: no variant, a language twice, a default language
                without a variant, a bad language tag.
            DuplicateError: the name or ``external_ref`` is taken.
        """
        parsed = _variants(variants)
        if default_language is None:
            languages = [v.language for v in parsed if isinstance(v, TemplateVariant)]
            default_language = "en" if "en" in languages or not languages else languages[0]
        return self._create(
            {
                "name": name,
                "variants": parsed,
                "default_language": default_language,
                "description": description,
                "external_ref": external_ref,
            }
        )

    def update(
        self,
        id: EmailTemplateId,
        *,
        expected_version: int,
        name: str | Unset = UNSET,
        variants: Mapping[str, Mapping[str, str | None]]
        | Sequence[TemplateVariant]
        | Unset = UNSET,
        default_language: str | Unset = UNSET,
        description: str | Unset | None = UNSET,
        external_ref: str | Unset | None = UNSET,
    ) -> EmailTemplate:
        """Change a template (same checks as :meth:`create`).

        Raises:
            NotFoundError: no such template.
            ConcurrencyError: it changed since ``expected_version``.
            TemplateError: a part does not parse.
            ValidationError: invalid values.
        """
        return self._update(
            id,
            expected_version,
            {
                "name": name,
                "variants": variants if isinstance(variants, Unset) else _variants(variants),
                "default_language": default_language,
                "description": description,
                "external_ref": external_ref,
            },
        )

    def get_by_name(self, name: str) -> EmailTemplate:
        """The template called ``name``.

        Raises:
            NotFoundError: there is none.
        """
        return self._crm._read(lambda uow: self._get(uow, name))

    def render(
        self,
        template: TemplateRef,
        *,
        contact: Contact,
        organization: Organization | None = None,
        campaign: Campaign | None = None,
        sender: User | None = None,
        language: str | None = None,
    ) -> RenderedEmail:
        """Render ``template`` for one contact (what :meth:`CampaignService.send` sends).

        The context holds ``contact``, ``organization``, ``campaign`` and
        ``sender`` (the sending user); a missing one is undefined, so naming
        it is an error.  The variant is chosen by ``language`` or else the
        contact's (:func:`~crmkit.core.mail.choose_variant`).

        Raises:
            NotFoundError: no such template.
            TemplateError: an unknown variable (``template_variable``), code
                the sandbox refuses (``template_sandbox``), another failure.
        """
        found = self._crm._read(lambda uow: self._get(uow, template))
        context = _context(contact, organization, campaign, sender)
        return _render(found, language or contact.language, context, {})

    def send_for_rule(self, context: ActionContext) -> None:
        """Run a ``send_template`` rule action (see :func:`send_for_rule`).

        .. versionadded:: 0.1
        """
        send_for_rule(self._crm, context)

    # -------------------------------------------------------------- helpers
    def _get(self, uow: UnitOfWork, template: object) -> EmailTemplate:
        repo = self._repo(uow)
        if isinstance(template, EmailTemplate):
            return repo.get(template.id)
        if isinstance(template, str):
            found = repo.get_by("name", template)
            if found is None:
                raise NotFoundError(EmailTemplate.ENTITY, template)
            return found
        _check_uuid(template, "template")
        return repo.get(cast(EmailTemplateId, template))

    def _validated(self, entity: Any, previous: Any) -> Any:
        if isinstance(entity, EmailTemplate):  # every part must parse
            cache: dict[Any, jinja2.Template] = {}
            for variant in entity.variants:
                for part in PARTS:
                    _compile(entity.name, variant, part, cache)
        return super()._validated(entity, previous)


def _context(
    contact: Contact,
    organization: Organization | None,
    campaign: Campaign | None,
    sender: User | None,
) -> dict[str, object]:
    context: dict[str, object] = {"contact": contact}
    for name, value in (("organization", organization), ("campaign", campaign), ("sender", sender)):
        if value is not None:
            context[name] = value
    return context


# --------------------------------------------------------------------- sends


@frozen
class SendFailure:
    """A recipient the sender did not accept.

    Attributes:
        contact_id: the contact.
        email: the address.
        code: ``refused``, ``connection``, ``auth``, ``tls`` or ``sender``
            (see :class:`~crmkit.SendOutcome`).
        reason: the server's answer or the error's text.
        permanent: whether retrying cannot help.

    .. versionadded:: 0.1
    """

    contact_id: ContactId
    email: str
    code: str
    reason: str
    permanent: bool = False


@frozen(kw_only=True)
class SendReport:
    """What :meth:`~crmkit.services.campaigns.CampaignService.send` did.

    Attributes:
        campaign_id: the campaign.
        sent: messages the sender accepted in this run.
        failures: recipients the sender did not accept (not sent; a new send
            retries them).
        skipped: recipients left out, by reason: ``no_email``,
            ``do_not_contact``, ``unsubscribed``, ``already_sent``,
            ``unconfirmed``, ``duplicate_address``.
        unconfirmed: contacts claimed by an earlier send that never recorded
            the answer (skipped unless ``retry_unconfirmed``).
        dry_run: nothing was sent nor written; ``sent`` counts what would be.

    .. versionadded:: 0.1
    """

    campaign_id: CampaignId
    sent: int = 0
    failures: tuple[SendFailure, ...] = ()
    skipped: Mapping[str, int] = attrs.field(factory=dict)
    unconfirmed: tuple[ContactId, ...] = ()
    dry_run: bool = False


@frozen
class _Recipient:
    contact: Contact
    organization: Organization
    existing: CampaignEmail | None
    message: OutgoingEmail
    language: str
    template: str


def send_campaign(
    crm: CRM,
    campaign: object,
    template: TemplateRef,
    *,
    sender: str | EmailAddress,
    sender_name: str | None = None,
    sender_user: UserRef | None = None,
    reply_to: str | EmailAddress | None = None,
    headers: Mapping[str, str] | None = None,
    batch_size: int = DEFAULT_BATCH,
    retry_unconfirmed: bool = False,
    dry_run: bool = False,
) -> SendReport:
    """The work of :meth:`crmkit.services.campaigns.CampaignService.send`."""
    sender_address = email_item(sender, "sender")
    reply_address = None if reply_to is None else email_item(reply_to, "reply_to")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int):
        raise ValidationError("batch_size", "must be an integer", code="type", value=batch_size)
    if not 1 <= batch_size <= MAX_BATCH:
        raise ValidationError(
            "batch_size", f"must be from 1 to {MAX_BATCH}", code="range", value=batch_size
        )
    extra = tuple((headers or {}).items())
    for name, value in extra:
        if not isinstance(name, str) or not isinstance(value, str) or "\n" in value + name:
            raise ValidationError("headers", "must map names to one-line text", value=name)
    if crm._tx.get() is not None:
        raise ValidationError(
            "send",
            "cannot run inside crm.transaction(): each batch commits before it is sent",
            code="transaction",
        )
    if not dry_run:
        _require_sender(crm)

    def plan(uow: UnitOfWork) -> tuple[Campaign, list[_Recipient], dict[str, int], list[ContactId]]:
        current = crm.campaigns._get(uow, campaign)
        if current.status is not CampaignStatus.ACTIVE:
            raise ValidationError(
                "campaign",
                "only an active (launched) campaign sends e-mail",
                code="status",
                value=current.status.value,
            )
        chosen = crm.templates._get(uow, template)
        user = None
        if sender_user is not None:
            user_id = _ref_id(uow, User, sender_user, "sender_user")
            user = uow.repository(User).get(user_id) if user_id is not None else None
        return (
            current,
            *_recipients(crm, uow, current, chosen, user, sender_info, retry_unconfirmed),
        )

    sender_info = (sender_address, sender_name, reply_address, extra)
    current, recipients, skipped, unconfirmed = crm._read(plan)
    if dry_run:
        return SendReport(
            campaign_id=current.id,
            sent=len(recipients),
            skipped=skipped,
            unconfirmed=tuple(unconfirmed),
            dry_run=True,
        )
    sent = 0
    failures: list[SendFailure] = []
    for start in range(0, len(recipients), batch_size):
        batch = _claim(crm, current, recipients[start : start + batch_size])
        if not batch:
            continue
        try:
            outcomes = crm.plugins.send_email(crm, [r.message for r in batch])
        except HookError:
            _record(crm, current, batch, {}, failed_all="sender")
            raise
        n, failed = _record(crm, current, batch, outcomes)
        sent += n
        failures.extend(failed)
    return SendReport(
        campaign_id=current.id,
        sent=sent,
        failures=tuple(failures),
        skipped=skipped,
        unconfirmed=tuple(unconfirmed),
    )


def _require_sender(crm: CRM) -> None:
    """Raise ``ValidationError`` (code ``no_sender``) when no plugin sends e-mail."""
    if not crm.plugins.has_email_sender():
        raise ValidationError(
            "sender",
            "no plugin sends e-mail: configure SMTP (crmkit.open(smtp=...)) or "
            "register a crmkit_send_email plugin",
            code="no_sender",
        )


def _recipients(
    crm: CRM,
    uow: UnitOfWork,
    campaign: Campaign,
    template: EmailTemplate,
    user: User | None,
    sender_info: tuple[EmailAddress, str | None, EmailAddress | None, tuple[tuple[str, str], ...]],
    retry_unconfirmed: bool,
) -> tuple[list[_Recipient], dict[str, int], list[ContactId]]:
    """Every eligible contact with its rendered message, in member order.

    Renders everything before anything is sent: a template error raises here.
    """
    sender, sender_name, reply_to, extra = sender_info
    members = list(campaign.members)
    organizations = uow.repository(Organization).get_many(members)
    contacts: list[Contact] = []
    for start in range(0, len(members), _CHUNK):
        chunk = members[start : start + _CHUNK]
        contacts += uow.repository(Contact).find(Query(filters=(In("organization_id", chunk),)))
    by_org: dict[object, list[Contact]] = {}
    for c in contacts:
        by_org.setdefault(c.organization_id, []).append(c)
    mine = {
        e.contact_id: e
        for e in uow.repository(CampaignEmail).find(
            Query(filters=(Eq("campaign_id", campaign.id),), archived=None)
        )
    }
    gone_contacts, gone_addresses = _unsubscribed(uow)
    skipped: dict[str, int] = {}
    unconfirmed: list[ContactId] = []
    chosen: list[_Recipient] = []
    seen: set[str] = set()
    cache: dict[Any, jinja2.Template] = {}
    domain = sender.domain

    def skip(reason: str) -> None:
        skipped[reason] = skipped.get(reason, 0) + 1

    for member in members:
        org = organizations.get(member)
        if org is None or org.archived:
            continue
        for contact in by_org.get(member, ()):
            existing = mine.get(contact.id)
            refused = _refusal(contact, contact.email, gone_contacts, gone_addresses)
            if refused is not None or contact.email is None:
                skip(refused or "no_email")
            elif existing is not None and existing.sent_at is not None:
                skip("already_sent")
            elif existing is not None and existing.unconfirmed and not retry_unconfirmed:
                skip("unconfirmed")
                unconfirmed.append(contact.id)
            elif contact.email.match_key in seen:
                skip("duplicate_address")
            else:
                seen.add(contact.email.match_key)
                context = _context(contact, org, campaign, user)
                rendered = _render(template, contact.language, context, cache)
                message = OutgoingEmail(
                    message_id=f"<{uuid7().hex}@{domain}>",
                    sender=sender,
                    sender_name=sender_name,
                    to=contact.email,
                    to_name=contact.full_name,
                    subject=rendered.subject,
                    text=rendered.text,
                    html=rendered.html,
                    reply_to=reply_to,
                    headers=extra,
                    campaign_id=campaign.id,
                    contact_id=contact.id,
                )
                chosen.append(
                    _Recipient(contact, org, existing, message, rendered.language, template.name)
                )
    return chosen, skipped, unconfirmed


def _unsubscribed(uow: UnitOfWork) -> tuple[set[ContactId], set[str]]:
    """The contacts, and the addresses (match keys), that unsubscribed from any campaign."""
    gone = uow.repository(CampaignEmail).find(
        Query(filters=(Range("unsubscribed_at", None, None),), archived=None)
    )
    return {e.contact_id for e in gone}, {e.email.match_key for e in gone if e.email is not None}


def _refusal(
    contact: Contact | None,
    email: EmailAddress | None,
    gone_contacts: set[ContactId],
    gone_addresses: set[str],
) -> str | None:
    """Why a recipient must not be sent to (``no_email``, ``do_not_contact``, ``unsubscribed``).

    The one rule every send follows (campaign sends and the ``send_template``
    rule action); ``None`` when the recipient may be sent to.
    """
    if email is None:
        return "no_email"
    if contact is not None and contact.do_not_contact:
        return "do_not_contact"
    if (contact is not None and contact.id in gone_contacts) or email.match_key in gone_addresses:
        return "unsubscribed"
    return None


def _claim(crm: CRM, campaign: Campaign, batch: Sequence[_Recipient]) -> list[_Recipient]:
    """Record the batch as claimed (commit) before it goes to the sender.

    Re-reads each recipient's record in the claiming transaction: one another
    send claimed or sent meanwhile is left out.
    """

    def run(uow: UnitOfWork, events: list[Event]) -> list[_Recipient]:
        repo = uow.repository(CampaignEmail)
        now = crm.now()
        ids = [campaign_email_id(campaign.id, r.contact.id) for r in batch]
        stored = repo.get_many(ids)
        new: list[CampaignEmail] = []
        changed: list[tuple[CampaignEmail, int]] = []
        claimed: list[_Recipient] = []
        for rid, r in zip(ids, batch, strict=True):
            values = {
                "organization_id": r.organization.id,
                "email": r.message.to,
                "template": r.template,
                "language": r.language,
                "message_id": r.message.message_id,
                "claimed_at": now,
                "error_code": None,
                "error": None,
            }
            current = stored.get(rid)
            if current is None:
                if r.existing is not None:  # gone since the plan: leave it
                    continue
                record, created = changes.create(
                    CampaignEmail,
                    id=rid,
                    now=now,
                    campaign_id=campaign.id,
                    contact_id=r.contact.id,
                    **values,
                )
                new.append(record)
                crm._record(uow, events, created)
            else:
                if current.sent_at is not None or current.version != (
                    r.existing.version if r.existing is not None else -1
                ):
                    continue  # another send got there first
                record, event = changes.update(current, values, now=now)
                changed.append((record, current.version))
                crm._record(uow, events, event)
            claimed.append(attrs.evolve(r, existing=record))
        _update_all(repo, changed)
        try:
            repo.add_many(new)
        except DuplicateError as exc:
            raise ConcurrencyError(CampaignEmail.ENTITY, campaign.id, 0) from exc
        return claimed

    return crm._write(run)


def _record(
    crm: CRM,
    campaign: Campaign,
    batch: Sequence[_Recipient],
    outcomes: Mapping[str, SendOutcome],
    *,
    failed_all: str | None = None,
) -> tuple[int, list[SendFailure]]:
    """Record the sender's answers: sent (with an interaction) or failed."""

    def run(uow: UnitOfWork, events: list[Event]) -> tuple[int, list[SendFailure]]:
        repo = uow.repository(CampaignEmail)
        now = crm.now()
        stored = repo.get_many([cast(CampaignEmail, r.existing).id for r in batch])
        common = crm.custom_fields.implied(uow, Interaction.ENTITY, {})
        interactions: list[Interaction] = []
        changed: list[tuple[CampaignEmail, int]] = []
        failures: list[SendFailure] = []
        sent = 0
        for r in batch:
            current = stored.get(cast(CampaignEmail, r.existing).id)
            if current is None or current.message_id != r.message.message_id:
                continue  # reclaimed by another send
            outcome = outcomes.get(r.message.message_id)
            if outcome is not None and outcome.ok:
                interaction, created = changes.create(
                    Interaction,
                    id=uuid7(),
                    now=now,
                    kind="email",
                    status=InteractionStatus.DONE,
                    occurred_at=now,
                    subject=r.message.subject[:300],
                    description=f"Message-ID: {r.message.message_id}",
                    organization_id=r.organization.id,
                    contact_id=r.contact.id,
                    campaign_id=campaign.id,
                    **common,
                )
                interactions.append(interaction)
                crm._record(uow, events, created)
                values: dict[str, Any] = {"sent_at": now, "interaction_id": interaction.id}
                sent += 1
            else:
                code = failed_all or (outcome.code if outcome else None) or "sender"
                reason = (
                    outcome.reason
                    if outcome is not None and outcome.reason
                    else "the sender gave no answer for this message"
                )
                permanent = bool(outcome and outcome.permanent)
                failures.append(
                    SendFailure(r.contact.id, r.message.to.value, code, reason, permanent)
                )
                values = {"error_code": code, "error": reason[:2000]}
            record, event = changes.update(current, values, now=now)
            changed.append((record, current.version))
            crm._record(uow, events, event)
        uow.repository(Interaction).add_many(interactions)
        _update_all(repo, changed)
        for interaction in interactions:
            events.append(Notice(_logged(crm, interaction)))
        return sent, failures

    return crm._write(run)


def _update_all(repo: Any, records: Sequence[tuple[CampaignEmail, int]]) -> None:
    """Update the records at once where the store can (``BulkUpdater``), else one by one."""
    if not records:
        return
    bulk = getattr(repo, "update_many", None)
    if bulk is not None:
        bulk([r for r, _ in records], expected_versions=[v for _, v in records])
        return
    for record, version in records:
        repo.update(record, expected_version=version)


def _logged(crm: CRM, interaction: Interaction) -> Any:
    return lambda: crm.plugins.interaction_logged(crm, interaction)


# ------------------------------------------------------ the rule action


def send_for_rule(crm: CRM, context: ActionContext) -> None:
    """The work of the ``send_template`` rule action (:mod:`crmkit.plugins.builtin_mail`).

    Inside the firing's transaction: finds the template and the record's
    contact, leaves out a contact who must not be e-mailed (a remark in the
    journal, the firing succeeds), renders the message (as
    :meth:`TemplateService.render` does, with the record under its entity
    name too) and checks that a sender is configured.  The message goes to
    the ``crmkit_send_email`` hook only once the firing has committed
    (``context.after_commit``), and the ``email`` interaction is logged once
    the sender accepted it: delivery is at most once, as for campaign sends.

    Raises:
        NotFoundError: the template or the sending user is gone.
        ValidationError: the record has no contact (code ``no_recipient``),
            no plugin sends e-mail (code ``no_sender``), bad parameters.
        TemplateError: the template does not render for this contact.
    """
    params = context.action.params
    name = params.get("template")
    if not isinstance(name, str) or not name:
        raise ValidationError("template", "is required", code="required", value=name)
    sender = email_item(params.get("sender"), "sender")
    sender_name = params.get("sender_name")
    user_ref = params.get("sender_user")
    subject = context.subject
    record = subject.record
    if subject.contact_id is None:
        raise ValidationError(
            "contact",
            f"the {subject.entity} has no contact to e-mail (a lead is e-mailed once "
            "converted: only a contact can be marked do-not-contact)",
            code="no_recipient",
        )
    _require_sender(crm)

    def read(
        uow: UnitOfWork,
    ) -> tuple[EmailTemplate, Contact, Organization | None, User | None, str | None]:
        template = crm.templates._get(uow, name)
        contact = uow.repository(Contact).get(cast(ContactId, subject.contact_id))
        org_id = subject.organization_id or contact.organization_id
        organization = None if org_id is None else uow.repository(Organization).get(org_id)
        user = None
        if user_ref is not None:
            user_id = _ref_id(uow, User, UUID(str(user_ref)), "sender_user")
            user = None if user_id is None else uow.repository(User).get(user_id)
        gone_contacts, gone_addresses = _unsubscribed(uow)
        refused = _refusal(contact, contact.email, gone_contacts, gone_addresses)
        return template, contact, organization, user, refused

    template, contact, organization, user, refused = crm._read(read)
    if refused is not None:
        context.remarks.append(f"send_template: {contact.id} not e-mailed ({refused})")
        return
    assert contact.email is not None  # _refusal checked it
    values = _context(contact, organization, None, user)
    values.setdefault(subject.entity, record)
    rendered = _render(template, contact.language, values, {})
    message = OutgoingEmail(
        message_id=f"<{uuid7().hex}@{sender.domain}>",
        sender=sender,
        sender_name=sender_name if isinstance(sender_name, str) else None,
        to=contact.email,
        to_name=contact.full_name,
        subject=rendered.subject,
        text=rendered.text,
        html=rendered.html,
        contact_id=contact.id,
    )
    links: dict[str, Any] = {}
    if subject.entity in ("opportunity", "case"):
        links[subject.entity] = record.id
    context.after_commit.append(
        lambda: _deliver_one(crm, message, contact, organization, user, links)
    )


def _deliver_one(
    crm: CRM,
    message: OutgoingEmail,
    contact: Contact,
    organization: Organization | None,
    user: User | None,
    links: Mapping[str, Any],
) -> None:
    """Hand one message to the sender; log its ``email`` interaction if accepted.

    Raises:
        HookError: the sender raised, gave no answer, or refused the message
            (the firing is recorded as failed and tried again).
    """
    outcomes = crm.plugins.send_email(crm, [message])
    outcome = outcomes.get(message.message_id)
    if outcome is None or not outcome.ok:
        code = (outcome.code if outcome else None) or "sender"
        reason = (outcome.reason if outcome else None) or "the sender gave no answer"
        raise HookError("crmkit_send_email", f"{message.to.value} not sent ({code}): {reason}")
    try:
        crm.interactions.log(
            kind="email",
            contact=contact.id,
            organization=None if organization is None else organization.id,
            subject=message.subject[:300] or None,
            description=f"Message-ID: {message.message_id}",
            assignee=None if user is None else user.id,
            **links,
        )
    except CrmkitError:  # sent: a retry would send it twice, so only log it
        logger.exception("the e-mail %s was sent but could not be logged", message.message_id)
