"""Every hook in crmkit.plugins.hookspecs, called the way plugins rely on.

Hooks tested here by name: ``crmkit_register_masters``,
``crmkit_organization_created``, ``crmkit_contact_created``.
"""

from __future__ import annotations

import inspect
import logging
import threading
from pathlib import Path

import pytest

import crmkit
from crmkit import (
    CRM,
    Contact,
    HookError,
    MasterSeed,
    Organization,
    PluginError,
    ValidationError,
    hookimpl,
)
from crmkit.app import Transaction
from crmkit.plugins import hookspecs
from crmkit.stores.memory import MemoryStore
from crmkit.testing import HookCall, RecordingPlugin
from tests.conftest import FixedClock

HOOK_NAMES = sorted(
    name
    for name, value in vars(hookspecs).items()
    if name.startswith("crmkit_") and inspect.isfunction(value)
)


class Boom(Exception):
    """Raised by tests to abandon a block."""


def open_crm(*plugins: object, clock: FixedClock, store: MemoryStore | None = None) -> CRM:
    """A memory CRM (or one on ``store``) with ``plugins`` and the fixed clock."""
    return crmkit.open(store=store or MemoryStore(), plugins=plugins, clock=clock)


#: The test module of tests/plugins/ that tests each hook.
TESTED_IN = {
    "test_hooks.py": [
        "crmkit_contact_created",
        "crmkit_organization_created",
        "crmkit_register_masters",
    ],
    "test_opportunity_hooks.py": [
        "crmkit_create_sales_order",
        "crmkit_opportunity_lost",
        "crmkit_opportunity_stage_changed",
        "crmkit_opportunity_won",
        "crmkit_register_pipelines",
        "crmkit_validate_transition",
    ],
    "test_activity_hooks.py": [
        "crmkit_case_closed",
        "crmkit_case_opened",
        "crmkit_interaction_logged",
        "crmkit_lead_converted",
        "crmkit_register_case_types",
        "crmkit_register_interaction_kinds",
    ],
    "test_validation_hooks.py": [
        "crmkit_validate_case",
        "crmkit_validate_contact",
        "crmkit_validate_interaction",
        "crmkit_validate_lead",
        "crmkit_validate_opportunity",
        "crmkit_validate_organization",
    ],
    "test_bridge_hooks.py": ["crmkit_organization_from_customer"],
    "test_custom_field_hooks.py": ["crmkit_register_custom_fields"],
    "test_lookup_hooks.py": ["crmkit_exchange_rate"],
    "test_customer_revenue_hook.py": ["crmkit_customer_revenue"],
    "test_store_backend_hooks.py": ["crmkit_register_store_backends"],
    "test_format_hooks.py": ["crmkit_register_formats"],
    "test_forecast_hooks.py": ["crmkit_register_forecast_methods"],
    "test_automation_hooks.py": [
        "crmkit_register_rule_actions",
        "crmkit_register_rules",
        "crmkit_rule_fired",
    ],
    "test_send_email_hook.py": ["crmkit_send_email"],
    "test_access_policy_hook.py": ["crmkit_access_policy"],
}


def test_the_hooks_tested_here_are_all_the_hooks() -> None:
    """The modules of TESTED_IN cover exactly the hooks, and each names the hooks it tests."""
    here = Path(__file__).parent
    missing = [
        f"{module}: {name}"
        for module, names in TESTED_IN.items()
        for name in names
        if name not in (here / module).read_text("utf-8")
    ]

    assert HOOK_NAMES == sorted(name for names in TESTED_IN.values() for name in names)
    assert [] == missing


# =================================================== crmkit_register_masters


class Seeds:
    """A plugin whose crmkit_register_masters returns ``result``."""

    def __init__(self, result: object) -> None:
        self.result = result

    @hookimpl
    def crmkit_register_masters(self, crm: CRM) -> object:
        return self.result


RETAIL = MasterSeed(kind="market", key="retail", name="Retail", name_es="Comercio minorista")
NORTH = MasterSeed(kind="zone", key="norte", name="North", name_es="Norte")


