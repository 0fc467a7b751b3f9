"""Leads (prospectos, público objetivo, clientes potenciales).

A :class:`Lead` is raw prospect data: who, at which company, how to reach
them, where they came from.  Its status moves

    new -> working -> qualified -> converted
    new | working | qualified -> disqualified (with a reason) -> working

and ``convert`` (in the service) creates or matches the organization and
contact, optionally an opportunity, and keeps the links on the lead.

.. versionadded:: 0.1
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from datetime import datetime
from typing import Any, ClassVar, Final

from attrs import field, frozen

from crmkit.core import changes
from crmkit.core.campaigns import Campaign
from crmkit.core.contact_points import EmailAddress, PhoneNumber, normalize_text
from crmkit.core.custom_fields import CustomValues, custom_field
from crmkit.core.entities import (
    _BASE_FIELDS,
    Contact,
    Entity,
    FieldKind,
    Organization,
    Source,
    User,
)
from crmkit.core.errors import InvalidTransition, ValidationError
from crmkit.core.events import Updated
from crmkit.core.fields import (
    enum_field,
    optional_datetime,
    optional_email,
    optional_id,
    optional_url,
    phone_item,
    required_id,
    tag_item,
    text,
    tuple_field,
)
from crmkit.core.ids import (
    CampaignId,
    ContactId,
    LeadId,
    OpportunityId,
    OrganizationId,
    SourceId,
    UserId,
)
from crmkit.core.opportunities import Opportunity

__all__ = [
    "LEAD_FLOW",
    "Lead",
    "LeadChannel",
    "LeadConversion",
    "LeadStatus",
    "convert",
    "move",
]


class LeadStatus(enum.Enum):
    """Where a lead stands."""

    NEW = "new"
    WORKING = "working"  #: someone is in touch
    QUALIFIED = "qualified"  #: worth converting
    DISQUALIFIED = "disqualified"  #: closed: not a prospect (needs a reason)
    CONVERTED = "converted"  #: closed: became an organization and contact


class LeadChannel(enum.Enum):
    """How a lead was captured."""

    MANUAL = "manual"
    WEB_FORM = "web_form"
    CALL = "call"
    EMAIL = "email"
    IMPORT = "import"


#: Statuses each status may move to by :func:`move`; ``converted`` is reached
#: only through conversion, and is final.
LEAD_FLOW: Final[Mapping[LeadStatus, frozenset[LeadStatus]]] = {
    LeadStatus.NEW: frozenset({LeadStatus.WORKING, LeadStatus.QUALIFIED, LeadStatus.DISQUALIFIED}),
    LeadStatus.WORKING: frozenset({LeadStatus.QUALIFIED, LeadStatus.DISQUALIFIED}),
    LeadStatus.QUALIFIED: frozenset({LeadStatus.WORKING, LeadStatus.DISQUALIFIED}),
    LeadStatus.DISQUALIFIED: frozenset({LeadStatus.WORKING}),
    LeadStatus.CONVERTED: frozenset(),
}


def _phone(value: object) -> PhoneNumber | None:
    return None if value is None else phone_item(value, "phone")


@frozen(kw_only=True)
class Lead(Entity):
    """A prospect not yet converted into an organization and a contact.

    It needs something to go on: a name, a company, an e-mail or a phone.
    """

    ENTITY: ClassVar[str] = "lead"
    QUERYABLE: ClassVar[dict[str, FieldKind]] = {
        **_BASE_FIELDS,
        "first_name": FieldKind.TEXT,
        "last_name": FieldKind.TEXT,
        "company": FieldKind.TEXT,
        "email": FieldKind.TEXT,
        "status": FieldKind.ENUM,
        "channel": FieldKind.ENUM,
        "source_id": FieldKind.ID,
        "campaign_id": FieldKind.ID,
        "owner_id": FieldKind.ID,
        "organization_id": FieldKind.ID,
        "contact_id": FieldKind.ID,
        "opportunity_id": FieldKind.ID,
        "converted_at": FieldKind.DATETIME,
        "tags": FieldKind.SET,
    }

    id: LeadId = required_id()
    first_name: str | None = text("first_name", max_length=200)
    last_name: str | None = text("last_name", max_length=200)
    company: str | None = text("company", max_length=300)
    job_title: str | None = text("job_title", max_length=200)
    email: EmailAddress | None = optional_email("email")
    phone: PhoneNumber | None = field(default=None, converter=_phone)
    website: str | None = optional_url("website")
    message: str | None = text("message", max_length=10_000)
    status: LeadStatus = enum_field(LeadStatus, "status", LeadStatus.NEW)
    status_reason: str | None = text("status_reason", max_length=2000)
    channel: LeadChannel = enum_field(LeadChannel, "channel", LeadChannel.MANUAL)
    source_id: SourceId | None = optional_id()
    campaign_id: CampaignId | None = optional_id()
    owner_id: UserId | None = optional_id()
    organization_id: OrganizationId | None = optional_id()
    contact_id: ContactId | None = optional_id()
    opportunity_id: OpportunityId | None = optional_id()
    converted_at: datetime | None = optional_datetime()
    tags: tuple[str, ...] = tuple_field(tag_item, "tags")
    #: custom field values (campos personalizados) by key
    custom: CustomValues = custom_field()

    def __attrs_post_init__(self) -> None:
        if not (self.first_name or self.last_name or self.company or self.email or self.phone):
            raise ValidationError(
                "first_name",
                "a lead needs a name, a company, an e-mail or a phone",
                code="required",
            )

    @property
    def full_name(self) -> str | None:
        """First and last name joined (``None`` without either)."""
        parts = [p for p in (self.first_name, self.last_name) if p]
        return " ".join(parts) or None

    @property
    def is_closed(self) -> bool:
        """Converted or disqualified."""
        return self.status in (LeadStatus.CONVERTED, LeadStatus.DISQUALIFIED)


Lead.REFERENCES = {
    "campaign_id": Campaign,
    "source_id": Source,
    "owner_id": User,
    "organization_id": Organization,
    "contact_id": Contact,
    "opportunity_id": Opportunity,
}


@frozen(kw_only=True)
class LeadConversion:
    """What converting a lead gave: the records it created or matched.

    Attributes:
        lead: the lead, now converted.
        organization: the organization (``None`` for a person without a company).
        contact: the contact (``None`` for a lead with only a company).
        opportunity: the opportunity opened, if one was asked for.
        created_organization: the organization is new (else it was matched).
        created_contact: the contact is new (else it was matched).
    """

    lead: Lead
    organization: Organization | None
    contact: Contact | None
    opportunity: Opportunity | None = None
    created_organization: bool = False
    created_contact: bool = False


def move(
    lead: Lead, target: LeadStatus, *, now: datetime, reason: str | None = None
) -> tuple[Lead, Updated[Lead] | None]:
    """Move a lead along :data:`LEAD_FLOW`; disqualifying needs a ``reason``.

    Raises:
        InvalidTransition: the flow does not allow it.
        ValidationError: disqualifying without a reason.
    """
    reason = normalize_text(reason, "reason", max_length=2000)
    if target is lead.status:
        return lead, None
    if target not in LEAD_FLOW[lead.status]:
        raise InvalidTransition(
            "lead", lead.status.value, target.value, "the lead flow does not allow it"
        )
    if target is LeadStatus.DISQUALIFIED and reason is None:
        raise ValidationError("reason", "disqualifying a lead needs a reason", code="required")
    values: dict[str, Any] = {"status": target, "status_reason": reason}
    return changes.update(lead, values, now=now)


def convert(
    lead: Lead,
    *,
    now: datetime,
    organization_id: OrganizationId | None,
    contact_id: ContactId | None,
    opportunity_id: OpportunityId | None = None,
    reason: str | None = None,
) -> tuple[Lead, Updated[Lead]]:
    """Mark a lead converted, keeping the links to what it became.

    Raises:
        InvalidTransition: the lead is already closed (converted or disqualified).
    """
    if lead.is_closed:
        raise InvalidTransition(
            "lead", lead.status.value, LeadStatus.CONVERTED.value, "the lead is closed"
        )
    new, event = changes.update(
        lead,
        {
            "status": LeadStatus.CONVERTED,
            "status_reason": reason,
            "organization_id": organization_id,
            "contact_id": contact_id,
            "opportunity_id": opportunity_id,
            "converted_at": now,
        },
        now=now,
    )
    assert event is not None
    return new, event
