"""Segments and campaigns; leads, opportunities and interactions refer to campaigns.

``campaign_id`` on leads, opportunities and interactions becomes a foreign key
to the new ``campaigns`` table (with an index).  Before this revision those ids pointed
to no record; each distinct one found gets a placeholder campaign named
``Campaign <id>`` (kind ``other``, status ``active``), so no attribution is
lost and the key holds.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-24 01:00:00.000000
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from crmkit.stores.schema import UtcDateTime

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

#: the tables whose ``campaign_id`` becomes a foreign key
REFERRING = ("opportunities", "interactions", "leads")


def _json() -> sa.types.TypeEngine[Any]:
    return sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def _base() -> list[sa.Column[object]]:
    return [
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.Column("external_ref", sa.Text(), nullable=True),
        sa.Column("archived", sa.Boolean(), nullable=False),
    ]


def upgrade() -> None:
    # On SQLite, batch mode rebuilds the referring tables, which others refer to
    # in turn (leads -> opportunities): crmkit.stores.migrations.upgrade runs
    # migrations with foreign keys off and checks them all before committing.
    op.create_table(
        "segments",
        *_base(),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("criteria", _json(), nullable=False),
        sa.Column("mode", sa.String(length=32), nullable=False),
        sa.Column("members", _json(), nullable=False),
        sa.Column("snapshot_at", UtcDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_segments")),
        sa.UniqueConstraint("external_ref", name=op.f("uq_segments_external_ref")),
        sa.UniqueConstraint("name", name=op.f("uq_segments_name")),
    )
    with op.batch_alter_table("segments", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_segments_name"), ["name"], unique=False)
        batch_op.create_index(batch_op.f("ix_segments_updated_at"), ["updated_at"], unique=False)

    op.create_table(
        "campaigns",
        *_base(),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("starts_on", sa.Date(), nullable=True),
        sa.Column("ends_on", sa.Date(), nullable=True),
        sa.Column("budget_minor", sa.BigInteger(), nullable=True),
        sa.Column("budget_currency", sa.String(length=3), nullable=True),
        sa.Column("actual_cost_minor", sa.BigInteger(), nullable=True),
        sa.Column("actual_cost_currency", sa.String(length=3), nullable=True),
        sa.Column("segment_id", sa.Uuid(), nullable=True),
        sa.Column("owner_id", sa.Uuid(), nullable=True),
        sa.Column("members", _json(), nullable=False),
        sa.Column("launched_at", UtcDateTime(), nullable=True),
        sa.Column("tags", _json(), nullable=False),
        sa.ForeignKeyConstraint(["owner_id"], ["users.id"], name=op.f("fk_campaigns_owner_id")),
        sa.ForeignKeyConstraint(
            ["segment_id"], ["segments.id"], name=op.f("fk_campaigns_segment_id")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_campaigns")),
        sa.UniqueConstraint("external_ref", name=op.f("uq_campaigns_external_ref")),
        sa.UniqueConstraint("name", name=op.f("uq_campaigns_name")),
    )
    with op.batch_alter_table("campaigns", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_campaigns_name"), ["name"], unique=False)
        batch_op.create_index(batch_op.f("ix_campaigns_owner_id"), ["owner_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_campaigns_segment_id"), ["segment_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_campaigns_status"), ["status"], unique=False)
        batch_op.create_index(batch_op.f("ix_campaigns_updated_at"), ["updated_at"], unique=False)

    _placeholder_campaigns()
    for table in REFERRING:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.create_index(batch_op.f(f"ix_{table}_campaign_id"), ["campaign_id"])
            batch_op.create_foreign_key(
                batch_op.f(f"fk_{table}_campaign_id"), "campaigns", ["campaign_id"], ["id"]
            )


def _placeholder_campaigns() -> None:
    """A campaign for each ``campaign_id`` that points to none yet."""
    bind = op.get_bind()
    meta = sa.MetaData()
    ids: set[object] = set()
    for name in REFERRING:
        table = sa.Table(name, meta, sa.Column("campaign_id", sa.Uuid()))
        ids.update(
            bind.scalars(sa.select(table.c.campaign_id).where(table.c.campaign_id.is_not(None)))
        )
    if not ids:
        return
    now = datetime.now(UTC)
    campaigns = sa.table(
        "campaigns",
        sa.column("id", sa.Uuid()),
        sa.column("version", sa.Integer()),
        sa.column("created_at", UtcDateTime()),
        sa.column("updated_at", UtcDateTime()),
        sa.column("archived", sa.Boolean()),
        sa.column("name", sa.Text()),
        sa.column("kind", sa.String()),
        sa.column("status", sa.String()),
        sa.column("members", _json()),
        sa.column("tags", _json()),
    )
    bind.execute(
        campaigns.insert(),
        [
            {
                "id": id,
                "version": 1,
                "created_at": now,
                "updated_at": now,
                "archived": False,
                "name": f"Campaign {id}",
                "kind": "other",
                "status": "active",
                "members": [],
                "tags": [],
            }
            for id in sorted(ids, key=str)
        ],
    )


def downgrade() -> None:
    for table in reversed(REFERRING):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_constraint(batch_op.f(f"fk_{table}_campaign_id"), type_="foreignkey")
            batch_op.drop_index(batch_op.f(f"ix_{table}_campaign_id"))
    with op.batch_alter_table("campaigns", schema=None) as batch_op:
        for column in ("updated_at", "status", "segment_id", "owner_id", "name"):
            batch_op.drop_index(batch_op.f(f"ix_campaigns_{column}"))
    op.drop_table("campaigns")
    with op.batch_alter_table("segments", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_segments_updated_at"))
        batch_op.drop_index(batch_op.f("ix_segments_name"))
    op.drop_table("segments")