def test_register_masters_seeds_are_created_at_open(clock: FixedClock) -> None:
    """A plugin's seeds become master entries with the seed's key and labels."""
    with open_crm(Seeds([RETAIL, NORTH]), clock=clock) as crm:
        retail = crm.markets.get_by_key("retail")
        north = crm.zones.get_by_key("norte")

        assert ("Retail", "Comercio minorista") == (retail.name, retail.name_es)
        assert ("North", "Norte") == (north.name, north.label("es"))
        assert 8 == crm.sources.count()  # the built-in seeds are still there


def test_register_masters_receives_the_crm_being_opened(clock: FixedClock) -> None:
    """crmkit_register_masters is called once at open with crm= the new CRM."""
    recorder = RecordingPlugin(seeds=[RETAIL])

    with open_crm(recorder, clock=clock) as crm:
        assert [HookCall("crmkit_register_masters", {"crm": crm})] == recorder.calls_to(
            "crmkit_register_masters"
        )
        assert "retail" == crm.markets.get_by_key("retail").key


def test_register_masters_seeds_loss_reasons_that_lose_accepts(clock: FixedClock) -> None:
    """Loss reasons are a master kind: a seeded one is a reason ``lose`` takes by key."""
    denied = MasterSeed(kind="loss_reason", key="permit-denied", name="Permit denied")

    with open_crm(Seeds([denied]), clock=clock) as crm:
        opp = crm.opportunities.create(
            name="Roof", organization=crm.organizations.create(name="Acme")
        )
        lost = crm.opportunities.lose(opp.id, reason="permit-denied")

        assert lost.close_reason_id is not None
        assert "permit-denied" == crm.loss_reasons.get(lost.close_reason_id).key
        assert "price" in [r.key for r in crm.loss_reasons.find()]  # built-ins kept


def test_register_masters_creates_only_missing_entries(clock: FixedClock) -> None:
    """An entry that exists already (by kind and key) is left as the user made it."""
    store = MemoryStore()
    with crmkit.open(store=store, clock=clock) as crm:
        mine = crm.markets.create(name="Our retail", key="retail")

    with open_crm(Seeds([RETAIL, NORTH]), store=store, clock=clock) as crm:
        assert mine == crm.markets.get_by_key("retail")
        assert 1 == crm.markets.count()
        assert 1 == crm.zones.count()


def test_register_masters_is_idempotent(clock: FixedClock) -> None:
    """Seeding again creates nothing: seed_masters() returns 0 and counts stay."""
    with open_crm(Seeds([RETAIL, NORTH]), clock=clock) as crm:
        before = (crm.markets.count(), crm.zones.count(), crm.sources.count())

        assert 0 == crm.seed_masters()
        assert before == (crm.markets.count(), crm.zones.count(), crm.sources.count())


def test_register_masters_same_key_for_different_kinds_makes_both(clock: FixedClock) -> None:
    """Keys are unique within a kind only."""
    seeds = [RETAIL, MasterSeed(kind="zone", key="retail", name="Retail park")]

    with open_crm(Seeds(seeds), clock=clock) as crm:
        assert crm.markets.get_by_key("retail").id != crm.zones.get_by_key("retail").id


def test_register_masters_from_two_plugins_with_the_same_key_creates_one_entry(
    clock: FixedClock,
) -> None:
    """Two plugins seeding the same kind and key produce a single entry."""
    other = MasterSeed(kind="market", key="retail", name="Retail (other plugin)")

    with open_crm(Seeds([RETAIL]), Seeds([other]), clock=clock) as crm:
        assert 1 == crm.markets.count()


def test_register_masters_accepts_a_tuple_and_ignores_none(clock: FixedClock) -> None:
    """A tuple counts as a list; a plugin returning None contributes nothing."""
    with open_crm(Seeds((RETAIL,)), Seeds(None), clock=clock) as crm:
        assert ["retail"] == [m.key for m in crm.markets.find()]


def test_register_masters_with_builtins_off_seeds_only_the_plugin(clock: FixedClock) -> None:
    """builtins=False leaves only the plugins' seeds."""
    with crmkit.open(":memory:", plugins=[Seeds([NORTH])], builtins=False, clock=clock) as crm:
        assert (0, 0, 1) == (crm.sources.count(), crm.positions.count(), crm.zones.count())


