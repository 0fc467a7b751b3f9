"""A plugin that records every hook call, for tests of crmkit and of host programs.

Register a :class:`RecordingPlugin` when opening a CRM and read back what crmkit
told plugins, in order::

    from crmkit.testing import RecordingPlugin

    recorder = RecordingPlugin()
    crm = crmkit.open(":memory:", plugins=[recorder])
    acme = crm.organizations.create(name="Acme")
    assert recorder.names()[-2:] == [
        "crmkit_validate_organization",
        "crmkit_organization_created",
    ]
    assert recorder.calls[-1].kwargs["organization"] == acme

It implements every hook of :mod:`crmkit.plugins.hookspecs` and changes
nothing: registration hooks return what the plugin was given (``seeds``) or
nothing, validation hooks veto nothing, lookups and the ERP bridge answer
``None``, and notifications return ``None``.

.. versionadded:: 0.1
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from attrs import field, frozen

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
from crmkit.core.mail import OutgoingEmail
from crmkit.core.money import Money
from crmkit.core.opportunities import Opportunity, StageChange
from crmkit.core.pipelines import Pipeline
from crmkit.plugins import hookimpl
from crmkit.plugins.host import StoreBackend

if TYPE_CHECKING:
    from crmkit.app import CRM

__all__ = ["HookCall", "RecordingPlugin"]


@frozen
class HookCall:
    """One call of one hook.

    Attributes:
        name: the hook's name (``"crmkit_organization_created"``).
        kwargs: the keyword arguments crmkit passed, ``crm`` included
            (empty for ``crmkit_register_store_backends``, which has none).
    """

    name: str
    kwargs: dict[str, Any] = field(hash=False)


class RecordingPlugin:
    """Records every hook call (name and keyword arguments) in :attr:`calls`.

    Args:
        seeds: master entries to return from ``crmkit_register_masters``.

    Attributes:
        calls: every call so far, oldest first.
    """

    def __init__(self, *, seeds: Iterable[MasterSeed] = ()) -> None:
        self.seeds: list[MasterSeed] = list(seeds)
        self.calls: list[HookCall] = []

    def __repr__(self) -> str:
        return f"<RecordingPlugin calls={len(self.calls)}>"

    # --------------------------------------------------------------- reading
    def names(self) -> list[str]:
        """The names of the hooks called, in order."""
        return [call.name for call in self.calls]

    def calls_to(self, name: str) -> list[HookCall]:
        """The calls of the hook ``name``, in order."""
        return [call for call in self.calls if call.name == name]

    def clear(self) -> None:
        """Forget the calls recorded so far."""
        self.calls.clear()

    def _record(self, name: str, **kwargs: Any) -> None:
        self.calls.append(HookCall(name, kwargs))

    # ---------------------------------------------------------- registration
    @hookimpl
    def crmkit_register_store_backends(self) -> list[StoreBackend]:
        """Record the call; contribute no store backend."""
        self._record("crmkit_register_store_backends")
        return []

    @hookimpl
    def crmkit_register_masters(self, crm: CRM) -> list[MasterSeed]:
        """Record the call; return :attr:`seeds`."""
        self._record("crmkit_register_masters", crm=crm)
        return list(self.seeds)

    @hookimpl
    def crmkit_register_pipelines(self, crm: CRM) -> list[Pipeline]:
        """Record the call; contribute no pipeline."""
        self._record("crmkit_register_pipelines", crm=crm)
        return []

    @hookimpl
    def crmkit_register_interaction_kinds(self, crm: CRM) -> list[InteractionKind]:
        """Record the call; contribute no kind."""
        self._record("crmkit_register_interaction_kinds", crm=crm)
        return []

    @hookimpl
    def crmkit_register_case_types(self, crm: CRM) -> list[CaseType]:
        """Record the call; contribute no case type."""
        self._record("crmkit_register_case_types", crm=crm)
        return []

    @hookimpl
    def crmkit_register_custom_fields(self, crm: CRM) -> list[CustomField]:
        """Record the call; contribute no custom field."""
        self._record("crmkit_register_custom_fields", crm=crm)
        return []

    @hookimpl
    def crmkit_register_formats(self, crm: CRM) -> list[FileFormat]:
        """Record the call; contribute no file format."""
        self._record("crmkit_register_formats", crm=crm)
        return []

    @hookimpl
    def crmkit_register_forecast_methods(self, crm: CRM) -> list[ForecastMethod]:
        """Record the call; contribute no forecast method."""
        self._record("crmkit_register_forecast_methods", crm=crm)
        return []

    @hookimpl
    def crmkit_register_rule_actions(self, crm: CRM) -> list[ActionKind]:
        """Record the call; contribute no action kind."""
        self._record("crmkit_register_rule_actions", crm=crm)
        return []

    @hookimpl
    def crmkit_register_rules(self, crm: CRM) -> list[RuleSpec]:
        """Record the call; contribute no rule."""
        self._record("crmkit_register_rules", crm=crm)
        return []

    # ------------------------------------------------- validation, ERP bridge
    @hookimpl
    def crmkit_validate_transition(
        self, crm: CRM, opportunity: Opportunity, source: str, target: str
    ) -> None:
        """Record the call; veto nothing."""
        self._record(
            "crmkit_validate_transition",
            crm=crm,
            opportunity=opportunity,
            source=source,
            target=target,
        )

    @hookimpl
    def crmkit_validate_organization(
        self, crm: CRM, organization: Organization, previous: Organization | None
    ) -> None:
        """Record the call; veto nothing."""
        self._record(
            "crmkit_validate_organization", crm=crm, organization=organization, previous=previous
        )

    @hookimpl
    def crmkit_validate_contact(self, crm: CRM, contact: Contact, previous: Contact | None) -> None:
        """Record the call; veto nothing."""
        self._record("crmkit_validate_contact", crm=crm, contact=contact, previous=previous)

    @hookimpl
    def crmkit_validate_lead(self, crm: CRM, lead: Lead, previous: Lead | None) -> None:
        """Record the call; veto nothing."""
        self._record("crmkit_validate_lead", crm=crm, lead=lead, previous=previous)

    @hookimpl
    def crmkit_validate_opportunity(
        self, crm: CRM, opportunity: Opportunity, previous: Opportunity | None
    ) -> None:
        """Record the call; veto nothing."""
        self._record(
            "crmkit_validate_opportunity", crm=crm, opportunity=opportunity, previous=previous
        )

    @hookimpl
    def crmkit_validate_interaction(
        self, crm: CRM, interaction: Interaction, previous: Interaction | None
    ) -> None:
        """Record the call; veto nothing."""
        self._record(
            "crmkit_validate_interaction", crm=crm, interaction=interaction, previous=previous
        )

    @hookimpl
    def crmkit_validate_case(self, crm: CRM, case: Case, previous: Case | None) -> None:
        """Record the call; veto nothing."""
        self._record("crmkit_validate_case", crm=crm, case=case, previous=previous)

    @hookimpl
    def crmkit_organization_from_customer(
        self, crm: CRM, customer: object
    ) -> OrganizationDraft | None:
        """Record the call; map nothing."""
        self._record("crmkit_organization_from_customer", crm=crm, customer=customer)
        return None

    @hookimpl
    def crmkit_create_sales_order(self, crm: CRM, opportunity: Opportunity) -> str | None:
        """Record the call; create no order."""
        self._record("crmkit_create_sales_order", crm=crm, opportunity=opportunity)
        return None

    # --------------------------------------------------------------- lookups
    @hookimpl
    def crmkit_exchange_rate(self, crm: CRM, base: str, quote: str, on: date) -> Decimal | None:
        """Record the call; know no rate."""
        self._record("crmkit_exchange_rate", crm=crm, base=base, quote=quote, on=on)
        return None

    @hookimpl
    def crmkit_customer_revenue(
        self, crm: CRM, organization: Organization, since: datetime | None, until: datetime
    ) -> Money | None:
        """Record the call; know no revenue."""
        self._record(
            "crmkit_customer_revenue", crm=crm, organization=organization, since=since, until=until
        )
        return None

    @hookimpl
    def crmkit_access_policy(self, crm: CRM, principal: Principal) -> Policy | None:
        """Record the call; keep the default rules."""
        self._record("crmkit_access_policy", crm=crm, principal=principal)
        return None

    # -------------------------------------------------------------- delivery
    @hookimpl
    def crmkit_send_email(self, crm: CRM, messages: list[OutgoingEmail]) -> None:
        """Record the call; leave the batch to another sender."""
        self._record("crmkit_send_email", crm=crm, messages=messages)

    # --------------------------------------------------------- notifications
    @hookimpl
    def crmkit_organization_created(self, crm: CRM, organization: Organization) -> None:
        """Record the call."""
        self._record("crmkit_organization_created", crm=crm, organization=organization)

    @hookimpl
    def crmkit_contact_created(self, crm: CRM, contact: Contact) -> None:
        """Record the call."""
        self._record("crmkit_contact_created", crm=crm, contact=contact)

    @hookimpl
    def crmkit_opportunity_stage_changed(
        self, crm: CRM, opportunity: Opportunity, change: StageChange
    ) -> None:
        """Record the call."""
        self._record(
            "crmkit_opportunity_stage_changed", crm=crm, opportunity=opportunity, change=change
        )

    @hookimpl
    def crmkit_opportunity_won(self, crm: CRM, opportunity: Opportunity) -> None:
        """Record the call."""
        self._record("crmkit_opportunity_won", crm=crm, opportunity=opportunity)

    @hookimpl
    def crmkit_opportunity_lost(self, crm: CRM, opportunity: Opportunity) -> None:
        """Record the call."""
        self._record("crmkit_opportunity_lost", crm=crm, opportunity=opportunity)

    @hookimpl
    def crmkit_interaction_logged(self, crm: CRM, interaction: Interaction) -> None:
        """Record the call."""
        self._record("crmkit_interaction_logged", crm=crm, interaction=interaction)

    @hookimpl
    def crmkit_lead_converted(self, crm: CRM, lead: Lead, conversion: LeadConversion) -> None:
        """Record the call."""
        self._record("crmkit_lead_converted", crm=crm, lead=lead, conversion=conversion)

    @hookimpl
    def crmkit_case_opened(self, crm: CRM, case: Case) -> None:
        """Record the call."""
        self._record("crmkit_case_opened", crm=crm, case=case)

    @hookimpl
    def crmkit_case_closed(self, crm: CRM, case: Case) -> None:
        """Record the call."""
        self._record("crmkit_case_closed", crm=crm, case=case)

    @hookimpl
    def crmkit_rule_fired(
        self, crm: CRM, rule: Rule, firing: RuleFiring, record: Entity, note: str | None
    ) -> None:
        """Record the call."""
        self._record(
            "crmkit_rule_fired", crm=crm, rule=rule, firing=firing, record=record, note=note
        )
