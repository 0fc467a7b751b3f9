"""The hooks crmkit calls.  Each one is documented in ``docs/plugin-hooks.md``.

Every hook receives ``crm`` (except ``crmkit_register_store_backends``, called
before the CRM exists) and is called with keyword arguments; a plugin
implements only the arguments it needs (pluggy's opt-in arguments), so hooks
may gain arguments in later versions but never lose them.

Families, in this order below:

* registration (``crmkit_register_*``) returns lists that crmkit collects;
* the ERP bridge maps a host customer to an organization
  (``crmkit_organization_from_customer``) and creates the host's sales order
  inside the winning transaction (``crmkit_create_sales_order``);
* validation (``crmkit_validate_*``) may veto a change with ``ValidationError``
  before anything is written;
* notifications (``crmkit_<noun>_<past participle>``) run after the commit,
  exactly once per change, and return ``None``; a failure is logged and
  reported in a :class:`~crmkit.DeliveryReport`, never undoing the change;
* lookups (``crmkit_exchange_rate``, ``crmkit_customer_revenue``,
  ``crmkit_access_policy``) answer a question; the first non-None answer wins;
* delivery (``crmkit_send_email``) sends campaign e-mail; the first plugin
  that answers sends the batch.

.. versionadded:: 0.1
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from crmkit.plugins import hookspec

if TYPE_CHECKING:
    from datetime import date, datetime
    from decimal import Decimal

    from crmkit.app import CRM
    from crmkit.core.access import Policy, Principal
    from crmkit.core.automation import ActionKind, Rule, RuleFiring, RuleSpec
    from crmkit.core.bridge import OrganizationDraft
    from crmkit.core.cases import Case, CaseType
    from crmkit.core.custom_fields import CustomField
    from crmkit.core.entities import Contact, Entity, MasterSeed, Organization
    from crmkit.core.forecast import ForecastMethod
    from crmkit.core.formats import FileFormat
    from crmkit.core.interactions import Interaction, InteractionKind
    from crmkit.core.leads import Lead, LeadConversion
    from crmkit.core.mail import OutgoingEmail, SendOutcome
    from crmkit.core.money import Money
    from crmkit.core.opportunities import Opportunity, StageChange
    from crmkit.core.pipelines import Pipeline
    from crmkit.plugins.host import StoreBackend

# ======================================================================= registration


@hookspec
def crmkit_register_store_backends() -> list[StoreBackend]:  # type: ignore[empty-body]
    """Contribute storage backends: URL schemes ``crmkit.open(url)`` can open.

    Called once by :func:`crmkit.open`, after every plugin is registered and
    before any store is opened.  It is the one hook without ``crm``: the CRM
    is built on the store it helps choose.  A URL whose scheme a backend
    serves is given whole to its ``open``.  A scheme registered twice, or one
    crmkit serves itself (``memory``, ``sqlite``, ``postgresql`` and their
    ``+driver`` variants), is a :class:`crmkit.PluginError` at
    ``crmkit.open()``.

    Returns:
        A list of :class:`crmkit.StoreBackend`.

    .. versionadded:: 0.1
    """


@hookspec
def crmkit_register_masters(crm: CRM) -> list[MasterSeed]:  # type: ignore[empty-body]
    """Seed master lists (sources, markets, positions, zones, products, loss reasons, outcomes).

    Called when a CRM is opened with ``seed_masters=True`` (the default).
    Entries missing from the store (by kind and key) are created; existing
    ones are never changed, so users may rename or archive them.

    Args:
        crm: the CRM being opened.

    Returns:
        A list of :class:`crmkit.MasterSeed`.

    .. versionadded:: 0.1
    """


@hookspec
def crmkit_register_pipelines(crm: CRM) -> list[Pipeline]:  # type: ignore[empty-body]
    """Contribute sales pipelines (stages, transitions, requirements).

    Called once when the CRM is opened.  Each pipeline is checked
    (:func:`crmkit.core.pipelines.check_pipeline`): a stage no path reaches, a
    final stage with exits, or a key registered twice is a
    :class:`crmkit.PluginError` at ``crmkit.open()``.

    Args:
        crm: the CRM being opened.

    Returns:
        A list of :class:`crmkit.Pipeline`.

    .. versionadded:: 0.1
    """


@hookspec
def crmkit_register_interaction_kinds(crm: CRM) -> list[InteractionKind]:  # type: ignore[empty-body]
    """Contribute kinds of interaction (a WhatsApp message, a demo, a site survey...).

    Called once when the CRM is opened.  crmkit's built-in plugin registers
    call, email, meeting, visit, document, presentation and note.  A key
    registered twice is a :class:`crmkit.PluginError` at ``crmkit.open()``.

    Args:
        crm: the CRM being opened.

    Returns:
        A list of :class:`crmkit.InteractionKind`.

    .. versionadded:: 0.1
    """


@hookspec
def crmkit_register_case_types(crm: CRM) -> list[CaseType]:  # type: ignore[empty-body]
    """Contribute types of post-sale case, each with an SLA target per priority.

    Called once when the CRM is opened.  crmkit's built-in plugin registers
    claim, incident and service_request.  A key registered twice is a
    :class:`crmkit.PluginError` at ``crmkit.open()``.

    Args:
        crm: the CRM being opened.

    Returns:
        A list of :class:`crmkit.CaseType`.

    .. versionadded:: 0.1
    """


@hookspec
def crmkit_register_custom_fields(crm: CRM) -> list[CustomField]:  # type: ignore[empty-body]
    """Contribute custom field definitions (campos personalizados).

    Called once when the CRM is opened.  An ``(entity, key)`` pair
    registered twice is a :class:`crmkit.PluginError` at ``crmkit.open()``.
    Values stored under a key no plugin registers any more are kept.

    Args:
        crm: the CRM being opened.

    Returns:
        A list of :class:`crmkit.CustomField`.

    .. versionadded:: 0.1
    """


@hookspec
def crmkit_register_formats(crm: CRM) -> list[FileFormat]:  # type: ignore[empty-body]
    """Contribute file formats for import and export (``crm.imports``, ``crm.exports``).

    Called once when the CRM is opened.  crmkit's built-in plugin registers
    ``csv``, ``jsonl`` and ``xlsx`` through this hook.  A key registered twice
    is a :class:`crmkit.PluginError` at ``crmkit.open()``.

    Args:
        crm: the CRM being opened.

    Returns:
        A list of :class:`crmkit.FileFormat`.

    .. versionadded:: 0.1
    """


@hookspec
def crmkit_register_forecast_methods(crm: CRM) -> list[ForecastMethod]:  # type: ignore[empty-body]
    """Contribute forecast methods that ``crm.forecast.backtest()`` can score.

    Called the first time ``crm.forecast.methods()`` (or a backtest) needs
    them.  A method is a name and a function from a
    :class:`crmkit.core.forecast.ForecastRequest` (the book, the period, the
    moment the forecast is made at, currency, rates, seed) to a
    :class:`crmkit.core.forecast.ForecastEstimate` (a point forecast,
    optionally a P10-P90 interval and each open deal's chance).  The function
    must only use what the book knew at ``request.as_of``
    (``request.book.at(request.as_of)``).  A name registered twice, or one of
    the built-in ``weighted`` and ``probabilistic``, is a
    :class:`crmkit.PluginError`.

    Args:
        crm: the CRM asking.

    Returns:
        A list of :class:`crmkit.core.forecast.ForecastMethod`.

    .. versionadded:: 0.1
    """


@hookspec
def crmkit_register_rule_actions(crm: CRM) -> list[ActionKind]:  # type: ignore[empty-body]
    """Contribute kinds of action automation rules can do (``send_template``...).

    Called once when the CRM is opened.  crmkit's built-in plugin registers
    ``plan_interaction``, ``apply_sequence``, ``assign_owner`` and ``notify``
    through this hook.  A rule naming a kind no plugin registers is refused
    when saved; a saved rule whose kind is gone fails when it fires (recorded
    and reported).  A key registered twice is a :class:`crmkit.PluginError`
    at ``crmkit.open()``.

    Args:
        crm: the CRM being opened.

    Returns:
        A list of :class:`crmkit.ActionKind`.

    .. versionadded:: 0.1
    """


@hookspec
def crmkit_register_rules(crm: CRM) -> list[RuleSpec]:  # type: ignore[empty-body]
    """Contribute automation rules.

    Called once when the CRM is opened.  :func:`crmkit.open` (with
    ``seed_masters=True``, the default) saves each rule whose name no rule
    has yet; existing rules are never changed, so users may edit or disable
    them.  A name registered twice is a :class:`crmkit.PluginError` at
    ``crmkit.open()``.

    Args:
        crm: the CRM being opened.

    Returns:
        A list of :class:`crmkit.RuleSpec`.

    .. versionadded:: 0.1
    """


# ========================================================================= ERP bridge


@hookspec(firstresult=True)
def crmkit_organization_from_customer(crm: CRM, customer: object) -> OrganizationDraft | None:
    """Map a host customer object to the organization (and contacts) it is in the CRM.

    Called by ``crm.sync_customer(customer)``, before its transaction starts.
    Return ``None`` for objects this plugin does not know, so another plugin
    may answer.  Stops at the first non-None result.

    Args:
        crm: the CRM.
        customer: whatever the host passed to ``crm.sync_customer`` (a Django
            model instance, an ERP record...).

    Returns:
        An :class:`crmkit.OrganizationDraft`, or ``None``.

    .. versionadded:: 0.1
    """


@hookspec(firstresult=True)
def crmkit_create_sales_order(crm: CRM, opportunity: Opportunity) -> str | None:
    """Create the host's sales order for an opportunity being won.

    Runs inside the winning transaction, after the opportunity moved to its
    won stage but before the commit.  The returned reference is stored as
    ``opportunity.sales_order_ref``.  If it raises, the win is rolled back
    (nothing is written) and the caller gets :class:`crmkit.HookError` naming
    the plugin.  Stops at the first non-None result.

    Args:
        crm: the CRM (inside the winning transaction).
        opportunity: the opportunity in its won stage.

    Returns:
        The host's order reference, or ``None`` when this plugin made none.

    .. versionadded:: 0.1
    """


# ========================================================================= validation


@hookspec
def crmkit_validate_transition(
    crm: CRM, opportunity: Opportunity, source: str, target: str
) -> None:
    """Veto a stage change before anything is written.

    Runs after the pipeline's own rules and crmkit's invariants passed.  Raise
    :class:`crmkit.ValidationError` to refuse the move; nothing is written and
    the caller gets that error.

    Args:
        crm: the CRM.
        opportunity: the opportunity as it is before the move.
        source: the stage it is leaving.
        target: the stage it would enter.

    .. versionadded:: 0.1
    """


@hookspec
def crmkit_validate_organization(
    crm: CRM, organization: Organization, previous: Organization | None
) -> None:
    """Veto the creation or an update of an organization before it is written.

    Runs after crmkit's own checks, inside the write's transaction, right
    before the record is stored.  Raise :class:`crmkit.ValidationError` to
    refuse: nothing is written (no row, no audit entry, no notification) and
    the caller gets that error.  Any other exception becomes
    :class:`crmkit.HookError`, and nothing is written either.

    Args:
        crm: the CRM (inside the write's transaction).
        organization: the organization as it would be written.
        previous: ``None`` on creation; the stored version on an update.

    .. versionadded:: 0.1
    """


@hookspec
def crmkit_validate_contact(crm: CRM, contact: Contact, previous: Contact | None) -> None:
    """Veto the creation or an update of a contact before it is written.

    Same rules as :func:`crmkit_validate_organization`.

    Args:
        crm: the CRM (inside the write's transaction).
        contact: the contact as it would be written.
        previous: ``None`` on creation; the stored version on an update.

    .. versionadded:: 0.1
    """


@hookspec
def crmkit_validate_lead(crm: CRM, lead: Lead, previous: Lead | None) -> None:
    """Veto the creation or an update of a lead (status moves and conversion included).

    Same rules as :func:`crmkit_validate_organization`.

    Args:
        crm: the CRM (inside the write's transaction).
        lead: the lead as it would be written.
        previous: ``None`` on creation; the stored version on an update.

    .. versionadded:: 0.1
    """


@hookspec
def crmkit_validate_opportunity(
    crm: CRM, opportunity: Opportunity, previous: Opportunity | None
) -> None:
    """Veto the creation or an update of an opportunity (stage moves included).

    Same rules as :func:`crmkit_validate_organization`.  For a stage move it
    runs after :func:`crmkit_validate_transition` and before
    ``crmkit_create_sales_order``, so ``sales_order_ref`` is not set yet.

    Args:
        crm: the CRM (inside the write's transaction).
        opportunity: the opportunity as it would be written.
        previous: ``None`` on creation; the stored version on an update.

    .. versionadded:: 0.1
    """


@hookspec
def crmkit_validate_interaction(
    crm: CRM, interaction: Interaction, previous: Interaction | None
) -> None:
    """Veto the creation or an update of an interaction (planned follow-ups included).

    Same rules as :func:`crmkit_validate_organization`.

    Args:
        crm: the CRM (inside the write's transaction).
        interaction: the interaction as it would be written.
        previous: ``None`` on creation; the stored version on an update.

    .. versionadded:: 0.1
    """


@hookspec
def crmkit_validate_case(crm: CRM, case: Case, previous: Case | None) -> None:
    """Veto the opening or an update of a post-sale case (status moves included).

    Same rules as :func:`crmkit_validate_organization`.

    Args:
        crm: the CRM (inside the write's transaction).
        case: the case as it would be written.
        previous: ``None`` on creation; the stored version on an update.

    .. versionadded:: 0.1
    """


# ====================================================================== notifications


@hookspec
def crmkit_organization_created(crm: CRM, organization: Organization) -> None:
    """An organization was created and committed.

    Runs after the transaction commits, once per organization (bulk creation
    included).  An exception here does not undo the creation and does not
    reach the caller: it is logged (logger ``crmkit.plugins``) and reported in
    ``crm.last_delivery``, and the other plugins are still notified.

    Args:
        crm: the CRM the organization was created in.
        organization: the new organization.

    .. versionadded:: 0.1
    """


@hookspec
def crmkit_contact_created(crm: CRM, contact: Contact) -> None:
    """A contact was created and committed.

    Same guarantees as :func:`crmkit_organization_created`.

    Args:
        crm: the CRM the contact was created in.
        contact: the new contact.

    .. versionadded:: 0.1
    """


@hookspec
def crmkit_opportunity_stage_changed(
    crm: CRM, opportunity: Opportunity, change: StageChange
) -> None:
    """An opportunity moved to another stage, and the move was committed.

    Fires for every move (advance, win, lose, hold, resume, reopen), once,
    after commit; ``crmkit_opportunity_won`` and ``crmkit_opportunity_lost``
    fire as well for wins and losses.

    Args:
        crm: the CRM.
        opportunity: the opportunity after the move.
        change: the move (``source``, ``target``, ``at``, ``by``).

    .. versionadded:: 0.1
    """


@hookspec
def crmkit_opportunity_won(crm: CRM, opportunity: Opportunity) -> None:
    """An opportunity was won and the win committed (after any sales order).

    Args:
        crm: the CRM.
        opportunity: the won opportunity (``sales_order_ref`` set if a plugin
            created an order).

    .. versionadded:: 0.1
    """


@hookspec
def crmkit_opportunity_lost(crm: CRM, opportunity: Opportunity) -> None:
    """An opportunity was lost and the loss committed.

    Args:
        crm: the CRM.
        opportunity: the lost opportunity (``close_reason_id`` set).

    .. versionadded:: 0.1
    """


@hookspec
def crmkit_interaction_logged(crm: CRM, interaction: Interaction) -> None:
    """An interaction was logged as done (or a planned one completed), and committed.

    Fires once per interaction that reaches ``done``, after commit; planned
    and cancelled interactions do not fire it.

    Args:
        crm: the CRM.
        interaction: the done interaction.

    .. versionadded:: 0.1
    """


@hookspec
def crmkit_lead_converted(crm: CRM, lead: Lead, conversion: LeadConversion) -> None:
    """A lead was converted, and the conversion committed.

    Fires once per lead: converting an already converted lead again returns
    the first conversion and fires nothing.

    Args:
        crm: the CRM.
        lead: the converted lead (links to what it became).
        conversion: the organization, contact and opportunity, and which of
            them the conversion created (``created_organization``...).

    .. versionadded:: 0.1
    """


@hookspec
def crmkit_case_opened(crm: CRM, case: Case) -> None:
    """A post-sale case was opened, and committed (reopening fires it again).

    Args:
        crm: the CRM.
        case: the open case, with its ``sla_due``.

    .. versionadded:: 0.1
    """


@hookspec
def crmkit_case_closed(crm: CRM, case: Case) -> None:
    """A post-sale case was closed, and committed.

    Args:
        crm: the CRM.
        case: the closed case.

    .. versionadded:: 0.1
    """


@hookspec
def crmkit_rule_fired(
    crm: CRM, rule: Rule, firing: RuleFiring, record: Entity, note: str | None
) -> None:
    """An automation rule with a ``notify`` action fired, and the firing committed.

    Called once per ``notify`` action of the firing, after the commit of the
    firing's effects (never for a failed firing, nor again for a
    re-delivered event).  An exception here is logged and reported, never
    undoing the firing.

    Args:
        crm: the CRM.
        rule: the rule that fired.
        firing: its journal entry (``key``, ``record_id``, ``fired_at``).
        record: the record it fired for (opportunity, lead, interaction,
            case or organization), as it was when the rule was triggered.
        note: the ``notify`` action's note.

    .. versionadded:: 0.1
    """


# ============================================================================ lookups


@hookspec(firstresult=True)
def crmkit_exchange_rate(crm: CRM, base: str, quote: str, on: date) -> Decimal | None:
    """The price of one unit of ``base`` in ``quote`` on a day (EUR->USD 1.0842).

    Called by ``crm.exchange_rate()`` and ``crm.convert()``; never for a
    currency with itself.  Return ``None`` when this plugin does not know the
    rate.  Stops at the first non-None result.

    Args:
        crm: the CRM.
        base: the ISO 4217 code converted from (``"EUR"``).
        quote: the ISO 4217 code converted to (``"USD"``).
        on: the day the rate applies to.

    Returns:
        A positive ``Decimal`` (1 ``base`` = rate ``quote``), or ``None``.

    .. versionadded:: 0.1
    """


@hookspec(firstresult=True)
def crmkit_customer_revenue(
    crm: CRM, organization: Organization, since: datetime | None, until: datetime
) -> Money | None:
    """The revenue the host system (ERP) recorded for a customer between two moments.

    Called by ``crm.analytics.customer_value()`` once per organization in the
    report, after the book is read.  Return what the host invoiced the
    customer (sales orders, invoices...) from ``since`` (``None``: from the
    start) to ``until``; crmkit adds it to the deals won in the CRM.  Return
    ``None`` when this plugin does not know the customer.  Stops at the first
    non-None result.

    Args:
        crm: the CRM.
        organization: the organization (its ``external_ref`` is usually the
            host's customer key).
        since: the start of the period, or ``None`` for all time.
        until: the end of the period (the report's ``as_of``).

    Returns:
        A :class:`crmkit.Money` (any currency with an exchange rate to the
        report's), or ``None``.

    .. versionadded:: 0.1
    """


@hookspec(firstresult=True)
def crmkit_access_policy(crm: CRM, principal: Principal) -> Policy | None:
    """The access-control rules for a user scope (replace or extend the default).

    Called by ``crm.as_user(user)`` (unless a ``policy`` is passed), once per
    scope, with the principal just read from the store.  Return a
    :class:`crmkit.core.access.Policy` (for example the default one with a
    changed rights table), or ``None`` to leave the choice to other plugins
    and, failing them, to the default rules.  Stops at the first non-None
    result.

    Args:
        crm: the CRM (the system context).
        principal: who the scope acts for: user id, role, teammates, zones.

    Returns:
        A :class:`crmkit.core.access.Policy`, or ``None``.

    .. versionadded:: 0.1
    """


# =========================================================================== delivery


@hookspec(firstresult=True)
def crmkit_send_email(crm: CRM, messages: list[OutgoingEmail]) -> list[SendOutcome] | None:
    """Send a batch of rendered e-mails (``crm.campaigns.send``).

    Called once per batch (up to 1,000 messages; 500 by default), after the
    recipients were claimed and committed, so a sender should reuse one
    connection for the whole batch.  The built-in SMTP sender
    (:class:`crmkit.SmtpSender`, registered by ``crmkit.open(smtp=...)``)
    implements it.  Stops at the first non-None result.

    A sender reports each message's fate in a :class:`crmkit.SendOutcome`
    (matched by ``message_id``) and should not raise for a refused recipient
    or a lost connection: those are outcomes with ``ok=False``.  A message
    without an outcome counts as not sent; an exception becomes
    :class:`crmkit.HookError` and the whole batch is recorded as not sent.

    Args:
        crm: the CRM sending.
        messages: the :class:`crmkit.OutgoingEmail` messages of the batch.

    Returns:
        One :class:`crmkit.SendOutcome` per message, or ``None`` to leave the
        batch to another plugin.

    .. versionadded:: 0.1
    """
