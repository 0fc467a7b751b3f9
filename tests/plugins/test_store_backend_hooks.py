"""crmkit_register_store_backends: plugins serve URL schemes of their own.

Hooks tested here by name: ``crmkit_register_store_backends``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import crmkit
from crmkit import HookError, PluginError, StorageError, StoreBackend, ValidationError, hookimpl
from crmkit.stores.base import Store
from crmkit.stores.memory import MemoryStore
from crmkit.stores.sql import SqlStore
from crmkit.testing import HookCall, RecordingPlugin
from tests.conftest import FixedClock


class SharedMemory:
    """Serves ``shared-memory://<name>``: one MemoryStore per name, for every CRM opened on it."""

    def __init__(self) -> None:
        self.stores: dict[str, MemoryStore] = {}
        self.opened: list[str] = []

    @hookimpl
    def crmkit_register_store_backends(self) -> list[StoreBackend]:
        return [StoreBackend(scheme="shared-memory", open=self.open)]

    def open(self, url: str) -> MemoryStore:
        self.opened.append(url)
        return self.stores.setdefault(url.split("://", 1)[1], MemoryStore())


class SqliteFolder:
    """Serves ``crm-folder://<name>``: a SQLite file named after the URL, in one folder."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    @hookimpl
    def crmkit_register_store_backends(self) -> list[StoreBackend]:
        return [StoreBackend(scheme="crm-folder", open=self.open)]

    def open(self, url: str) -> SqlStore:
        name = url.split("://", 1)[1]
        return SqlStore(f"sqlite+pysqlite:///{self.folder / name}.db")


class Backends:
    """A plugin whose crmkit_register_store_backends returns ``result``."""

    def __init__(self, result: object) -> None:
        self.result = result

    @hookimpl
    def crmkit_register_store_backends(self) -> object:
        return self.result


def backend(scheme: str, store: object) -> StoreBackend:
    """A backend serving ``scheme`` that opens ``store`` (or raises it, if an exception)."""

    def open_store(url: str) -> Store:
        if isinstance(store, Exception):
            raise store
        return store  # type: ignore[return-value]

    return StoreBackend(scheme=scheme, open=open_store)


# ---------------------------------------------------------------- opening


def test_open_hands_a_url_of_the_plugins_scheme_to_its_backend(clock: FixedClock) -> None:
    """crmkit.open("shared-memory://sales") runs on the store the backend returned for that URL."""
    plugin = SharedMemory()

    with crmkit.open("shared-memory://sales", plugins=[plugin], clock=clock) as crm:
        acme = crm.organizations.create(name="Acme")

        assert crm.store is plugin.stores["sales"]
        assert ["shared-memory://sales"] == plugin.opened
    with crmkit.open("shared-memory://sales", plugins=[plugin], clock=clock) as again:
        assert acme == again.organizations.get(acme.id)
    with crmkit.open("shared-memory://other", plugins=[plugin], clock=clock) as other:
        assert 0 == other.organizations.count()


def test_the_url_scheme_matches_whatever_its_case(clock: FixedClock) -> None:
    """URL schemes are case-insensitive; the backend receives the URL as given."""
    plugin = SharedMemory()

    with crmkit.open("Shared-Memory://sales", plugins=[plugin], clock=clock) as crm:
        assert crm.store is plugin.stores["sales"]
        assert ["Shared-Memory://sales"] == plugin.opened


def test_a_backend_may_open_a_real_database(tmp_path: Path, clock: FixedClock) -> None:
    """A backend wrapping SqlStore keeps the data in its SQLite file, readable by path too."""
    plugin = SqliteFolder(tmp_path)

    with crmkit.open("crm-folder://north", plugins=[plugin], clock=clock) as crm:
        acme = crm.organizations.create(name="Acme")
        assert isinstance(crm.store, SqlStore)

    with crmkit.open(tmp_path / "north.db", clock=clock) as by_path:
        assert acme == by_path.organizations.get(acme.id)


def test_built_in_urls_still_open_with_a_backend_registered(
    tmp_path: Path, clock: FixedClock
) -> None:
    """The built-in URLs (":memory:", a path, sqlite://) keep their built-in stores."""
    plugin = SharedMemory()
    urls = [":memory:", "memory://", str(tmp_path / "a.db"), f"sqlite:///{tmp_path / 'b.db'}"]

    for url in urls:
        with crmkit.open(url, plugins=[plugin], clock=clock) as crm:
            assert isinstance(crm.store, MemoryStore | SqlStore)
    assert [] == plugin.opened


def test_builtins_false_keeps_the_plugins_backends(clock: FixedClock) -> None:
    """builtins=False turns off crmkit's built-in plugins, not the plugins' backends."""
    plugin = SharedMemory()

    with crmkit.open("shared-memory://x", plugins=[plugin], builtins=False, clock=clock) as crm:
        assert crm.store is plugin.stores["x"]


# ------------------------------------------------------------ unknown URLs


def test_a_url_no_backend_serves_is_a_validation_error(clock: FixedClock) -> None:
    """An unknown scheme is a ValidationError on ``url`` that lists the schemes plugins serve."""
    with pytest.raises(ValidationError) as info:
        crmkit.open("redis://localhost/0", plugins=[SharedMemory()], clock=clock)

    assert ("url", "url", "redis://localhost/0") == (
        info.value.field,
        info.value.code,
        info.value.value,
    )
    assert "shared-memory://" in str(info.value)


def test_a_scheme_variant_is_not_the_scheme(clock: FixedClock) -> None:
    """A backend serves exactly its scheme: ``shared-memory+x://`` is unknown."""
    with pytest.raises(ValidationError) as info:
        crmkit.open("shared-memory+x://sales", plugins=[SharedMemory()], clock=clock)

    assert "url" == info.value.field


# ------------------------------------------------------------ registration


@pytest.mark.parametrize(
    "scheme", ["memory", "sqlite", "postgresql", "sqlite+pysqlcipher", "postgresql+asyncpg"]
)
def test_a_backend_cannot_take_a_built_in_scheme(clock: FixedClock, scheme: str) -> None:
    """Taking crmkit's own scheme (or a driver variant) is a PluginError, even for ":memory:"."""
    store = MemoryStore()

    with pytest.raises(PluginError) as info:
        crmkit.open(":memory:", plugins=[Backends([backend(scheme, store)])], clock=clock)

    assert repr(scheme) in str(info.value)


def test_a_scheme_registered_twice_is_a_plugin_error(clock: FixedClock) -> None:
    """Two plugins serving the same scheme cannot both win: PluginError at open()."""
    with pytest.raises(PluginError) as info:
        crmkit.open(":memory:", plugins=[SharedMemory(), SharedMemory()], clock=clock)

    assert "'shared-memory' is registered twice" in str(info.value)


def test_a_plugin_error_closes_the_store_given(clock: FixedClock) -> None:
    """open(store=...) with a clashing backend fails before the CRM exists, store closed."""
    closed: list[bool] = []

    class Closing(MemoryStore):
        def close(self) -> None:
            closed.append(True)

    with pytest.raises(PluginError):
        crmkit.open(
            store=Closing(), plugins=[Backends([backend("sqlite", MemoryStore())])], clock=clock
        )

    assert [True] == closed


@pytest.mark.parametrize(
    "result",
    ["shared-memory", {"scheme": "x"}, [("x", MemoryStore)], [MemoryStore()]],
    ids=["str", "dict", "list-of-tuples", "list-of-stores"],
)
def test_a_bad_return_value_is_a_plugin_error(clock: FixedClock, result: object) -> None:
    """Anything but a list of StoreBackend is a PluginError naming the hook."""
    with pytest.raises(PluginError) as info:
        crmkit.open(":memory:", plugins=[Backends(result)], clock=clock)

    assert "crmkit_register_store_backends" in str(info.value)


def test_a_raising_registration_is_a_hook_error(clock: FixedClock) -> None:
    """The hook raising is a HookError (committed=False): open() fails, nothing opened."""

    class Broken:
        @hookimpl
        def crmkit_register_store_backends(self) -> list[StoreBackend]:
            raise RuntimeError("config missing")

    with pytest.raises(HookError) as info:
        crmkit.open(":memory:", plugins=[Broken()], clock=clock)

    assert ("crmkit_register_store_backends", False) == (info.value.hook, info.value.committed)
    assert isinstance(info.value.__cause__, RuntimeError)


@pytest.mark.parametrize("scheme", ["", "1db", "my_db", "My-DB", "x" * 65, None])
def test_store_backend_refuses_a_bad_scheme(scheme: object) -> None:
    """A scheme is RFC 3986's, lower case: ValidationError on ``scheme``, code url."""
    with pytest.raises(ValidationError) as info:
        StoreBackend(scheme=scheme, open=fresh_memory)

    assert ("scheme", "url", scheme) == (info.value.field, info.value.code, info.value.value)


def test_store_backend_refuses_an_opener_that_is_not_callable() -> None:
    """``open`` must be callable: ValidationError on ``open``, code type."""
    with pytest.raises(ValidationError) as info:
        StoreBackend(scheme="x", open="MemoryStore")  # type: ignore[arg-type]

    assert ("open", "type") == (info.value.field, info.value.code)


def fresh_memory(url: str) -> MemoryStore:
    """A new, empty MemoryStore, whatever the URL."""
    return MemoryStore()


def test_store_backends_are_values() -> None:
    """StoreBackend is frozen and compares by value."""
    first = StoreBackend(scheme="x", open=fresh_memory)

    assert StoreBackend(scheme="x", open=fresh_memory) == first
    with pytest.raises(AttributeError):
        first.scheme = "y"  # type: ignore[misc]


# ------------------------------------------------------- a failing backend


def test_a_backend_that_raises_is_a_hook_error(clock: FixedClock) -> None:
    """Its exception becomes a HookError naming the hook and the scheme, with the cause."""
    error = ConnectionRefusedError("no server")

    with pytest.raises(HookError) as info:
        crmkit.open("far://db", plugins=[Backends([backend("far", error)])], clock=clock)

    assert "crmkit_register_store_backends" == info.value.hook
    assert "store backend 'far': ConnectionRefusedError: no server" == info.value.reason
    assert info.value.__cause__ is error


def test_a_backend_raising_a_crmkit_error_passes_it_through(clock: FixedClock) -> None:
    """A StorageError (or any crmkit error) from the backend reaches the caller unchanged."""
    error = StorageError("cluster is read-only", retryable=True)

    with pytest.raises(StorageError) as info:
        crmkit.open("far://db", plugins=[Backends([backend("far", error)])], clock=clock)

    assert info.value is error


def test_a_backend_returning_no_store_is_a_hook_error(clock: FixedClock) -> None:
    """A return value without the store's methods is refused before the CRM uses it."""
    with pytest.raises(HookError) as info:
        crmkit.open("far://db", plugins=[Backends([backend("far", object())])], clock=clock)

    assert "returned object, not a store (no unit_of_work, get, close)" in info.value.reason


def test_a_failure_after_the_backend_opened_closes_its_store(clock: FixedClock) -> None:
    """When open() fails once the store is open (a bad argument), the store is closed."""
    closed: list[bool] = []

    class Closing(MemoryStore):
        def close(self) -> None:
            closed.append(True)

    plugin = Backends([backend("far", Closing())])
    with pytest.raises(ValidationError):
        crmkit.open("far://db", plugins=[plugin], clock=clock, default_region="XX")

    assert [True] == closed


# ------------------------------------------------------------------- calls


def test_register_store_backends_is_called_once_with_no_arguments(clock: FixedClock) -> None:
    """There is no CRM yet: the hook is called once at open(), with no arguments."""
    recorder = RecordingPlugin()

    with crmkit.open(":memory:", plugins=[recorder], clock=clock):
        assert [HookCall("crmkit_register_store_backends", {})] == recorder.calls_to(
            "crmkit_register_store_backends"
        )
        assert "crmkit_register_store_backends" == recorder.names()[0]


def test_register_store_backends_is_called_with_a_store_given_too(clock: FixedClock) -> None:
    """open(store=...) asks too, so a plugin's bad registration fails the same way everywhere."""
    recorder = RecordingPlugin()

    with crmkit.open(store=MemoryStore(), plugins=[recorder], clock=clock):
        assert 1 == len(recorder.calls_to("crmkit_register_store_backends"))
