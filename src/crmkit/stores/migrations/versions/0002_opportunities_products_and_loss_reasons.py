"""Opportunities (with their stage history), products and loss reasons.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 20:12:25.582992
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from crmkit.stores.schema import DecimalText, UtcDateTime

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "loss_reasons",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.Column("external_ref", sa.Text(), nullable=True),
        sa.Column("archived", sa.Boolean(), nullable=False),
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("name_es", sa.Text(), nullable=True),
        sa.Column("description", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_loss_reasons")),
        sa.UniqueConstraint("external_ref", name=op.f("uq_loss_reasons_external_ref")),
        sa.UniqueConstraint("key", name=op.f("uq_loss_reasons_key")),
    )
    with op.batch_alter_table("loss_reasons", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_loss_reasons_name"), ["name"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_loss_reasons_updated_at"), ["updated_at"], unique=False
        )

    op.create_table(
        "products",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.Column("external_ref", sa.Text(), nullable=True),
        sa.Column("archived", sa.Boolean(), nullable=False),
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("name_es", sa.Text(), nullable=True),
        sa.Column("description", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_products")),
        sa.UniqueConstraint("external_ref", name=op.f("uq_products_external_ref")),
        sa.UniqueConstraint("key", name=op.f("uq_products_key")),
    )
    with op.batch_alter_table("products", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_products_name"), ["name"], unique=False)
        batch_op.create_index(batch_op.f("ix_products_updated_at"), ["updated_at"], unique=False)

    op.create_table(
        "opportunities",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.Column("external_ref", sa.Text(), nullable=True),
        sa.Column("archived", sa.Boolean(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("organization_id", sa.Uuid(), nullable=True),
        sa.Column("contact_id", sa.Uuid(), nullable=True),
        sa.Column("pipeline", sa.Text(), nullable=False),
        sa.Column("stage", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=True),
        sa.Column("amount_currency", sa.String(length=3), nullable=True),
        sa.Column("probability", DecimalText(), nullable=False),
        sa.Column("probability_override", sa.Boolean(), nullable=False),
        sa.Column("expected_close", sa.Date(), nullable=True),
        sa.Column("closed_at", UtcDateTime(), nullable=True),
        sa.Column("source_id", sa.Uuid(), nullable=True),
        sa.Column("campaign_id", sa.Uuid(), nullable=True),
        sa.Column("prescriber_id", sa.Uuid(), nullable=True),
        sa.Column("owner_id", sa.Uuid(), nullable=True),
        sa.Column(
            "competitors",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "line_items",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("close_reason_id", sa.Uuid(), nullable=True),
        sa.Column("close_note", sa.Text(), nullable=True),
        sa.Column("sales_order_ref", sa.Text(), nullable=True),
        sa.Column("held_from", sa.Text(), nullable=True),
        sa.Column(
            "history",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "tags",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("notes", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["close_reason_id"], ["loss_reasons.id"], name=op.f("fk_opportunities_close_reason_id")
        ),
        sa.ForeignKeyConstraint(
            ["contact_id"], ["contacts.id"], name=op.f("fk_opportunities_contact_id")
        ),
        sa.ForeignKeyConstraint(
            ["organization_id"], ["organizations.id"], name=op.f("fk_opportunities_organization_id")
        ),
        sa.ForeignKeyConstraint(["owner_id"], ["users.id"], name=op.f("fk_opportunities_owner_id")),
        sa.ForeignKeyConstraint(
            ["prescriber_id"], ["organizations.id"], name=op.f("fk_opportunities_prescriber_id")
        ),
        sa.ForeignKeyConstraint(
            ["source_id"], ["sources.id"], name=op.f("fk_opportunities_source_id")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_opportunities")),
        sa.UniqueConstraint("external_ref", name=op.f("uq_opportunities_external_ref")),
    )
    with op.batch_alter_table("opportunities", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_opportunities_amount_currency_amount_minor"),
            ["amount_currency", "amount_minor"],
            unique=False,
        )
        batch_op.create_index(
            batch_op.f("ix_opportunities_close_reason_id"), ["close_reason_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_opportunities_contact_id"), ["contact_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_opportunities_expected_close"), ["expected_close"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_opportunities_name"), ["name"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_opportunities_organization_id"), ["organization_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_opportunities_owner_id"), ["owner_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_opportunities_pipeline_stage"), ["pipeline", "stage"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_opportunities_prescriber_id"), ["prescriber_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_opportunities_source_id"), ["source_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_opportunities_status"), ["status"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_opportunities_updated_at"), ["updated_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("opportunities", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_opportunities_updated_at"))
        batch_op.drop_index(batch_op.f("ix_opportunities_status"))
        batch_op.drop_index(batch_op.f("ix_opportunities_source_id"))
        batch_op.drop_index(batch_op.f("ix_opportunities_prescriber_id"))
        batch_op.drop_index(batch_op.f("ix_opportunities_pipeline_stage"))
        batch_op.drop_index(batch_op.f("ix_opportunities_owner_id"))
        batch_op.drop_index(batch_op.f("ix_opportunities_organization_id"))
        batch_op.drop_index(batch_op.f("ix_opportunities_name"))
        batch_op.drop_index(batch_op.f("ix_opportunities_expected_close"))
        batch_op.drop_index(batch_op.f("ix_opportunities_contact_id"))
        batch_op.drop_index(batch_op.f("ix_opportunities_close_reason_id"))
        batch_op.drop_index(batch_op.f("ix_opportunities_amount_currency_amount_minor"))

    op.drop_table("opportunities")
    with op.batch_alter_table("products", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_products_updated_at"))
        batch_op.drop_index(batch_op.f("ix_products_name"))

    op.drop_table("products")
    with op.batch_alter_table("loss_reasons", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_loss_reasons_updated_at"))
        batch_op.drop_index(batch_op.f("ix_loss_reasons_name"))

    op.drop_table("loss_reasons")
