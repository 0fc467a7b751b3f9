"""The CRM facade: the composition root and one service per aggregate.

:func:`crmkit.open` builds a :class:`CRM` from a store, a plugin host, the
converter and a clock; nothing else wires them.  Services take keyword
arguments, return frozen domain objects and raise only :mod:`crmkit` errors.

Every write runs in a unit of work: alone, it commits at once; inside
``with crm.transaction():`` it joins that transaction, and plugins hear about
it only after the outermost block commits.  Plugins may veto a record before
it is written (``crmkit_validate_<entity>``); a notification that fails after
the commit is logged and reported (:attr:`CRM.last_delivery`), never raised.

.. versionadded:: 0.1
"""

from __future__ import annotations

import functools
import inspect
import operator
import os
import random
import time
import zoneinfo
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, date, datetime, tzinfo
from decimal import ROUND_HALF_EVEN, Decimal, DecimalException, localcontext
from typing import TYPE_CHECKING, Any, ClassVar, Final, Literal, TypeVar
from uuid import UUID

import attrs

from crmkit.core import changes, transitions
from crmkit.core.access import Policy
from crmkit.core.audit import AuditAction, AuditChange, AuditEntry, CreatedChanges
from crmkit.core.bridge import OrganizationDraft, SyncResult
from crmkit.core.campaigns import Campaign
from crmkit.core.contact_points import (
    Address,
    EmailAddress,
    PhoneNumber,
    is_country,
    normalize_text,
)
from crmkit.core.custom_fields import CustomValues
from crmkit.core.entities import (
    MASTER_TYPES,
    Channel,
    Contact,
    ContactRole,
    Entity,
    Lifecycle,
    LossReason,
    Market,
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
    ConcurrencyError,
    CrmkitError,
    DuplicateError,
    HookError,
    NotFoundError,
    StorageError,
    ValidationError,
)
from crmkit.core.events import Archived, Created, FieldChange, StageChanged, Updated
from crmkit.core.fields import slugify
from crmkit.core.formats import FileFormat
from crmkit.core.ids import (
    CampaignId,
    ContactId,
    LossReasonId,
    MarketId,
    OpportunityId,
    OrganizationId,
    OutcomeId,
    PositionId,
    ProductId,
    SourceId,
    UserId,
    ZoneId,
    uuid7,
)
from crmkit.core.money import Money, currency_exponent, is_currency
from crmkit.core.opportunities import LineItem, Opportunity
from crmkit.core.pipelines import Pipeline, StageKind, check_pipeline
from crmkit.core.query import Query
from crmkit.io.calendars import CalendarService
from crmkit.io.cards import CardService
from crmkit.io.exports import ExportService
from crmkit.io.imports import ImportService
from crmkit.io.inbox import InboxService
from crmkit.plugins.host import (
    DELIVERED,
    DeliveryFailure,
    DeliveryReport,
    PluginHost,
    StoreBackend,
)
from crmkit.plugins.smtp import SmtpSender, SmtpSettings
from crmkit.serialization import converter
from crmkit.services.analytics import AnalyticsService
from crmkit.services.automation import AutomationService
from crmkit.services.base import (
    UNSET,
    DomainEvent,
    Event,
    I,
    M,
    MarketRef,
    Notice,
    OrganizationRef,
    PositionRef,
    SourceRef,
    Unset,
    UserRef,
    ZoneRef,
    _check_text,
    _check_uuid,
    _check_version,
    _expect,
    _organization_of_contact,
    _ref_id,
    _Service,
)
from crmkit.services.bulk import BulkUpdates
from crmkit.services.campaigns import CampaignService
from crmkit.services.cases import CaseService
from crmkit.services.custom_fields import CustomFieldRegistry
from crmkit.services.duplicates import DuplicateService, OnCreate
from crmkit.services.forecast import ForecastService
from crmkit.services.interactions import AgendaService, InteractionService
from crmkit.services.leads import LeadService
from crmkit.services.mail import TemplateService
from crmkit.services.registry import Registry
from crmkit.services.segments import SegmentService
from crmkit.services.targets import SalesTargetService, TeamService
from crmkit.services.timeline import TimelineEntry, timeline

if TYPE_CHECKING:
    from crmkit.services.access import ScopedCRM
from crmkit.stores.base import Store, UnitOfWork

__all__ = [
    "CRM",
    "UNSET",
    "ContactService",
    "MasterService",
    "OpportunityService",
    "OrganizationService",
    "PipelineRegistry",
    "Transaction",
    "Unset",
    "UserService",
    "database_url",
    "open",
]

T = TypeVar("T")
E = TypeVar("E", bound=Entity)
R = TypeVar("R", bound=Entity)

Clock = Callable[[], datetime]

#: How many times a write crmkit owns is tried when the database reports a
#: transient conflict (lock timeout, deadlock, serialization failure).
WRITE_ATTEMPTS: Final = 5

#: The database ``crmkit.open()`` uses when given no URL.
DEFAULT_DATABASE: Final = "crm.db"

#: The URL schemes crmkit's own stores serve (``sqlite+pysqlite`` counts as
#: ``sqlite``); a plugin's :class:`~crmkit.StoreBackend` may not take them.
BUILTIN_SCHEMES: Final = frozenset({"memory", "postgresql", "sqlite"})

#: How many times ``sync_customer`` runs again after losing a race (another
#: process created or changed the same records at the same moment).
SYNC_ATTEMPTS: Final = 5

#: What a failed post-commit notification does: ``"log"`` (log it and report it
#: in ``crm.last_delivery``) or ``"raise"`` (that too, then raise ``HookError``).
NotificationErrors = Literal["log", "raise"]


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _timezone(value: object) -> tzinfo:
    """A tzinfo from an IANA name (``"Europe/Madrid"``) or a tzinfo."""
    if isinstance(value, tzinfo):
        return value
    if isinstance(value, str) and value:
        try:
            return zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            pass
    raise ValidationError(
        "timezone", "must be an IANA time zone name or a tzinfo", code="timezone", value=value
    )


class Transaction:
    """What ``with crm.transaction() as tx:`` gives: the block's delivery report.

    Attributes:
        delivery: ``None`` until the outermost block has committed and its
            notifications were delivered; then their
            :class:`~crmkit.DeliveryReport`.  A nested block gives its
            outermost block's object.

    .. versionadded:: 0.1
    """

    def __init__(self) -> None:
        self.delivery: DeliveryReport | None = None

    def __repr__(self) -> str:
        return f"<Transaction delivery={self.delivery!r}>"


@attrs.define
class _Transaction:
    uow: UnitOfWork
    events: list[Event] = attrs.Factory(list)
    handle: Transaction = attrs.Factory(Transaction)


# ======================================================================= CRM