@pytest.mark.parametrize(
    "result",
    [
        "retail",
        RETAIL,
        {"kind": "market", "key": "retail", "name": "Retail"},
        [{"kind": "market", "key": "retail", "name": "Retail"}],
        [RETAIL, "norte"],
        [Organization],
    ],
    ids=["str", "bare-seed", "dict", "list-of-dicts", "mixed", "list-of-types"],
)
def test_register_masters_bad_return_type_raises_plugin_error(
    clock: FixedClock, result: object
) -> None:
    """Anything but a list of MasterSeed is a PluginError at open(), naming the hook."""
    with pytest.raises(PluginError) as info:
        open_crm(Seeds(result), clock=clock)

    assert "crmkit_register_masters" in str(info.value)


def test_register_masters_bad_return_type_seeds_nothing(clock: FixedClock) -> None:
    """A bad plugin's result is refused whole: not even the built-in seeds are written."""
    store = MemoryStore()

    with pytest.raises(PluginError):
        open_crm(Seeds([RETAIL, "norte"]), store=store, clock=clock)

    with crmkit.open(store=store, seed_masters=False, clock=clock) as crm:
        assert (0, 0) == (crm.markets.count(), crm.sources.count())


def test_register_masters_that_raises_gives_hook_error(clock: FixedClock) -> None:
    """An exception in the hook is a HookError (not committed: nothing was written)."""

    class Broken:
        @hookimpl
        def crmkit_register_masters(self, crm: CRM) -> list[MasterSeed]:
            raise RuntimeError("seed source unavailable")

    with pytest.raises(HookError) as info:
        open_crm(Broken(), clock=clock)

    assert ("crmkit_register_masters", False) == (info.value.hook, info.value.committed)
    assert isinstance(info.value.__cause__, RuntimeError)


# ================================ crmkit_organization_created / contact_created


def notifications(recorder: RecordingPlugin) -> list[str]:
    """The names of the hooks recorded, validation hooks (called before writes) left out."""
    return [name for name in recorder.names() if not name.startswith("crmkit_validate_")]


def created(recorder: RecordingPlugin) -> list[str]:
    """``"<hook>:<name>"`` for each created notification recorded, in order."""
    result = []
    for call in recorder.calls:
        if call.name == "crmkit_organization_created":
            result.append(f"organization:{call.kwargs['organization'].name}")
        elif call.name == "crmkit_contact_created":
            result.append(f"contact:{call.kwargs['contact'].first_name}")
    return result


@pytest.fixture
def recorder() -> RecordingPlugin:
    """A recording plugin."""
    return RecordingPlugin()


@pytest.fixture
def crm_with(recorder: RecordingPlugin, clock: FixedClock) -> CRM:
    """A memory CRM with ``recorder`` registered."""
    return open_crm(recorder, clock=clock)


def test_organization_created_fires_once_with_the_new_organization(
    crm_with: CRM, recorder: RecordingPlugin
) -> None:
    """crmkit_organization_created receives crm and the organization, exactly once."""
    acme = crm_with.organizations.create(name="Acme")

    assert [
        HookCall("crmkit_organization_created", {"crm": crm_with, "organization": acme})
    ] == recorder.calls_to("crmkit_organization_created")


def test_contact_created_fires_once_with_the_new_contact(
    crm_with: CRM, recorder: RecordingPlugin
) -> None:
    """crmkit_contact_created receives crm and the contact, exactly once."""
    ana = crm_with.contacts.create(first_name="Ana")

    assert [
        HookCall("crmkit_contact_created", {"crm": crm_with, "contact": ana})
    ] == recorder.calls_to("crmkit_contact_created")


def test_created_hooks_do_not_fire_for_updates_archives_or_masters(
    crm_with: CRM, recorder: RecordingPlugin
) -> None:
    """Only creations of organizations and contacts notify the created hooks."""
    acme = crm_with.organizations.create(name="Acme")
    ana = crm_with.contacts.create(first_name="Ana", organization=acme)
    recorder.clear()

    crm_with.organizations.update(acme.id, expected_version=1, name="Acme S.A.")
    crm_with.organizations.archive(acme.id, expected_version=2)
    crm_with.organizations.restore(acme.id, expected_version=3)
    crm_with.contacts.update(ana.id, expected_version=1, last_name="Pérez")
    crm_with.markets.create(name="Retail")
    crm_with.users.create(name="Luis")

    assert [] == notifications(recorder)


