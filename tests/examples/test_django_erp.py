"""examples/django_erp: a Django project and crmkit on one SQLite file, hooks both ways.

Django is set up once for this module, on a temporary file; each test works
with its own customers.  Customers saved in Django become organizations
(``post_save`` -> ``crm.sync_customer``); a won opportunity becomes a
``SalesOrder`` row written inside crmkit's transaction, on Django's own
connection, so it commits or rolls back with the win.
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

import crmkit
from crmkit import Money
from crmkit.core.opportunities import Opportunity
from crmkit.core.pipelines import StageKind
from examples.django_erp import run
from tests.conftest import FixedClock

if TYPE_CHECKING:  # importing the models needs Django set up: the fixture does it
    from examples.django_erp.sales.models import Customer

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def database(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The SQLite file Django (migrated) and crmkit share."""
    path = tmp_path_factory.mktemp("django") / "erp.db"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DJANGO_SETTINGS_MODULE", "examples.django_erp.settings")
        run.setup(str(path))  # Django's settings read the file name here, once
    return path


@pytest.fixture
def crm(database: Path) -> Iterator[crmkit.CRM]:
    from examples.django_erp.crm import django_crm

    with django_crm(clock=FixedClock()) as crm:
        yield crm


def _organization(crm: crmkit.CRM, customer: Customer) -> crmkit.Organization:
    return crm.organizations.get_by_external_ref(f"django:customer:{customer.pk}")


def _deal(crm: crmkit.CRM, customer: Customer, amount: str) -> Opportunity:
    return crm.opportunities.create(
        name="deal",
        organization=_organization(crm, customer),
        stage="negotiation",
        amount=Money(amount, "EUR"),
        expected_close=date(2026, 3, 31),
    )


def _committed_orders(database: Path, opportunity: Opportunity) -> list[str]:
    """What another connection to the file sees: committed rows only."""
    with sqlite3.connect(database) as other:
        rows = other.execute(
            "SELECT number FROM sales_salesorder WHERE opportunity = ?", (str(opportunity.id),)
        )
        return [number for (number,) in rows]


def test_saving_a_django_customer_creates_then_updates_one_organization(
    crm: crmkit.CRM,
) -> None:
    """post_save syncs by external_ref: created once, an unchanged save writes nothing,
    a rename updates the same organization."""
    from examples.django_erp.sales.models import Customer

    before = crm.organizations.count()
    acme = Customer.objects.create(
        number="T-100", name="Acme S.A.", vat="A12345674", email="ventas@acme.es"
    )
    org = _organization(crm, acme)
    assert ("Acme S.A.", "A12345674", 1) == (org.name, org.tax_id, org.version)
    assert ["ventas@acme.es"] == [str(e) for e in org.emails]

    acme.save()  # nothing changed
    assert 1 == crm.organizations.get(org.id).version

    acme.name = "Acme Iberia S.A."
    acme.save()
    renamed = crm.organizations.get(org.id)
    assert ("Acme Iberia S.A.", 2) == (renamed.name, renamed.version)
    assert before + 1 == crm.organizations.count()


def test_a_customer_saved_in_an_atomic_block_syncs_after_the_commit_only(
    crm: crmkit.CRM,
) -> None:
    """Inside transaction.atomic() the sync waits for Django's commit; a rollback skips it."""
    from django.db import transaction

    from examples.django_erp.sales.models import Customer

    with transaction.atomic():
        globex = Customer.objects.create(number="T-200", name="Globex S.L.", vat="B76365789")
        with pytest.raises(crmkit.NotFoundError):  # crmkit reads inside Django's transaction
            _organization(crm, globex)
    assert "Globex S.L." == _organization(crm, globex).name

    def failing_view() -> None:
        with transaction.atomic():
            Customer.objects.create(number="T-201", name="Initech", vat="B00000000")
            raise RuntimeError("the view failed")

    before = crm.organizations.count()
    with pytest.raises(RuntimeError):
        failing_view()
    assert not Customer.objects.filter(number="T-201").exists()
    assert before == crm.organizations.count()


