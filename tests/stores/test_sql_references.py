"""The SQL stores' reference checks, and the ids a transaction remembers as stored."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

import crmkit
from crmkit import ValidationError
from crmkit.core import changes
from crmkit.core.entities import Contact, Organization
from crmkit.core.ids import uuid7
from crmkit.stores.sql import STORED_IDS_KEPT, SqlStore

NOW = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


class _Undo(Exception):
    """Leaves a savepoint by rolling it back."""


def _organization(name: str) -> Organization:
    return changes.create(Organization, id=uuid7(), now=NOW, name=name)[0]


def _contact(organization: Organization) -> Contact:
    return changes.create(
        Contact, id=uuid7(), now=NOW, first_name="Ana", organization_id=organization.id
    )[0]


def _add_read_and_undo(uow: Any, organization: Organization) -> None:
    """Insert ``organization`` in a savepoint, read its id back, roll the savepoint back."""
    with uow.savepoint():
        uow.repository(Organization).add(organization)
        found = uow.repository(Organization).ids_by("id", [organization.id])
        assert {organization.id: organization.id} == found
        raise _Undo


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SqlStore]:
    """A SQLite file or a PostgreSQL database (the memory store checks in Python)."""
    url = (
        str(tmp_path / "crm.db")
        if request.param == "sqlite"
        else request.getfixturevalue("postgres_url")
    )
    with crmkit.open(url) as crm:
        assert isinstance(crm.store, SqlStore)
        yield crm.store


def test_a_reference_to_a_record_a_rolled_back_savepoint_inserted_is_refused(
    store: SqlStore,
) -> None:
    """An id read as stored inside a savepoint is forgotten when the savepoint rolls back."""
    with store.unit_of_work(write=True) as uow:
        acme = _organization("Acme")
        with pytest.raises(_Undo):
            _add_read_and_undo(uow, acme)

        with pytest.raises(ValidationError) as refused:
            uow.repository(Contact).add(_contact(acme))

    assert ("organization_id", "reference") == (refused.value.field, refused.value.code)


def test_a_reference_to_a_record_read_in_the_transaction_is_stored(store: SqlStore) -> None:
    with store.unit_of_work(write=True) as uow:
        acme = _organization("Acme")
        uow.repository(Organization).add(acme)
        uow.repository(Organization).ids_by("id", [acme.id])
        ana = _contact(acme)
        uow.repository(Contact).add(ana)
        uow.commit()

    with store.unit_of_work(write=False) as uow:
        assert acme.id == uow.repository(Contact).get(ana.id).organization_id


def test_a_transaction_remembers_a_bounded_number_of_ids(store: SqlStore) -> None:
    with store.unit_of_work(write=True) as uow:
        uow.remember("organizations", (uuid7() for _ in range(STORED_IDS_KEPT)))
        assert STORED_IDS_KEPT == len(uow.stored_ids("organizations"))

        uow.remember("organizations", [uuid7()])

        assert len(uow.stored_ids("organizations")) <= STORED_IDS_KEPT
