"""Import a Spanish customer spreadsheet: Latin-1, ``;``, decimal commas, dd/mm/yyyy dates.

``examples/data/clientes.csv`` and ``examples/data/contactos.csv`` are what a
spreadsheet saves as "CSV (delimitado por punto y coma)": Latin-1 text, ``;``
between cells, ``12.500,00`` for amounts and ``15/03/2019`` for dates, with
Spanish headers.  A few rows are wrong on purpose.  Run it with
``python examples/import_spanish_contacts.py``; ``docs/guides/import-export.md``
includes it section by section and ``tests/test_docs.py`` compares what it
prints with ``examples/import_spanish_contacts.out``.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from rich.console import Console

# --8<-- [start:setup]
import crmkit
from crmkit import CustomField

DATA = Path(__file__).with_name("data")
console = Console(width=100, color_system=None)  # plain text: the output is compared

crm = crmkit.open(":memory:", default_region="ES", timezone="Europe/Madrid")
for name, key in [
    ("Alimentación", "alimentacion"),
    ("Industria", "industria"),
    ("Salud", "salud"),
    ("Turismo", "turismo"),
]:
    crm.markets.create(name=name, key=key)
crm.positions.create(name="Gerente", key="gerente")
crm.positions.create(name="Compras", key="compras")
crm.custom_fields.register(
    CustomField(
        entity="organization",
        key="credit_limit",
        label="Credit limit",
        label_es="Límite de crédito",
        type="decimal",
    )
)
crm.custom_fields.register(
    CustomField(
        entity="organization",
        key="customer_since",
        label="Customer since",
        label_es="Cliente desde",
        type="date",
    )
)
# --8<-- [end:setup]

# --8<-- [start:dry-run]
# The spreadsheet's headers, mapped to crmkit's columns (custom fields too).
CLIENTES = {
    "Código": "external_ref",
    "Razón social": "name",
    "CIF": "tax_id",
    "Teléfono": "phones",
    "Correo": "emails",
    "Sector": "market",
    "Límite de crédito": "custom.credit_limit",
    "Cliente desde": "custom.customer_since",
}
spanish = {"decimal_comma": True, "date_format": "%d/%m/%Y"}  # encoding and ";" are sniffed

report = crm.imports.csv(
    DATA / "clientes.csv", entity="organizations", mapping=CLIENTES, dry_run=True, **spanish
)
print(report.summary())
console.print(report.table())
# --8<-- [end:dry-run]

# --8<-- [start:partial]
# Atomic (the default) would write nothing; "partial" writes the valid rows.
report = crm.imports.csv(
    DATA / "clientes.csv", entity="organizations", mapping=CLIENTES, mode="partial", **spanish
)
print(report.summary())

nunez = crm.organizations.get_by_external_ref("C-001")
credit, since = nunez.custom["credit_limit"], nunez.custom["customer_since"]
print(f"{nunez.name} | {nunez.phones[0].e164} | credit {credit} | since {since}")

# The same file again: every row matches its record by external_ref; nothing changes.
again = crm.imports.csv(
    DATA / "clientes.csv", entity="organizations", mapping=CLIENTES, mode="partial", **spanish
)
print(again.summary(), "| version of C-001:", crm.organizations.get(nunez.id).version)
# --8<-- [end:partial]

# --8<-- [start:contacts]
CONTACTOS = {
    "Nombre": "first_name",
    "Apellidos": "last_name",
    "Correo": "email",
    "Móvil": "phones",
    "Empresa": "organization",  # the organization's external_ref (its Código)
    "Cargo": "position",
    "No contactar": "do_not_contact",  # sí / no
}
report = crm.imports.csv(
    DATA / "contactos.csv", entity="contacts", mapping=CONTACTOS, mode="partial"
)
print(report.summary())
console.print(report.table())
for contact in crm.contacts.find(order_by="first_name"):
    print(f"{contact.first_name} {contact.last_name}: do_not_contact={contact.do_not_contact}")
# --8<-- [end:contacts]

# --8<-- [start:export]
# Back to a spreadsheet: ";" and a UTF-8 byte-order mark for Excel; formula-safe.
with tempfile.TemporaryDirectory() as folder:
    target = Path(folder) / "clientes.csv"
    written = crm.exports.csv(
        target,
        entity="organizations",
        columns=["external_ref", "name", "market", "custom.credit_limit"],
        order_by="external_ref",
        delimiter=";",
        encoding="utf-8-sig",
    )
    print(written, "rows written")
    print(target.read_text(encoding="utf-8-sig"), end="")
# --8<-- [end:export]
