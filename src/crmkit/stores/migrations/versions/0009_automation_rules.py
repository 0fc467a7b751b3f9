"""Automation rules and their firing journal.

``rules`` holds each rule (trigger, condition and actions as JSON);
``rule_firings`` one row per rule fired for one record and trigger
occurrence, its ``key`` unique so that no rule fires twice for the same
occurrence (idempotency across processes).

(Named for its content: other branches may also add revisions after 0006;
the later one to land is renumbered.)

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-24 04:00:00.000000
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from crmkit.stores.schema import UtcDateTime

revision = "0009"
down_revision = "0008"
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
        "rules",
        *_base(),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("trigger", _json(), nullable=False),
        sa.Column("condition", _json(), nullable=False),
        sa.Column("actions", _json(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rules")),
        sa.UniqueConstraint("external_ref", name=op.f("uq_rules_external_ref")),
        sa.UniqueConstraint("name", name=op.f("uq_rules_name")),
    )
    with op.batch_alter_table("rules", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_rules_name"), ["name"], unique=False)
        batch_op.create_index(batch_op.f("ix_rules_updated_at"), ["updated_at"], unique=False)

    op.create_table(
        "rule_firings",
        *_base(),
        sa.Column("rule_id", sa.Uuid(), nullable=False),
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("trigger", sa.String(length=32), nullable=False),
        sa.Column("record_entity", sa.Text(), nullable=True),
        sa.Column("record_id", sa.Uuid(), nullable=True),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("fired_at", UtcDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["rule_id"], ["rules.id"], name=op.f("fk_rule_firings_rule_id")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rule_firings")),
        sa.UniqueConstraint("external_ref", name=op.f("uq_rule_firings_external_ref")),
        sa.UniqueConstraint("key", name=op.f("uq_rule_firings_key")),
    )
    with op.batch_alter_table("rule_firings", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_rule_firings_rule_id"), ["rule_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_rule_firings_updated_at"), ["updated_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("rule_firings", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_rule_firings_updated_at"))
        batch_op.drop_index(batch_op.f("ix_rule_firings_rule_id"))
    op.drop_table("rule_firings")
    with op.batch_alter_table("rules", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_rules_updated_at"))
        batch_op.drop_index(batch_op.f("ix_rules_name"))
    op.drop_table("rules")