class CRM:
    """A CRM: services over one store, with plugins, a clock and an actor.

    Build one with :func:`crmkit.open`.  Use it as a context manager (or call
    :meth:`close`) to release the store.

    Attributes:
        organizations: organizations (:class:`OrganizationService`).
        contacts: contacts (:class:`ContactService`).
        sources: where business comes from (originación).
        markets: markets or sectors (mercados).
        positions: contacts' job positions (cargos).
        zones: sales zones (zonas).
        users: the people who use the CRM.
        products: what we sell (productos).
        loss_reasons: why opportunities are lost (motivos de pérdida).
        outcomes: what interactions achieve (resultados).
        pipelines: the registered sales pipelines (:class:`PipelineRegistry`).
        custom_fields: the custom field definitions
            (:class:`~crmkit.services.custom_fields.CustomFieldRegistry`).
        opportunities: opportunities and their stage changes
            (:class:`OpportunityService`).
        interactions: calls, e-mails, meetings, visits... logged or planned
            (:class:`~crmkit.services.interactions.InteractionService`).
        agenda: overdue, today's and upcoming work
            (:class:`~crmkit.services.interactions.AgendaService`).
        leads: prospects and their conversion
            (:class:`~crmkit.services.leads.LeadService`).
        cases: post-sale cases (:class:`~crmkit.services.cases.CaseService`).
        analytics: pipeline, win rate, sales cycle, funnel, velocity and
            waterfall (:class:`~crmkit.services.analytics.AnalyticsService`).
        duplicates: likely duplicate contacts and organizations, on demand
            and on create (:class:`~crmkit.services.duplicates.DuplicateService`).
        formats: the registered file formats (:class:`~crmkit.FileFormat`, by key).
        imports: imports files (:class:`~crmkit.io.ImportService`).
        exports: exports ``find`` results to files (:class:`~crmkit.io.ExportService`).
        cards: contacts to and from vCard business cards (:class:`~crmkit.io.CardService`).
        calendar: planned interactions to and from iCalendar feeds
            (:class:`~crmkit.io.CalendarService`).
        inbox: e-mails logged as interactions (:class:`~crmkit.io.InboxService`).
        segments: saved criteria trees over organizations
            (:class:`~crmkit.services.segments.SegmentService`).
        campaigns: campaigns, their members, actions, e-mail sends and results
            (:class:`~crmkit.services.campaigns.CampaignService`).
        teams: groups of users (:class:`~crmkit.services.targets.TeamService`).
        targets: sales targets per user, team or zone and period
            (:class:`~crmkit.services.targets.SalesTargetService`).
        forecast: the probabilistic forecast, attainment, backtest and
            calibration (:class:`~crmkit.services.forecast.ForecastService`).
        automation: automation rules, fired after commit and by ``run_due``
            (:class:`~crmkit.services.automation.AutomationService`).
        templates: e-mail templates with language variants
            (:class:`~crmkit.services.mail.TemplateService`).
        plugins: the :class:`~crmkit.plugins.host.PluginHost`.
        timezone: the time zone of "today" in the agenda and of SLA days.
        notification_errors: ``"log"`` (the default) or ``"raise"``; see
            :func:`crmkit.open`.
    """

    def __init__(
        self,
        store: Store,
        plugins: PluginHost,
        *,
        clock: Clock = _utc_now,
        default_region: str | None = None,
        actor: str | None = None,
        timezone: str | tzinfo = "UTC",
        notification_errors: NotificationErrors = "log",
        duplicate_check: OnCreate = "off",
        one_user_per_zone: bool = False,
    ):
        if notification_errors not in ("log", "raise"):
            raise ValidationError(
                "notification_errors",
                'must be "log" or "raise"',
                code="choice",
                value=notification_errors,
            )
        if default_region is not None and not is_country(default_region):
            raise ValidationError(
                "default_region",
                "is not an ISO 3166 country code",
                code="country",
                value=default_region,
            )
        self.store = store
        self.plugins = plugins
        self.timezone = _timezone(timezone)
        self.default_region = default_region
        self.actor = actor
        self._clock = clock
        self.notification_errors: NotificationErrors = notification_errors
        self._tx: ContextVar[_Transaction | None] = ContextVar(
            f"crmkit-tx-{id(self)}", default=None
        )
        self._delivery: ContextVar[DeliveryReport] = ContextVar(
            f"crmkit-delivery-{id(self)}", default=DELIVERED
        )
        self.organizations = OrganizationService(self)
        self.contacts = ContactService(self)
        self.sources: MasterService[Source, SourceId] = MasterService(self, Source)
        self.markets: MasterService[Market, MarketId] = MasterService(self, Market)
        self.positions: MasterService[Position, PositionId] = MasterService(self, Position)
        self.zones: MasterService[Zone, ZoneId] = MasterService(self, Zone)
        self.users = UserService(self)
        self.products: MasterService[Product, ProductId] = MasterService(self, Product)
        self.loss_reasons: MasterService[LossReason, LossReasonId] = MasterService(self, LossReason)
        self.pipelines = PipelineRegistry()
        self.custom_fields = CustomFieldRegistry()
        self.opportunities = OpportunityService(self)
        self.outcomes: MasterService[Outcome, OutcomeId] = MasterService(self, Outcome)
        self.interactions = InteractionService(self)
        self.agenda = AgendaService(self)
        self.leads = LeadService(self)
        self.cases = CaseService(self)
        self.analytics = AnalyticsService(self)
        self.duplicates = DuplicateService(self, on_create=duplicate_check)
        #: each zone (security group) has at most one user; see crmkit.open
        self.one_user_per_zone = bool(one_user_per_zone)
        self.segments = SegmentService(self)
        self.campaigns = CampaignService(self)
        self.templates = TemplateService(self)
        self.teams = TeamService(self)
        self.targets = SalesTargetService(self)
        self.forecast = ForecastService(self)
        self.automation = AutomationService(self)
        self.formats: Registry[FileFormat] = Registry(FileFormat, "file format", "format")
        self._load_registrations(plugins)
        self.imports = ImportService(self)
        self.exports = ExportService(self)
        self.cards = CardService(self)
        self.calendar = CalendarService(self)
        self.inbox = InboxService(self)

    def _load_registrations(self, plugins: PluginHost) -> None:
        """What plugins register: pipelines, kinds, custom fields, formats, rule actions, rules."""
        self.pipelines.load(plugins.register_pipelines(self))
        self.interactions.kinds.load(plugins.register_interaction_kinds(self))
        self.cases.types.load(plugins.register_case_types(self))
        self.custom_fields.load(plugins.register_custom_fields(self))
        self.formats.load(plugins.register_formats(self))
        self.automation.actions.load(plugins.register_rule_actions(self))
        self.automation.registered = plugins.register_rules(self)

    # ------------------------------------------------------------- lifecycle
    def close(self) -> None:
        """Release the store's connections."""
        self.store.close()

    def __enter__(self) -> CRM:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<CRM store={self.store!r}>"

    # ----------------------------------------------------------------- time
    def now(self) -> datetime:
        """The clock's current time (timezone-aware).

        Raises:
            ValidationError: the injected clock returned a naive datetime.
        """
        value = self._clock()
        if not isinstance(value, datetime) or value.utcoffset() is None:
            raise ValidationError("clock", "must return timezone-aware datetimes", value=value)
        return value

    # ---------------------------------------------------------- transactions
    @contextmanager
    def transaction(self) -> Iterator[Transaction]:
        """Group calls atomically: all commit together, or none does.

        Nested blocks are savepoints: an exception leaving an inner block undoes
        that block only (if the outer code catches it).  Plugins are notified
        after the outermost block commits; ``tx.delivery`` then says how that
        went (``with crm.transaction() as tx:``), as does :attr:`last_delivery`.

        Raises:
            HookError: only with ``notification_errors="raise"``: a
                notification failed after the commit (``committed=True``).
        """
        current = self._tx.get()
        if current is not None:
            mark = len(current.events)
            try:
                with current.uow.savepoint():
                    yield current.handle
            except BaseException:
                del current.events[mark:]
                raise
            return
        with self.store.unit_of_work(write=True) as uow:
            tx = _Transaction(uow)
            token = self._tx.set(tx)
            try:
                yield tx.handle
                uow.commit()
            finally:
                self._tx.reset(token)
        self._after_commit(tx.events, tx.handle)

    @property
    def last_delivery(self) -> DeliveryReport:
        """How plugins' notifications of the last committed write went.

        One report per committed write or outermost ``crm.transaction()``
        block, kept per thread (per :mod:`contextvars` context): a failing
        notification is listed here, and logged, instead of being raised.
        A write that failed, or committed nothing new, leaves it as it was
        before.
        """
        return self._delivery.get()

    def _write(self, fn: Callable[[UnitOfWork, list[Event]], T]) -> T:
        """Run ``fn`` in the current transaction, or in its own unit of work.

        When crmkit owns the whole transaction, transient conflicts
        (``StorageError.retryable``) are retried up to :data:`WRITE_ATTEMPTS`
        times with jittered backoff; ``fn`` must therefore be repeatable.
        """
        current = self._tx.get()
        if current is not None:
            mark = len(current.events)
            try:
                with current.uow.savepoint():
                    return fn(current.uow, current.events)
            except BaseException:
                del current.events[mark:]
                raise
        for attempt in range(1, WRITE_ATTEMPTS + 1):
            events: list[Event] = []
            handle = Transaction()
            try:
                with self.store.unit_of_work(write=True) as uow:
                    # fn runs as the current transaction, so that plugin code it
                    # calls (crmkit_create_sales_order) joins it
                    token = self._tx.set(_Transaction(uow, events, handle))
                    try:
                        result = fn(uow, events)
                    finally:
                        self._tx.reset(token)
                    uow.commit()
            except StorageError as error:
                if not error.retryable or attempt == WRITE_ATTEMPTS:
                    raise
                # jittered exponential backoff: 10 ms, 20 ms, 40 ms... times 0.5-1.5
                time.sleep(0.01 * 2 ** (attempt - 1) * (0.5 + random.random()))
                continue
            self._after_commit(events, handle)
            return result
        raise AssertionError("unreachable")  # pragma: no cover

    def _read(self, fn: Callable[[UnitOfWork], T]) -> T:
        current = self._tx.get()
        if current is not None:
            return fn(current.uow)
        with self.store.unit_of_work(write=False) as uow:
            return fn(uow)

    # ----------------------------------------------------------------- audit
    def _record(self, uow: UnitOfWork, events: list[Event], event: DomainEvent | None) -> None:
        """Audit ``event`` in the current unit of work and queue it for plugins."""
        if event is None:
            return
        entity: Entity = event.entity
        diff: Sequence[AuditChange]
        if isinstance(event, Created):
            action = AuditAction.CREATE
            diff = _created_changes(entity)
        elif isinstance(event, Updated | StageChanged):
            action = AuditAction.UPDATE
            diff = tuple(_audit_change(c) for c in event.changes)
        elif isinstance(event, Archived):
            action, diff = AuditAction.ARCHIVE, (AuditChange("archived", False, True),)
        else:
            action, diff = AuditAction.RESTORE, (AuditChange("archived", True, False),)
        uow.audit.append(
            entity=entity.ENTITY,
            entity_id=entity.id,
            version=entity.version,
            action=action,
            changes=diff,
            actor=self.actor,
            at=entity.updated_at,
        )
        events.append(event)

    def _record_created(
        self, uow: UnitOfWork, events: list[Event] | None, batch: Sequence[Entity]
    ) -> None:
        """``_record(uow, events, Created(e))`` for each new record of ``batch``, in one
        loop; ``events=None``: audited only (no plugin hears of them)."""
        append = uow.audit.append
        actor, create = self.actor, AuditAction.CREATE
        for entity in batch:
            append(
                entity=entity.ENTITY,
                entity_id=entity.id,
                version=entity.version,
                action=create,
                changes=_created_changes(entity),
                actor=actor,
                at=entity.updated_at,
            )
        if events is not None:
            events.extend([Created(entity) for entity in batch])

    # -------------------------------------------------------- access control
    def as_user(self, user: User | UserId, *, policy: Policy | None = None) -> ScopedCRM:
        """This CRM as ``user`` may use it: what they may see, and change.

        The user's role, teams and zones are read now.  The scoped CRM offers
        only the access-aware services; anything else raises
        :class:`AccessDenied`.  ``crm`` itself stays the system context.  See
        ``docs/guides/access-control.md``.

        Args:
            user: the user (a record or an id).
            policy: the rules (default: the one a plugin's
                ``crmkit_access_policy`` gives, else :class:`~crmkit.core.access.Policy`).

        Raises:
            NotFoundError: no such user.
        """
        from crmkit.services.access import ScopedCRM, principal_of

        principal = principal_of(self, user)
        if policy is None:
            policy = self.plugins.access_policy(self, principal) or Policy()
        return ScopedCRM(self, principal, policy)

    def history(self, entity_id: UUID) -> list[AuditEntry]:
        """Every audited change of the record ``entity_id``, oldest first."""
        return self._read(lambda uow: uow.audit.history(entity_id))

    def timeline(
        self,
        record: Organization | Contact | Opportunity | UUID,
        *,
        limit: int = 50,
        offset: int = 0,
    ) -> list[TimelineEntry]:
        """What happened to an organization, contact or opportunity, newest first.

        Merges audited field changes, interactions, stage changes, converted
        leads and cases; an organization's timeline includes its contacts'
        and opportunities' events.  Page with ``limit`` and ``offset``.

        Raises:
            NotFoundError: an id of no organization, contact or opportunity.
            ValidationError: a bad ``limit`` or ``offset``.
        """
        return timeline(self, record, limit=limit, offset=offset)

    # ------------------------------------------------------------- plugins
    def _after_commit(self, events: Sequence[Event], handle: Transaction) -> None:
        """Deliver the notifications of a commit; report them; raise if asked to."""
        report = self._dispatch(events)
        handle.delivery = report
        if report.failures and self.notification_errors == "raise":
            first = report.failures[0]
            raise HookError(
                first.hook, f"{first.plugin}: {first.error}", committed=True
            ) from first.exception

    def _dispatch(self, events: Sequence[Event]) -> DeliveryReport:
        """Notify plugins of committed events, each exactly once, and report failures.

        No failure stops the delivery: the host logs each one and carries on
        with the other plugins and events.  The report becomes
        :attr:`last_delivery`.
        """
        failures: list[DeliveryFailure] = []
        for event in events:
            if isinstance(event, Notice):
                delivered = event.deliver()
                if delivered is not None:
                    failures.extend(delivered.failures)
            elif isinstance(event, StageChanged):
                failures.extend(self._dispatch_stage_change(event))
            elif not isinstance(event, Created):
                continue
            elif isinstance(event.entity, Organization):
                failures.extend(self.plugins.organization_created(self, event.entity).failures)
            elif isinstance(event.entity, Contact):
                failures.extend(self.plugins.contact_created(self, event.entity).failures)
        failures.extend(self.automation._after_commit(events))
        report = DeliveryReport(tuple(failures)) if failures else DELIVERED
        self._delivery.set(report)
        return report

    def _dispatch_stage_change(self, event: StageChanged) -> list[DeliveryFailure]:
        failures = list(
            self.plugins.opportunity_stage_changed(self, event.entity, event.change).failures
        )
        if event.entity.status is StageKind.WON:
            failures.extend(self.plugins.opportunity_won(self, event.entity).failures)
        elif event.entity.status is StageKind.LOST:
            failures.extend(self.plugins.opportunity_lost(self, event.entity).failures)
        return failures

    # ------------------------------------------------------------ ERP bridge
    def sync_customer(self, customer: object) -> SyncResult:
        """Create or update the organization (and contacts) a host customer maps to.

        Asks ``crmkit_organization_from_customer`` for an
        :class:`~crmkit.OrganizationDraft`, then, in one transaction, creates
        the organization and its contacts the first time, and on later calls
        updates only the fields that differ (no new version when nothing
        changed), matching records by ``external_ref`` (archived ones too;
        they stay archived).  Call it from the host's own "customer saved"
        event (a Django ``post_save``, say).  It is safe to call twice, and
        from two processes at once: a creation that loses the race to another
        is run again as an update.

        Args:
            customer: the host's customer object, passed to the hook as is.

        Returns:
            The organization, the draft's contacts, and whether this call
            created the organization (``created``) or wrote anything
            (``changed``).

        Raises:
            ValidationError: no plugin maps ``customer`` (field ``customer``,
                code ``unmapped``); the draft names an argument
                ``crm.organizations.create`` or ``crm.contacts.create`` does
                not take (code ``unknown_field``); an invalid value, with
                ``field`` as the service names it; a plugin's
                ``crmkit_validate_*`` veto.
            HookError: the mapping hook failed or returned something else
                than an :class:`~crmkit.OrganizationDraft`.

        .. versionadded:: 0.1
        """
        draft = self.plugins.organization_from_customer(self, customer)
        if draft is None:
            raise ValidationError(
                "customer",
                "no plugin maps this object to an organization (crmkit_organization_from_customer)",
                code="unmapped",
                value=customer,
            )
        _check_draft(draft)
        for attempt in range(1, SYNC_ATTEMPTS + 1):
            try:
                return self._write(lambda uow, events: self._sync(draft))
            except (DuplicateError, ConcurrencyError):  # another sync won the race
                if attempt == SYNC_ATTEMPTS:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    def _sync(self, draft: OrganizationDraft) -> SyncResult:
        """The writes of one sync, in the current transaction (repeatable)."""
        existing = self._by_external_ref(Organization, draft.external_ref)
        if existing is None:
            organization = self.organizations.create(
                **draft.fields, external_ref=draft.external_ref
            )
        else:
            organization = self.organizations.update(
                existing.id, expected_version=existing.version, **draft.fields
            )
        changed = existing is None or organization.version != existing.version
        contacts: list[Contact] = []
        for contact_draft in draft.contacts:
            found = self._by_external_ref(Contact, contact_draft.external_ref)
            if found is None:
                contact = self.contacts.create(
                    **contact_draft.fields,
                    organization=organization.id,
                    external_ref=contact_draft.external_ref,
                )
            else:
                contact = self.contacts.update(
                    found.id,
                    expected_version=found.version,
                    **contact_draft.fields,
                    organization=organization.id,
                )
            changed = changed or found is None or contact.version != found.version
            contacts.append(contact)
        return SyncResult(
            organization=organization,
            contacts=tuple(contacts),
            created=existing is None,
            changed=changed,
        )

    def _by_external_ref(self, cls: type[E], external_ref: str) -> E | None:
        """The record of type ``cls`` with ``external_ref``, archived or not."""
        return self._read(lambda uow: uow.repository(cls).get_by("external_ref", external_ref))

    # --------------------------------------------------------- exchange rates
    def exchange_rate(self, base: str, quote: str, on: date) -> Decimal:
        """The price of one unit of ``base`` in ``quote`` on a day, from plugins.

        A currency against itself is 1 without asking; otherwise the first
        plugin whose ``crmkit_exchange_rate`` answers gives the rate.  crmkit
        does not invert rates nor cross them through a third currency: a
        plugin that can should do so itself.

        Args:
            base: the ISO 4217 code to convert from (``"EUR"``; any case).
            quote: the ISO 4217 code to convert to.
            on: the day the rate applies to (a ``date``, not a ``datetime``).

        Returns:
            The rate, a positive ``Decimal``.

        Raises:
            ValidationError: an unknown currency (code ``currency``), ``on``
                not a date (code ``type``), or no plugin knows the rate
                (field ``quote``, code ``no_rate``).
            HookError: a plugin failed or returned something else than a
                positive ``Decimal``.

        .. versionadded:: 0.1
        """
        base_code = _currency(base, "base")
        quote_code = _currency(quote, "quote")
        if not isinstance(on, date) or isinstance(on, datetime):
            raise ValidationError("on", "must be a date", code="type", value=on)
        if base_code == quote_code:
            return Decimal(1)
        rate = self.plugins.exchange_rate(self, base_code, quote_code, on)
        if rate is None:
            raise ValidationError(
                "quote",
                f"no plugin knows the rate from {base_code} to {quote_code} on {on.isoformat()}",
                code="no_rate",
                value=quote_code,
            )
        return rate

    def convert(self, money: Money, to: str, on: date) -> Money:
        """``money`` in the currency ``to`` at the rate of the day ``on``.

        The exact product of the amount and :meth:`exchange_rate` is rounded
        once, to the minor units of ``to`` (2 for EUR, 0 for JPY), half to
        even (banker's rounding).  Converting to the same currency returns
        ``money`` unchanged.

        Raises:
            ValidationError: ``money`` is not :class:`~crmkit.Money`; an
                unknown currency ``to``; ``on`` not a date; no plugin knows
                the rate (field ``to``, code ``no_rate``); a result beyond
                the largest amount crmkit keeps (code ``too_large``).
            HookError: a plugin failed or returned something else than a
                positive ``Decimal``.

        .. versionadded:: 0.1
        """
        if not isinstance(money, Money):
            raise ValidationError("money", "must be Money", code="type", value=money)
        target = _currency(to, "to")
        try:
            rate = self.exchange_rate(money.currency, target, on)
        except ValidationError as error:
            if error.field != "quote":
                raise
            raise ValidationError("to", error.reason, code=error.code, value=error.value) from None
        if target == money.currency:
            return money
        return _converted(money, rate, target)

    def seed_masters(self) -> int:
        """Create the master entries plugins register that are missing.

        Returns:
            How many entries were created.
        """
        seeds = self.plugins.register_masters(self)
        for _ in range(3):  # another process may seed the same keys at once
            try:
                return self._write(lambda uow, events: self._insert_seeds(uow, events, seeds))
            except DuplicateError:
                continue
        return 0

    def _insert_seeds(self, uow: UnitOfWork, events: list[Event], seeds: list[MasterSeed]) -> int:
        created = 0
        now = self.now()
        for seed in seeds:
            cls = MASTER_TYPES[seed.kind]
            repo = uow.repository(cls)
            if repo.get_by("key", seed.key) is not None:
                continue
            entity, event = changes.create(
                cls,
                id=uuid7(),
                now=now,
                key=seed.key,
                name=seed.name,
                name_es=seed.name_es,
                description=seed.description,
            )
            repo.add(entity)
            self._record(uow, events, event)
            created += 1
        return created


