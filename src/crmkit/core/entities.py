"""The CRM's records: organizations, contacts, the masters that classify them, users.

Entities are frozen attrs classes.  Every one carries ``id``, ``version``,
``created_at``, ``updated_at``, ``external_ref`` (the host system's key) and
``archived``.  Field converters normalize friendly input (``"ana@acme.es"``
becomes an :class:`EmailAddress`) and raise :class:`ValidationError` naming the
field, so an invalid entity cannot exist.  Entities change only through the
pure functions in :mod:`crmkit.core.changes`.

.. versionadded:: 0.1
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any, ClassVar, Final
from uuid import UUID

from attrs import field, frozen

from crmkit.core.contact_points import Address, EmailAddress, PhoneNumber
from crmkit.core.custom_fields import CustomValues, custom_field
from crmkit.core.errors import ValidationError
from crmkit.core.fields import (
    address_item,
    aware_datetime,
    bool_field,
    email_item,
    enum_field,
    enum_set_field,
    key_field,
    optional_email,
    optional_enum,
    optional_id,
    optional_url,
    phone_item,
    required_id,
    tag_item,
    text,
    tuple_field,
    url_item,
    version_field,
)
from crmkit.core.ids import (
    ContactId,
    LossReasonId,
    MarketId,
    OrganizationId,
    OutcomeId,
    PositionId,
    ProductId,
    SourceId,
    UserId,
    ZoneId,
)
from crmkit.core.matching import name_key

__all__ = [
    "MASTER_TYPES",
    "Channel",
    "Contact",
    "ContactRole",
    "Entity",
    "FieldKind",
    "Lifecycle",
    "LossReason",
    "Market",
    "Master",
    "MasterSeed",
    "Organization",
    "OrganizationKind",
    "OrganizationStatus",
    "Outcome",
    "Position",
    "Product",
    "Role",
    "Source",
    "User",
    "Zone",
]


class OrganizationKind(enum.Enum):
    """What an organization is to us (an organization may be several)."""

    CUSTOMER = "customer"
    PROSPECT = "prospect"
    PARTNER = "partner"
    SUPPLIER = "supplier"
    PRESCRIBER = "prescriber"


class OrganizationStatus(enum.Enum):
    """Whether we still work with the organization."""

    ACTIVE = "active"
    INACTIVE = "inactive"


class Lifecycle(enum.Enum):
    """The customer lifecycle: target -> prospect -> customer -> former."""

    TARGET = "target"
    PROSPECT = "prospect"
    CUSTOMER = "customer"
    FORMER = "former"


class ContactRole(enum.Enum):
    """The part a contact plays in the relationship."""

    PRIMARY = "primary"
    DECISION_MAKER = "decision_maker"
    TECHNICAL = "technical"
    ADMINISTRATIVE = "administrative"
    EXTERNAL = "external"


class Channel(enum.Enum):
    """How a contact prefers to be reached."""

    EMAIL = "email"
    PHONE = "phone"
    MOBILE = "mobile"
    WHATSAPP = "whatsapp"
    IN_PERSON = "in_person"
    POST = "post"


class Role(enum.Enum):
    """Access role of a user (see the access-control guide)."""

    ADMIN = "admin"
    MANAGER = "manager"
    CONTRIBUTOR = "contributor"
    GUEST = "guest"


class FieldKind(enum.Enum):
    """How a queryable field compares; stores use it to build filters and sorts."""

    TEXT = "text"
    INT = "int"
    ID = "id"
    ENUM = "enum"
    DATETIME = "datetime"
    BOOL = "bool"
    SET = "set"  #: a collection: filter by membership, never sort
    DATE = "date"
    MONEY = "money"  #: compares only within one currency
    DECIMAL = "decimal"  #: an exact number (custom decimal fields)


_BASE_FIELDS: Final = {
    "id": FieldKind.ID,
    "version": FieldKind.INT,
    "created_at": FieldKind.DATETIME,
    "updated_at": FieldKind.DATETIME,
    "external_ref": FieldKind.TEXT,
    "archived": FieldKind.BOOL,
}


@frozen(kw_only=True)
class Entity:
    """Fields every record has.  Not instantiated on its own."""

    #: entity type name used in errors, audit and hooks (``"organization"``)
    ENTITY: ClassVar[str] = "entity"
    #: the allow-list of fields ``find`` may filter and sort on, with their kinds
    QUERYABLE: ClassVar[dict[str, FieldKind]] = _BASE_FIELDS
    #: fields whose values are unique among all records of the type, archived included
    UNIQUE: ClassVar[tuple[str, ...]] = ("external_ref",)
    #: reference fields and the entity type each points to; stores enforce them
    REFERENCES: ClassVar[dict[str, type[Entity]]] = {}
    #: fields a user may not change through ``update``
    SYSTEM_FIELDS: ClassVar[frozenset[str]] = frozenset(
        {"id", "version", "created_at", "updated_at", "archived"}
    )

    id: Any = required_id()
    version: int = version_field()
    created_at: datetime = aware_datetime()
    updated_at: datetime = aware_datetime()
    external_ref: str | None = text("external_ref", max_length=200)
    archived: bool = bool_field()


# ---------------------------------------------------------------- masters


@frozen(kw_only=True)
class Master(Entity):
    """A small named list the user configures (source, market, position, zone).

    ``key`` is the stable slug code refers to (``"referral"``); ``name`` is the
    English label and ``name_es`` the Spanish one.
    """

    QUERYABLE: ClassVar[dict[str, FieldKind]] = {
        **_BASE_FIELDS,
        "key": FieldKind.TEXT,
        "name": FieldKind.TEXT,
    }

    UNIQUE: ClassVar[tuple[str, ...]] = ("external_ref", "key")

    key: str = key_field()
    name: str = text("name", required=True, max_length=200)
    name_es: str | None = text("name_es", max_length=200)
    description: str | None = text("description", max_length=2000)

    def label(self, language: str = "en") -> str:
        """The label in ``language`` (``"es"`` or ``"en"``), falling back to English."""
        if language.startswith("es") and self.name_es:
            return self.name_es
        return self.name


@frozen(kw_only=True)
class Source(Master):
    """Where a customer came from (originación): web, referral, trade fair..."""

    ENTITY: ClassVar[str] = "source"
    id: SourceId = required_id()


@frozen(kw_only=True)
class Market(Master):
    """A market or sector (mercado) the organization belongs to."""

    ENTITY: ClassVar[str] = "market"
    id: MarketId = required_id()


@frozen(kw_only=True)
class Position(Master):
    """A job position (cargo) of a contact."""

    ENTITY: ClassVar[str] = "position"
    id: PositionId = required_id()


@frozen(kw_only=True)
class Zone(Master):
    """A sales zone (zona); zones also act as security groups."""

    ENTITY: ClassVar[str] = "zone"
    id: ZoneId = required_id()


@frozen(kw_only=True)
class Product(Master):
    """Something we sell (producto); opportunity line items may refer to it."""

    ENTITY: ClassVar[str] = "product"
    id: ProductId = required_id()


@frozen(kw_only=True)
class LossReason(Master):
    """Why an opportunity was lost (motivo de pérdida); ``other`` needs a note."""

    ENTITY: ClassVar[str] = "loss_reason"
    id: LossReasonId = required_id()


@frozen(kw_only=True)
class Outcome(Master):
    """What an interaction achieved (resultado): interés inicial, agendar reunión..."""

    ENTITY: ClassVar[str] = "outcome"
    id: OutcomeId = required_id()


# ------------------------------------------------------------------ users


def _zone_member(value: object, path: str) -> ZoneId:
    if not isinstance(value, UUID):
        raise ValidationError(path, "must be a zone id (UUID)", code="type", value=value)
    return value  # type: ignore[return-value]


@frozen(kw_only=True)
class User(Entity):
    """Someone who works in the CRM (agente, comercial)."""

    ENTITY: ClassVar[str] = "user"
    QUERYABLE: ClassVar[dict[str, FieldKind]] = {
        **_BASE_FIELDS,
        "name": FieldKind.TEXT,
        "email": FieldKind.TEXT,
        "role": FieldKind.ENUM,
    }

    id: UserId = required_id()
    name: str = text("name", required=True, max_length=200)
    email: EmailAddress | None = optional_email("email")
    role: Role = enum_field(Role, "role", Role.CONTRIBUTOR)
    #: the zones (security groups) the user belongs to; see docs/guides/access-control.md
    zone_ids: tuple[ZoneId, ...] = tuple_field(_zone_member, "zone_ids", max_items=1000)


# ---------------------------------------------------------- organizations


@frozen(kw_only=True)
class Organization(Entity):
    """A company or institution we deal with (organización, entidad CRM, cliente)."""

    ENTITY: ClassVar[str] = "organization"
    QUERYABLE: ClassVar[dict[str, FieldKind]] = {
        **_BASE_FIELDS,
        "name": FieldKind.TEXT,
        "name_key": FieldKind.TEXT,
        "legal_name": FieldKind.TEXT,
        "tax_id": FieldKind.TEXT,
        "website": FieldKind.TEXT,
        "status": FieldKind.ENUM,
        "lifecycle": FieldKind.ENUM,
        "market_id": FieldKind.ID,
        "source_id": FieldKind.ID,
        "zone_id": FieldKind.ID,
        "owner_id": FieldKind.ID,
        "parent_id": FieldKind.ID,
        "kinds": FieldKind.SET,
        "tags": FieldKind.SET,
        "emails": FieldKind.SET,
        "phones": FieldKind.SET,
    }

    id: OrganizationId = required_id()
    name: str = text("name", required=True, max_length=300)
    legal_name: str | None = text("legal_name", max_length=300)
    kinds: frozenset[OrganizationKind] = enum_set_field(OrganizationKind, "kinds")
    status: OrganizationStatus = enum_field(OrganizationStatus, "status", OrganizationStatus.ACTIVE)
    lifecycle: Lifecycle = enum_field(Lifecycle, "lifecycle", Lifecycle.TARGET)
    tax_id: str | None = text("tax_id", max_length=32)
    addresses: tuple[Address, ...] = tuple_field(address_item, "addresses")
    phones: tuple[PhoneNumber, ...] = tuple_field(phone_item, "phones")
    emails: tuple[EmailAddress, ...] = tuple_field(email_item, "emails")
    website: str | None = optional_url("website")
    market_id: MarketId | None = optional_id()
    source_id: SourceId | None = optional_id()
    zone_id: ZoneId | None = optional_id()
    owner_id: UserId | None = optional_id()
    parent_id: OrganizationId | None = optional_id()
    tags: tuple[str, ...] = tuple_field(tag_item, "tags")
    notes: str | None = text("notes", max_length=10_000)
    #: custom field values (campos personalizados) by key
    custom: CustomValues = custom_field()
    #: the normalized name (:func:`crmkit.core.matching.name_key`), kept for matching
    name_key: str = field(init=False, eq=False)

    def __attrs_post_init__(self) -> None:
        object.__setattr__(self, "name_key", name_key(self.name))


# --------------------------------------------------------------- contacts


@frozen(kw_only=True)
class Contact(Entity):
    """A person we deal with (contacto); an organization has any number of them."""

    ENTITY: ClassVar[str] = "contact"
    QUERYABLE: ClassVar[dict[str, FieldKind]] = {
        **_BASE_FIELDS,
        "first_name": FieldKind.TEXT,
        "last_name": FieldKind.TEXT,
        "email": FieldKind.TEXT,
        "organization_id": FieldKind.ID,
        "position_id": FieldKind.ID,
        "department": FieldKind.TEXT,
        "role": FieldKind.ENUM,
        "preferred_channel": FieldKind.ENUM,
        "do_not_contact": FieldKind.BOOL,
        "language": FieldKind.TEXT,
        "owner_id": FieldKind.ID,
        "tags": FieldKind.SET,
        "phones": FieldKind.SET,
    }

    id: ContactId = required_id()
    first_name: str = text("first_name", required=True, max_length=200)
    last_name: str | None = text("last_name", max_length=200)
    email: EmailAddress | None = optional_email("email")
    phones: tuple[PhoneNumber, ...] = tuple_field(phone_item, "phones")
    organization_id: OrganizationId | None = optional_id()
    position_id: PositionId | None = optional_id()
    department: str | None = text("department", max_length=200)
    role: ContactRole | None = optional_enum(ContactRole, "role")
    preferred_channel: Channel | None = optional_enum(Channel, "preferred_channel")
    do_not_contact: bool = bool_field()
    language: str | None = text("language", max_length=16)
    social_profiles: tuple[str, ...] = tuple_field(url_item, "social_profiles", max_items=20)
    owner_id: UserId | None = optional_id()
    tags: tuple[str, ...] = tuple_field(tag_item, "tags")
    notes: str | None = text("notes", max_length=10_000)
    #: custom field values (campos personalizados) by key
    custom: CustomValues = custom_field()

    @property
    def display_name(self) -> str:
        """First and last name joined."""
        return self.full_name

    @property
    def full_name(self) -> str:
        """First and last name joined."""
        return f"{self.first_name} {self.last_name}" if self.last_name else self.first_name


Organization.REFERENCES = {
    "market_id": Market,
    "source_id": Source,
    "zone_id": Zone,
    "owner_id": User,
    "parent_id": Organization,
}
Contact.REFERENCES = {
    "organization_id": Organization,
    "position_id": Position,
    "owner_id": User,
}

#: The kinds of master list, by the name used in hooks and the API.
MASTER_TYPES: Final[dict[str, type[Master]]] = {
    "source": Source,
    "market": Market,
    "position": Position,
    "zone": Zone,
    "product": Product,
    "loss_reason": LossReason,
    "outcome": Outcome,
}


def _master_kind(value: object) -> str:
    if not isinstance(value, str) or value not in MASTER_TYPES:
        raise ValidationError(
            "kind", f"must be one of: {', '.join(MASTER_TYPES)}", code="choice", value=value
        )
    return value


@frozen(kw_only=True)
class MasterSeed:
    """A master-list entry a plugin contributes (``crmkit_register_masters``).

    Seeds are inserted when missing (matched by ``kind`` and ``key``) and never
    overwrite what the user changed.
    """

    kind: str = field(converter=_master_kind)
    key: str = key_field()
    name: str = text("name", required=True, max_length=200)
    name_es: str | None = text("name_es", max_length=200)
    description: str | None = text("description", max_length=2000)
