"""A plugin that seeds master lists and hears about new records after commit.

Run it with ``python examples/plugin_notifications.py``.  ``docs/guides/plugins.md``
includes it section by section, and ``tests/test_docs.py`` runs it and compares
what it prints with ``examples/plugin_notifications.out``.
"""

from __future__ import annotations

import logging  # used by the "failure" section

# --8<-- [start:plugin]
import crmkit
from crmkit import MasterSeed, hookimpl


class SalesDesk:
    """Seeds this company's markets and zones; keeps a log of new records."""

    def __init__(self) -> None:
        self.log: list[str] = []

    @hookimpl
    def crmkit_register_masters(self) -> list[MasterSeed]:
        # Hooks are called with keywords: take only the arguments you need.
        return [
            MasterSeed(kind="market", key="retail", name="Retail", name_es="Comercio minorista"),
            MasterSeed(kind="market", key="industry", name="Industry", name_es="Industria"),
            MasterSeed(kind="zone", key="norte", name="North", name_es="Norte"),
            MasterSeed(kind="zone", key="sur", name="South", name_es="Sur"),
        ]

    @hookimpl
    def crmkit_organization_created(
        self, crm: crmkit.CRM, organization: crmkit.Organization
    ) -> None:
        # Runs after the commit: the organization is already stored.
        stored = crm.organizations.get(organization.id)
        self.log.append(f"organization {stored.name}")

    @hookimpl
    def crmkit_contact_created(self, contact: crmkit.Contact) -> None:
        self.log.append(f"contact {contact.full_name}")


desk = SalesDesk()
crm = crmkit.open(":memory:", plugins=[desk])
print("markets:", [m.key for m in crm.markets.find(order_by="key")])
print("zones:", [z.label("es") for z in crm.zones.find(order_by="key")])
# --8<-- [end:plugin]

# --8<-- [start:after-commit]
acme = crm.organizations.create(name="Acme S.A.", market="retail", zone="norte")
print("after create:", desk.log)

desk.log.clear()
with crm.transaction():
    globex = crm.organizations.create(name="Globex S.L.", market="industry")
    crm.contacts.create(first_name="Ana", last_name="Pérez", organization=globex)
    print("inside the transaction:", desk.log)
print("after the block:", desk.log)

desk.log.clear()
try:
    with crm.transaction():
        crm.organizations.create(name="Rolled back S.A.")
        raise RuntimeError("changed my mind")
except RuntimeError:
    pass
print("after a rollback:", desk.log)
# --8<-- [end:after-commit]


# --8<-- [start:failure]
# crmkit logs each failed notification, with its traceback, on this logger; this
# example reads the delivery report instead, so it keeps the log quiet.
logging.getLogger("crmkit.plugins").addHandler(logging.NullHandler())


class Flaky:
    """A plugin whose notification fails (a mail server is down, say)."""

    @hookimpl
    def crmkit_organization_created(self, organization: crmkit.Organization) -> None:
        raise ConnectionError("smtp server unreachable")


crm.plugins.register(Flaky())
crm.organizations.create(name="Initech")  # returns normally: the data is committed
for failure in crm.last_delivery.failures:
    print("failed:", failure.hook, "in", failure.plugin, "-", failure.error)
print("Initech stored anyway:", crm.organizations.count(name="Initech") == 1)
print("the other plugin heard it:", desk.log)
# --8<-- [end:failure]


# --8<-- [start:misspelled]
class Misspelled:
    @hookimpl
    def crmkit_organisation_created(self, organization: crmkit.Organization) -> None:
        """British spelling: no such hook."""


try:
    crmkit.open(":memory:", plugins=[Misspelled()])
except crmkit.PluginError as exc:
    print("PluginError:", "crmkit_organisation_created" in str(exc))
# --8<-- [end:misspelled]

crm.close()
