"""Where crmkit keeps its data.

* :mod:`crmkit.stores.base`: the ``Store`` / ``UnitOfWork`` / ``Repository``
  protocols every backend matches.
* :mod:`crmkit.stores.memory`: ``MemoryStore``, for tests and notebooks.
* :mod:`crmkit.stores.sql`: ``SqlStore``, SQLite (the embedded default) and
  PostgreSQL on SQLAlchemy Core, with Alembic migrations in
  :mod:`crmkit.stores.migrations`.

Importing this package opens nothing.
"""