def _created_changes(entity: Entity) -> CreatedChanges:
    """The audit changes of a creation: every field that holds a value (JSON form).

    Computed when first read (:meth:`CreatedChanges.of`): ``SqlStore`` on
    SQLite builds the same JSON from the stored row, checking it against this.
    """
    return CreatedChanges.of(entity, _created_pairs)


def _created_pairs(entity: Entity) -> list[tuple[str, object]]:
    names, values = _audited_fields(type(entity))
    return [
        (name, _json(value))
        for name, value in zip(names, values(entity), strict=True)
        if value is not None
        and value is not False
        and (value or not isinstance(value, _COLLECTIONS))  # nor empty collections
    ]


#: collections a creation audits only when they hold something
_COLLECTIONS: Final = (tuple, frozenset, set, CustomValues)


_AUDITED: dict[type[Entity], tuple[tuple[str, ...], Callable[[Entity], tuple[Any, ...]]]] = {}


def _audited_fields(
    cls: type[Entity],
) -> tuple[tuple[str, ...], Callable[[Entity], tuple[Any, ...]]]:
    """The fields a creation audits, and a function reading their values as a tuple."""
    found = _AUDITED.get(cls)
    if found is None:
        names = tuple(
            a.name for a in attrs.fields(cls) if a.init and a.name not in Entity.SYSTEM_FIELDS
        )
        getter = operator.attrgetter(*names)
        found = _AUDITED[cls] = (names, getter if len(names) > 1 else lambda e: (getter(e),))
    return found


