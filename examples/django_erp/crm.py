"""crmkit inside the Django project: one database file, one connection, hooks both ways.

crmkit runs on Django's own SQLite connection (``SqlStore(creator=...)``), so
the ``SalesOrder`` the plugin inserts while an opportunity is won joins
crmkit's transaction: it commits with the win or rolls back with it.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from typing import Any

from django.db import connections, transaction
from django.db.models import Sum
from django.db.models.signals import post_save

import crmkit
from crmkit import OrganizationDraft, hookimpl
from crmkit.stores.sql import SqlStore, sqlite_url
from examples.django_erp.sales.models import Customer, SalesOrder

# --8<-- [start:plugin]
PREFIX = "django:customer:"


class CreditLimitExceeded(Exception):
    """The ERP's business rule: a customer's orders stay within its credit limit."""


class ErpBridge:
    """The crmkit plugin: Django customers in, Django sales orders out."""

    @hookimpl
    def crmkit_organization_from_customer(self, customer: object) -> OrganizationDraft | None:
        if not isinstance(customer, Customer):
            return None  # another plugin may know this object
        return OrganizationDraft(
            external_ref=f"{PREFIX}{customer.pk}",
            fields={
                "name": customer.name,
                "tax_id": customer.vat,
                "emails": [customer.email] if customer.email else [],
                "kinds": ["customer"],
            },
        )

    @hookimpl
    def crmkit_create_sales_order(
        self, crm: crmkit.CRM, opportunity: crmkit.Opportunity
    ) -> str | None:
        # Runs inside crmkit's winning transaction, on the connection the ORM
        # uses too: the order commits with the win, or rolls back with it.
        # No transaction.atomic() here: the transaction is crmkit's.
        if opportunity.organization_id is None or opportunity.amount is None:
            return None
        ref = crm.organizations.get(opportunity.organization_id).external_ref or ""
        if not ref.startswith(PREFIX):
            return None  # not a Django customer: no order
        customer = Customer.objects.get(pk=int(ref.removeprefix(PREFIX)))
        key = str(opportunity.id)  # idempotent: a retried win finds its order
        order = SalesOrder.objects.filter(opportunity=key).first()
        if order is None:
            # crmkit holds SQLite's write lock: counting and inserting cannot race
            order = SalesOrder.objects.create(
                number=f"SO-{SalesOrder.objects.count() + 1:05d}",
                customer=customer,
                amount=opportunity.amount.amount,
                currency=opportunity.amount.currency,
                opportunity=key,
            )
        total = customer.orders.aggregate(total=Sum("amount"))["total"]
        if customer.credit_limit is not None and total > customer.credit_limit:
            # the order row is written already: raising rolls it back with the win
            raise CreditLimitExceeded(
                f"orders of {customer.number} would total {total:.2f}, "
                f"over its credit limit of {customer.credit_limit:.2f}"
            )
        return order.number


# --8<-- [end:plugin]
# --8<-- [start:store]
def django_connection(alias: str = "default") -> sqlite3.Connection:
    """The raw sqlite3 connection Django uses on this thread (opened if needed)."""
    wrapper = connections[alias]
    wrapper.ensure_connection()
    raw: sqlite3.Connection = wrapper.connection
    return raw


@contextmanager
def django_crm(alias: str = "default", **options: Any) -> Iterator[crmkit.CRM]:
    """A CRM in Django's database, synced from its customers while the block runs.

    ``options`` go to :func:`crmkit.open` (``clock``, ``actor``...).
    """
    store = SqlStore(
        sqlite_url(connections[alias].settings_dict["NAME"]),
        creator=partial(django_connection, alias),  # Django's connection, not a second one
    )
    crm = crmkit.open(store=store, plugins=[ErpBridge()], **options)

    def customer_saved(sender: object, instance: Customer, using: str, **kwargs: object) -> None:
        # At once in autocommit mode; inside an atomic block, after its commit:
        # crmkit must not commit or roll back a transaction that is Django's.
        transaction.on_commit(partial(crm.sync_customer, instance), using=using)

    post_save.connect(customer_saved, sender=Customer, dispatch_uid="crmkit-sync")
    try:
        yield crm
    finally:
        post_save.disconnect(sender=Customer, dispatch_uid="crmkit-sync")
        crm.close()


# --8<-- [end:store]
