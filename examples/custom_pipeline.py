"""A plugin that adds a pipeline, vetoes a move and creates sales orders.

Run it with ``python examples/custom_pipeline.py``.  ``docs/guides/pipelines.md``
includes it section by section, and ``tests/test_docs.py`` runs it and compares
what it prints with ``examples/custom_pipeline.out``.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

# --8<-- [start:plugin]
import crmkit
from crmkit import Money, Pipeline, Stage, StageKind, hookimpl


class Renewals:
    """A renewals pipeline for a subscription business, and its ERP bridge."""

    def __init__(self) -> None:
        self.orders: dict[str, str] = {}

    @hookimpl
    def crmkit_register_pipelines(self) -> list[Pipeline]:
        stages = (
            Stage(
                key="due",
                label="Renewal due",
                label_es="Renovación pendiente",
                probability=Decimal("0.6"),
            ),
            Stage(
                key="quoted",
                label="Quoted",
                label_es="Presupuestada",
                probability=Decimal("0.8"),
                requires={"amount"},
            ),
            Stage(
                key="paused",
                label="Paused",
                label_es="En pausa",
                kind=StageKind.ON_HOLD,
                probability=Decimal("0.5"),
            ),
            Stage(
                key="renewed",
                label="Renewed",
                label_es="Renovada",
                kind=StageKind.WON,
                probability=Decimal(1),
                requires={"amount", "expected_close"},
            ),
            Stage(key="churned", label="Churned", label_es="Baja", kind=StageKind.LOST),
        )
        moves = {
            ("due", "quoted"),
            ("quoted", "due"),  # moving back is allowed
            ("quoted", "renewed"),
            ("due", "churned"),
            ("quoted", "churned"),
        }
        return [
            Pipeline(
                key="renewals",
                name="Renewals",
                name_es="Renovaciones",
                stages=stages,
                transitions=moves,
            )
        ]

    @hookimpl
    def crmkit_validate_transition(self, opportunity: crmkit.Opportunity, target: str) -> None:
        if target == "renewed" and opportunity.contact_id is None:
            raise crmkit.ValidationError("contact", "a renewal needs the customer's contact")

    @hookimpl
    def crmkit_create_sales_order(self, opportunity: crmkit.Opportunity) -> str:
        # Idempotent: the same opportunity always gets the same order.
        key = str(opportunity.id)
        self.orders.setdefault(key, f"SO-{len(self.orders) + 1:04d}")
        return self.orders[key]


# --8<-- [end:plugin]

# --8<-- [start:use]
clock_now = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
renewals = Renewals()
crm = crmkit.open(":memory:", plugins=[renewals], clock=lambda: clock_now)
acme = crm.organizations.create(name="Acme S.A.")
ana = crm.contacts.create(first_name="Ana", organization=acme)

opp = crm.opportunities.create(name="Acme 2027", organization=acme, pipeline="renewals")
print(opp.stage, opp.probability)  # due 0.6

try:
    crm.opportunities.advance(opp.id, to="quoted")  # quoted requires an amount
except crmkit.ValidationError as error:
    print("refused:", error.field)

opp = crm.opportunities.update(
    opp.id,
    expected_version=opp.version,
    amount=Money("4800", "EUR"),
    expected_close=date(2026, 12, 31),
)
opp = crm.opportunities.advance(opp.id, to="quoted")
try:
    crm.opportunities.win(opp.id)  # our validator wants a contact
except crmkit.ValidationError as error:
    print("refused:", error.field)

opp = crm.opportunities.update(opp.id, expected_version=opp.version, contact=ana)
won = crm.opportunities.win(opp.id)
print(won.stage, won.probability, won.sales_order_ref)
print([f"{c.source} -> {c.target}" for c in won.history])
# --8<-- [end:use]
