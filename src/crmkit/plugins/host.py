"""The typed plugin host: the only code that touches ``pm.hook``.

pluggy's hook callers return ``Any``; :class:`PluginHost` wraps each hook in a
typed method, checks what plugins return, and turns pluggy's errors into
crmkit's (:class:`~crmkit.PluginError` for registration problems,
:class:`~crmkit.HookError` for a hook that raised).

.. versionadded:: 0.1
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import pluggy

from crmkit.core.cases import Case, CaseType
from crmkit.core.entities import Contact, MasterSeed, Organization
from crmkit.core.errors import CrmkitError, HookError, PluginError, ValidationError
from crmkit.core.interactions import Interaction, InteractionKind
from crmkit.core.leads import Lead, LeadConversion
from crmkit.core.opportunities import Opportunity, StageChange
from crmkit.core.pipelines import Pipeline, check_pipeline
from crmkit.plugins import PROJECT, hookspecs

if TYPE_CHECKING:
    from crmkit.app import CRM

__all__ = ["BUILTIN_PLUGINS", "PluginHost"]

#: Modules registered in every host unless ``builtins=False``.
BUILTIN_PLUGINS: tuple[str, ...] = (
    "crmkit.plugins.builtin_masters",
    "crmkit.plugins.builtin_pipelines",
    "crmkit.plugins.builtin_activities",
)


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

    def _unique(self, items: list[Any], what: str) -> list[Any]:
        seen: set[str] = set()
        for item in items:
            if item.key in seen:
                raise PluginError(f"{what} {item.key!r} is registered twice")
            seen.add(item.key)
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

    # --------------------------------------------------------- validation
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
    def create_sales_order(self, crm: CRM, opportunity: Opportunity) -> str | None:
        """The host's sales-order reference for a winning opportunity, if any.

        Implementations run newest first until one returns a reference.

        Raises:
            HookError: an implementation raised or returned something else than
                text; ``reason`` starts with the plugin's name.
        """
        name = "crmkit_create_sales_order"
        for impl in reversed(getattr(self._pm.hook, name).get_hookimpls()):
            kwargs = {"crm": crm, "opportunity": opportunity}
            try:
                result = impl.function(**{arg: kwargs[arg] for arg in impl.argnames})
            except Exception as exc:  # any failure rolls the win back
                raise HookError(name, f"{impl.plugin_name}: {type(exc).__name__}: {exc}") from exc
            if result is None:
                continue
            if not isinstance(result, str) or not result.strip():
                raise HookError(name, f"{impl.plugin_name}: returned {result!r}, not a reference")
            return result.strip()
        return None

    # ------------------------------------------------------ notifications
    def _notify(self, name: str, **kwargs: Any) -> None:
        """Call every implementation of a notification, even when one raises.

        The change is committed already, so each plugin must hear of it exactly
        once: implementations are called one by one (pluggy's order: last
        registered first) and the first failure is raised after all ran.
        """
        failure: HookError | None = None
        for impl in reversed(getattr(self._pm.hook, name).get_hookimpls()):
            try:
                impl.function(**{arg: kwargs[arg] for arg in impl.argnames})
            except Exception as exc:
                if failure is None:
                    failure = HookError(
                        name, f"{impl.plugin_name}: {type(exc).__name__}: {exc}", committed=True
                    )
                    failure.__cause__ = exc
        if failure is not None:
            raise failure

    def organization_created(self, crm: CRM, organization: Organization) -> None:
        """Call ``crmkit_organization_created``."""
        self._notify("crmkit_organization_created", crm=crm, organization=organization)

    def contact_created(self, crm: CRM, contact: Contact) -> None:
        """Call ``crmkit_contact_created``."""
        self._notify("crmkit_contact_created", crm=crm, contact=contact)

    def opportunity_stage_changed(
        self, crm: CRM, opportunity: Opportunity, change: StageChange
    ) -> None:
        """Call ``crmkit_opportunity_stage_changed``."""
        self._notify(
            "crmkit_opportunity_stage_changed", crm=crm, opportunity=opportunity, change=change
        )

    def opportunity_won(self, crm: CRM, opportunity: Opportunity) -> None:
        """Call ``crmkit_opportunity_won``."""
        self._notify("crmkit_opportunity_won", crm=crm, opportunity=opportunity)

    def opportunity_lost(self, crm: CRM, opportunity: Opportunity) -> None:
        """Call ``crmkit_opportunity_lost``."""
        self._notify("crmkit_opportunity_lost", crm=crm, opportunity=opportunity)

    def interaction_logged(self, crm: CRM, interaction: Interaction) -> None:
        """Call ``crmkit_interaction_logged``."""
        self._notify("crmkit_interaction_logged", crm=crm, interaction=interaction)

    def lead_converted(self, crm: CRM, lead: Lead, conversion: LeadConversion) -> None:
        """Call ``crmkit_lead_converted``."""
        self._notify("crmkit_lead_converted", crm=crm, lead=lead, conversion=conversion)

    def case_opened(self, crm: CRM, case: Case) -> None:
        """Call ``crmkit_case_opened``."""
        self._notify("crmkit_case_opened", crm=crm, case=case)

    def case_closed(self, crm: CRM, case: Case) -> None:
        """Call ``crmkit_case_closed``."""
        self._notify("crmkit_case_closed", crm=crm, case=case)
