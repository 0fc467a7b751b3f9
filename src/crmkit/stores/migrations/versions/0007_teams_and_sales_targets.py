"""Teams and sales targets.

``teams`` holds named groups of users (``member_ids`` is a JSON list of user
ids; a user may be in several teams).  ``targets`` holds sales targets: an
amount to win in one period by exactly one of a user, a team or a zone.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-24 04:00:00.000000
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from crmkit.stores.schema import UtcDateTime

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


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
    op.create_table(
        "teams",
        *_base(),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("member_ids", _json(), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_teams")),
        sa.UniqueConstraint("external_ref", name=op.f("uq_teams_external_ref")),
        sa.UniqueConstraint("name", name=op.f("uq_teams_name")),
    )
    with op.batch_alter_table("teams", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_teams_name"), ["name"], unique=False)
        batch_op.create_index(batch_op.f("ix_teams_updated_at"), ["updated_at"], unique=False)

    op.create_table(
        "targets",
        *_base(),
        sa.Column("user_id", sa.Uuid(), nullable=True),
        sa.Column("team_id", sa.Uuid(), nullable=True),
        sa.Column("zone_id", sa.Uuid(), nullable=True),
        sa.Column("period_kind", sa.String(length=32), nullable=False),
        sa.Column("period_start", sa.Date(), nullable=False),
        sa.Column("fiscal_start", sa.Integer(), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("amount_currency", sa.String(length=3), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_targets_user_id")),
        sa.ForeignKeyConstraint(["team_id"], ["teams.id"], name=op.f("fk_targets_team_id")),
        sa.ForeignKeyConstraint(["zone_id"], ["zones.id"], name=op.f("fk_targets_zone_id")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_targets")),
        sa.UniqueConstraint("external_ref", name=op.f("uq_targets_external_ref")),
    )
    with op.batch_alter_table("targets", schema=None) as batch_op:
        for column in ("team_id", "updated_at", "user_id", "zone_id"):
            batch_op.create_index(batch_op.f(f"ix_targets_{column}"), [column], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("targets", schema=None) as batch_op:
        for column in ("team_id", "updated_at", "user_id", "zone_id"):
            batch_op.drop_index(batch_op.f(f"ix_targets_{column}"))
    op.drop_table("targets")
    with op.batch_alter_table("teams", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_teams_updated_at"))
        batch_op.drop_index(batch_op.f("ix_teams_name"))
    op.drop_table("teams")
