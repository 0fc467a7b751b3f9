"""Custom fields: a ``custom`` JSON column on organizations, contacts, leads,
opportunities, interactions and cases.

Existing rows get ``{}`` (the column's server default), so the column is NOT
NULL from the start.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23 23:05:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

#: the tables of the entity types that carry custom fields
TABLES = ("organizations", "contacts", "leads", "opportunities", "interactions", "cases")


def upgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(
                sa.Column(
                    "custom",
                    sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
                    server_default=sa.text("'{}'"),
                    nullable=False,
                )
            )


def downgrade() -> None:
    for table in reversed(TABLES):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_column("custom")
