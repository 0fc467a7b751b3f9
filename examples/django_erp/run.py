"""The Django example end to end, printing a short transcript.

Run it from the repository's root with ``python -m examples.django_erp.run
[FILE]`` (default: a temporary file): it migrates Django's tables into a new
SQLite file, crmkit creates its own tables there, then customers and orders
flow both ways.  ``tests/examples/test_django_erp.py`` runs it on a temporary file
and compares what it prints with ``examples/django_erp/run.out``.
"""

from __future__ import annotations

import os
import sys
import tempfile
from datetime import UTC, date, datetime
from decimal import Decimal


def setup(path: str) -> None:
    """Configure Django on the SQLite file ``path`` and migrate its tables."""
    os.environ["ERP_DATABASE"] = path
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "examples.django_erp.settings")
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)


def main(path: str | None = None) -> None:
    """Run the transcript on a new SQLite file ``path`` (default: a temporary one)."""
    if path is None:
        with tempfile.TemporaryDirectory() as directory:
            main(os.path.join(directory, "erp.db"))
        return
    if os.path.exists(path):
        raise SystemExit(f"{path} exists: the example starts from a new database file")
    setup(path)
    try:
        transcript()
    finally:
        from django.db import connections

        connections.close_all()


# --8<-- [start:run]
def transcript() -> None:
    """Customers in, orders out, and a refused order: printed line by line."""
    from crmkit import HookError, Money
    from examples.django_erp.crm import django_crm
    from examples.django_erp.sales.models import Customer, SalesOrder

    with django_crm(clock=lambda: datetime(2026, 11, 24, 9, 0, tzinfo=UTC)) as crm:
        # a customer saved in Django appears in the CRM (post_save -> sync_customer)
        acme = Customer.objects.create(number="C-001", name="Acme S.A.", vat="A12345674")
        org = crm.organizations.get_by_external_ref(f"django:customer:{acme.pk}")
        print("organization:", org.name, "| version:", org.version)

        # saving it again updates the same organization, never a second one
        acme.name = "Acme Iberia S.A."
        acme.save()
        org = crm.organizations.get(org.id)
        print("after a rename:", org.name, "| version:", org.version)
        print("organizations:", crm.organizations.count())

        # winning an opportunity inserts the SalesOrder in the same transaction
        deal = crm.opportunities.create(
            name="ERP rollout", organization=org, stage="negotiation",
            amount=Money("12000", "EUR"), expected_close=date(2026, 12, 15),
        )  # fmt: skip
        won = crm.opportunities.win(deal.id)
        order = SalesOrder.objects.get(number=won.sales_order_ref)
        print("won:", won.status.value, "| order:", order.number, order.amount, order.currency)

        # an order over the customer's credit limit: the win is rolled back with it
        globex = Customer.objects.create(
            number="C-002", name="Globex S.L.", vat="B76365789", credit_limit=Decimal("500")
        )
        deal = crm.opportunities.create(
            name="Support",
            organization=crm.organizations.get_by_external_ref(f"django:customer:{globex.pk}"),
            stage="negotiation", amount=Money("900", "EUR"), expected_close=date(2026, 12, 1),
        )  # fmt: skip
        try:
            crm.opportunities.win(deal.id)
        except HookError as error:
            print("win refused:", error.reason)
        print("still:", crm.opportunities.get(deal.id).status.value)
        print("orders:", list(SalesOrder.objects.values_list("number", flat=True)))


# --8<-- [end:run]


if __name__ == "__main__":
    main(*sys.argv[1:2])
