"""Leads (prospectos): capture, qualification and conversion.

Leads come in by hand, in bulk, from a web form, a call or an e-mail.  They
move ``new -> working -> qualified`` (or are disqualified with a reason) and
are finally converted: :meth:`LeadService.convert` matches or creates the
organization and the contact, optionally opens an opportunity, and marks the
lead converted, all in one transaction.  Converting is idempotent, and it
never creates a silent duplicate: when a lookup finds more than one candidate
it refuses and asks the caller to choose.

.. versionadded:: 0.1
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import Any, ClassVar, Final, TypeVar

from crmkit.core import changes
from crmkit.core import leads as core
from crmkit.core.campaigns import Campaign
from crmkit.core.contact_points import EmailAddress, PhoneNumber, normalize_text
from crmkit.core.entities import Contact, Entity, Lifecycle, Organization, Source, User
from crmkit.core.errors import InvalidTransition, ValidationError
from crmkit.core.ids import CampaignId, ContactId, LeadId, uuid7
from crmkit.core.leads import Lead, LeadChannel, LeadConversion, LeadStatus
from crmkit.core.matching import name_key
from crmkit.core.money import Money
from crmkit.core.opportunities import Opportunity
from crmkit.core.query import Eq, Filter, Has, Query
from crmkit.services.base import (
    UNSET,
    Event,
    Notice,
    OrganizationRef,
    SourceRef,
    Unset,
    UserRef,
    _check_uuid,
    _check_version,
    _expect,
    _ref_id,
    _Service,
)
from crmkit.services.bulk import BulkUpdates
from crmkit.stores.base import UnitOfWork

__all__ = ["WEB_FORM_FIELDS", "LeadService"]

E = TypeVar("E", bound=Entity)

ContactRef = Contact | ContactId

#: The lead fields a web form may fill (the targets of ``capture_web_form``'s mapping).
WEB_FORM_FIELDS: Final = frozenset(
    {"first_name", "last_name", "company", "job_title", "email", "phone", "website", "message"}
)

#: A match lookup reads at most this many candidates (more than one is ambiguous).
MAX_CANDIDATES: Final = 10


class LeadService(_Service[Lead, LeadId], BulkUpdates[Lead, LeadId]):
    """Leads (prospectos, público objetivo, clientes potenciales).

    Capture them (:meth:`create`, :meth:`bulk_create`, :meth:`capture_web_form`,
    :meth:`from_call`, :meth:`from_email`), work them (:meth:`work`,
    :meth:`qualify`, :meth:`disqualify`, :meth:`reopen`) and convert them
    (:meth:`convert`).
    """

    _cls = Lead
    _aliases: ClassVar[Mapping[str, tuple[str, type[Entity]]]] = {
        "source": ("source_id", Source),
        "owner": ("owner_id", User),
        "organization": ("organization_id", Organization),
        "contact": ("contact_id", Contact),
        "opportunity": ("opportunity_id", Opportunity),
        "campaign": ("campaign_id", Campaign),
    }

    # ---------------------------------------------------------------- capture
    def create(
        self,
        *,
        first_name: str | None = None,
        last_name: str | None = None,
        company: str | None = None,
        job_title: str | None = None,
        email: EmailAddress | str | None = None,
        phone: PhoneNumber | str | None = None,
        website: str | None = None,
        message: str | None = None,
        source: SourceRef | None = None,
        campaign: Campaign | CampaignId | None = None,
        owner: UserRef | None = None,
        channel: LeadChannel | str = LeadChannel.MANUAL,
        tags: Iterable[str] = (),
        external_ref: str | None = None,
        custom: Mapping[str, object] | None = None,
    ) -> Lead:
        """Capture a lead (status ``new``).

        It needs something to go on: a name, a company, an e-mail or a phone.
        A phone in national format is read with the CRM's ``default_region``.

        Args:
            first_name: the person's first name.
            last_name: the person's last name.
            company: the company they are with, as they wrote it.
            job_title: their job title.
            email: their e-mail address.
            phone: their phone number.
            website: the company's website.
            message: what they wrote or asked.
            source: where the lead came from (a source key, record or id).
            campaign: the campaign that brought it.
            owner: the user who works it (a user or id).
            channel: how it was captured (default ``manual``).
            tags: free labels.
            external_ref: the host system's key for it.
            custom: custom field values by key (see the custom fields guide).

        Returns:
            The new lead.

        Raises:
            ValidationError: nothing to go on (field ``first_name``, code
                ``required``), or an invalid value, naming the argument.
            DuplicateError: ``external_ref`` is taken.

        .. versionadded:: 0.1
        """
        return self._create(
            {
                "first_name": first_name,
                "last_name": last_name,
                "company": company,
                "job_title": job_title,
                "email": email,
                "phone": phone,
                "website": website,
                "message": message,
                "source": source,
                "campaign": campaign,
                "owner": owner,
                "channel": channel,
                "tags": tags,
                "external_ref": external_ref,
                "custom": custom,
            }
        )

    def capture_web_form(
        self,
        payload: Mapping[str, object],
        *,
        mapping: Mapping[str, str],
        honeypot: str | None = None,
        source: SourceRef | None = None,
        campaign: Campaign | CampaignId | None = None,
        owner: UserRef | None = None,
    ) -> Lead | None:
        """Capture a lead from a submitted web form (channel ``web_form``).

        ``mapping`` says which form field fills which lead field
        (``{"correo": "email", "nombre": "first_name"}``); the targets are
        :data:`WEB_FORM_FIELDS`.  Form values are text and are stripped;
        empty values and fields the mapping does not name are ignored.  Several
        form fields may fill ``message`` (joined by a blank line, in mapping
        order); any other lead field takes one form field.

        A non-empty ``honeypot`` field (a field hidden from people, which only
        bots fill in) means a bot: nothing is written and ``None`` is returned.

        Args:
            payload: the submitted form, field name to value.
            mapping: form field name to lead field name.
            honeypot: the name of the hidden trap field, if the form has one.
            source: where the lead came from (a source key, record or id).
            campaign: the campaign the form belongs to.
            owner: the user who works the lead.

        Returns:
            The new lead, or ``None`` for a bot.

        Raises:
            ValidationError: ``mapping`` names an unknown lead field (code
                ``unknown_field``) or fills one lead field from two form fields
                (code ``ambiguous``); a form value is invalid, with ``field``
                the FORM field's name (``"correo"``); the form gives nothing to
                go on (``field`` the form field mapped to ``first_name``, or
                ``""``, code ``required``).

        .. versionadded:: 0.1
        """
        form_fields = _check_mapping(mapping)
        if not isinstance(payload, Mapping):
            raise ValidationError(
                "payload", "must be a mapping of form fields to values", code="type", value=payload
            )
        if honeypot is not None and _filled(payload.get(honeypot)):
            return None  # a bot: write nothing
        values: dict[str, Any] = {}
        for name, target in mapping.items():
            raw = payload.get(name)
            if raw is None:
                continue
            if not isinstance(raw, str):
                raise ValidationError(name, "must be text", code="type", value=raw)
            text = raw.strip()
            if not text:
                continue
            values[target] = f"{values[target]}\n\n{text}" if target in values else text
        try:
            return self.create(
                **values,
                source=source,
                campaign=campaign,
                owner=owner,
                channel=LeadChannel.WEB_FORM,
            )
        except ValidationError as error:
            head, rest = _split_field(error.field)
            if head not in WEB_FORM_FIELDS:
                raise
            renamed = form_fields.get(head, "") + rest
            raise ValidationError(
                renamed, error.reason, code=error.code, value=error.value
            ) from None

    def from_call(
        self,
        *,
        phone: PhoneNumber | str,
        first_name: str | None = None,
        last_name: str | None = None,
        company: str | None = None,
        message: str | None = None,
        owner: UserRef | None = None,
        source: SourceRef | None = None,
    ) -> Lead:
        """Capture a lead from an incoming call (channel ``call``).

        Raises:
            ValidationError: no phone (code ``required``) or an invalid value.

        .. versionadded:: 0.1
        """
        if phone is None or (isinstance(phone, str) and not phone.strip()):
            raise ValidationError("phone", "is required", code="required", value=phone)
        return self.create(
            phone=phone,
            first_name=first_name,
            last_name=last_name,
            company=company,
            message=message,
            owner=owner,
            source=source,
            channel=LeadChannel.CALL,
        )

    def from_email(
        self,
        *,
        email: EmailAddress | str,
        first_name: str | None = None,
        last_name: str | None = None,
        company: str | None = None,
        subject: str | None = None,
        body: str | None = None,
        owner: UserRef | None = None,
        source: SourceRef | None = None,
    ) -> Lead:
        """Capture a lead from an incoming e-mail (channel ``email``).

        The subject and the body become the lead's message (separated by a
        blank line).

        Raises:
            ValidationError: no e-mail address (code ``required``) or an
                invalid value.

        .. versionadded:: 0.1
        """
        if email is None or (isinstance(email, str) and not email.strip()):
            raise ValidationError("email", "is required", code="required", value=email)
        parts = [
            normalize_text(subject, "subject", max_length=1000),
            normalize_text(body, "body", max_length=10_000),
        ]
        message = "\n\n".join(p for p in parts if p) or None
        try:
            return self.create(
                email=email,
                first_name=first_name,
                last_name=last_name,
                company=company,
                message=message,
                owner=owner,
                source=source,
                channel=LeadChannel.EMAIL,
            )
        except ValidationError as error:
            if error.field != "message":
                raise
            raise ValidationError("body", error.reason, code=error.code, value=body) from None

    def update(
        self,
        id: LeadId,
        *,
        expected_version: int,
        first_name: str | Unset | None = UNSET,
        last_name: str | Unset | None = UNSET,
        company: str | Unset | None = UNSET,
        job_title: str | Unset | None = UNSET,
        email: EmailAddress | str | Unset | None = UNSET,
        phone: PhoneNumber | str | Unset | None = UNSET,
        website: str | Unset | None = UNSET,
        message: str | Unset | None = UNSET,
        source: SourceRef | Unset | None = UNSET,
        campaign: Campaign | CampaignId | Unset | None = UNSET,
        owner: UserRef | Unset | None = UNSET,
        tags: Iterable[str] | Unset = UNSET,
        external_ref: str | Unset | None = UNSET,
        custom: Mapping[str, object] | Unset | None = UNSET,
    ) -> Lead:
        """Correct a lead's details; its status changes through the flow methods.

        Raises:
            NotFoundError: no such lead.
            ConcurrencyError: it changed since ``expected_version``.
            ValidationError: an invalid value.

        .. versionadded:: 0.1
        """
        return self._update(
            id,
            expected_version,
            self._creating(
                {
                    "first_name": first_name,
                    "last_name": last_name,
                    "company": company,
                    "job_title": job_title,
                    "email": email,
                    "phone": phone,
                    "website": website,
                    "message": message,
                    "source": source,
                    "campaign": campaign,
                    "owner": owner,
                    "tags": tags,
                    "external_ref": external_ref,
                    "custom": custom,
                }
            ),
        )

    # ------------------------------------------------------------------ flow
    def work(self, id: LeadId, *, expected_version: int | None = None) -> Lead:
        """Someone is in touch: the lead moves to ``working`` (also from disqualified).

        Raises:
            InvalidTransition: the lead is converted.
            ConcurrencyError: ``expected_version`` is given and stale.

        .. versionadded:: 0.1
        """
        return self._move(id, LeadStatus.WORKING, expected_version)

    def qualify(self, id: LeadId, *, expected_version: int | None = None) -> Lead:
        """The lead is worth converting: it moves to ``qualified``.

        Raises:
            InvalidTransition: the lead is converted or disqualified.
            ConcurrencyError: ``expected_version`` is given and stale.

        .. versionadded:: 0.1
        """
        return self._move(id, LeadStatus.QUALIFIED, expected_version)

    def disqualify(self, id: LeadId, *, reason: str, expected_version: int | None = None) -> Lead:
        """The lead is not a prospect: it moves to ``disqualified``, keeping the reason.

        Raises:
            InvalidTransition: the lead is converted.
            ValidationError: no reason (field ``reason``, code ``required``).
            ConcurrencyError: ``expected_version`` is given and stale.

        .. versionadded:: 0.1
        """
        return self._move(id, LeadStatus.DISQUALIFIED, expected_version, reason=reason)

    def reopen(self, id: LeadId, *, expected_version: int | None = None) -> Lead:
        """Take a disqualified lead back to ``working`` (its reason is cleared).

        Raises:
            InvalidTransition: the lead is not disqualified.
            ConcurrencyError: ``expected_version`` is given and stale.

        .. versionadded:: 0.1
        """
        return self._move(id, LeadStatus.WORKING, expected_version, source=LeadStatus.DISQUALIFIED)

    def _move(
        self,
        id: LeadId,
        target: LeadStatus,
        expected_version: int | None,
        *,
        reason: str | None = None,
        source: LeadStatus | None = None,
    ) -> Lead:
        _check_uuid(id, "id")
        if expected_version is not None:
            _check_version(expected_version)
        if reason is not None and not isinstance(reason, str):
            raise ValidationError("reason", "must be text", code="type", value=reason)

        def run(uow: UnitOfWork, events: list[Event]) -> Lead:
            repo = self._repo(uow)
            current = repo.get(id)
            if expected_version is not None:
                _expect(current, expected_version)
            if source is not None and current.status is not source:
                raise InvalidTransition(
                    "lead",
                    current.status.value,
                    target.value,
                    f"only a {source.value} lead can be reopened",
                )
            new, event = core.move(current, target, now=self._crm.now(), reason=reason)
            if event is not None:
                repo.update(self._validated(new, current), expected_version=current.version)
                self._crm._record(uow, events, event)
            return new

        return self._crm._write(run)

    # ------------------------------------------------------------ conversion
    def convert(
        self,
        id: LeadId,
        *,
        organization: OrganizationRef | None = None,
        contact: ContactRef | None = None,
        create_opportunity: bool = False,
        opportunity_name: str | None = None,
        pipeline: str = "sales",
        amount: Money | None = None,
        expected_version: int | None = None,
    ) -> LeadConversion:
        """Convert a lead into an organization and a contact (and an opportunity).

        Everything happens in one transaction: if any part fails, nothing is
        written and the lead is not converted.

        Matching (an existing record is linked, never duplicated silently):

        * the contact: ``contact`` if given; else the contact with the lead's
          e-mail address (as normalized: the domain's case does not matter,
          the local part's does); else a contact with the lead's phone and no
          other e-mail address;
        * the organization: ``organization`` if given; else the matched
          contact's organization; else the organization whose name has the
          same :func:`~crmkit.core.matching.name_key` as the lead's company
          (``"ACME, S.A."`` finds ``"Acme SA"``); else one with the lead's
          e-mail address, else one with its phone.

        An organization or contact the conversion creates goes through the
        duplicate check on create (``crm.duplicates.on_create``), as
        ``create`` does: with ``"refuse"``, a likely duplicate raises
        :class:`~crmkit.DuplicateError` and nothing is converted (pass the
        existing record as ``organization=`` or ``contact=`` to link it).

        Archived records are not matched.  When a lookup finds more than one
        candidate, nothing is written and :class:`ValidationError` (code
        ``ambiguous``) asks the caller to pass ``organization=`` or
        ``contact=``.

        What is missing is created: an organization named after the lead's
        company (lifecycle ``prospect``; it takes the lead's website, and its
        e-mail and phone when the lead names no person); a contact from the
        lead's names, e-mail and phone at that organization (none for a lead
        with only a company; without an organization for a person without a
        company).  Matched records are not changed, except that a ``target``
        organization becomes a ``prospect`` (audited); the lifecycle never
        moves backwards.

        With ``create_opportunity`` or an ``opportunity_name``, an opportunity
        is opened in ``pipeline`` (named ``opportunity_name``, by default after
        the organization or the contact) with the lead's source, campaign and
        owner.

        Converting a lead that is already converted is idempotent: it returns
        the stored conversion (``created_*`` false), writes nothing, fires
        nothing and does not check ``expected_version`` (a retry must not
        fail).  ``crmkit_lead_converted`` fires once, after commit.

        Args:
            id: the lead.
            organization: link this organization instead of matching one.
            contact: link this contact instead of matching one.
            create_opportunity: also open an opportunity.
            opportunity_name: the opportunity's name (implies an opportunity).
            pipeline: the opportunity's pipeline key.
            amount: the opportunity's amount.
            expected_version: the lead's version the caller saw.

        Returns:
            What the lead became, and which records were created.

        Raises:
            NotFoundError: no such lead.
            InvalidTransition: the lead is disqualified.
            ValidationError: a lookup is ambiguous (field ``organization`` or
                ``contact``, code ``ambiguous``; ``value`` holds the
                candidates' ids); the lead names no person or company and
                matches nothing (field ``contact``, code ``required``); an
                invalid argument or opportunity value (e.g. an unknown
                ``pipeline``).
            ConcurrencyError: ``expected_version`` is given and stale, or the
                lead was converted concurrently (nothing was written: retry).
            DuplicateError: with ``duplicate_check="refuse"``, the organization
                or contact to create is a likely duplicate.

        .. versionadded:: 0.1
        """
        _check_uuid(id, "id")
        if expected_version is not None:
            _check_version(expected_version)
        if not isinstance(create_opportunity, bool):
            raise ValidationError(
                "create_opportunity", "must be True or False", code="type", value=create_opportunity
            )
        if opportunity_name is not None:
            normalize_text(opportunity_name, "opportunity_name", required=True, max_length=300)
        opening = create_opportunity or opportunity_name is not None
        crm = self._crm
        # a converted lead is answered by a read: no write transaction at all
        done = crm._read(lambda uow: _stored(uow, self._repo(uow).get(id)))
        if done is not None:
            return done

        def run(uow: UnitOfWork, events: list[Event]) -> LeadConversion:
            repo = self._repo(uow)
            lead = repo.get(id)
            done = _stored(uow, lead)  # converted since the read above
            if done is not None:
                return done
            if expected_version is not None:
                _expect(lead, expected_version)
            if lead.status is LeadStatus.DISQUALIFIED:
                raise InvalidTransition(
                    "lead", lead.status.value, LeadStatus.CONVERTED.value, "the lead is closed"
                )
            now = crm.now()
            person = _find_contact(uow, lead, contact)
            org = _find_organization(uow, lead, organization, person)
            created_org = created_contact = False
            if org is None and lead.company is not None:
                org = self._add(uow, events, Organization, _organization_fields(lead), now)
                created_org = True
            elif org is not None and org.lifecycle is Lifecycle.TARGET:
                org = self._change(uow, events, org, {"lifecycle": Lifecycle.PROSPECT}, now)
            if person is None and lead.full_name is not None:
                fields = _contact_fields(lead, org)
                person = self._add(uow, events, Contact, fields, now)
                created_contact = True
            if org is None and person is None:
                raise ValidationError(
                    "contact",
                    "the lead names no person or company and matches no record: "
                    "pass contact= or organization=",
                    code="required",
                )
            opportunity = None
            if opening:
                opportunity = crm.opportunities.create(
                    name=opportunity_name or _opportunity_name(org, person),
                    pipeline=pipeline,
                    organization=org.id if org is not None else None,
                    contact=person.id if person is not None else None,
                    amount=amount,
                    source=lead.source_id,
                    campaign=lead.campaign_id,
                    owner=lead.owner_id,
                )
            converted, event = core.convert(
                lead,
                now=now,
                organization_id=org.id if org is not None else None,
                contact_id=person.id if person is not None else None,
                opportunity_id=opportunity.id if opportunity is not None else None,
            )
            repo.update(self._validated(converted, lead), expected_version=lead.version)
            crm._record(uow, events, event)
            conversion = LeadConversion(
                lead=converted,
                organization=org,
                contact=person,
                opportunity=opportunity,
                created_organization=created_org,
                created_contact=created_contact,
            )
            events.append(Notice(lambda: crm.plugins.lead_converted(crm, converted, conversion)))
            return conversion

        return crm._write(run)

    def _add(
        self,
        uow: UnitOfWork,
        events: list[Event],
        cls: type[E],
        fields: dict[str, Any],
        now: datetime,
    ) -> E:
        fields = self._crm.custom_fields.implied(uow, cls.ENTITY, fields)
        entity, event = changes.create(cls, id=uuid7(), now=now, **fields)
        if isinstance(entity, Contact | Organization):  # the check on create, as create does
            self._crm.duplicates._screen(uow, entity)
        uow.repository(cls).add(self._validated(entity, None))
        self._crm._record(uow, events, event)
        return entity

    def _change(
        self,
        uow: UnitOfWork,
        events: list[Event],
        entity: E,
        values: dict[str, Any],
        now: datetime,
    ) -> E:
        new, event = changes.update(entity, values, now=now)
        if event is not None:
            uow.repository(type(entity)).update(
                self._validated(new, entity), expected_version=entity.version
            )
            self._crm._record(uow, events, event)
        return new

    # --------------------------------------------------------------- helpers
    def _prepare(
        self,
        uow: UnitOfWork,
        values: Mapping[str, Any],
        resolve: Callable[[UnitOfWork, type[Entity], object, str], Any] | None = None,
    ) -> dict[str, Any]:
        fields = super()._prepare(uow, values, resolve)
        phone = fields.get("phone")
        if isinstance(phone, str):
            fields["phone"] = (
                PhoneNumber.parse(phone, region=self._crm.default_region) if phone.strip() else None
            )
        return fields


# ================================================================= helpers


def _check_mapping(mapping: object) -> dict[str, str]:
    """Check a web-form mapping; return lead field -> the form field that fills it."""
    if not isinstance(mapping, Mapping):
        raise ValidationError(
            "mapping", "must map form field names to lead field names", code="type", value=mapping
        )
    form_fields: dict[str, str] = {}
    for name, target in mapping.items():
        if not isinstance(name, str) or not isinstance(target, str):
            raise ValidationError(
                "mapping", "must map form field names to lead field names", code="type", value=name
            )
        if target not in WEB_FORM_FIELDS:
            raise ValidationError(
                "mapping",
                f"a form field can fill only {', '.join(sorted(WEB_FORM_FIELDS))}",
                code="unknown_field",
                value=target,
            )
        if target in form_fields and target != "message":
            raise ValidationError(
                "mapping",
                "two form fields fill the same lead field (only message takes several)",
                code="ambiguous",
                value=target,
            )
        form_fields.setdefault(target, name)
    return form_fields


def _filled(value: object) -> bool:
    """A honeypot value a person would have left empty (anything but blank text)."""
    return value is not None and not (isinstance(value, str) and not value.strip())


def _split_field(path: str) -> tuple[str, str]:
    """``"phone"`` -> ``("phone", "")``; ``"tags[2]"`` -> ``("tags", "[2]")``."""
    for i, char in enumerate(path):
        if char in "[.":
            return path[:i], path[i:]
    return path, ""


def _one(uow: UnitOfWork, cls: type[E], filters: list[Filter], argument: str) -> E | None:
    """The one active record matching ``filters``; ``None`` for none.

    Raises:
        ValidationError: several match (code ``ambiguous``).
    """
    found = uow.repository(cls).find(Query(filters=filters, limit=MAX_CANDIDATES))
    if len(found) > 1:
        raise ValidationError(
            argument,
            f"several {cls.ENTITY} records match the lead: pass {argument}= to choose one",
            code="ambiguous",
            value=tuple(e.id for e in found),
        )
    return found[0] if found else None


def _find_contact(uow: UnitOfWork, lead: Lead, explicit: ContactRef | None) -> Contact | None:
    if explicit is not None:
        contact_id = _ref_id(uow, Contact, explicit, "contact")
        assert contact_id is not None
        return uow.repository(Contact).get(contact_id)
    if lead.email is not None:
        found = _one(uow, Contact, [Eq("email", lead.email)], "contact")
        if found is not None:
            return found
    if lead.phone is not None:
        # a contact with another e-mail address is another person sharing the number
        filters: list[Filter] = [Has("phones", lead.phone)]
        if lead.email is not None:
            filters.append(Eq("email", None))
        return _one(uow, Contact, filters, "contact")
    return None


def _find_organization(
    uow: UnitOfWork, lead: Lead, explicit: OrganizationRef | None, contact: Contact | None
) -> Organization | None:
    repo = uow.repository(Organization)
    if explicit is not None:
        organization_id = _ref_id(uow, Organization, explicit, "organization")
        assert organization_id is not None
        return repo.get(organization_id)
    if contact is not None and contact.organization_id is not None:
        return repo.get(contact.organization_id)
    lookups: list[Filter] = []
    if lead.company is not None and name_key(lead.company):
        lookups.append(Eq("name_key", name_key(lead.company)))
    if lead.email is not None:
        lookups.append(Has("emails", lead.email))
    if lead.phone is not None:
        lookups.append(Has("phones", lead.phone))
    for lookup in lookups:
        found = _one(uow, Organization, [lookup], "organization")
        if found is not None:
            return found
    return None


def _organization_fields(lead: Lead) -> dict[str, Any]:
    person = lead.full_name is not None
    return {
        "name": lead.company,
        "lifecycle": Lifecycle.PROSPECT,
        "website": lead.website,
        "emails": () if person or lead.email is None else (lead.email,),
        "phones": () if person or lead.phone is None else (lead.phone,),
        "source_id": lead.source_id,
        "owner_id": lead.owner_id,
    }


def _contact_fields(lead: Lead, organization: Organization | None) -> dict[str, Any]:
    return {
        "first_name": lead.first_name or lead.last_name,
        "last_name": lead.last_name if lead.first_name else None,
        "email": lead.email,
        "phones": () if lead.phone is None else (lead.phone,),
        "organization_id": organization.id if organization is not None else None,
        "owner_id": lead.owner_id,
    }


def _opportunity_name(organization: Organization | None, contact: Contact | None) -> str:
    if organization is not None:
        return organization.name
    assert contact is not None
    return contact.full_name


def _stored(uow: UnitOfWork, lead: Lead) -> LeadConversion | None:
    """The conversion a converted lead keeps (its links, nothing created); else ``None``."""
    if lead.status is not LeadStatus.CONVERTED:
        return None
    return LeadConversion(
        lead=lead,
        organization=(
            uow.repository(Organization).get(lead.organization_id)
            if lead.organization_id is not None
            else None
        ),
        contact=(
            uow.repository(Contact).get(lead.contact_id) if lead.contact_id is not None else None
        ),
        opportunity=(
            uow.repository(Opportunity).get(lead.opportunity_id)
            if lead.opportunity_id is not None
            else None
        ),
    )
