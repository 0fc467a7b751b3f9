"""The getting-started walkthrough: a small CRM book in memory.

Run it with ``python examples/quickstart.py``.  ``docs/getting-started.md``
includes it section by section, and ``tests/test_docs.py`` runs it and compares
what it prints with ``examples/quickstart.out``.
"""

from __future__ import annotations

# --8<-- [start:open]
import crmkit
from crmkit import Contains, Has, In, Money

# ":memory:" keeps everything in this process; default_region lets crmkit read
# national phone numbers ("911 234 567") as Spanish ones.
crm = crmkit.open(":memory:", default_region="ES")
# --8<-- [end:open]

# --8<-- [start:masters]
# The built-in plugin seeded sources (originación) and positions (cargos).
print("sources:", ", ".join(s.key for s in crm.sources.find(order_by="key")))

# Markets and zones are yours to define; the key defaults to a slug of the name.
retail = crm.markets.create(name="Retail", name_es="Comercio minorista")
industry = crm.markets.create(name="Industry", name_es="Industria")
north = crm.zones.create(name="Norte")
south = crm.zones.create(name="Sur")
print("market:", retail.key, "/", retail.label("es"))
print("zone:", north.key)
# --8<-- [end:masters]

# --8<-- [start:organizations]
acme = crm.organizations.create(
    name="Acme S.A.",
    kinds=["customer"],
    market="retail",  # a master key, the Market record or its id
    zone=north,
    source="referral",
    emails=["Ventas@ACME.es"],
    phones=["911 234 567"],  # national format, read with default_region="ES"
    website="acme.es",
    tags=["vip"],
    external_ref="ERP-0001",  # the host system's key
)
print(acme.name, acme.version, acme.lifecycle.value)
print("e-mail:", acme.emails[0], "phone:", acme.phones[0], acme.phones[0].international())
print("website:", acme.website)

globex = crm.organizations.create(
    name="Globex Iberia S.L.", market=industry, zone=south, source="trade-fair"
)
initech = crm.organizations.create(name="Initech", market="retail", zone="sur", tags=["vip"])
# --8<-- [end:organizations]

# --8<-- [start:contacts]
ana = crm.contacts.create(
    first_name="Ana",
    last_name="Pérez",
    email="ana.perez@acme.es",
    organization=acme,
    position="purchasing",  # a seeded position key
    role="decision_maker",
    preferred_channel="email",
)
luis = crm.contacts.create(first_name="Luis", last_name="García", organization=acme.id)
print("contacts at Acme:", [c.full_name for c in crm.contacts.at(acme)])
# --8<-- [end:contacts]

# --8<-- [start:find]
# Keyword arguments are equality filters; references accept keys here too.
print("retail:", [o.name for o in crm.organizations.find(market="retail", order_by="name")])
# Typed filters for everything else.
print("vip:", [o.name for o in crm.organizations.find(Has("tags", "vip"), order_by="-name")])
print("'iber':", [o.name for o in crm.organizations.find(Contains("name", "iber"))])
in_zones = In("zone", ["sur", "norte"])  # `in`: zone keys work as well as ids
print("industry in sur/norte:", crm.organizations.count(in_zones, market=industry))
page_2 = crm.organizations.find(order_by="name", limit=2, offset=2)
print("second page of two:", [o.name for o in page_2])
# --8<-- [end:find]

# --8<-- [start:update]
# Every update names the version it was based on: no silent overwrites.
acme = crm.organizations.update(
    acme.id, expected_version=acme.version, lifecycle="customer", website="https://www.acme.es"
)
print("updated:", acme.version, acme.lifecycle.value, acme.website)

# Asking for values the record already has changes nothing, not even the version.
same = crm.organizations.update(acme.id, expected_version=acme.version, lifecycle="customer")
print("no-op keeps version", same.version)

# Someone else saved in between: the stale version is refused.
try:
    crm.organizations.update(acme.id, expected_version=1, notes="overwritten?")
except crmkit.ConcurrencyError as exc:
    print("ConcurrencyError:", exc.expected_version, "!=", exc.actual_version)
# --8<-- [end:update]

# --8<-- [start:archive]
# Nothing is deleted: archived records leave the default searches.
initech = crm.organizations.archive(initech.id, expected_version=initech.version)
print("active:", crm.organizations.count(), "archived:", crm.organizations.count(archived=True))
print("all:", crm.organizations.count(archived=None))
initech = crm.organizations.restore(initech.id, expected_version=initech.version)
print("restored at version", initech.version)
# --8<-- [end:archive]

# --8<-- [start:transaction]
# All or nothing: the exception undoes both creations.
try:
    with crm.transaction():
        crm.organizations.create(name="Umbrella S.A.", market="retail")
        crm.contacts.create(first_name="Marta", email="marta@umbrella")  # no dot-domain
except crmkit.ValidationError as exc:
    print("rolled back:", exc.field, exc.code)
print("Umbrella exists:", crm.organizations.count(Contains("name", "umbrella")) > 0)

with crm.transaction():
    hooli = crm.organizations.create(name="Hooli Spain", market="industry", zone="norte")
    crm.contacts.create(first_name="Gavin", last_name="Belson", organization=hooli)
print("Hooli contacts:", [c.full_name for c in crm.contacts.at(hooli)])
# --8<-- [end:transaction]

# --8<-- [start:history]
for entry in crm.history(acme.id):
    fields = ", ".join(change.field for change in entry.changes)
    print(f"#{entry.version} {entry.action.value}: {fields}")
# --8<-- [end:history]

# --8<-- [start:errors]
# Every error is a crmkit.CrmkitError and carries structure, not just a message.
try:
    crm.contacts.create(first_name="", organization=acme)
except crmkit.ValidationError as exc:
    print("ValidationError:", exc.field, exc.code)

try:
    crm.organizations.create(name="Nowhere Ltd", market="space")
except crmkit.ValidationError as exc:
    print("ValidationError:", exc.field, exc.code, repr(exc.value))

try:
    crm.organizations.create(name="Acme again", external_ref="ERP-0001")
except crmkit.DuplicateError as exc:
    print("DuplicateError:", exc.entity, exc.field)

try:
    crm.organizations.get_by_external_ref("ERP-9999")
except crmkit.NotFoundError as exc:
    print("NotFoundError:", exc.entity, exc.id)

try:
    Money("10.005", "EUR")
except crmkit.ValidationError as exc:
    print("ValidationError:", exc.field, exc.code)

try:
    Money("10", "EUR") + Money("10", "USD")
except crmkit.CurrencyMismatchError as exc:
    print("CurrencyMismatchError:", exc.left, exc.right)

print("total:", (Money("1200.50", "EUR") + Money("99.5", "EUR")).format("es_ES"))
# --8<-- [end:errors]

crm.close()
