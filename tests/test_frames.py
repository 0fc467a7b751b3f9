"""``.to_pandas()``: records as DataFrames, with money exact and custom fields as columns."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

import attrs
import pandas as pd
import pytest

import crmkit
from crmkit import CustomField, Money
from tests.conftest import FixedClock


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


# ------------------------------------------------------------- the frame contract


def _book(crm: crmkit.CRM) -> None:
    """Opportunities with every kind of cell: money in two currencies and none,
    won, lost, on hold, custom values, tags, competitors, a moved stage."""
    crm.custom_fields.register(
        CustomField(entity="opportunity", key="tier", label="Tier", type="text")
    )
    norte = crm.zones.create(key="norte", name="Norte")
    acme = crm.organizations.create(name="Acme", zone=norte, tags=["vip"])
    rep = crm.users.create(name="Rep")
    big = crm.opportunities.create(
        name="Big", organization=acme, amount=Money("1234.56", "EUR"), owner=rep,
        stage="negotiation", expected_close=date(2026, 3, 31), competitors=["Rival"],
        tags=["q1"], custom={"tier": "gold"}, probability=Decimal("0.33"),
    )  # fmt: skip
    crm.opportunities.create(name="Yen", organization=acme, amount=Money("5", "JPY"))
    moved = crm.opportunities.create(name="Moved", organization=acme)
    crm.opportunities.advance(moved.id, to="qualified")
    crm.opportunities.win(big.id)
    lost = crm.opportunities.create(name="Lost", organization=acme, amount=Money("0", "EUR"))
    crm.opportunities.lose(lost.id, reason="price")
    gone = crm.opportunities.create(name="Gone", organization=acme)
    crm.opportunities.archive(gone.id, expected_version=gone.version)


def _copy(source: crmkit.CRM, target: crmkit.CRM) -> None:
    """Every record of ``source`` into ``target``, unchanged (same ids, times, versions)."""
    from crmkit.core.query import Query
    from crmkit.stores.schema import ENTITY_TYPES

    for definition in source.custom_fields.for_entity("opportunity"):
        target.custom_fields.register(definition)
    with source.store.unit_of_work() as read, target.store.unit_of_work() as write:
        for cls in ENTITY_TYPES:
            records = read.repository(cls).find(Query(archived=None))
            if records:
                write.repository(cls).add_many(records)
        write.commit()


def test_every_store_gives_the_same_frame_for_the_same_records(
    backend_url: str, clock: FixedClock
) -> None:
    """The memory store builds the frame from the records, SqlStore from the columns."""
    with (
        crmkit.open(":memory:", clock=clock) as memory,
        crmkit.open(backend_url, clock=clock, seed_masters=False) as other,
    ):
        _book(memory)
        if backend_url != ":memory:":
            _copy(memory, other)
        target = other if backend_url != ":memory:" else memory
        every = [f.name for f in attrs.fields(crmkit.Opportunity)]
        criterias: list[dict[str, Any]] = [
            {},
            {"archived": None, "order_by": "name"},
            {"columns": every},
            {"columns": ["history", "amount", "id"], "limit": 2, "offset": 1},
            {"columns": []},
            {"name": "nobody"},
        ]
        for criteria in criterias:
            expected = memory.opportunities.to_pandas(**criteria)
            pd.testing.assert_frame_equal(expected, target.opportunities.to_pandas(**criteria))
        for service in ("organizations", "users", "zones", "loss_reasons"):
            pd.testing.assert_frame_equal(
                getattr(memory, service).to_pandas(), getattr(target, service).to_pandas()
            )


def test_the_columns_have_the_documented_types(any_crm: crmkit.CRM) -> None:
    """Ids text, datetimes datetime64[us, UTC] (NaT when missing), money Decimal + currency."""
    empty = any_crm.opportunities.to_pandas()
    assert 0 == len(empty)
    assert "datetime64[us, UTC]" == str(empty["created_at"].dtype)  # even with no rows
    _book(any_crm)

    frame = any_crm.opportunities.to_pandas(order_by="name")

    for name in ("created_at", "updated_at", "closed_at"):
        assert "datetime64[us, UTC]" == str(frame[name].dtype)
    assert frame["closed_at"].isna().any()  # open deals: NaT
    assert frame["closed_at"].notna().any()
    assert all(isinstance(value, str) and len(value) == 36 for value in frame["id"])
    assert {str(o.id) for o in any_crm.opportunities.find()} == set(frame["id"])
    big = frame[frame["name"] == "Big"].iloc[0]
    assert (Decimal("1234.56"), "EUR") == (big["amount"], big["amount_currency"])
    assert (Decimal("1"), date(2026, 3, 31)) == (big["probability"], big["expected_close"])
    assert ("won", ("Rival",), ("q1",), "gold") == (
        big["status"], big["competitors"], big["tags"], big["custom.tier"],
    )  # fmt: skip
    assert isinstance(big["owner_id"], str)
    yen = frame[frame["name"] == "Yen"].iloc[0]
    assert (Decimal("5"), "JPY") == (yen["amount"], yen["amount_currency"])
    assert "history" not in frame.columns  # the stage history is asked for by name


def test_columns_chooses_and_orders_the_fields_including_the_stage_history(
    any_crm: crmkit.CRM,
) -> None:
    _book(any_crm)

    frame = any_crm.opportunities.to_pandas(
        name="Moved", columns=["amount", "name", "created_at", "history"]
    )

    assert ["amount", "amount_currency", "name", "created_at", "history"] == list(frame.columns)
    (history,) = frame["history"]
    assert ["lead", "qualified"] == [change.target for change in history]
    assert all(isinstance(change, crmkit.StageChange) for change in history)
    assert 4 == len(any_crm.opportunities.to_pandas(columns=[]))  # rows, no columns


def test_an_unknown_column_is_refused(crm: crmkit.CRM) -> None:
    with pytest.raises(crmkit.ValidationError) as caught:
        crm.opportunities.to_pandas(columns=["name", "colour"])

    assert ("columns", "unknown_column") == (caught.value.field, caught.value.code)


def test_a_frame_filtered_by_a_list_of_values_has_those_rows(any_crm: crmkit.CRM) -> None:
    """An ``In`` filter expands into one parameter per value on the column read."""
    a = any_crm.organizations.create(name="A")
    b = any_crm.organizations.create(name="B")
    any_crm.organizations.create(name="C")

    by_id = any_crm.organizations.to_pandas(crmkit.In("id", [a.id, b.id]), order_by="name")
    by_name = any_crm.organizations.to_pandas(crmkit.In("name", ["A", "C"]), columns=["name"])

    assert list(by_id["name"]) == ["A", "B"]
    assert sorted(by_name["name"]) == ["A", "C"]