def test_a_crmkit_write_inside_an_atomic_block_is_refused_and_leaves_djangos_intact(
    crm: crmkit.CRM,
) -> None:
    """crmkit will not commit Django's transaction: StorageError, and Django's work commits."""
    from django.db import transaction

    from examples.django_erp.sales.models import Customer

    with transaction.atomic():
        Customer.objects.create(number="T-300", name="Hooli", vat="B11111111")
        with pytest.raises(crmkit.StorageError) as info:
            crm.organizations.create(name="Not now")
        assert "transaction.on_commit" in str(info.value)

    hooli = Customer.objects.get(number="T-300")
    assert "Hooli" == _organization(crm, hooli).name  # synced after the commit
    assert [] == crm.organizations.find(name="Not now")


def test_winning_an_opportunity_writes_the_sales_order_in_the_same_transaction(
    crm: crmkit.CRM, database: Path
) -> None:
    """The SalesOrder row exists in Django, committed, and its number is on the opportunity."""
    from examples.django_erp.sales.models import Customer, SalesOrder

    umbrella = Customer.objects.create(number="T-400", name="Umbrella", vat="B22222222")
    deal = _deal(crm, umbrella, "12000")

    won = crm.opportunities.win(deal.id)

    order = SalesOrder.objects.get(opportunity=str(deal.id))
    assert (StageKind.WON, order.number) == (won.status, won.sales_order_ref)
    assert (umbrella, Decimal("12000.00"), "EUR") == (order.customer, order.amount, order.currency)
    assert [order.number] == _committed_orders(database, deal)
    with crmkit.open(database) as other:  # crmkit on a connection of its own
        assert order.number == other.opportunities.get(deal.id).sales_order_ref


def test_an_order_over_the_credit_limit_rolls_back_the_win_and_the_order_row(
    crm: crmkit.CRM, database: Path
) -> None:
    """The hook inserts the order, then the business rule fails: HookError, the opportunity
    is still open and the inserted SalesOrder row is gone with the win."""
    from django.db.models.signals import post_save

    from examples.django_erp.sales.models import Customer, SalesOrder

    initech = Customer.objects.create(
        number="T-500", name="Initech", vat="B33333333", credit_limit=Decimal("500")
    )
    deal = _deal(crm, initech, "900")
    inserted: list[int] = []

    def order_saved(sender: object, instance: SalesOrder, **kwargs: object) -> None:
        inserted.append(instance.pk)

    post_save.connect(order_saved, sender=SalesOrder)
    try:
        with pytest.raises(crmkit.HookError) as info:
            crm.opportunities.win(deal.id)
    finally:
        post_save.disconnect(order_saved, sender=SalesOrder)

    assert ("crmkit_create_sales_order", False) == (info.value.hook, info.value.committed)
    assert "over its credit limit" in info.value.reason
    assert 1 == len(inserted)  # the row was written inside the transaction...
    assert not SalesOrder.objects.filter(pk=inserted[0]).exists()  # ...and rolled back
    assert [] == _committed_orders(database, deal)
    assert deal == crm.opportunities.get(deal.id)  # still open, same version
    assert crm.opportunities.get(deal.id).sales_order_ref is None


def test_the_example_runs_as_a_script_and_prints_its_transcript(tmp_path: Path) -> None:
    """``python -m examples.django_erp.run FILE`` prints exactly ``run.out``."""
    expected = (ROOT / "examples" / "django_erp" / "run.out").read_text(encoding="utf-8")

    result = subprocess.run(
        [sys.executable, "-W", "error", "-m", "examples.django_erp.run", str(tmp_path / "e.db")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=120,
        check=False,
    )

    assert (0, "") == (result.returncode, result.stderr)
    assert expected == result.stdout
