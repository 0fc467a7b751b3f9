"""``.to_pandas()``: records as DataFrames, with money exact and custom fields as columns."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pandas as pd

import crmkit
from crmkit import CustomField, Money


def test_a_frame_has_a_row_per_record_and_a_column_per_field(any_crm: crmkit.CRM) -> None:
    any_crm.organizations.create(
        name="Acme S.A.", emails=["ventas@acme.es"], phones=["+34 911 234 567"], tags=["vip"]
    )
    any_crm.organizations.create(name="Beta S.L.")

    frame = any_crm.organizations.to_pandas(order_by="name")

    assert ["Acme S.A.", "Beta S.L."] == list(frame["name"])
    assert ("ventas@acme.es",) == frame["emails"][0]
    assert ("+34911234567",) == frame["phones"][0]
    assert ["active", "active"] == list(frame["status"])
    assert str(frame["created_at"].dtype).startswith("datetime64")
    assert isinstance(frame["id"][0], str)


def test_money_is_exact_with_its_currency(any_crm: crmkit.CRM) -> None:
    acme = any_crm.organizations.create(name="Acme")
    any_crm.opportunities.create(name="Big", organization=acme, amount=Money("1234.56", "EUR"))
    any_crm.opportunities.create(name="None yet", organization=acme)

    frame = any_crm.opportunities.to_pandas(order_by="name")

    assert Decimal("1234.56") == frame["amount"][0]
    assert "EUR" == frame["amount_currency"][0]
    assert pd.isna(frame["amount"][1])
    assert pd.isna(frame["amount_currency"][1])  # missing, as pandas spells it


def test_custom_fields_are_columns_including_removed_definitions(any_crm: crmkit.CRM) -> None:
    """Every definition is a column (even unset); a removed one's stored values stay."""
    for key, type in (("tier", "text"), ("credit", "money"), ("old", "integer")):
        any_crm.custom_fields.register(
            CustomField(entity="organization", key=key, label=key, type=type)
        )
    any_crm.organizations.create(
        name="Acme", custom={"tier": "gold", "credit": Money("10", "EUR"), "old": 7}
    )
    any_crm.custom_fields.remove("organization", "old")

    frame = any_crm.organizations.to_pandas()

    assert {"custom.tier", "custom.credit", "custom.credit_currency", "custom.old"} <= set(
        frame.columns
    )
    assert ("gold", Decimal("10.00"), "EUR", 7) == (
        frame["custom.tier"][0],
        frame["custom.credit"][0],
        frame["custom.credit_currency"][0],
        frame["custom.old"][0],
    )


def test_the_criteria_are_finds(any_crm: crmkit.CRM) -> None:
    any_crm.organizations.create(name="Acme", tags=["vip"])
    any_crm.organizations.create(name="Beta")

    frame = any_crm.organizations.to_pandas(crmkit.Has("tags", "vip"))

    assert ["Acme"] == list(frame["name"])


def test_no_records_give_an_empty_frame_with_the_columns(any_crm: crmkit.CRM) -> None:
    frame = any_crm.contacts.to_pandas()

    assert 0 == len(frame)
    assert {"id", "first_name", "email", "organization_id"} <= set(frame.columns)


def test_masters_and_users_have_frames_too(any_crm: crmkit.CRM) -> None:
    frame = any_crm.sources.to_pandas()

    assert len(frame) == any_crm.sources.count()
    assert "custom" not in frame.columns


def test_the_column_read_gives_the_frame_the_records_give(any_crm: crmkit.CRM) -> None:
    """SqlStore reads the frame column by column; it equals the one built from ``find``."""
    from crmkit.frames import records_frame

    crm = any_crm
    crm.custom_fields.register(
        CustomField(entity="opportunity", key="tier", label="Tier", type="text")
    )
    norte = crm.zones.create(key="norte", name="Norte")
    acme = crm.organizations.create(name="Acme", zone=norte, tags=["vip"])
    rep = crm.users.create(name="Rep")
    big = crm.opportunities.create(
        name="Big", organization=acme, amount=Money("1234.56", "EUR"), owner=rep,
        stage="negotiation", expected_close=date(2026, 3, 31),
        competitors=["Rival"], tags=["q1"], custom={"tier": "gold"}, probability=Decimal("0.33"),
    )  # fmt: skip
    crm.opportunities.create(name="Yen", organization=acme, amount=Money("5", "JPY"))
    crm.opportunities.create(name="None yet", organization=acme)
    crm.opportunities.win(big.id)
    lost = crm.opportunities.create(name="Lost", organization=acme, amount=Money("0", "EUR"))
    crm.opportunities.lose(lost.id, reason="price")

    for service, cls, order in (
        (crm.opportunities, crmkit.Opportunity, "name"),
        (crm.organizations, crmkit.Organization, "name"),
    ):
        keys = [f.key for f in crm.custom_fields.for_entity(cls.ENTITY)]
        expected = records_frame(cls, service.find(order_by=order), keys)
        pd.testing.assert_frame_equal(expected, service.to_pandas(order_by=order))
    empty = crm.opportunities.to_pandas(name="nobody")
    assert list(empty.columns) == list(records_frame(crmkit.Opportunity, [], ["tier"]).columns)
