"""The typed PluginHost: registration, validation of plugins, entry points."""

from __future__ import annotations

import importlib.metadata
import types
from collections.abc import Iterator
from contextlib import AbstractContextManager
from typing import TypeVar
from uuid import UUID

import pluggy
import pytest

import crmkit
from crmkit import CRM, MasterSeed, Organization, PluginError, hookimpl
from crmkit.core.entities import Entity
from crmkit.plugins.host import BUILTIN_PLUGINS, PluginHost
from crmkit.stores.base import UnitOfWork
from crmkit.stores.memory import MemoryStore
from crmkit.testing import RecordingPlugin
from tests.conftest import FixedClock

E = TypeVar("E", bound=Entity)

BUILTIN = "crmkit.plugins.builtin_masters"
BUILTINS = [
    "crmkit.plugins.builtin_masters",
    "crmkit.plugins.builtin_pipelines",
    "crmkit.plugins.builtin_activities",
    "crmkit.plugins.builtin_automation",
    "crmkit.plugins.builtin_mail",
    "crmkit.io.formats",
]


class Misspelled:
    """Implements a hook that does not exist (British spelling)."""

    @hookimpl
    def crmkit_organisation_created(self, crm: CRM, organization: Organization) -> None:
        """Never called."""


class ExtraArgument:
    """Asks for an argument the hook does not provide."""

    @hookimpl
    def crmkit_organization_created(
        self, crm: CRM, organization: Organization, customer: object
    ) -> None:
        """Never called."""


class ClosingSpyStore:
    """A MemoryStore that counts how often it is closed."""

    def __init__(self) -> None:
        self.inner = MemoryStore()
        self.closed = 0

    def unit_of_work(self, *, write: bool = True) -> AbstractContextManager[UnitOfWork]:
        """Delegate to the memory store."""
        return self.inner.unit_of_work(write=write)

    def get(self, cls: type[E], id: UUID) -> E:
        """Delegate to the memory store."""
        return self.inner.get(cls, id)

    def close(self) -> None:
        """Count the call."""
        self.closed += 1


# ------------------------------------------------------------------- names


def test_plugin_names_list_the_builtin_plugin() -> None:
    """A default host has exactly the built-in plugins, by module name."""
    host = PluginHost()

    assert BUILTINS == host.plugin_names()
    assert tuple(BUILTINS) == BUILTIN_PLUGINS


def test_plugin_names_list_plugins_in_registration_order(clock: FixedClock) -> None:
    """Built-ins come first, then the caller's plugins in order."""
    first, second = RecordingPlugin(), RecordingPlugin()

    with crmkit.open(":memory:", plugins=[first, second], clock=clock) as crm:
        names = crm.plugins.plugin_names()

    assert len(BUILTINS) + 2 == len(names)
    assert BUILTINS == names[: len(BUILTINS)]
    assert crm.plugins.is_registered(first)
    assert crm.plugins.is_registered(second)


def test_builtins_false_registers_no_builtin_plugin() -> None:
    """PluginHost(builtins=False) starts empty."""
    host = PluginHost(builtins=False)

    assert [] == host.plugin_names()


def test_register_adds_a_plugin_under_a_name() -> None:
    """register(plugin, name=...) makes it known under that name."""
    host = PluginHost(builtins=False)
    recorder = RecordingPlugin()

    host.register(recorder, name="recorder")

    assert ["recorder"] == host.plugin_names()
    assert host.is_registered(recorder)
    assert not host.is_registered(RecordingPlugin())


def test_a_module_can_be_a_plugin(clock: FixedClock) -> None:
    """Plugins may be modules with hook functions, like the built-in one."""
    module = types.ModuleType("crmkit_zones")

    @hookimpl
    def crmkit_register_masters(crm: CRM) -> list[MasterSeed]:
        return [MasterSeed(kind="zone", key="norte", name="North")]

    module.crmkit_register_masters = crmkit_register_masters  # type: ignore[attr-defined]

    with crmkit.open(":memory:", plugins=[module], clock=clock) as crm:
        assert "North" == crm.zones.get_by_key("norte").name