def test_created_hooks_do_not_fire_for_a_rejected_create(
    crm_with: CRM, recorder: RecordingPlugin
) -> None:
    """A create that fails validation notifies nobody."""
    recorder.clear()

    with pytest.raises(ValidationError):
        crm_with.organizations.create(name="Acme", emails=["nope"])
    with pytest.raises(ValidationError):
        crm_with.contacts.create(first_name="")

    assert [] == recorder.calls  # refused before any plugin was asked


def test_created_hooks_fire_after_the_outermost_transaction_commits(
    crm_with: CRM, recorder: RecordingPlugin
) -> None:
    """Inside crm.transaction() nothing is notified; at commit each record is, once, in order."""
    recorder.clear()

    with crm_with.transaction():
        acme = crm_with.organizations.create(name="Acme")
        with crm_with.transaction():
            crm_with.contacts.create(first_name="Ana", organization=acme)
        crm_with.organizations.create(name="Bolt")
        assert [] == notifications(recorder)

    assert ["organization:Acme", "contact:Ana", "organization:Bolt"] == created(recorder)


def test_created_hooks_do_not_fire_when_the_transaction_rolls_back(
    crm_with: CRM, recorder: RecordingPlugin
) -> None:
    """A rolled-back transaction notifies nothing, for organizations or contacts."""
    recorder.clear()

    def work() -> None:
        with crm_with.transaction():
            acme = crm_with.organizations.create(name="Acme")
            crm_with.contacts.create(first_name="Ana", organization=acme)
            raise Boom

    with pytest.raises(Boom):
        work()

    assert [] == notifications(recorder)


def test_created_hooks_skip_records_of_a_rolled_back_savepoint(
    crm_with: CRM, recorder: RecordingPlugin
) -> None:
    """Records undone by an inner block are not notified; the outer block's are."""
    recorder.clear()

    def inner() -> None:
        with crm_with.transaction():
            crm_with.organizations.create(name="Inner")
            crm_with.contacts.create(first_name="Eva")
            raise Boom

    with crm_with.transaction():
        crm_with.organizations.create(name="Acme")
        with pytest.raises(Boom):
            inner()
        crm_with.contacts.create(first_name="Ana")

    assert ["organization:Acme", "contact:Ana"] == created(recorder)


def test_created_hooks_skip_a_failed_create_inside_a_transaction(
    crm_with: CRM, recorder: RecordingPlugin
) -> None:
    """A create rejected inside a transaction (and caught) is never notified."""
    recorder.clear()

    with crm_with.transaction():
        crm_with.organizations.create(name="Acme", external_ref="E-1")
        with pytest.raises(crmkit.DuplicateError):
            crm_with.organizations.create(name="Copy", external_ref="E-1")

    assert ["organization:Acme"] == created(recorder)


def test_created_hooks_fire_once_per_record_of_a_bulk_create(
    crm_with: CRM, recorder: RecordingPlugin
) -> None:
    """bulk_create notifies each organization and contact once."""
    recorder.clear()

    crm_with.organizations.bulk_create([{"name": "A"}, {"name": "B"}, {"name": "C"}], batch_size=2)
    crm_with.contacts.bulk_create([{"first_name": "Ana"}, {"first_name": "Luis"}])

    assert [
        "organization:A",
        "organization:B",
        "organization:C",
        "contact:Ana",
        "contact:Luis",
    ] == created(recorder)


class Witness:
    """Checks, from inside the created hooks, that the record is committed and readable."""

    def __init__(self, store: MemoryStore) -> None:
        self.store = store
        self.seen: list[object] = []

    @hookimpl
    def crmkit_organization_created(self, crm: CRM, organization: Organization) -> None:
        assert organization == crm.organizations.get(organization.id)
        with crmkit.open(store=self.store, seed_masters=False) as other:  # another connection
            self.seen.append(other.organizations.get(organization.id))

    @hookimpl
    def crmkit_contact_created(self, crm: CRM, contact: Contact) -> None:
        assert contact == crm.contacts.get(contact.id)
        with crmkit.open(store=self.store, seed_masters=False) as other:
            self.seen.append(other.contacts.get(contact.id))


