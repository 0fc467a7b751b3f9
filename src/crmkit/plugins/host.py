"""The typed plugin host: the only code that touches ``pm.hook``.

pluggy's hook callers return ``Any``; :class:`PluginHost` wraps each hook in a
typed method, checks what plugins return, and turns pluggy's errors into
crmkit's (:class:`~crmkit.PluginError` for registration problems,
:class:`~crmkit.HookError` for a hook that raised).  Notifications run after
commit, so their failures are not raised: each is logged on the
``crmkit.plugins`` logger and returned in a :class:`DeliveryReport`.

.. versionadded:: 0.1
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Final

import attrs
import pluggy

from crmkit.core.access import Policy, Principal
from crmkit.core.automation import ActionKind, Rule, RuleFiring, RuleSpec
from crmkit.core.bridge import OrganizationDraft
from crmkit.core.cases import Case, CaseType
from crmkit.core.custom_fields import CustomField
from crmkit.core.entities import Contact, Entity, MasterSeed, Organization
from crmkit.core.errors import CrmkitError, HookError, PluginError, ValidationError
from crmkit.core.forecast import ForecastMethod
from crmkit.core.formats import FileFormat
from crmkit.core.interactions import Interaction, InteractionKind
from crmkit.core.leads import Lead, LeadConversion
from crmkit.core.mail import OutgoingEmail, SendOutcome
from crmkit.core.money import Money
from crmkit.core.opportunities import Opportunity, StageChange
from crmkit.core.pipelines import Pipeline, check_pipeline
from crmkit.plugins import PROJECT, hookspecs

if TYPE_CHECKING:
    from crmkit.app import CRM
    from crmkit.stores.base import Store

__all__ = [
    "BUILTIN_PLUGINS",
    "DeliveryFailure",
    "DeliveryReport",
    "PluginHost",
    "StoreBackend",
    "logger",
]

#: Where failed notifications are logged (at ERROR level, with the traceback).
logger: Final = logging.getLogger("crmkit.plugins")

#: Modules registered in every host unless ``builtins=False``.
BUILTIN_PLUGINS: tuple[str, ...] = (
    "crmkit.plugins.builtin_masters",
    "crmkit.plugins.builtin_pipelines",
    "crmkit.plugins.builtin_activities",
    "crmkit.plugins.builtin_automation",
    "crmkit.plugins.builtin_mail",
    "crmkit.io.formats",
)


#: The validation hook of each entity type, and the keyword its entity is passed as.
_VALIDATORS: Final[dict[type[Entity], tuple[str, str]]] = {
    Organization: ("crmkit_validate_organization", "organization"),
    Contact: ("crmkit_validate_contact", "contact"),
    Lead: ("crmkit_validate_lead", "lead"),
    Opportunity: ("crmkit_validate_opportunity", "opportunity"),
    Interaction: ("crmkit_validate_interaction", "interaction"),
    Case: ("crmkit_validate_case", "case"),
}


#: A URL scheme as RFC 3986 writes it, lower case: ``memory``, ``sqlite+pysqlite``.
_SCHEME: Final = re.compile(r"[a-z][a-z0-9+.-]{0,63}")


def _scheme(value: object) -> str:
    if isinstance(value, str) and _SCHEME.fullmatch(value):
        return value
    raise ValidationError(
        "scheme",
        "must be a lower-case URL scheme: a letter, then letters, digits, '+', '-' or '.'",
        code="url",
        value=value,
    )


def _callable(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not callable(value):
        raise ValidationError(attribute.name, "must be callable", code="type", value=value)


@attrs.frozen(kw_only=True)
class StoreBackend:
    """A storage backend a plugin contributes (``crmkit_register_store_backends``).

    ``crmkit.open(url)`` hands a URL whose scheme (the part before ``://``) is
    :attr:`scheme` to :attr:`open`, and runs the CRM on the store it returns.

    Attributes:
        scheme: the URL scheme served, lower case (``"redis"``,
            ``"shared-memory"``); not one crmkit serves itself
            (``memory``, ``sqlite``, ``postgresql``, nor ``sqlite+...``).
        open: called with the whole URL as given to ``crmkit.open()``;
            returns a store that keeps the contract of
            :class:`crmkit.stores.base.Store` (check it with the contract
            suite in :mod:`crmkit.testing`).  The CRM closes it.

    Raises:
        ValidationError: ``scheme`` is not a URL scheme (code ``url``), or
            ``open`` is not callable (code ``type``).

    .. versionadded:: 0.1
    """

    scheme: str = attrs.field(converter=_scheme)
    open: Callable[[str], Store] = attrs.field(validator=_callable)


@attrs.frozen
class DeliveryFailure:
    """One plugin's notification that raised after a commit.

    Attributes:
        hook: the notification's name (``"crmkit_organization_created"``).
        plugin: the plugin's name: the name it was registered under, a
            module's name, or an object's class name.
        error: the exception's type and message (``"ConnectionError: timed out"``).
        exception: the exception itself, with its traceback.

    .. versionadded:: 0.1
    """

    hook: str
    plugin: str
    error: str
    exception: BaseException = attrs.field(eq=False, repr=False)


@attrs.frozen
class DeliveryReport:
    """How the plugin notifications of a committed change went.

    Reachable as ``crm.last_delivery`` after a write, and as ``tx.delivery``
    after ``with crm.transaction() as tx:``.

    Attributes:
        failures: every notification that raised, in the order they ran;
            empty when all went through.

    .. versionadded:: 0.1
    """

    failures: tuple[DeliveryFailure, ...] = ()

    @property
    def ok(self) -> bool:
        """Whether every notification went through."""
        return not self.failures


#: The report of a delivery in which nothing failed.
DELIVERED: Final = DeliveryReport()


def _plugin_name(impl: Any) -> str:
    """A readable name: the registered one, a module's, or an object's class name."""
    name = str(impl.plugin_name)
    if name == str(id(impl.plugin)):  # pluggy's default name for an object
        return type(impl.plugin).__qualname__
    return name


class PluginHost:
    """Registers plugins and calls their hooks with typed results.

    Args:
        plugins: plugin objects or modules to register, in order.
        builtins: register crmkit's built-in plugins (default masters...).
        load_entry_points: also load third-party plugins from the ``crmkit``
            entry-point group.

    Raises:
        PluginError: a plugin is invalid, registered twice, or implements a
            hook that does not exist (misspelled).
    """

    def __init__(
        self,
        plugins: Iterable[object] = (),
        *,
        builtins: bool = True,
        load_entry_points: bool = False,
    ):
        self._pm = pluggy.PluginManager(PROJECT)
        self._pm.add_hookspecs(hookspecs)
        if builtins:
            import importlib

            for name in BUILTIN_PLUGINS:
                self.register(importlib.import_module(name), name=name)
        for plugin in plugins:
            self.register(plugin)
        if load_entry_points:
            try:
                self._pm.load_setuptools_entrypoints(PROJECT)
            except Exception as exc:
                raise PluginError(f"could not load the {PROJECT!r} entry points: {exc}") from exc
        self.check_pending()

    def register(self, plugin: object, *, name: str | None = None) -> None:
        """Register one plugin.

        Raises:
            PluginError: invalid hook implementation or duplicate registration.
        """
        try:
            self._pm.register(plugin, name=name)
        except (ValueError, pluggy.PluginValidationError) as exc:
            raise PluginError(f"cannot register plugin {name or plugin!r}: {exc}") from exc
        self.check_pending()

    def check_pending(self) -> None:
        """Fail on implementations of hooks that do not exist (a misspelled name).

        Raises:
            PluginError: naming the unknown hook.
        """
        try:
            self._pm.check_pending()
        except pluggy.PluginValidationError as exc:
            raise PluginError(str(exc)) from exc

    def plugin_names(self) -> list[str]:
        """Names of the registered plugins, in registration order."""
        return [name for name, _ in self._pm.list_name_plugin()]

    def is_registered(self, plugin: object) -> bool:
        """Whether ``plugin`` is registered."""
        return bool(self._pm.is_registered(plugin))

    # ------------------------------------------------------------- calling
    def _call(self, name: str, **kwargs: Any) -> list[Any]:
        hook = getattr(self._pm.hook, name)
        try:
            return list(hook(**kwargs))
        except CrmkitError:
            raise
        except Exception as exc:
            raise HookError(name, f"{type(exc).__name__}: {exc}") from exc

    def _impls(self, name: str) -> Iterator[tuple[Any, Any]]:
        """``(implementation, call)`` pairs in pluggy's order, last registered first.

        For the hooks crmkit calls one implementation at a time (to name the
        plugin at fault, or to go on after a failure); wrappers are left out.
        """
        for impl in reversed(getattr(self._pm.hook, name).get_hookimpls()):
            if impl.hookwrapper or impl.wrapper:
                continue
            yield impl, impl.function

    def _flatten(self, name: str, results: Sequence[Any], item_type: type) -> list[Any]:
        items: list[Any] = []
        for result in results:
            if not isinstance(result, list | tuple):
                raise PluginError(f"{name} must return a list, got {type(result).__name__}")
            for item in result:
                if not isinstance(item, item_type):
                    raise PluginError(
                        f"{name} must return {item_type.__name__} items, got {type(item).__name__}"
                    )
                items.append(item)
        return items

    # ------------------------------------------------------- registration
    def register_masters(self, crm: CRM) -> list[MasterSeed]:
        """Every plugin's master seeds (``crmkit_register_masters``)."""
        name = "crmkit_register_masters"
        return self._flatten(name, self._call(name, crm=crm), MasterSeed)

    def register_pipelines(self, crm: CRM) -> list[Pipeline]:
        """Every plugin's pipelines, checked (``crmkit_register_pipelines``).

        Raises:
            PluginError: a pipeline breaks a rule of :func:`check_pipeline`, or
                two plugins register the same key.
        """
        name = "crmkit_register_pipelines"
        pipelines: list[Pipeline] = self._flatten(name, self._call(name, crm=crm), Pipeline)
        seen: set[str] = set()
        for pipeline in pipelines:
            if pipeline.key in seen:
                raise PluginError(f"pipeline {pipeline.key!r} is registered twice")
            seen.add(pipeline.key)
            try:
                check_pipeline(pipeline)
            except ValidationError as exc:
                raise PluginError(f"pipeline {pipeline.key!r} is invalid: {exc}") from exc
        return pipelines

    def register_store_backends(self, *, reserved: Collection[str] = ()) -> list[StoreBackend]:
        """Every plugin's store backends (``crmkit_register_store_backends``).

        Args:
            reserved: the schemes crmkit serves itself; no backend may take
                one of them, nor a ``scheme+driver`` variant of one.

        Raises:
            PluginError: a scheme registered twice or reserved, or not a list
                of StoreBackend.
        """
        name = "crmkit_register_store_backends"
        backends: list[StoreBackend] = self._flatten(name, self._call(name), StoreBackend)
        seen: set[str] = set()
        for backend in backends:
            base = backend.scheme.split("+", 1)[0]
            if base in reserved:
                raise PluginError(
                    f"store backend {backend.scheme!r} would take crmkit's own "
                    f"{base}:// URLs; register another scheme"
                )
            if backend.scheme in seen:
                raise PluginError(f"store backend {backend.scheme!r} is registered twice")
            seen.add(backend.scheme)
        return backends

    def _unique(
        self, items: list[Any], what: str, attr: str = "key", reserved: Collection[str] = ()
    ) -> list[Any]:
        """``items``, each ``attr`` once and none of ``reserved``; else ``PluginError``."""
        seen: set[str] = set(reserved)
        for item in items:
            value = getattr(item, attr)
            if value in seen:
                raise PluginError(f"{what} {value!r} is registered twice")
            seen.add(value)
        return items

    def register_interaction_kinds(self, crm: CRM) -> list[InteractionKind]:
        """Every plugin's interaction kinds (``crmkit_register_interaction_kinds``).

        Raises:
            PluginError: a key registered twice, or not a list of InteractionKind.
        """
        name = "crmkit_register_interaction_kinds"
        kinds = self._flatten(name, self._call(name, crm=crm), InteractionKind)
        return self._unique(kinds, "interaction kind")

    def register_case_types(self, crm: CRM) -> list[CaseType]:
        """Every plugin's case types (``crmkit_register_case_types``).

        Raises:
            PluginError: a key registered twice, or not a list of CaseType.
        """
        name = "crmkit_register_case_types"
        types = self._flatten(name, self._call(name, crm=crm), CaseType)
        return self._unique(types, "case type")

    def register_custom_fields(self, crm: CRM) -> list[CustomField]:
        """Every plugin's custom fields (``crmkit_register_custom_fields``).

        Raises:
            PluginError: an (entity, key) pair registered twice, or not a list
                of CustomField.
        """
        name = "crmkit_register_custom_fields"
        fields: list[CustomField] = self._flatten(name, self._call(name, crm=crm), CustomField)
        seen: set[tuple[str, str]] = set()
        for f in fields:
            if (f.entity, f.key) in seen:
                raise PluginError(f"custom field {f.entity}.{f.key} is registered twice")
            seen.add((f.entity, f.key))
        return fields

    def register_formats(self, crm: CRM) -> list[FileFormat]:
        """Every plugin's file formats (``crmkit_register_formats``).

        Raises:
            PluginError: a key registered twice, or not a list of FileFormat.
        """
        name = "crmkit_register_formats"
        formats = self._flatten(name, self._call(name, crm=crm), FileFormat)
        return self._unique(formats, "file format")

    def register_forecast_methods(
        self, crm: CRM, *, reserved: Collection[str] = ()
    ) -> list[ForecastMethod]:
        """Every plugin's forecast methods (``crmkit_register_forecast_methods``).

        Args:
            crm: the CRM asking.
            reserved: the names of the built-in methods, which no plugin may take.

        Raises:
            PluginError: a name registered twice or reserved, or not a list of
                ForecastMethod.
        """
        name = "crmkit_register_forecast_methods"
        methods = self._flatten(name, self._call(name, crm=crm), ForecastMethod)
        return self._unique(methods, "forecast method", "name", reserved)

    def register_rule_actions(self, crm: CRM) -> list[ActionKind]:
        """Every plugin's rule action kinds (``crmkit_register_rule_actions``).

        Raises:
            PluginError: a key registered twice, or not a list of ActionKind.
        """
        name = "crmkit_register_rule_actions"
        kinds = self._flatten(name, self._call(name, crm=crm), ActionKind)
        return self._unique(kinds, "rule action kind")

    def register_rules(self, crm: CRM) -> list[RuleSpec]:
        """Every plugin's automation rules (``crmkit_register_rules``).

        Raises:
            PluginError: a name registered twice, or not a list of RuleSpec.
        """
        name = "crmkit_register_rules"
        rules = self._flatten(name, self._call(name, crm=crm), RuleSpec)
        return self._unique(rules, "rule", "name")

    # --------------------------------------------------------- validation
    def validate(self, crm: CRM, entity: Entity, previous: Entity | None) -> None:
        """Let plugins veto a record about to be written (``crmkit_validate_<entity>``).

        Entity types without a validation hook (masters, users) pass.

        Args:
            crm: the CRM.
            entity: the record as it would be written.
            previous: ``None`` for a creation; the stored version for an update.

        Raises:
            ValidationError: a plugin vetoed the change (any crmkit error a
                plugin raises passes through unchanged).
            HookError: a plugin failed with anything else; ``reason`` starts
                with the plugin's name.
        """
        found = _VALIDATORS.get(type(entity))
        if found is None:
            return
        name, argument = found
        kwargs = {"crm": crm, argument: entity, "previous": previous}
        for impl, function in self._impls(name):
            try:
                function(**{arg: kwargs[arg] for arg in impl.argnames})
            except CrmkitError:
                raise
            except Exception as exc:
                raise HookError(name, f"{_plugin_name(impl)}: {type(exc).__name__}: {exc}") from exc

    def validates(self, cls: type[Entity]) -> bool:
        """Whether any plugin implements the validation hook of entity type ``cls``."""
        found = _VALIDATORS.get(cls)
        return found is not None and any(True for _ in self._impls(found[0]))

    def validate_organization(
        self, crm: CRM, organization: Organization, previous: Organization | None
    ) -> None:
        """Call ``crmkit_validate_organization`` (see :meth:`validate`)."""
        self.validate(crm, organization, previous)

    def validate_contact(self, crm: CRM, contact: Contact, previous: Contact | None) -> None:
        """Call ``crmkit_validate_contact`` (see :meth:`validate`)."""
        self.validate(crm, contact, previous)

    def validate_lead(self, crm: CRM, lead: Lead, previous: Lead | None) -> None:
        """Call ``crmkit_validate_lead`` (see :meth:`validate`)."""
        self.validate(crm, lead, previous)

    def validate_opportunity(
        self, crm: CRM, opportunity: Opportunity, previous: Opportunity | None
    ) -> None:
        """Call ``crmkit_validate_opportunity`` (see :meth:`validate`)."""
        self.validate(crm, opportunity, previous)

    def validate_interaction(
        self, crm: CRM, interaction: Interaction, previous: Interaction | None
    ) -> None:
        """Call ``crmkit_validate_interaction`` (see :meth:`validate`)."""
        self.validate(crm, interaction, previous)

    def validate_case(self, crm: CRM, case: Case, previous: Case | None) -> None:
        """Call ``crmkit_validate_case`` (see :meth:`validate`)."""
        self.validate(crm, case, previous)

    def validate_transition(
        self, crm: CRM, opportunity: Opportunity, source: str, target: str
    ) -> None:
        """Let plugins veto a stage change (``crmkit_validate_transition``).

        Raises:
            ValidationError: a plugin vetoed the move.
            HookError: a plugin failed with anything else.
        """
        self._call(
            "crmkit_validate_transition",
            crm=crm,
            opportunity=opportunity,
            source=source,
            target=target,
        )

    # --------------------------------------------------------- ERP bridge
    def organization_from_customer(self, crm: CRM, customer: object) -> OrganizationDraft | None:
        """The organization draft the first answering plugin maps ``customer`` to.

        Implementations run newest first until one returns a draft.

        Raises:
            HookError: an implementation raised (other than a crmkit error,
                which passes through) or returned something else than an
                :class:`~crmkit.OrganizationDraft`; ``reason`` starts with the
                plugin's name.
        """
        name = "crmkit_organization_from_customer"
        kwargs = {"crm": crm, "customer": customer}
        for impl, function in self._impls(name):
            try:
                result = function(**{arg: kwargs[arg] for arg in impl.argnames})
            except CrmkitError:
                raise
            except Exception as exc:
                raise HookError(name, f"{_plugin_name(impl)}: {type(exc).__name__}: {exc}") from exc
            if result is None:
                continue
            if not isinstance(result, OrganizationDraft):
                raise HookError(
                    name,
                    f"{_plugin_name(impl)}: returned {type(result).__name__}, "
                    "not an OrganizationDraft",
                )
            return result
        return None

    def create_sales_order(self, crm: CRM, opportunity: Opportunity) -> str | None:
        """The host's sales-order reference for a winning opportunity, if any.

        Implementations run newest first until one returns a reference.

        Raises:
            HookError: an implementation raised or returned something else than
                text; ``reason`` starts with the plugin's name.
        """
        name = "crmkit_create_sales_order"
        kwargs = {"crm": crm, "opportunity": opportunity}
        for impl, function in self._impls(name):
            try:
                result = function(**{arg: kwargs[arg] for arg in impl.argnames})
            except Exception as exc:  # any failure rolls the win back
                raise HookError(name, f"{_plugin_name(impl)}: {type(exc).__name__}: {exc}") from exc
            if result is None:
                continue
            if not isinstance(result, str) or not result.strip():
                raise HookError(name, f"{_plugin_name(impl)}: returned {result!r}, not a reference")
            return result.strip()
        return None

    # ------------------------------------------------------ notifications
    def _notify(self, name: str, **kwargs: Any) -> DeliveryReport:
        """Call every implementation of a notification, even when one raises.

        The change is committed already, so each plugin must hear of it exactly
        once: implementations are called one by one (pluggy's order: last
        registered first).  A failure is logged on :data:`logger` with its
        traceback and returned in the report; it is never raised.
        """
        failures: list[DeliveryFailure] = []
        for impl, function in self._impls(name):
            try:
                function(**{arg: kwargs[arg] for arg in impl.argnames})
            except Exception as exc:
                plugin = _plugin_name(impl)
                logger.exception(
                    "plugin %s failed in %s; the change stays committed",
                    plugin,
                    name,
                    extra={"hook": name, "plugin": plugin},
                )
                failures.append(DeliveryFailure(name, plugin, f"{type(exc).__name__}: {exc}", exc))
        return DeliveryReport(tuple(failures)) if failures else DELIVERED

    def hears_created(self, cls: type[Entity]) -> bool:
        """Whether any plugin implements the ``created`` notification of ``cls``.

        Bulk paths (``bulk_create``, imports) queue no notification for a type
        no plugin hears, so a long transaction does not keep every new record
        in memory until it commits.
        """
        name = _CREATED.get(cls)
        return name is not None and any(True for _ in self._impls(name))

    def organization_created(self, crm: CRM, organization: Organization) -> DeliveryReport:
        """Call ``crmkit_organization_created``."""
        return self._notify("crmkit_organization_created", crm=crm, organization=organization)

    def contact_created(self, crm: CRM, contact: Contact) -> DeliveryReport:
        """Call ``crmkit_contact_created``."""
        return self._notify("crmkit_contact_created", crm=crm, contact=contact)

    def opportunity_stage_changed(
        self, crm: CRM, opportunity: Opportunity, change: StageChange
    ) -> DeliveryReport:
        """Call ``crmkit_opportunity_stage_changed``."""
        return self._notify(
            "crmkit_opportunity_stage_changed", crm=crm, opportunity=opportunity, change=change
        )

    def opportunity_won(self, crm: CRM, opportunity: Opportunity) -> DeliveryReport:
        """Call ``crmkit_opportunity_won``."""
        return self._notify("crmkit_opportunity_won", crm=crm, opportunity=opportunity)

    def opportunity_lost(self, crm: CRM, opportunity: Opportunity) -> DeliveryReport:
        """Call ``crmkit_opportunity_lost``."""
        return self._notify("crmkit_opportunity_lost", crm=crm, opportunity=opportunity)

    def interaction_logged(self, crm: CRM, interaction: Interaction) -> DeliveryReport:
        """Call ``crmkit_interaction_logged``."""
        return self._notify("crmkit_interaction_logged", crm=crm, interaction=interaction)

    def lead_converted(self, crm: CRM, lead: Lead, conversion: LeadConversion) -> DeliveryReport:
        """Call ``crmkit_lead_converted``."""
        return self._notify("crmkit_lead_converted", crm=crm, lead=lead, conversion=conversion)

    def case_opened(self, crm: CRM, case: Case) -> DeliveryReport:
        """Call ``crmkit_case_opened``."""
        return self._notify("crmkit_case_opened", crm=crm, case=case)

    def case_closed(self, crm: CRM, case: Case) -> DeliveryReport:
        """Call ``crmkit_case_closed``."""
        return self._notify("crmkit_case_closed", crm=crm, case=case)

    def rule_fired(
        self, crm: CRM, rule: Rule, firing: RuleFiring, record: Entity, note: str | None
    ) -> DeliveryReport:
        """Call ``crmkit_rule_fired``."""
        return self._notify(
            "crmkit_rule_fired", crm=crm, rule=rule, firing=firing, record=record, note=note
        )

    # ------------------------------------------------------------ lookups
    def exchange_rate(self, crm: CRM, base: str, quote: str, on: date) -> Decimal | None:
        """The rate the first answering plugin gives for ``base`` in ``quote`` on ``on``.

        Implementations run newest first until one returns a rate.

        Raises:
            HookError: an implementation raised (other than a crmkit error,
                which passes through), or returned something else than a
                positive, finite ``Decimal`` (or ``int``); ``reason`` starts
                with the plugin's name.
        """
        name = "crmkit_exchange_rate"
        kwargs = {"crm": crm, "base": base, "quote": quote, "on": on}
        for impl, function in self._impls(name):
            try:
                result = function(**{arg: kwargs[arg] for arg in impl.argnames})
            except CrmkitError:
                raise
            except Exception as exc:
                raise HookError(name, f"{_plugin_name(impl)}: {type(exc).__name__}: {exc}") from exc
            if result is None:
                continue
            if isinstance(result, bool) or not isinstance(result, Decimal | int):
                raise HookError(
                    name,
                    f"{_plugin_name(impl)}: returned {type(result).__name__}, not a Decimal",
                )
            rate = Decimal(result)
            if not rate.is_finite() or rate <= 0:
                raise HookError(name, f"{_plugin_name(impl)}: returned {rate}, not a positive rate")
            return rate
        return None

    def access_policy(self, crm: CRM, principal: Principal) -> Policy | None:
        """The policy the first answering plugin gives for ``principal``'s scope.

        Raises:
            HookError: an implementation raised (other than a crmkit error,
                which passes through) or returned something else than a
                :class:`~crmkit.core.access.Policy`; ``reason`` starts with
                the plugin's name.
        """
        name = "crmkit_access_policy"
        kwargs = {"crm": crm, "principal": principal}
        for impl, function in self._impls(name):
            try:
                result = function(**{arg: kwargs[arg] for arg in impl.argnames})
            except CrmkitError:
                raise
            except Exception as exc:
                raise HookError(name, f"{_plugin_name(impl)}: {type(exc).__name__}: {exc}") from exc
            if result is None:
                continue
            if not isinstance(result, Policy):
                raise HookError(
                    name, f"{_plugin_name(impl)}: returned {type(result).__name__}, not a Policy"
                )
            return result
        return None

    def customer_revenue(
        self, crm: CRM, organization: Organization, since: datetime | None, until: datetime
    ) -> Money | None:
        """The host revenue the first answering plugin gives for ``organization``.

        Raises:
            HookError: an implementation raised (other than a crmkit error,
                which passes through) or returned something else than
                ``Money``; ``reason`` starts with the plugin's name.
        """
        name = "crmkit_customer_revenue"
        kwargs = {"crm": crm, "organization": organization, "since": since, "until": until}
        for impl, function in self._impls(name):
            try:
                result = function(**{arg: kwargs[arg] for arg in impl.argnames})
            except CrmkitError:
                raise
            except Exception as exc:
                raise HookError(name, f"{_plugin_name(impl)}: {type(exc).__name__}: {exc}") from exc
            if result is None:
                continue
            if not isinstance(result, Money):
                raise HookError(
                    name, f"{_plugin_name(impl)}: returned {type(result).__name__}, not Money"
                )
            return result
        return None

    # ----------------------------------------------------------- delivery
    def has_email_sender(self) -> bool:
        """Whether any plugin implements ``crmkit_send_email``."""
        return any(True for _ in self._impls("crmkit_send_email"))

    def send_email(self, crm: CRM, messages: Sequence[OutgoingEmail]) -> dict[str, SendOutcome]:
        """Hand a batch to the first sender that answers; the outcomes by ``message_id``.

        Implementations run newest first until one returns outcomes.  A
        message left without an outcome is missing from the result.

        Raises:
            HookError: an implementation raised, returned something else than
                a list of :class:`~crmkit.SendOutcome`, or none answered;
                ``reason`` starts with the plugin's name.
        """
        name = "crmkit_send_email"
        kwargs = {"crm": crm, "messages": list(messages)}
        for impl, function in self._impls(name):
            try:
                result = function(**{arg: kwargs[arg] for arg in impl.argnames})
            except Exception as exc:  # the batch is recorded as not sent
                raise HookError(name, f"{_plugin_name(impl)}: {type(exc).__name__}: {exc}") from exc
            if result is None:
                continue
            if not isinstance(result, list | tuple) or not all(
                isinstance(o, SendOutcome) for o in result
            ):
                raise HookError(name, f"{_plugin_name(impl)}: must return a list of SendOutcome")
            return {o.message_id: o for o in result}
        raise HookError(name, "no plugin sent the batch")


#: the notification of each entity type whose creation plugins hear of
_CREATED: Final[dict[type[Entity], str]] = {
    Organization: "crmkit_organization_created",
    Contact: "crmkit_contact_created",
}