# ------------------------------------------------------------------ errors


def test_misspelled_hook_raises_plugin_error_at_open(clock: FixedClock) -> None:
    """A @hookimpl for a hook that does not exist is refused when the CRM opens."""
    with pytest.raises(PluginError) as info:
        crmkit.open(":memory:", plugins=[Misspelled()], clock=clock)

    assert "crmkit_organisation_created" in str(info.value)


def test_misspelled_hook_raises_plugin_error_on_register() -> None:
    """The host refuses it on register() too."""
    host = PluginHost()

    with pytest.raises(PluginError):
        host.register(Misspelled())


def test_plugin_error_at_open_closes_the_store(clock: FixedClock) -> None:
    """A refused plugin does not leak the store open() was given."""
    store = ClosingSpyStore()

    with pytest.raises(PluginError):
        crmkit.open(store=store, plugins=[Misspelled()], clock=clock)

    assert 1 == store.closed


def test_hook_with_an_unknown_argument_raises_plugin_error(clock: FixedClock) -> None:
    """An implementation asking for an argument the spec lacks is refused."""
    with pytest.raises(PluginError) as info:
        crmkit.open(":memory:", plugins=[ExtraArgument()], clock=clock)

    assert "customer" in str(info.value)


class MisspelledValidator:
    """A validation hook with the British spelling."""

    @hookimpl
    def crmkit_validate_organisation(self, organization: Organization) -> None:
        """Never called."""


class NotAGeneratorWrapper:
    """An old-style hook wrapper that is not a generator: pluggy refuses it."""

    @hookimpl(hookwrapper=True)
    def crmkit_organization_created(self, organization: Organization) -> None:
        """Never called."""


class WrongArgumentForANewHook:
    """A validator asking for an argument its hook does not give."""

    @hookimpl
    def crmkit_validate_contact(self, contact: object, organization: Organization) -> None:
        """Never called."""


@pytest.mark.parametrize(
    ("plugin", "named"),
    [
        (MisspelledValidator(), "crmkit_validate_organisation"),
        (NotAGeneratorWrapper(), "crmkit_organization_created"),
        (WrongArgumentForANewHook(), "organization"),
    ],
    ids=["misspelled-validator", "wrapper-not-generator", "unknown-argument"],
)
def test_pluggys_validation_errors_surface_as_plugin_errors(
    clock: FixedClock, plugin: object, named: str
) -> None:
    """No pluggy exception escapes: each refusal is a PluginError naming what is wrong."""
    with pytest.raises(PluginError) as info:
        crmkit.open(":memory:", plugins=[plugin], clock=clock)

    assert named in str(info.value)
    assert isinstance(info.value.__cause__, pluggy.PluginValidationError)


def test_check_pending_catches_a_misspelled_hook_registered_on_the_plugin_manager() -> None:
    """check_pending() is what refuses unknown hook names, also when called on its own."""
    host = PluginHost(builtins=False)
    host._pm.register(Misspelled())  # behind the host's back: no check yet

    with pytest.raises(PluginError) as info:
        host.check_pending()

    assert "crmkit_organisation_created" in str(info.value)


def test_registering_the_same_plugin_twice_raises_plugin_error(clock: FixedClock) -> None:
    """The same object twice in plugins= is refused."""
    recorder = RecordingPlugin()

    with pytest.raises(PluginError):
        crmkit.open(":memory:", plugins=[recorder, recorder], clock=clock)


def test_register_of_a_registered_plugin_raises_plugin_error() -> None:
    """host.register() of a plugin already registered is refused; it stays registered once."""
    host = PluginHost(builtins=False)
    recorder = RecordingPlugin()
    host.register(recorder)

    with pytest.raises(PluginError):
        host.register(recorder)

    assert 1 == len(host.plugin_names())