def test_created_hooks_see_the_record_committed(clock: FixedClock) -> None:
    """In the hook the record reads back through crm and through another CRM on the store."""
    store = MemoryStore()
    witness = Witness(store)

    with open_crm(witness, store=store, clock=clock) as crm:
        acme = crm.organizations.create(name="Acme")
        with crm.transaction():
            bolt = crm.organizations.create(name="Bolt")
            ana = crm.contacts.create(first_name="Ana", organization=bolt)

    assert [acme, bolt, ana] == witness.seen


class Failing:
    """Created hooks that raise ``error``."""

    def __init__(self, error: Exception) -> None:
        self.error = error
        self.calls = 0

    @hookimpl
    def crmkit_organization_created(self, organization: Organization) -> None:
        self.calls += 1
        raise self.error

    @hookimpl
    def crmkit_contact_created(self, contact: Contact) -> None:
        self.calls += 1
        raise self.error


@pytest.mark.parametrize(
    "error",
    [RuntimeError("ERP down"), ValidationError("name", "rejected by the ERP")],
    ids=["runtime-error", "crmkit-error"],
)
def test_raising_organization_created_is_reported_and_keeps_the_record(
    clock: FixedClock, error: Exception
) -> None:
    """The write returns; the record and its audit entry stay; last_delivery names the failure."""
    with open_crm(Failing(error), clock=clock) as crm:
        acme = crm.organizations.create(name="Acme", external_ref="E-1")

        assert acme == crm.organizations.get_by_external_ref("E-1")
        assert 1 == len(crm.history(acme.id))
        assert [("crmkit_organization_created", "Failing", f"{type(error).__name__}: {error}")] == [
            (f.hook, f.plugin, f.error) for f in crm.last_delivery.failures
        ]
        assert crm.last_delivery.failures[0].exception is error
        assert not crm.last_delivery.ok


def test_raising_contact_created_is_reported_and_keeps_the_contact(clock: FixedClock) -> None:
    """Same for contacts: the contact is stored and the failure reported, not raised."""
    with open_crm(Failing(RuntimeError("CRM sync down")), clock=clock) as crm:
        crm.contacts.create(first_name="Ana")

        assert ["Ana"] == [c.first_name for c in crm.contacts.find()]
        assert ["crmkit_contact_created"] == [f.hook for f in crm.last_delivery.failures]
        assert isinstance(crm.last_delivery.failures[0].exception, RuntimeError)


def test_a_failed_notification_is_logged_with_its_plugin_hook_and_traceback(
    clock: FixedClock, caplog: pytest.LogCaptureFixture
) -> None:
    """One ERROR record on the crmkit.plugins logger per failure, with the exception."""
    with (
        open_crm(Failing(ConnectionError("smtp down")), clock=clock) as crm,
        caplog.at_level(logging.ERROR, logger="crmkit.plugins"),
    ):
        crm.organizations.create(name="Acme")

    [record] = [r for r in caplog.records if r.name == "crmkit.plugins"]
    assert logging.ERROR == record.levelno
    assert "plugin Failing failed in crmkit_organization_created" in record.getMessage()
    assert ("crmkit_organization_created", "Failing") == (
        record.__dict__["hook"],
        record.__dict__["plugin"],
    )
    assert record.exc_info is not None
    assert isinstance(record.exc_info[1], ConnectionError)


def test_raising_hook_after_a_transaction_still_notifies_every_record_once(
    clock: FixedClock,
) -> None:
    """One failing notification skips nothing: every record is announced once, all reported."""
    failing = Failing(RuntimeError("ERP down"))
    with open_crm(failing, clock=clock) as crm:
        with crm.transaction() as tx:
            acme = crm.organizations.create(name="Acme")
            crm.contacts.create(first_name="Ana", organization=acme)
            crm.organizations.create(name="Bolt")
            before_commit = tx.delivery

        assert before_commit is None  # nothing delivered before the commit
        assert 3 == failing.calls
        assert (2, 1) == (crm.organizations.count(), crm.contacts.count())
        assert tx.delivery is crm.last_delivery
        assert [
            "crmkit_organization_created",
            "crmkit_contact_created",
            "crmkit_organization_created",
        ] == [f.hook for f in tx.delivery.failures]