def _audit_change(change: FieldChange) -> AuditChange:
    if change.field == "history" and isinstance(change.new, tuple) and change.new:
        # the history only grows: audit the entry appended, not the whole list twice
        return AuditChange("history", None, _json(change.new[-1]))
    return AuditChange(change.field, _json(change.old), _json(change.new))


def _json(value: object) -> object:
    """``value`` in JSON form: ``converter.unstructure(value)``, its hook cached by type."""
    kind = type(value)
    if kind is str or kind is int or value is None:  # their own JSON form
        return value
    if kind is tuple and isinstance(value, tuple):  # written as the list of its items
        return [_json(v) for v in value]
    hook = _JSON_HOOKS.get(kind)
    if hook is None:
        hook = _JSON_HOOKS[kind] = converter.get_unstructure_hook(kind)
    return hook(value)


#: the converter's unstructure hook of each type met (what ``unstructure`` dispatches to)
_JSON_HOOKS: dict[type, Callable[[Any], Any]] = {}


# ------------------------------------------------------------------ masters


class MasterService(_Service[M, I]):
    """A master list (sources, markets, positions or zones)."""

    def __init__(self, crm: CRM, cls: type[M]):
        super().__init__(crm)
        self._cls = cls

    def create(
        self,
        *,
        name: str,
        key: str | None = None,
        name_es: str | None = None,
        description: str | None = None,
        external_ref: str | None = None,
    ) -> M:
        """Add an entry; ``key`` defaults to a slug of ``name`` ("Gran Cuenta": "gran-cuenta").

        Raises:
            ValidationError: an invalid name or key.
            DuplicateError: the key (or external_ref) is taken.
        """
        return self._create(
            {
                "name": name,
                "key": key,
                "name_es": name_es,
                "description": description,
                "external_ref": external_ref,
            }
        )

    def update(
        self,
        id: I,
        *,
        expected_version: int,
        name: str | Unset = UNSET,
        name_es: str | Unset | None = UNSET,
        description: str | Unset | None = UNSET,
        external_ref: str | Unset | None = UNSET,
    ) -> M:
        """Change an entry's labels (the key is fixed once created)."""
        return self._update(
            id,
            expected_version,
            {
                "name": name,
                "name_es": name_es,
                "description": description,
                "external_ref": external_ref,
            },
        )

    def _creating(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """Derive a missing key from a valid name, so errors name the field at fault."""
        values = dict(values)
        if values.get("key") is None:
            name = values.get("name")
            checked = normalize_text(name, "name", required=True, max_length=200)
            values["key"] = slugify(checked or "")
            if not values["key"]:
                raise ValidationError(
                    "key", "cannot be made from the name: pass key=", code="key", value=name
                )
        return values

    def get_by_key(self, key: str) -> M:
        """The entry with ``key``.

        Raises:
            NotFoundError: there is none.
        """
        _check_text(key, "key")
        found = self._crm._read(lambda uow: self._repo(uow).get_by("key", key))
        if found is None:
            raise NotFoundError(self._cls.ENTITY, key)
        return found


# -------------------------------------------------------------------- users


class UserService(_Service[User, UserId]):
    """People who use the CRM."""

    _cls = User

    def _validated(self, entity: R, previous: R | None) -> R:
        if isinstance(entity, User) and self._crm.one_user_per_zone and not entity.archived:
            self._crm._read(lambda uow: _check_zones_free(uow, entity))
        return super()._validated(entity, previous)

    def create(
        self,
        *,
        name: str,
        email: str | EmailAddress | None = None,
        role: Role | str = Role.CONTRIBUTOR,
        external_ref: str | None = None,
        zone_ids: Sequence[ZoneId] = (),
    ) -> User:
        """Add a user (``zone_ids``: the zones, security groups, the user is in).

        Raises:
            ValidationError: an invalid name, e-mail, role or zone id.
        """
        return self._create(
            {
                "name": name,
                "email": email,
                "role": role,
                "external_ref": external_ref,
                "zone_ids": tuple(zone_ids),
            }
        )

    def update(
        self,
        id: UserId,
        *,
        expected_version: int,
        name: str | Unset = UNSET,
        email: str | EmailAddress | Unset | None = UNSET,
        role: Role | str | Unset = UNSET,
        external_ref: str | Unset | None = UNSET,
        zone_ids: Sequence[ZoneId] | Unset = UNSET,
    ) -> User:
        """Change a user."""
        return self._update(
            id,
            expected_version,
            {
                "name": name,
                "email": email,
                "role": role,
                "external_ref": external_ref,
                "zone_ids": zone_ids if isinstance(zone_ids, Unset) else tuple(zone_ids),
            },
        )


def _check_zones_free(uow: UnitOfWork, user: User) -> None:
    """In one-user-per-zone mode: no other active user may have one of ``user``'s zones."""
    if not user.zone_ids:
        return
    others = uow.repository(User).find(Query())  # active users: a small table
    taken = {z for other in others if other.id != user.id for z in other.zone_ids}
    for zone in user.zone_ids:
        if zone in taken:
            raise ValidationError(
                "zone_ids", "the zone already has its user", code="zone_taken", value=zone
            )


# ------------------------------------------------------------ organizations


class OrganizationService(
    _Service[Organization, OrganizationId], BulkUpdates[Organization, OrganizationId]
):
    """Organizations: companies and institutions (organizaciones, clientes)."""

    _cls = Organization
    _screens_duplicates = True
    _aliases: ClassVar[Mapping[str, tuple[str, type[Entity]]]] = {
        "market": ("market_id", Market),
        "source": ("source_id", Source),
        "zone": ("zone_id", Zone),
        "owner": ("owner_id", User),
        "parent": ("parent_id", Organization),
    }

    def create(
        self,
        *,
        name: str,
        legal_name: str | None = None,
        kinds: Iterable[OrganizationKind | str] = (),
        status: OrganizationStatus | str = OrganizationStatus.ACTIVE,
        lifecycle: Lifecycle | str = Lifecycle.TARGET,
        tax_id: str | None = None,
        addresses: Iterable[Address] = (),
        phones: Iterable[PhoneNumber | str] = (),
        emails: Iterable[EmailAddress | str] = (),
        website: str | None = None,
        market: MarketRef | None = None,
        source: SourceRef | None = None,
        zone: ZoneRef | None = None,
        owner: UserRef | None = None,
        parent: OrganizationRef | None = None,
        tags: Iterable[str] = (),
        notes: str | None = None,
        external_ref: str | None = None,
        custom: Mapping[str, object] | None = None,
    ) -> Organization:
        """Create an organization.

        Reference arguments (``market``, ``source``, ``zone``) take a master
        key (``"retail"``), the master record or its id; ``owner`` a user or id.
        Phone numbers in national format are read with the CRM's
        ``default_region``.

        Raises:
            ValidationError: any invalid value, naming the argument.
            DuplicateError: ``external_ref`` is taken, or (with
                ``duplicate_check="refuse"``) the record is a likely duplicate.
        """
        return self._create(
            {
                "name": name,
                "legal_name": legal_name,
                "kinds": kinds,
                "status": status,
                "lifecycle": lifecycle,
                "tax_id": tax_id,
                "addresses": addresses,
                "phones": phones,
                "emails": emails,
                "website": website,
                "market": market,
                "source": source,
                "zone": zone,
                "owner": owner,
                "parent": parent,
                "tags": tags,
                "notes": notes,
                "external_ref": external_ref,
                "custom": custom,
            }
        )

    def update(
        self,
        id: OrganizationId,
        *,
        expected_version: int,
        name: str | Unset = UNSET,
        legal_name: str | Unset | None = UNSET,
        kinds: Iterable[OrganizationKind | str] | Unset = UNSET,
        status: OrganizationStatus | str | Unset = UNSET,
        lifecycle: Lifecycle | str | Unset = UNSET,
        tax_id: str | Unset | None = UNSET,
        addresses: Iterable[Address] | Unset = UNSET,
        phones: Iterable[PhoneNumber | str] | Unset = UNSET,
        emails: Iterable[EmailAddress | str] | Unset = UNSET,
        website: str | Unset | None = UNSET,
        market: MarketRef | Unset | None = UNSET,
        source: SourceRef | Unset | None = UNSET,
        zone: ZoneRef | Unset | None = UNSET,
        owner: UserRef | Unset | None = UNSET,
        parent: OrganizationRef | Unset | None = UNSET,
        tags: Iterable[str] | Unset = UNSET,
        notes: str | Unset | None = UNSET,
        external_ref: str | Unset | None = UNSET,
        custom: Mapping[str, object] | Unset | None = UNSET,
    ) -> Organization:
        """Change an organization; arguments left out keep their value.

        Raises:
            NotFoundError: no such organization.
            ConcurrencyError: it changed since ``expected_version``.
            ValidationError: any invalid value.
        """
        return self._update(
            id,
            expected_version,
            {
                "name": name,
                "legal_name": legal_name,
                "kinds": kinds,
                "status": status,
                "lifecycle": lifecycle,
                "tax_id": tax_id,
                "addresses": addresses,
                "phones": phones,
                "emails": emails,
                "website": website,
                "market": market,
                "source": source,
                "zone": zone,
                "owner": owner,
                "parent": parent,
                "tags": tags,
                "notes": notes,
                "external_ref": external_ref,
                "custom": custom,
            },
        )


# ----------------------------------------------------------------- contacts


class ContactService(_Service[Contact, ContactId], BulkUpdates[Contact, ContactId]):
    """Contacts: the people at organizations (contactos)."""

    _cls = Contact
    _screens_duplicates = True
    _aliases: ClassVar[Mapping[str, tuple[str, type[Entity]]]] = {
        "organization": ("organization_id", Organization),
        "position": ("position_id", Position),
        "owner": ("owner_id", User),
    }

    def create(
        self,
        *,
        first_name: str,
        last_name: str | None = None,
        email: EmailAddress | str | None = None,
        phones: Iterable[PhoneNumber | str] = (),
        organization: OrganizationRef | None = None,
        position: PositionRef | None = None,
        department: str | None = None,
        role: ContactRole | str | None = None,
        preferred_channel: Channel | str | None = None,
        do_not_contact: bool = False,
        language: str | None = None,
        social_profiles: Iterable[str] = (),
        owner: UserRef | None = None,
        tags: Iterable[str] = (),
        notes: str | None = None,
        external_ref: str | None = None,
        custom: Mapping[str, object] | None = None,
    ) -> Contact:
        """Create a contact, optionally at an organization.

        Raises:
            ValidationError: any invalid value, naming the argument.
            DuplicateError: ``external_ref`` is taken, or (with
                ``duplicate_check="refuse"``) the record is a likely duplicate.
        """
        return self._create(
            {
                "first_name": first_name,
                "last_name": last_name,
                "email": email,
                "phones": phones,
                "organization": organization,
                "position": position,
                "department": department,
                "role": role,
                "preferred_channel": preferred_channel,
                "do_not_contact": do_not_contact,
                "language": language,
                "social_profiles": social_profiles,
                "owner": owner,
                "tags": tags,
                "notes": notes,
                "external_ref": external_ref,
                "custom": custom,
            }
        )

    def update(
        self,
        id: ContactId,
        *,
        expected_version: int,
        first_name: str | Unset = UNSET,
        last_name: str | Unset | None = UNSET,
        email: EmailAddress | str | Unset | None = UNSET,
        phones: Iterable[PhoneNumber | str] | Unset = UNSET,
        organization: OrganizationRef | Unset | None = UNSET,
        position: PositionRef | Unset | None = UNSET,
        department: str | Unset | None = UNSET,
        role: ContactRole | str | Unset | None = UNSET,
        preferred_channel: Channel | str | Unset | None = UNSET,
        do_not_contact: bool | Unset = UNSET,
        language: str | Unset | None = UNSET,
        social_profiles: Iterable[str] | Unset = UNSET,
        owner: UserRef | Unset | None = UNSET,
        tags: Iterable[str] | Unset = UNSET,
        notes: str | Unset | None = UNSET,
        external_ref: str | Unset | None = UNSET,
        custom: Mapping[str, object] | Unset | None = UNSET,
    ) -> Contact:
        """Change a contact; arguments left out keep their value.

        Raises:
            NotFoundError: no such contact.
            ConcurrencyError: it changed since ``expected_version``.
            ValidationError: any invalid value.
        """
        return self._update(
            id,
            expected_version,
            {
                "first_name": first_name,
                "last_name": last_name,
                "email": email,
                "phones": phones,
                "organization": organization,
                "position": position,
                "department": department,
                "role": role,
                "preferred_channel": preferred_channel,
                "do_not_contact": do_not_contact,
                "language": language,
                "social_profiles": social_profiles,
                "owner": owner,
                "tags": tags,
                "notes": notes,
                "external_ref": external_ref,
                "custom": custom,
            },
        )

    def at(self, organization: Organization | OrganizationId) -> list[Contact]:
        """The contacts of an organization, by last and first name."""
        return self.find(organization=organization, order_by=("last_name", "first_name"))


# ------------------------------------------------------------ pipelines


class PipelineRegistry(Registry[Pipeline]):
    """The sales pipelines this CRM knows, by key (registered by plugins or the API)."""

    def __init__(self) -> None:
        super().__init__(Pipeline, "pipeline", "pipeline")

    def register(self, pipeline: Pipeline) -> Pipeline:
        """Add a pipeline through the API.

        Raises:
            ValidationError: the definition breaks a rule of
                :func:`~crmkit.core.pipelines.check_pipeline`.
            DuplicateError: a pipeline with that key exists.
        """
        if not isinstance(pipeline, Pipeline):
            raise ValidationError("pipeline", "must be a Pipeline", code="type", value=pipeline)
        check_pipeline(pipeline)
        return super().register(pipeline)


# --------------------------------------------------------- opportunities


class OpportunityService(
    _Service[Opportunity, OpportunityId], BulkUpdates[Opportunity, OpportunityId]
):
    """Opportunities (oportunidades comerciales) and their moves through pipelines."""

    _cls = Opportunity
    _aliases: ClassVar[Mapping[str, tuple[str, type[Entity]]]] = {
        "organization": ("organization_id", Organization),
        "contact": ("contact_id", Contact),
        "source": ("source_id", Source),
        "prescriber": ("prescriber_id", Organization),
        "owner": ("owner_id", User),
        "close_reason": ("close_reason_id", LossReason),
        "campaign": ("campaign_id", Campaign),
    }

    def create(
        self,
        *,
        name: str,
        pipeline: str = "sales",
        stage: str | None = None,
        organization: OrganizationRef | None = None,
        contact: Contact | ContactId | None = None,
        amount: Money | None = None,
        probability: Decimal | None = None,
        expected_close: date | None = None,
        source: SourceRef | None = None,
        campaign: Campaign | CampaignId | None = None,
        prescriber: OrganizationRef | None = None,
        owner: UserRef | None = None,
        competitors: Iterable[str] = (),
        line_items: Iterable[LineItem] = (),
        tags: Iterable[str] = (),
        notes: str | None = None,
        external_ref: str | None = None,
        custom: Mapping[str, object] | None = None,
    ) -> Opportunity:
        """Open an opportunity in a pipeline (its first open stage unless ``stage``).

        It needs an organization or a contact; given only a contact, the
        contact's organization is used.  ``probability`` overrides the stage's
        default from then on.

        Raises:
            ValidationError: invalid values, an unknown pipeline or stage, a
                stage whose requirements are not met.
        """
        return self._create(
            {
                "name": name,
                "pipeline": pipeline,
                "stage": stage,
                "organization": organization,
                "contact": contact,
                "amount": amount,
                "probability": probability,
                "expected_close": expected_close,
                "source": source,
                "campaign": campaign,
                "prescriber": prescriber,
                "owner": owner,
                "competitors": competitors,
                "line_items": line_items,
                "tags": tags,
                "notes": notes,
                "external_ref": external_ref,
                "custom": custom,
            }
        )

    def create_from(
        self, record: Organization | Contact, *, name: str, **values: Any
    ) -> Opportunity:
        """Open an opportunity for an organization or a contact (other arguments as create)."""
        if isinstance(record, Organization):
            return self.create(name=name, organization=record, **values)
        if isinstance(record, Contact):
            return self.create(name=name, contact=record, **values)
        raise ValidationError(
            "record", "must be an Organization or a Contact", code="type", value=record
        )

    def _prepare(
        self,
        uow: UnitOfWork,
        values: Mapping[str, Any],
        resolve: Callable[[UnitOfWork, type[Entity], object, str], UUID | None] | None = None,
    ) -> dict[str, Any]:
        fields = super()._prepare(uow, values, resolve)
        if "pipeline" in fields:  # a creation: organization from the contact, one of both
            _organization_of_contact(uow, fields)
            if fields.get("organization_id") is None and fields.get("contact_id") is None:
                raise ValidationError(
                    "organization",
                    "an opportunity needs an organization or a contact",
                    code="required",
                )
            if fields.get("probability") is None:
                fields.pop("probability", None)
        return fields

    def _new(
        self, fields: dict[str, Any], now: datetime
    ) -> tuple[Opportunity, Created[Opportunity]]:
        fields = dict(fields)
        pipeline = self._crm.pipelines.get(fields.pop("pipeline"))
        stage = fields.pop("stage", None)
        return transitions.open_opportunity(
            pipeline, id=OpportunityId(uuid7()), now=now, by=self._crm.actor, stage=stage, **fields
        )

    def update(
        self,
        id: OpportunityId,
        *,
        expected_version: int,
        name: str | Unset = UNSET,
        organization: OrganizationRef | Unset | None = UNSET,
        contact: Contact | ContactId | Unset | None = UNSET,
        amount: Money | Unset | None = UNSET,
        expected_close: date | Unset | None = UNSET,
        source: SourceRef | Unset | None = UNSET,
        campaign: Campaign | CampaignId | Unset | None = UNSET,
        prescriber: OrganizationRef | Unset | None = UNSET,
        owner: UserRef | Unset | None = UNSET,
        competitors: Iterable[str] | Unset = UNSET,
        line_items: Iterable[LineItem] | Unset = UNSET,
        tags: Iterable[str] | Unset = UNSET,
        notes: str | Unset | None = UNSET,
        external_ref: str | Unset | None = UNSET,
        custom: Mapping[str, object] | Unset | None = UNSET,
    ) -> Opportunity:
        """Change an opportunity's details; its stage changes only through the transitions.

        Raises:
            NotFoundError: no such opportunity.
            ConcurrencyError: it changed since ``expected_version``.
            ValidationError: an invalid value.
        """
        return self._update(
            id,
            expected_version,
            {
                "name": name,
                "organization": organization,
                "contact": contact,
                "amount": amount,
                "expected_close": expected_close,
                "source": source,
                "campaign": campaign,
                "prescriber": prescriber,
                "owner": owner,
                "competitors": competitors,
                "line_items": line_items,
                "tags": tags,
                "notes": notes,
                "external_ref": external_ref,
                "custom": custom,
            },
        )

    # ------------------------------------------------------------ moves
    def advance(
        self, id: OpportunityId, *, to: str, expected_version: int | None = None
    ) -> Opportunity:
        """Move an open opportunity to another open stage the pipeline allows.

        Raises:
            InvalidTransition: the pipeline does not allow it (both stages named).
            ValidationError: the target stage's requirements are not met, or a
                plugin vetoed the move.
            ConcurrencyError: ``expected_version`` is given and stale.
        """
        return self._move(
            id,
            expected_version,
            lambda o, p, now, by: transitions.advance(o, p, to=to, now=now, by=by),
        )

    def win(
        self,
        id: OpportunityId,
        *,
        amount: Money | None = None,
        expected_close: date | None = None,
        stage: str | None = None,
        expected_version: int | None = None,
    ) -> Opportunity:
        """Win an opportunity; ``crmkit_create_sales_order`` runs in the same transaction.

        The reference a plugin returns is stored as ``sales_order_ref``.  If the
        hook raises, nothing is written and the caller gets :class:`HookError`.
        The hook may run again if crmkit retries the transaction after a
        transient database conflict, so make it idempotent (key it by the
        opportunity's id).

        Raises:
            InvalidTransition: not open, or the pipeline does not allow the win.
            ValidationError: the won stage's requirements (amount, close date).
            HookError: the sales-order hook failed; the win was rolled back.
        """
        return self._move(
            id,
            expected_version,
            lambda o, p, now, by: transitions.win(
                o, p, now=now, by=by, stage=stage, amount=amount, expected_close=expected_close
            ),
        )

    def lose(
        self,
        id: OpportunityId,
        *,
        reason: LossReason | LossReasonId | str,
        note: str | None = None,
        stage: str | None = None,
        expected_version: int | None = None,
    ) -> Opportunity:
        """Lose an opportunity for a reason (a loss-reason key, record or id).

        Raises:
            InvalidTransition: not open, or the pipeline does not allow it.
            ValidationError: unknown reason; reason ``other`` without a note.
        """

        def move(
            o: Opportunity, p: Pipeline, now: datetime, by: str | None, uow: UnitOfWork
        ) -> tuple[Opportunity, StageChanged]:
            reason_id = _ref_id(uow, LossReason, reason, "reason")
            assert reason_id is not None
            loss = uow.repository(LossReason).get(reason_id)
            return transitions.lose(o, p, reason=loss, note=note, now=now, by=by, stage=stage)

        return self._move(id, expected_version, move, needs_uow=True)

    def hold(
        self, id: OpportunityId, *, stage: str | None = None, expected_version: int | None = None
    ) -> Opportunity:
        """Put an open opportunity on hold; it remembers the stage it left."""
        return self._move(
            id,
            expected_version,
            lambda o, p, now, by: transitions.hold(o, p, now=now, by=by, stage=stage),
        )

    def resume(self, id: OpportunityId, *, expected_version: int | None = None) -> Opportunity:
        """Take an opportunity off hold, back to the stage it left."""
        return self._move(
            id, expected_version, lambda o, p, now, by: transitions.resume(o, p, now=now, by=by)
        )

    def reopen(
        self, id: OpportunityId, *, to: str | None = None, expected_version: int | None = None
    ) -> Opportunity:
        """Reopen a won or lost opportunity (explicit and audited)."""
        return self._move(
            id,
            expected_version,
            lambda o, p, now, by: transitions.reopen(o, p, now=now, by=by, to=to),
        )

    def _move(
        self,
        id: OpportunityId,
        expected_version: int | None,
        move: Callable[..., tuple[Opportunity, StageChanged]],
        *,
        needs_uow: bool = False,
    ) -> Opportunity:
        _check_uuid(id, "id")
        if expected_version is not None:
            _check_version(expected_version)
        crm = self._crm

        def run(uow: UnitOfWork, events: list[Event]) -> Opportunity:
            repo = self._repo(uow)
            current = repo.get(id)
            if expected_version is not None:
                _expect(current, expected_version)
            pipeline = crm.pipelines.get(current.pipeline)
            args = (current, pipeline, crm.now(), crm.actor)
            new, event = move(*args, uow) if needs_uow else move(*args)
            crm.plugins.validate_transition(crm, current, current.stage, new.stage)
            self._validated(new, current)  # before the ERP is asked for an order
            if new.status is StageKind.WON and current.status is not StageKind.WON:
                reference = crm.plugins.create_sales_order(crm, new)
                if reference is not None:
                    new = attrs.evolve(new, sales_order_ref=reference)
                    event = StageChanged(
                        new,
                        event.change,
                        (
                            *event.changes,
                            FieldChange("sales_order_ref", current.sales_order_ref, reference),
                        ),
                    )
            repo.update(new, expected_version=current.version)
            crm._record(uow, events, event)
            if new.status is StageKind.WON and current.status is not StageKind.WON:
                self._customer(uow, events, new.organization_id)
            return new

        return crm._write(run)

    def _customer(
        self, uow: UnitOfWork, events: list[Event], organization_id: OrganizationId | None
    ) -> None:
        """A win makes the organization a customer (lifecycle), audited in the same transaction."""
        if organization_id is None:
            return
        repo = uow.repository(Organization)
        organization = repo.get(organization_id)
        if organization.lifecycle is Lifecycle.CUSTOMER:
            return
        new, event = changes.update(
            organization, {"lifecycle": Lifecycle.CUSTOMER}, now=self._crm.now()
        )
        repo.update(self._validated(new, organization), expected_version=organization.version)
        self._crm._record(uow, events, event)


# ===================================================================== open


def open(
    url: str | os.PathLike[str] | None = None,
    *,
    store: Store | None = None,
    plugins: Iterable[object] = (),
    load_entry_points: bool = False,
    builtins: bool = True,
    seed_masters: bool = True,
    clock: Clock | None = None,
    default_region: str | None = None,
    actor: str | None = None,
    synchronous: str = "FULL",
    timezone: str | tzinfo = "UTC",
    notification_errors: NotificationErrors = "log",
    duplicate_check: OnCreate = "off",
    smtp: SmtpSettings | None = None,
    one_user_per_zone: bool = False,
) -> CRM:
    """Open a CRM.

    Args:
        url: where the data lives: a SQLite file path (``"crm.db"``, the
            default being ``./crm.db``), a ``sqlite:///...`` or
            ``postgresql+psycopg://...`` URL, ``":memory:"`` for a
            :class:`~crmkit.stores.memory.MemoryStore`, or a URL whose
            scheme a plugin's :class:`~crmkit.StoreBackend` serves
            (``crmkit_register_store_backends``).
        store: a ready store object (any backend matching the protocol);
            excludes ``url``.
        plugins: plugin objects or modules to register.
        load_entry_points: also load plugins installed under the ``crmkit``
            entry-point group.
        builtins: register crmkit's built-in plugins (default masters).
        seed_masters: create missing master entries and automation rules
            that plugins register.
        clock: returns the current time, timezone-aware (tests inject one).
        default_region: ISO 3166 country for reading national phone numbers.
        actor: who the audit trail records as making changes.
        synchronous: SQLite durability: ``"FULL"`` (default) or ``"NORMAL"``
            (faster; a power cut may lose the last commits, never corrupt).
        timezone: IANA name or tzinfo of the business's wall clock: where
            the agenda's "today" ends and how SLA days count (default UTC).
        notification_errors: what a plugin's notification that raises after
            a commit does: ``"log"`` (default) logs it on the
            ``crmkit.plugins`` logger and reports it in
            :attr:`CRM.last_delivery`, and the write returns normally;
            ``"raise"`` does the same, then raises :class:`~crmkit.HookError`
            (``committed=True``) for the first failure once every plugin was
            notified (strict, for tests).
        duplicate_check: what ``crm.contacts.create`` and
            ``crm.organizations.create`` do about a likely duplicate of an
            existing record: ``"off"`` (default), ``"warn"`` (create it, log a
            warning on the ``crmkit.duplicates`` logger, report it in
            ``crm.duplicates.last_check``) or ``"refuse"`` (raise
            :class:`~crmkit.DuplicateError` with the candidates; nothing is
            written).  See :mod:`crmkit.services.duplicates`.
        smtp: register the built-in SMTP sender (:class:`~crmkit.SmtpSender`)
            with these settings (``SmtpSettings.from_env()`` reads
            ``CRMKIT_SMTP_*``), so ``crm.campaigns.send`` can send e-mail.
        one_user_per_zone: each zone (security group) may have one user at
            most (the "one user per zone" mode): giving a user a zone another
            active user has raises ``ValidationError`` (code ``zone_taken``).

    Raises:
        ValidationError: bad arguments, or a URL no store serves.
        PluginError: a plugin is invalid.
        HookError: a plugin's hook (or its store backend) failed.
    """
    if store is not None and url is not None:
        raise ValidationError("store", "give either a url or a store, not both")
    # plugins first: one of them may serve the URL's scheme
    try:
        if smtp is not None:
            plugins = [*plugins, SmtpSender(smtp)]
        host = PluginHost(plugins, builtins=builtins, load_entry_points=load_entry_points)
        backends = host.register_store_backends(reserved=BUILTIN_SCHEMES)
    except BaseException:
        if store is not None:
            store.close()
        raise
    if store is None:
        store = _store_for(url, synchronous, backends)
    try:
        crm = CRM(
            store,
            host,
            clock=clock or _utc_now,
            default_region=default_region,
            actor=actor,
            timezone=timezone,
            notification_errors=notification_errors,
            duplicate_check=duplicate_check,
            one_user_per_zone=one_user_per_zone,
        )
        if seed_masters:
            crm.seed_masters()
            crm.automation._seed()
    except BaseException:
        store.close()
        raise
    return crm


def _currency(value: object, name: str) -> str:
    """An ISO 4217 code (upper-cased), or a ValidationError naming the argument."""
    if isinstance(value, str) and is_currency(value.strip().upper()):
        return value.strip().upper()
    raise ValidationError(
        name, "is not a known ISO 4217 currency code", code="currency", value=value
    )


def _converted(money: Money, rate: Decimal, currency: str) -> Money:
    """``money.amount * rate`` in ``currency``, rounded once, half to even."""
    quantum = Decimal(1).scaleb(-currency_exponent(currency))
    digits = len(money.amount.as_tuple().digits) + len(rate.as_tuple().digits)
    with localcontext() as ctx:
        ctx.prec = digits + 20  # the product is exact; the quantize is the only rounding
        try:
            amount = (money.amount * rate).quantize(quantum, rounding=ROUND_HALF_EVEN)
        except DecimalException:  # more digits than any amount crmkit keeps
            raise ValidationError(
                "money", "is too large to convert", code="too_large", value=money
            ) from None
    return Money(amount, currency)


def _check_draft(draft: OrganizationDraft) -> None:
    """Every name in a draft is an argument of the service that takes it; none is missing."""
    _check_arguments(
        draft.fields,
        OrganizationService.create,
        "fields",
        "crm.organizations.create",
        set_by_sync={"external_ref"},
    )
    for i, contact in enumerate(draft.contacts):
        _check_arguments(
            contact.fields,
            ContactService.create,
            f"contacts[{i}].fields",
            "crm.contacts.create",
            set_by_sync={"external_ref", "organization"},
        )


def _check_arguments(
    fields: Mapping[str, object],
    method: Callable[..., Any],
    path: str,
    label: str,
    *,
    set_by_sync: set[str],
) -> None:
    parameters = _keyword_parameters(method)
    for name in fields:
        if name in set_by_sync:
            raise ValidationError(f"{path}.{name}", "is set by the sync", code="conflict")
        if name not in parameters:
            raise ValidationError(
                f"{path}.{name}", f"is not an argument of {label}", code="unknown_field"
            )
    for name, parameter in parameters.items():
        if parameter.default is inspect.Parameter.empty and name not in fields:
            raise ValidationError(f"{path}.{name}", "is required", code="required")


@functools.cache
def _keyword_parameters(method: Callable[..., Any]) -> Mapping[str, inspect.Parameter]:
    """The keyword-only parameters of a service method, by name."""
    return {
        name: parameter
        for name, parameter in inspect.signature(method).parameters.items()
        if parameter.kind is inspect.Parameter.KEYWORD_ONLY
    }


def database_url(url: str | os.PathLike[str] | None = None) -> str:
    """The SQLAlchemy URL ``crmkit.open(url)`` uses (``None``: ``./crm.db``).

    Raises:
        ValidationError: not a SQLite path nor a sqlite:// or postgresql:// URL.
    """
    target = os.fspath(url) if url is not None else DEFAULT_DATABASE
    if not isinstance(target, str) or not target:
        raise ValidationError("url", "must be a path or a database URL", code="url", value=url)
    if target in (":memory:", "memory://"):
        raise ValidationError("url", "the memory store has no database", code="url", value=url)
    if "://" not in target:
        return f"sqlite+pysqlite:///{os.path.abspath(target)}"
    scheme, rest = target.split("://", 1)
    if scheme.split("+", 1)[0] not in ("sqlite", "postgresql"):
        raise ValidationError(
            "url",
            "must be a SQLite path or a sqlite:// or postgresql:// URL",
            code="url",
            value=target,
        )
    if scheme == "postgresql":  # choose psycopg 3, not SQLAlchemy's psycopg2 default
        return f"postgresql+psycopg://{rest}"
    return target


def _store_for(
    url: str | os.PathLike[str] | None, synchronous: str, backends: Sequence[StoreBackend] = ()
) -> Store:
    """The store a URL names: memory, a SQLite file, a SQLAlchemy URL or a plugin's backend.

    Raises:
        ValidationError: no store serves the URL.
        HookError: a plugin's backend raised (other than a crmkit error,
            which passes through) or returned something that is not a store.
    """
    if url is not None and os.fspath(url) in (":memory:", "memory://"):
        from crmkit.stores.memory import MemoryStore

        return MemoryStore()
    if isinstance(url, str) and "://" in url:
        scheme = url.split("://", 1)[0].lower()
        if scheme.split("+", 1)[0] not in BUILTIN_SCHEMES:
            return _plugin_store(url, scheme, backends)
    from crmkit.stores.sql import SqlStore

    return SqlStore(database_url(url), synchronous=synchronous)


def _plugin_store(url: str, scheme: str, backends: Sequence[StoreBackend]) -> Store:
    """The store the plugin backend serving ``scheme`` opens for ``url``, checked."""
    for backend in backends:
        if backend.scheme == scheme:
            break
    else:
        served = ", ".join(f"{b.scheme}://" for b in backends) or "none"
        raise ValidationError(
            "url",
            "must be a SQLite path, a sqlite:// or postgresql:// URL, ':memory:', or a URL "
            f"whose scheme a plugin's store backend serves (registered: {served})",
            code="url",
            value=url,
        )
    hook = "crmkit_register_store_backends"
    try:
        store = backend.open(url)
    except CrmkitError:
        raise
    except Exception as exc:
        raise HookError(hook, f"store backend {scheme!r}: {type(exc).__name__}: {exc}") from exc
    missing = [name for name in ("unit_of_work", "get", "close") if not hasattr(store, name)]
    if missing:
        raise HookError(
            hook,
            f"store backend {scheme!r} returned {type(store).__name__}, "
            f"not a store (no {', '.join(missing)})",
        )
    return store
