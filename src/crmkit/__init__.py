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
    OpportunityService,
    OrganizationService,
    PipelineRegistry,
    Transaction,
    Unset,
    UserService,
    open,
)
from crmkit.core.audit import AuditAction, AuditChange, AuditEntry
from crmkit.core.bridge import ContactDraft, OrganizationDraft, SyncResult
from crmkit.core.campaigns import Campaign, CampaignKind, CampaignResults, CampaignStatus
from crmkit.core.cases import Case, CasePriority, CaseStatus, CaseType, SlaTarget
from crmkit.core.contact_points import Address, AddressKind, EmailAddress, PhoneNumber
from crmkit.core.custom_fields import CustomField, CustomFieldType, CustomValues
from crmkit.core.entities import (
    Channel,
    Contact,
    ContactRole,
    Entity,
    Lifecycle,
    LossReason,
    Market,
    Master,
    MasterSeed,
    Organization,
    OrganizationKind,
    OrganizationStatus,
    Outcome,
    Position,
    Product,
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
    TemplateError,
    ValidationError,
)
from crmkit.core.formats import FileFormat, MalformedRow, ReadOptions, WriteOptions
from crmkit.core.ids import (
    CampaignEmailId,
    CampaignId,
    CaseId,
    ContactId,
    EmailTemplateId,
    InteractionId,
    LeadId,
    LossReasonId,
    MarketId,
    OpportunityId,
    OrganizationId,
    OutcomeId,
    PositionId,
    ProductId,
    SegmentId,
    SourceId,
    UserId,
    ZoneId,
)
from crmkit.core.interactions import (
    Interaction,
    InteractionKind,
    InteractionStatus,
    Sequence,
    SequenceStep,
)
from crmkit.core.leads import Lead, LeadChannel, LeadConversion, LeadStatus
from crmkit.core.mail import (
    CampaignEmail,
    EmailMetrics,
    EmailTemplate,
    OutgoingEmail,
    SendOutcome,
    TemplateVariant,
)
from crmkit.core.money import Money
from crmkit.core.opportunities import LineItem, Opportunity, StageChange
from crmkit.core.pipelines import Pipeline, Stage, StageKind
from crmkit.core.query import Contains, Eq, Has, In, Range
from crmkit.core.segments import (
    And,
    Criteria,
    NoInteraction,
    Not,
    OpenedEmail,
    OpenOpportunity,
    Or,
    Segment,
    SegmentMode,
    WonValue,
)
from crmkit.io.report import ImportReport, RowError
from crmkit.plugins import hookimpl
from crmkit.plugins.host import DeliveryFailure, DeliveryReport, StoreBackend
from crmkit.plugins.smtp import SmtpSender, SmtpSettings
from crmkit.services.interactions import Agenda, AgendaCounts
from crmkit.services.mail import RenderedEmail, SendFailure, SendReport
from crmkit.services.registry import Registry
from crmkit.services.timeline import TimelineEntry

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
    "Agenda",
    "AgendaCounts",
    "And",
    "AuditAction",
    "AuditChange",
    "AuditEntry",
    "Campaign",
    "CampaignEmail",
    "CampaignEmailId",
    "CampaignId",
    "CampaignKind",
    "CampaignResults",
    "CampaignStatus",
    "Case",
    "CaseId",
    "CasePriority",
    "CaseStatus",
    "CaseType",
    "Channel",
    "ConcurrencyError",
    "Contact",
    "ContactDraft",
    "ContactId",
    "ContactRole",
    "ContactService",
    "Contains",
    "Criteria",
    "CrmkitError",
    "CurrencyMismatchError",
    "CustomField",
    "CustomFieldType",
    "CustomValues",
    "DeliveryFailure",
    "DeliveryReport",
    "DuplicateError",
    "EmailAddress",
    "EmailMetrics",
    "EmailTemplate",
    "EmailTemplateId",
    "Entity",
    "Eq",
    "FileFormat",
    "Has",
    "HookError",
    "ImportReport",
    "In",
    "Interaction",
    "InteractionId",
    "InteractionKind",
    "InteractionStatus",
    "InvalidTransition",
    "Lead",
    "LeadChannel",
    "LeadConversion",
    "LeadId",
    "LeadStatus",
    "Lifecycle",
    "LineItem",
    "LossReason",
    "LossReasonId",
    "MalformedRow",
    "Market",
    "MarketId",
    "Master",
    "MasterSeed",
    "MasterService",
    "Money",
    "NoInteraction",
    "Not",
    "NotFoundError",
    "OpenOpportunity",
    "OpenedEmail",
    "Opportunity",
    "OpportunityId",
    "OpportunityService",
    "Or",
    "Organization",
    "OrganizationDraft",
    "OrganizationId",
    "OrganizationKind",
    "OrganizationService",
    "OrganizationStatus",
    "Outcome",
    "OutcomeId",
    "OutgoingEmail",
    "PhoneNumber",
    "Pipeline",
    "PipelineRegistry",
    "PluginError",
    "Position",
    "PositionId",
    "Product",
    "ProductId",
    "Range",
    "ReadOptions",
    "Registry",
    "RenderedEmail",
    "Role",
    "RowError",
    "Segment",
    "SegmentId",
    "SegmentMode",
    "SendFailure",
    "SendOutcome",
    "SendReport",
    "Sequence",
    "SequenceStep",
    "SlaTarget",
    "SmtpSender",
    "SmtpSettings",
    "Source",
    "SourceId",
    "Stage",
    "StageChange",
    "StageKind",
    "StorageError",
    "StoreBackend",
    "SyncResult",
    "TemplateError",
    "TemplateVariant",
    "TimelineEntry",
    "Transaction",
    "Unset",
    "User",
    "UserId",
    "UserService",
    "ValidationError",
    "WonValue",
    "WriteOptions",
    "Zone",
    "ZoneId",
    "__version__",
    "hookimpl",
    "open",
]
