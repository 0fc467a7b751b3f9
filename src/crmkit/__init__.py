"""crmkit: an embeddable, typed CRM library.

>>> import crmkit
>>> crm = crmkit.open(":memory:")
>>> acme = crm.organizations.create(name="Acme S.A.", emails=["ventas@acme.es"])
>>> crm.organizations.get(acme.id).name
'Acme S.A.'

Importing crmkit opens nothing, loads no plugins and starts no engine.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from crmkit.app import (
    CRM,
    UNSET,
    ContactService,
    MasterService,
    OrganizationService,
    Unset,
    UserService,
    open,
)
from crmkit.core.audit import AuditAction, AuditChange, AuditEntry
from crmkit.core.contact_points import Address, AddressKind, EmailAddress, PhoneNumber
from crmkit.core.entities import (
    Channel,
    Contact,
    ContactRole,
    Entity,
    Lifecycle,
    Market,
    Master,
    MasterSeed,
    Organization,
    OrganizationKind,
    OrganizationStatus,
    Position,
    Role,
    Source,
    User,
    Zone,
)
from crmkit.core.errors import (
    AccessDenied,
    ConcurrencyError,
    CrmkitError,
    CurrencyMismatchError,
    DuplicateError,
    HookError,
    InvalidTransition,
    NotFoundError,
    PluginError,
    StorageError,
    ValidationError,
)
from crmkit.core.ids import (
    ContactId,
    MarketId,
    OrganizationId,
    PositionId,
    SourceId,
    UserId,
    ZoneId,
)
from crmkit.core.money import Money
from crmkit.core.query import Contains, Eq, Has, In, Range
from crmkit.plugins import hookimpl

try:
    __version__ = version("crmkit")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0"

__all__ = [
    "CRM",
    "UNSET",
    "AccessDenied",
    "Address",
    "AddressKind",
    "AuditAction",
    "AuditChange",
    "AuditEntry",
    "Channel",
    "ConcurrencyError",
    "Contact",
    "ContactId",
    "ContactRole",
    "ContactService",
    "Contains",
    "CrmkitError",
    "CurrencyMismatchError",
    "DuplicateError",
    "EmailAddress",
    "Entity",
    "Eq",
    "Has",
    "HookError",
    "In",
    "InvalidTransition",
    "Lifecycle",
    "Market",
    "MarketId",
    "Master",
    "MasterSeed",
    "MasterService",
    "Money",
    "NotFoundError",
    "Organization",
    "OrganizationId",
    "OrganizationKind",
    "OrganizationService",
    "OrganizationStatus",
    "PhoneNumber",
    "PluginError",
    "Position",
    "PositionId",
    "Range",
    "Role",
    "Source",
    "SourceId",
    "StorageError",
    "Unset",
    "User",
    "UserId",
    "UserService",
    "ValidationError",
    "Zone",
    "ZoneId",
    "__version__",
    "hookimpl",
    "open",
]