def test_other_plugins_are_notified_when_one_raises(clock: FixedClock) -> None:
    """A raising plugin does not hide the record from other plugins.

    pluggy calls the most recently registered implementation first, so the
    recorder registered after the failing plugin has already run when it raises.
    """
    recorder = RecordingPlugin()
    with open_crm(Failing(RuntimeError("down")), recorder, clock=clock) as crm:
        crm.organizations.create(name="Acme")

        assert ["organization:Acme"] == created(recorder)
        assert ["Failing"] == [f.plugin for f in crm.last_delivery.failures]


def test_plugins_registered_before_a_raising_one_are_still_notified(clock: FixedClock) -> None:
    """Every implementation runs even when one raises (pluggy alone would stop there)."""
    recorder = RecordingPlugin()
    with open_crm(recorder, Failing(RuntimeError("down")), clock=clock) as crm:
        crm.organizations.create(name="Acme")

        assert ["organization:Acme"] == created(recorder)
        assert 1 == len(crm.last_delivery.failures)


def test_a_write_whose_notifications_all_pass_reports_ok(clock: FixedClock) -> None:
    """A clean delivery replaces an earlier failed one in last_delivery."""
    failing = Failing(RuntimeError("down"))
    with open_crm(failing, clock=clock) as crm:
        crm.organizations.create(name="Acme")
        assert not crm.last_delivery.ok

        crm.markets.create(name="Retail")  # committed, nothing to announce

        assert crmkit.DeliveryReport() == crm.last_delivery
        assert crm.last_delivery.ok


def test_a_failed_write_leaves_last_delivery_as_it_was(clock: FixedClock) -> None:
    """last_delivery is the report of the last committed write: a refused one changes nothing."""
    with open_crm(Failing(RuntimeError("down")), clock=clock) as crm:
        crm.organizations.create(name="Acme")
        before = crm.last_delivery

        with pytest.raises(ValidationError):
            crm.organizations.create(name="")

        assert before is crm.last_delivery


def test_last_delivery_is_per_thread(clock: FixedClock) -> None:
    """Another thread's failed delivery is not this thread's last delivery."""
    with open_crm(Failing(RuntimeError("down")), clock=clock) as crm:
        seen: list[crmkit.DeliveryReport] = []

        def other() -> None:
            crm.organizations.create(name="Elsewhere")
            seen.append(crm.last_delivery)

        thread = threading.Thread(target=other)
        thread.start()
        thread.join()

        assert [1] == [len(report.failures) for report in seen]
        assert crm.last_delivery.ok


def test_a_nested_block_gives_its_outer_transaction(crm_with: CRM) -> None:
    """``with crm.transaction() as inner`` inside another block is the outer block's object."""
    with crm_with.transaction() as outer:
        with crm_with.transaction() as inner:
            crm_with.organizations.create(name="Acme")
        assert inner is outer
        assert inner.delivery is None

    assert crmkit.DeliveryReport() == outer.delivery


def test_a_rolled_back_transaction_delivers_nothing(crm_with: CRM) -> None:
    """tx.delivery stays None when the block raises."""

    def work() -> Transaction:
        with crm_with.transaction() as tx:
            crm_with.organizations.create(name="Acme")
            seen.append(tx)
            raise Boom

    seen: list[Transaction] = []
    with pytest.raises(Boom):
        work()

    assert [None] == [tx.delivery for tx in seen]


# ------------------------------------------------------ notification_errors


