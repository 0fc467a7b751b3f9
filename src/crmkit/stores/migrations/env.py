"""Alembic environment: runs on the connection crmkit passes in."""

from __future__ import annotations

from alembic import context

from crmkit.stores.schema import metadata

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - crmkit always passes its connection
    raise RuntimeError("crmkit migrations run through crmkit.stores.migrations only")

context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
