"""``with crm.transaction():``: all or nothing, nested savepoints, reads of own writes."""

from __future__ import annotations

import pytest

import crmkit
from crmkit import ConcurrencyError, Organization, ValidationError


class Boom(Exception):
    """Raised by tests to abandon a block."""


def test_transaction_commits_every_write_together(crm: crmkit.CRM) -> None:
    """Writes inside the block are all stored when it ends normally."""
    with crm.transaction():
        acme = crm.organizations.create(name="Acme")
        ana = crm.contacts.create(first_name="Ana", organization=acme)
        crm.organizations.update(acme.id, expected_version=1, website="acme.es")

    assert "https://acme.es" == crm.organizations.get(acme.id).website
    assert [ana] == crm.contacts.at(acme)


def test_transaction_that_raises_stores_nothing(crm: crmkit.CRM) -> None:
    """An exception leaving the block undoes every write in it, audit included."""
    existing = crm.organizations.create(name="Existing")

    def work() -> None:
        with crm.transaction():
            crm.organizations.create(name="Acme")
            crm.contacts.create(first_name="Ana")
            crm.organizations.update(existing.id, expected_version=1, name="Renamed")
            raise Boom

    with pytest.raises(Boom):
        work()

    assert [existing] == crm.organizations.find()
    assert 0 == crm.contacts.count(archived=None)
    assert 1 == len(crm.history(existing.id))


def test_reads_inside_a_transaction_see_its_writes(crm: crmkit.CRM) -> None:
    """get, find, count, get_by_external_ref and history see uncommitted work of the block."""
    with crm.transaction():
        acme = crm.organizations.create(name="Acme", external_ref="E-1")
        crm.organizations.update(acme.id, expected_version=1, tax_id="A1")

        assert "A1" == crm.organizations.get(acme.id).tax_id
        assert [acme.id] == [o.id for o in crm.organizations.find(name="Acme")]
        assert 1 == crm.organizations.count()
        assert acme.id == crm.organizations.get_by_external_ref("E-1").id
        assert [1, 2] == [e.version for e in crm.history(acme.id)]


def test_new_reference_is_usable_inside_the_same_transaction(crm: crmkit.CRM) -> None:
    """A market created in the block can be referenced by key in the same block."""
    with crm.transaction():
        retail = crm.markets.create(name="Retail")
        acme = crm.organizations.create(name="Acme", market="retail")

    assert retail.id == acme.market_id


def test_failed_call_inside_a_transaction_leaves_the_rest_intact(crm: crmkit.CRM) -> None:
    """A rejected call that the caller catches does not spoil the transaction."""
    with crm.transaction():
        acme = crm.organizations.create(name="Acme")
        with pytest.raises(ValidationError):
            crm.organizations.create(name="Bad", emails=["nope"])
        with pytest.raises(ConcurrencyError):
            crm.organizations.update(acme.id, expected_version=7, name="X")
        bolt = crm.organizations.create(name="Bolt")

    assert [acme, bolt] == crm.organizations.find(order_by="name")


def test_nested_transaction_failure_undoes_only_the_inner_block(crm: crmkit.CRM) -> None:
    """An inner block that raises is a savepoint: the outer block's work is kept."""

    def inner(acme: Organization) -> None:
        with crm.transaction():
            crm.organizations.create(name="Inner")
            crm.organizations.update(acme.id, expected_version=1, name="Acme inner")
            raise Boom

    with crm.transaction():
        acme = crm.organizations.create(name="Acme")
        with pytest.raises(Boom):
            inner(acme)
        bolt = crm.organizations.create(name="Bolt")

    assert [acme, bolt] == crm.organizations.find(order_by="name")
    assert 1 == len(crm.history(acme.id))


def test_nested_transaction_success_commits_with_the_outer_block(crm: crmkit.CRM) -> None:
    """Inner work that succeeds is stored when the outer block commits."""
    with crm.transaction():
        with crm.transaction():
            crm.organizations.create(name="Inner")
        crm.organizations.create(name="Outer")

    assert ["Inner", "Outer"] == [o.name for o in crm.organizations.find(order_by="name")]


def test_outer_failure_undoes_committed_inner_blocks(crm: crmkit.CRM) -> None:
    """An inner block that ended well is still undone when the outer block fails."""

    def work() -> None:
        with crm.transaction():
            with crm.transaction():
                crm.organizations.create(name="Inner")
            raise Boom

    with pytest.raises(Boom):
        work()

    assert 0 == crm.organizations.count(archived=None)


def test_transaction_block_returns_the_exception_unchanged(crm: crmkit.CRM) -> None:
    """The caller's own exception leaves the block as it was raised."""
    error = Boom("mine")

    with pytest.raises(Boom) as info, crm.transaction():
        raise error

    assert error is info.value


def test_writes_after_a_failed_transaction_work(crm: crmkit.CRM) -> None:
    """The CRM is usable after a rolled-back transaction; later writes commit alone."""

    def work() -> None:
        with crm.transaction():
            crm.organizations.create(name="Lost")
            raise Boom

    with pytest.raises(Boom):
        work()

    kept = crm.organizations.create(name="Kept")

    assert [kept] == crm.organizations.find()