def test_strict_notification_errors_raise_hook_error_after_every_plugin_ran(
    clock: FixedClock,
) -> None:
    """notification_errors="raise": HookError(committed=True) once all were notified."""
    recorder = RecordingPlugin()
    failing = Failing(RuntimeError("ERP down"))
    with crmkit.open(
        store=MemoryStore(),
        plugins=[recorder, failing],
        clock=clock,
        notification_errors="raise",
    ) as crm:

        def work() -> None:
            with crm.transaction():
                crm.organizations.create(name="Acme")
                crm.organizations.create(name="Bolt")

        with pytest.raises(HookError) as info:
            work()

        assert ("crmkit_organization_created", True) == (info.value.hook, info.value.committed)
        assert info.value.reason.startswith("Failing: RuntimeError: ERP down")
        assert isinstance(info.value.__cause__, RuntimeError)
        assert 2 == failing.calls
        assert ["organization:Acme", "organization:Bolt"] == created(recorder)
        assert 2 == crm.organizations.count()
        assert 2 == len(crm.last_delivery.failures)


def test_strict_notification_errors_raise_from_a_single_write(clock: FixedClock) -> None:
    """A plain create raises too, with the record committed."""
    with crmkit.open(
        ":memory:",
        plugins=[Failing(RuntimeError("down"))],
        clock=clock,
        notification_errors="raise",
    ) as crm:
        with pytest.raises(HookError) as info:
            crm.contacts.create(first_name="Ana")

        assert info.value.committed
        assert 1 == crm.contacts.count()


def test_strict_notification_errors_raise_nothing_when_every_plugin_succeeds(
    clock: FixedClock,
) -> None:
    """notification_errors="raise" changes nothing for a clean delivery."""
    recorder = RecordingPlugin()
    with crmkit.open(
        ":memory:", plugins=[recorder], clock=clock, notification_errors="raise"
    ) as crm:
        crm.organizations.create(name="Acme")

        assert ["organization:Acme"] == created(recorder)
        assert crm.last_delivery.ok


def test_notification_errors_accepts_only_log_or_raise(clock: FixedClock) -> None:
    """Another value is a ValidationError naming the argument, before anything is opened."""
    with pytest.raises(ValidationError) as info:
        crmkit.open(":memory:", clock=clock, notification_errors="ignore")  # type: ignore[arg-type]

    assert ("notification_errors", "choice") == (info.value.field, info.value.code)


def test_hooks_may_take_only_the_arguments_they_need(clock: FixedClock) -> None:
    """An implementation without ``crm`` is called with the arguments it names."""
    names: list[str] = []

    class Minimal:
        @hookimpl
        def crmkit_organization_created(self, organization: Organization) -> None:
            names.append(organization.name)

    with open_crm(Minimal(), clock=clock) as crm:
        crm.organizations.create(name="Acme")

    assert ["Acme"] == names


def test_created_hook_may_write_to_the_crm(clock: FixedClock) -> None:
    """A hook can create records itself; those are committed and notified in turn."""

    class Welcome:
        @hookimpl
        def crmkit_organization_created(self, crm: CRM, organization: Organization) -> None:
            crm.contacts.create(first_name="Reception", organization=organization)

    recorder = RecordingPlugin()
    with open_crm(Welcome(), recorder, clock=clock) as crm:
        acme = crm.organizations.create(name="Acme")

        assert ["Reception"] == [c.first_name for c in crm.contacts.at(acme)]
        assert ["contact:Reception", "organization:Acme"] == sorted(created(recorder))


# ============================================================ RecordingPlugin


def test_recording_plugin_implements_every_hook() -> None:
    """RecordingPlugin has a @hookimpl method for each hook in hookspecs."""
    for name in HOOK_NAMES:
        method = getattr(RecordingPlugin, name, None)
        assert method is not None, name
        assert hasattr(method, "crmkit_impl"), name


def test_recording_plugin_records_every_call_in_order(clock: FixedClock) -> None:
    """names(), calls_to() and clear() read what was recorded."""
    recorder = RecordingPlugin()
    with open_crm(recorder, clock=clock) as crm:
        acme = crm.organizations.create(name="Acme")
        ana = crm.contacts.create(first_name="Ana", organization=acme)

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
            "crmkit_validate_organization",
            "crmkit_organization_created",
            "crmkit_validate_contact",
            "crmkit_contact_created",
        ] == recorder.names()
        assert [{"crm": crm, "contact": ana}] == [
            c.kwargs for c in recorder.calls_to("crmkit_contact_created")
        ]

        recorder.clear()
        assert [] == recorder.calls
