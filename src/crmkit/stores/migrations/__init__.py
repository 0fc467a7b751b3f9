"""Schema migrations (Alembic), shipped inside the package.

:func:`prepare` runs whenever a :class:`~crmkit.stores.sql.SqlStore` opens: an
empty database is created at the newest revision; a database at an older
revision is refused with a message to run ``crmkit db upgrade``; one at a
revision this crmkit does not know (made by a newer crmkit) is refused too.
The check and the creation run in one write transaction (``BEGIN IMMEDIATE``
on SQLite, an advisory lock on PostgreSQL), so processes opening a new
database at once create it exactly once.

.. versionadded:: 0.1
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Final

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util.exc import CommandError
from sqlalchemy.engine import Connection, Engine

from crmkit.core.errors import StorageError

__all__ = ["current_revision", "head_revision", "prepare", "upgrade"]

_HERE: Final = Path(__file__).parent
_LOCK_KEY: Final = 0x63726D6B  # "crmk": the advisory lock serializing schema changes


def _config(connection: Connection | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(_HERE))
    cfg.attributes["connection"] = connection
    return cfg


def head_revision() -> str:
    """The newest revision this crmkit ships."""
    head = ScriptDirectory.from_config(_config()).get_current_head()
    assert head is not None
    return head


def _current(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at (``None`` for an empty database)."""
    with engine.connect() as connection:
        return _current(connection)


def _known(revision: str) -> bool:
    try:
        return ScriptDirectory.from_config(_config()).get_revision(revision) is not None
    except CommandError:
        return False


def _lock(connection: Connection) -> None:
    if connection.dialect.name == "postgresql":
        connection.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": _LOCK_KEY})


def prepare(engine: Engine, *, create: bool = True, shared: bool = False) -> None:
    """Check (and for an empty database, create) the schema.

    Args:
        engine: the database.
        create: create the schema when crmkit has none there yet.
        shared: the database is a host's (a Django project's): crmkit creates
            its tables beside the host's, refusing only when one of its own
            table names is taken.  Otherwise any table without a crmkit
            revision means the database is not crmkit's, and it is refused.

    Raises:
        StorageError: a non-crmkit database, an older schema (upgrade needed),
            or a newer one (unknown revision).
    """
    head = head_revision()
    try:
        with engine.connect() as connection:
            current = _current(connection)
        if current == head:
            return
        with engine.begin() as connection:
            _lock(connection)
            current = _current(connection)
            if current is None:
                existing = set(sa.inspect(connection).get_table_names())
                if shared:
                    taken = sorted(existing & _own_tables())
                    if taken:
                        raise StorageError(
                            "the database already has tables named like crmkit's "
                            f"({', '.join(taken)}) but no crmkit schema revision"
                        )
                elif existing:
                    raise StorageError(
                        "the database has tables but no crmkit schema revision: "
                        "it is not a crmkit database"
                    )
                if not create:
                    raise StorageError("the database is empty and create=False")
                command.upgrade(_config(connection), "head")
                return
    except sa.exc.SQLAlchemyError as error:
        reason = getattr(error, "orig", None) or error
        raise StorageError(f"cannot open the database: {reason}") from error
    if current == head:
        return
    if _known(current):
        raise StorageError(
            f"the database schema is at revision {current}, this crmkit needs {head}: "
            "run `crmkit db upgrade` (back up the database first)"
        )
    raise StorageError(
        f"the database schema is at revision {current}, which this crmkit does not know: "
        "it was written by a newer crmkit; upgrade crmkit"
    )


def _own_tables() -> set[str]:
    """The names of the tables crmkit's migrations create (and Alembic's own)."""
    from crmkit.stores.schema import metadata

    return set(metadata.tables) | {"alembic_version"}


def upgrade(engine: Engine, revision: str = "head") -> tuple[str | None, str | None]:
    """Upgrade the database to ``revision``.

    Returns:
        The revisions before and after.

    Raises:
        StorageError: the database is at an unknown revision, or a step failed.
    """
    try:
        with (
            engine.connect() as connection,
            _foreign_keys_checked_at_the_end(connection),
            connection.begin(),
        ):
            _lock(connection)
            before = _current(connection)
            if before is not None and not _known(before):
                raise StorageError(f"the database is at revision {before}, unknown to this crmkit")
            command.upgrade(_config(connection), revision)
            after = _current(connection)
            _check_foreign_keys(connection)
    except (sa.exc.SQLAlchemyError, CommandError) as error:
        reason = getattr(error, "orig", None) or error
        raise StorageError(f"upgrade failed: {reason}") from error
    return before, after


@contextmanager
def _foreign_keys_checked_at_the_end(connection: Connection) -> Iterator[None]:
    """SQLite: foreign keys off while the migrations run, as SQLite's documented
    procedure for table rebuilds (and Alembic's batch mode) requires.

    A batch migration rebuilds a table by copying it, dropping the original and
    renaming the copy; with enforcement on, dropping a table other tables
    refer to fails.  :func:`_check_foreign_keys` checks every key before the
    commit instead.  The pragma only works outside a transaction, so it is
    set on the driver connection before the migration transaction begins.
    """
    if connection.dialect.name != "sqlite":
        yield
        return
    driver = connection.connection.driver_connection
    assert driver is not None
    driver.execute("PRAGMA foreign_keys=OFF")
    try:
        yield
    finally:
        driver.execute("PRAGMA foreign_keys=ON")


def _check_foreign_keys(connection: Connection) -> None:
    if connection.dialect.name != "sqlite":
        return
    broken = connection.exec_driver_sql("PRAGMA foreign_key_check").first()
    if broken is not None:
        raise StorageError(f"upgrade failed: a row of {broken[0]} refers to no {broken[2]}")
