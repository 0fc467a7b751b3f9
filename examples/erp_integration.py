"""A tiny in-process ERP wired to crmkit through hooks, both ways.

Customers saved in the ERP become CRM organizations (``crm.sync_customer``,
mapped by ``crmkit_organization_from_customer``); an opportunity won in the
CRM becomes an ERP sales order (``crmkit_create_sales_order``), in the same
transaction: when the ERP refuses the order, the win is rolled back.

Run it with ``python examples/erp_integration.py``; ``tests/test_docs.py``
runs it and compares what it prints with ``examples/erp_integration.out``.
"""

from __future__ import annotations

from datetime import UTC, date, datetime

from attrs import Factory, define

import crmkit
from crmkit import ContactDraft, HookError, Money, OrganizationDraft, hookimpl


# ------------------------------------------------------------------ the ERP
@define
class Customer:
    """A customer row of the ERP, with its people (name, e-mail)."""

    number: str
    name: str
    vat: str
    people: list[tuple[str, str]] = Factory(list)
    credit_blocked: bool = False


@define
class SalesOrder:
    """A sales order row of the ERP."""

    number: str
    customer: str
    amount: Money
    opportunity: str


class Erp:
    """The host system: customers and sales orders, and a hook to the CRM."""

    def __init__(self) -> None:
        self.customers: dict[str, Customer] = {}
        self.orders: dict[str, SalesOrder] = {}
        self.on_customer_saved: list[object] = []  # callbacks, like Django's post_save

    def save_customer(self, customer: Customer) -> None:
        self.customers[customer.number] = customer
        for callback in self.on_customer_saved:
            callback(customer)  # type: ignore[operator]

    def create_order(self, customer_number: str, amount: Money, opportunity: str) -> SalesOrder:
        customer = self.customers[customer_number]
        if customer.credit_blocked:
            raise RuntimeError(f"customer {customer_number} is blocked for credit")
        order = SalesOrder(f"SO-{len(self.orders) + 1:04d}", customer_number, amount, opportunity)
        self.orders[order.number] = order
        return order


# --------------------------------------------------------------- the bridge
class ErpBridge:
    """The crmkit plugin that maps ERP customers and creates ERP orders."""

    def __init__(self, erp: Erp) -> None:
        self.erp = erp

    @hookimpl
    def crmkit_organization_from_customer(self, customer: object) -> OrganizationDraft | None:
        if not isinstance(customer, Customer):
            return None
        return OrganizationDraft(
            external_ref=f"erp:{customer.number}",
            fields={"name": customer.name, "tax_id": customer.vat, "kinds": ["customer"]},
            contacts=tuple(
                ContactDraft(
                    external_ref=f"erp:{customer.number}:{i}",
                    fields={"first_name": name, "email": email},
                )
                for i, (name, email) in enumerate(customer.people, start=1)
            ),
        )

    @hookimpl
    def crmkit_create_sales_order(
        self, crm: crmkit.CRM, opportunity: crmkit.Opportunity
    ) -> str | None:
        assert opportunity.organization_id is not None
        assert opportunity.amount is not None
        organization = crm.organizations.get(opportunity.organization_id)
        if organization.external_ref is None:  # not an ERP customer: no order
            return None
        number = organization.external_ref.removeprefix("erp:")
        return self.erp.create_order(number, opportunity.amount, str(opportunity.id)).number


# ---------------------------------------------------------------- the run
def main() -> None:
    erp = Erp()
    crm = crmkit.open(
        ":memory:",
        plugins=[ErpBridge(erp)],
        clock=lambda: datetime(2026, 11, 23, 10, 0, tzinfo=UTC),
    )
    erp.on_customer_saved.append(crm.sync_customer)

    # a customer saved in the ERP appears in the CRM, with its people
    erp.save_customer(Customer("C-001", "Acme S.A.", "A12345674", [("Ana Pérez", "ana@acme.es")]))
    acme = crm.organizations.get_by_external_ref("erp:C-001")
    print("organization:", acme.name, "| tax id:", acme.tax_id, "| version:", acme.version)
    print("contacts:", [c.full_name for c in crm.contacts.at(acme)])

    # saving it again changes nothing; renaming it updates the organization
    erp.save_customer(Customer("C-001", "Acme S.A.", "A12345674", [("Ana Pérez", "ana@acme.es")]))
    print("after an identical save, version:", crm.organizations.get(acme.id).version)
    erp.save_customer(
        Customer("C-001", "Acme Iberia S.A.", "A12345674", [("Ana Pérez", "ana@acme.es")])
    )
    print("after a rename:", crm.organizations.get(acme.id).name)

    # winning an opportunity creates the ERP's sales order, in the same transaction
    deal = crm.opportunities.create(
        name="ERP rollout",
        organization=acme,
        stage="negotiation",
        amount=Money("12000", "EUR"),
        expected_close=date(2026, 12, 15),
    )
    won = crm.opportunities.win(deal.id)
    order = erp.orders[won.sales_order_ref or ""]
    print("won:", won.status.value, "| sales order:", order.number, order.amount)

    # the ERP refusing the order rolls the win back
    erp.save_customer(Customer("C-002", "Globex S.L.", "B76365789", credit_blocked=True))
    globex = crm.organizations.get_by_external_ref("erp:C-002")
    deal = crm.opportunities.create(
        name="Support", organization=globex, amount=Money("900", "EUR"), stage="negotiation"
    )
    try:
        crm.opportunities.win(deal.id, expected_close=date(2026, 12, 1))
    except HookError as error:
        print("win refused:", error.reason)
    print("still open:", crm.opportunities.get(deal.id).status.value)
    print("orders in the ERP:", sorted(erp.orders))


if __name__ == "__main__":
    main()