def test_registering_a_builtin_again_raises_plugin_error() -> None:
    """The built-in plugin module cannot be registered a second time."""
    host = PluginHost()

    with pytest.raises(PluginError):
        host.register(importlib.import_module(BUILTIN))


# ------------------------------------------------------------ entry points


class FakeDistribution:
    """Just enough of importlib.metadata.Distribution for pluggy."""

    def __init__(self, *entry_points: importlib.metadata.EntryPoint) -> None:
        self.entry_points = list(entry_points)
        self.metadata = {"name": "crmkit-fake"}
        self.version = "1.0"


#: The plugin object a fake entry point loads.
ENTRY_POINT_PLUGIN = RecordingPlugin(
    seeds=[MasterSeed(kind="market", key="from-entry-point", name="From an entry point")]
)


@pytest.fixture
def fake_entry_points(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """One installed distribution with a crmkit entry point and an unrelated one."""
    dist = FakeDistribution(
        importlib.metadata.EntryPoint(
            name="fake", value="tests.plugins.test_host:ENTRY_POINT_PLUGIN", group="crmkit"
        ),
        importlib.metadata.EntryPoint(
            name="other", value="no_such_module:thing", group="someone_else"
        ),
    )
    monkeypatch.setattr(importlib.metadata, "distributions", lambda: [dist])
    ENTRY_POINT_PLUGIN.clear()
    yield
    ENTRY_POINT_PLUGIN.clear()


def test_load_entry_points_with_no_third_party_plugins_works(clock: FixedClock) -> None:
    """load_entry_points=True in an environment without crmkit plugins adds none."""
    with crmkit.open(":memory:", load_entry_points=True, clock=clock) as crm:
        assert BUILTINS == crm.plugins.plugin_names()
        assert 8 == crm.sources.count()


@pytest.mark.usefixtures("fake_entry_points")
def test_load_entry_points_registers_installed_plugins(clock: FixedClock) -> None:
    """A plugin under the crmkit entry-point group is loaded and its hooks run."""
    with crmkit.open(":memory:", load_entry_points=True, clock=clock) as crm:
        assert [*BUILTINS, "fake"] == crm.plugins.plugin_names()
        assert "From an entry point" == crm.markets.get_by_key("from-entry-point").name
        assert [
            "crmkit_register_store_backends",
            "crmkit_register_pipelines",
            "crmkit_register_interaction_kinds",
            "crmkit_register_case_types",
            "crmkit_register_custom_fields",
            "crmkit_register_formats",
            "crmkit_register_rule_actions",
            "crmkit_register_rules",
            "crmkit_register_masters",
        ] == ENTRY_POINT_PLUGIN.names()


@pytest.mark.usefixtures("fake_entry_points")
def test_entry_points_are_not_loaded_unless_asked(clock: FixedClock) -> None:
    """Without load_entry_points=True installed plugins stay out."""
    with crmkit.open(":memory:", clock=clock) as crm:
        assert BUILTINS == crm.plugins.plugin_names()
        assert 0 == crm.markets.count()
        assert [] == ENTRY_POINT_PLUGIN.calls


def test_entry_point_that_fails_to_load_raises_plugin_error(
    monkeypatch: pytest.MonkeyPatch, clock: FixedClock
) -> None:
    """A broken third-party plugin is a PluginError, not an ImportError."""
    dist = FakeDistribution(
        importlib.metadata.EntryPoint(
            name="broken", value="crmkit_no_such_plugin_module:plugin", group="crmkit"
        )
    )
    monkeypatch.setattr(importlib.metadata, "distributions", lambda: [dist])

    with pytest.raises(PluginError) as info:
        crmkit.open(":memory:", load_entry_points=True, clock=clock)

    assert isinstance(info.value.__cause__, ImportError)
