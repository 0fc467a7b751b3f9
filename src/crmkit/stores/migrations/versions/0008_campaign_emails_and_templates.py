"""E-mail templates and the per-recipient state of campaign e-mails.

``email_templates`` holds named templates with their language variants
(JSON); ``campaign_emails`` one row per (campaign, contact): the message id
and when the e-mail was claimed, sent, opened, clicked, bounced or
unsubscribed, with the last send error.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-24 04:00:00.000000
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from crmkit.stores.schema import UtcDateTime

revision = "0008"
down_revision = "0007"
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
        "email_templates",
        *_base(),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("variants", _json(), nullable=False),
        sa.Column("default_language", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_email_templates")),
        sa.UniqueConstraint("external_ref", name=op.f("uq_email_templates_external_ref")),
        sa.UniqueConstraint("name", name=op.f("uq_email_templates_name")),
    )
    with op.batch_alter_table("email_templates", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_email_templates_name"), ["name"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_email_templates_updated_at"), ["updated_at"], unique=False
        )

    op.create_table(
        "campaign_emails",
        *_base(),
        sa.Column("campaign_id", sa.Uuid(), nullable=False),
        sa.Column("contact_id", sa.Uuid(), nullable=False),
        sa.Column("organization_id", sa.Uuid(), nullable=True),
        sa.Column("email", sa.String(length=320), nullable=True),
        sa.Column("template", sa.Text(), nullable=True),
        sa.Column("language", sa.Text(), nullable=True),
        sa.Column("message_id", sa.Text(), nullable=True),
        sa.Column("claimed_at", UtcDateTime(), nullable=True),
        sa.Column("sent_at", UtcDateTime(), nullable=True),
        sa.Column("opened_at", UtcDateTime(), nullable=True),
        sa.Column("clicked_at", UtcDateTime(), nullable=True),
        sa.Column("bounced_at", UtcDateTime(), nullable=True),
        sa.Column("unsubscribed_at", UtcDateTime(), nullable=True),
        sa.Column("error_code", sa.Text(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("interaction_id", sa.Uuid(), nullable=True),
        sa.ForeignKeyConstraint(
            ["campaign_id"], ["campaigns.id"], name=op.f("fk_campaign_emails_campaign_id")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_campaign_emails")),
        sa.UniqueConstraint(
            "campaign_id", "contact_id", name=op.f("uq_campaign_emails_campaign_id_contact_id")
        ),
        sa.UniqueConstraint("external_ref", name=op.f("uq_campaign_emails_external_ref")),
    )
    with op.batch_alter_table("campaign_emails", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_campaign_emails_campaign_id"), ["campaign_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_campaign_emails_contact_id"), ["contact_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_campaign_emails_email"), ["email"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_campaign_emails_organization_id_opened_at"),
            ["organization_id", "opened_at"],
            unique=False,
        )
        batch_op.create_index(
            batch_op.f("ix_campaign_emails_updated_at"), ["updated_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("campaign_emails", schema=None) as batch_op:
        for name in (
            "updated_at",
            "organization_id_opened_at",
            "email",
            "contact_id",
            "campaign_id",
        ):
            batch_op.drop_index(batch_op.f(f"ix_campaign_emails_{name}"))
    op.drop_table("campaign_emails")
    with op.batch_alter_table("email_templates", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_email_templates_updated_at"))
        batch_op.drop_index(batch_op.f("ix_email_templates_name"))
    op.drop_table("email_templates")
