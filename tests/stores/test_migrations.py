"""Alembic migrations: the shipped revisions build the schema the code expects."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

import crmkit
from crmkit import CampaignId
from crmkit.app import database_url
from crmkit.core.ids import uuid7
from crmkit.stores import migrations
from crmkit.stores.schema import metadata
from crmkit.stores.sql import database_revision, upgrade_database

SQL_BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@pytest.fixture(params=SQL_BACKENDS)
def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The SQLAlchemy URL of an empty database."""
    if request.param == "sqlite":
        return database_url(tmp_path / "crm.db")
    url: str = request.getfixturevalue("postgres_url")
    return url


def _set_revision(url: str, revision: str) -> None:
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE alembic_version SET version_num = :r"), {"r": revision})
    engine.dispose()


def test_migrations_produce_the_schema_of_the_table_metadata(empty_url: str) -> None:
    """Upgrading an empty database to head gives exactly the Table metadata: no diff."""
    upgrade_database(empty_url)
    engine = sa.create_engine(empty_url)
    with engine.connect() as conn:
        diff: list[Any] = compare_metadata(
            MigrationContext.configure(conn, opts={"compare_type": True}), metadata
        )
    engine.dispose()
    assert [] == diff


def test_open_creates_a_new_database_at_head(empty_url: str) -> None:
    """crmkit.open() on an empty database leaves it at the newest revision."""
    crmkit.open(empty_url).close()
    assert (migrations.head_revision(), migrations.head_revision()) == database_revision(empty_url)


def test_open_refuses_a_database_from_a_newer_crmkit(empty_url: str) -> None:
    """An unknown (newer) revision is refused with a StorageError saying so."""
    crmkit.open(empty_url).close()
    _set_revision(empty_url, "ffffffff")
    with pytest.raises(crmkit.StorageError) as info:
        crmkit.open(empty_url)
    assert "newer crmkit" in str(info.value)


def test_upgrade_refuses_a_database_from_a_newer_crmkit(empty_url: str) -> None:
    """crmkit db upgrade does not touch a database at an unknown revision."""
    crmkit.open(empty_url).close()
    _set_revision(empty_url, "ffffffff")
    with pytest.raises(crmkit.StorageError):
        upgrade_database(empty_url)
    assert ("ffffffff", migrations.head_revision()) == database_revision(empty_url)


def test_open_asks_to_upgrade_an_older_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A database at a known older revision is refused with the upgrade command to run."""
    url = database_url(tmp_path / "crm.db")
    crmkit.open(url).close()
    monkeypatch.setattr(migrations, "head_revision", lambda: "0099")  # a newer crmkit's head
    with pytest.raises(crmkit.StorageError) as info:
        crmkit.open(url)
    assert "crmkit db upgrade" in str(info.value)


def test_open_refuses_a_database_that_is_not_crmkits(tmp_path: Path) -> None:
    """Tables without a crmkit revision: refused, nothing created."""
    path = tmp_path / "other.db"
    engine = sa.create_engine(database_url(path))
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE invoices (id INTEGER PRIMARY KEY)")
    engine.dispose()
    with pytest.raises(crmkit.StorageError) as info:
        crmkit.open(path)
    assert "not a crmkit database" in str(info.value)


def test_open_of_a_file_that_is_not_a_database_is_a_storage_error(tmp_path: Path) -> None:
    """Garbage bytes give a StorageError with the driver's reason, no SQLAlchemy error."""
    path = tmp_path / "notes.db"
    path.write_bytes(b"this is not a database, just some notes" * 100)
    with pytest.raises(crmkit.StorageError) as info:
        crmkit.open(path)
    assert "not a database" in str(info.value)


def test_upgrading_from_0002_fills_the_organizations_name_keys(empty_url: str) -> None:
    """Migration 0003 adds name_key to existing organizations, computed from their names."""
    from alembic import command

    with crmkit.open(empty_url) as crm:
        acme = crm.organizations.create(name="ACME, S.A.")
        perez = crm.organizations.create(name="Distribuciones Pérez S.L.")
    engine = sa.create_engine(empty_url)
    with engine.begin() as conn:
        command.downgrade(migrations._config(conn), "0002")
        assert "name_key" not in {c["name"] for c in sa.inspect(conn).get_columns("organizations")}
    engine.dispose()

    assert ("0002", migrations.head_revision()) == upgrade_database(empty_url)

    with crmkit.open(empty_url) as crm:
        assert [acme.id] == [o.id for o in crm.organizations.find(name_key="acme")]
        assert "distribuciones perez" == crm.organizations.get(perez.id).name_key


def test_upgrading_from_0005_gives_stored_campaign_ids_a_placeholder_campaign(
    empty_url: str,
) -> None:
    """Migration 0006: a campaign_id that pointed to no record gets a "Campaign <id>" campaign,
    the attribution is kept, and the foreign key holds from then on."""
    from alembic import command

    with crmkit.open(empty_url) as crm:
        conversion = crm.leads.convert(crm.leads.create(company="Acme").id, opportunity_name="ERP")
        lead, opp = conversion.lead, conversion.opportunity
        assert opp is not None  # a lead that refers to an opportunity: rebuilt tables in a chain
    engine = sa.create_engine(empty_url)
    old = uuid7()
    with engine.begin() as conn:
        command.downgrade(migrations._config(conn), "0005")
        assert "campaigns" not in sa.inspect(conn).get_table_names()
        for table in ("leads", "opportunities"):
            conn.execute(sa.text(f"UPDATE {table} SET campaign_id = :c"), {"c": old.hex})
    engine.dispose()

    assert ("0005", migrations.head_revision()) == upgrade_database(empty_url)

    with crmkit.open(empty_url) as crm:
        placeholder = crm.campaigns.get(CampaignId(old))
        assert f"Campaign {old}" == placeholder.name
        assert (old, old) == (
            crm.leads.get(lead.id).campaign_id,
            crm.opportunities.get(opp.id).campaign_id,
        )
        assert (1, 1) == (
            crm.campaigns.results(placeholder).leads,
            crm.campaigns.results(placeholder).opportunities,
        )
        with pytest.raises(crmkit.ValidationError):
            crm.leads.create(company="Globex", campaign=CampaignId(uuid7()))
