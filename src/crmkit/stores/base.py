"""The store contract: what every backend provides.

Backends do not inherit from these protocols; they match them structurally
(``MemoryStore``, ``SqlStore``, or a third party's).  The contract suite in
:mod:`crmkit.testing` checks a backend's behaviour, not only its shape.

Semantics every backend keeps:

* a unit of work sees its own writes and rolls back unless committed;
* ``update`` succeeds only when the stored version is ``expected_version``
  (``ConcurrencyError`` otherwise) and the entity passed carries the next one;
* ``UNIQUE`` fields of an entity type are unique among all its records
  (``DuplicateError``), ``REFERENCES`` point to existing records
  (``ValidationError`` with code ``reference``);
* ``find`` filters, orders and pages exactly as :func:`crmkit.core.query.select`;
* only :mod:`crmkit` errors cross the boundary.

.. versionadded:: 0.1
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any, Protocol, TypeVar
from uuid import UUID

from crmkit.core.audit import AuditAction, AuditChange, AuditEntry
from crmkit.core.entities import Entity, FieldKind
from crmkit.core.ids import OrganizationId
from crmkit.core.pushdown import ClosedDealsQuery, ClosedGroups, OpenDealsQuery, OpenGroups
from crmkit.core.query import Query, Restriction
from crmkit.core.segments import Criteria

__all__ = [
    "AnalyticsAggregator",
    "AuditLog",
    "BulkUpdater",
    "ColumnReader",
    "Repository",
    "SegmentEvaluator",
    "Store",
    "UnitOfWork",
]

E = TypeVar("E", bound=Entity)
E_contra = TypeVar("E_contra", bound=Entity, contravariant=True)


class Repository(Protocol[E]):
    """The records of one entity type, inside a unit of work."""

    def add(self, entity: E) -> None:
        """Insert a new record.

        Raises:
            DuplicateError: a ``UNIQUE`` field's value, or the id, exists already.
            ValidationError: a reference points to no record (code ``reference``).
        """

    def add_many(self, entities: Sequence[E]) -> None:
        """Insert many new records at once (same checks as :meth:`add`)."""

    def get(self, id: UUID) -> E:
        """The record with ``id``.

        Raises:
            NotFoundError: there is none.
        """

    def get_many(self, ids: Collection[UUID]) -> dict[UUID, E]:
        """The records with these ids that exist, by id."""

    def get_by(self, field: str, value: object) -> E | None:
        """The record whose ``UNIQUE`` ``field`` equals ``value``, if any."""

    def ids_by(self, field: str, values: Collection[object]) -> dict[object, UUID]:
        """The ids of the records (archived ones too) whose ``UNIQUE`` ``field``
        (or ``"id"``) holds one of ``values``, by value; only ids are read.

        .. versionadded:: 0.1

        Raises:
            ValidationError: ``field`` is neither ``"id"`` nor unique (code
                ``unknown_field``).
        """

    def update(self, entity: E, *, expected_version: int) -> None:
        """Replace the stored record by ``entity`` if its version is ``expected_version``.

        Raises:
            NotFoundError: there is no record with ``entity.id``.
            ConcurrencyError: the stored version is not ``expected_version``.
            DuplicateError: a ``UNIQUE`` value clashes with another record.
        """

    def find(self, query: Query) -> list[E]:
        """Records matching ``query``, in its order."""

    def count(self, query: Query) -> int:
        """How many records match ``query`` (limit and offset ignored)."""


class BulkUpdater(Protocol[E_contra]):
    """A repository that updates many records at once (optional).

    ``MemoryStore`` and ``SqlStore`` repositories provide it (one
    ``executemany`` on SQL); for a backend without it, callers update the
    records one by one with :meth:`Repository.update`.
    """

    def update_many(
        self, entities: Sequence[E_contra], *, expected_versions: Sequence[int]
    ) -> None:
        """:meth:`Repository.update` of each entity with its expected version, at once.

        Raises:
            NotFoundError: a record does not exist.
            ConcurrencyError: a stored version is not the expected one.
            ValidationError: not one version per entity (code ``range``).
        """


class ColumnReader(Protocol):
    """A repository that reads a frame's cells column by column (optional).

    ``SqlStore``'s repositories provide it; ``.to_pandas()`` uses it to build
    a frame without building the records, and reads the records otherwise.

    .. versionadded:: 0.1
    """

    def cells(self, query: Query, fields: Sequence[str]) -> dict[str, Sequence[Any]]:
        """Each of ``fields``' values over the records ``find(query)`` returns, in its order.

        Per field, as :func:`crmkit.frames.fields_frame` takes them: the
        records' values (``getattr(record, field)``), except that an id field
        may hold canonical id text (``str(uuid)``), a datetime field naive
        ISO 8601 text in UTC, and a money field ``field`` the ``Decimal``
        amounts with the currencies under ``<field>_currency``.
        """


class AuditLog(Protocol):
    """The append-only audit trail, inside a unit of work."""

    def append(
        self,
        *,
        entity: str,
        entity_id: UUID,
        version: int,
        action: AuditAction,
        changes: Sequence[AuditChange],
        actor: str | None,
        at: datetime,
    ) -> None:
        """Add one entry; the store assigns its sequence number."""

    def history(self, entity_id: UUID) -> list[AuditEntry]:
        """Every entry for ``entity_id``, oldest first."""


class UnitOfWork(Protocol):
    """One transaction.  Rolls back unless :meth:`commit` is called."""

    @property
    def audit(self) -> AuditLog:
        """The audit trail, written in this transaction."""

    def repository(self, cls: type[E]) -> Repository[E]:
        """The repository of entity type ``cls``."""

    def savepoint(self) -> AbstractContextManager[None]:
        """A nested transaction: rolled back alone when its block raises."""

    def commit(self) -> None:
        """Make every change of this unit of work durable and visible."""

    def rollback(self) -> None:
        """Discard every uncommitted change."""


class SegmentEvaluator(Protocol):
    """A unit of work that evaluates segment criteria itself (optional).

    ``MemoryStore`` and ``SqlStore`` provide it (``SqlStore`` in one SQL
    query); for a backend without it, the segments service evaluates the tree
    with :func:`crmkit.core.segments.evaluate` over the records it reads.
    """

    def segment(
        self,
        criteria: Criteria,
        *,
        as_of: datetime,
        custom_kinds: Sequence[tuple[str, FieldKind]] = (),
        restrict: Mapping[type[Entity], Restriction | None] | None = None,
    ) -> list[OrganizationId]:
        """The ids of the organizations (not archived) meeting ``criteria``, in id order.

        Must agree with :func:`crmkit.core.segments.evaluate`.  ``restrict``
        (an access scope's) limits the organizations, and the interactions
        and opportunities history criteria count, to those its restriction
        of each type lets through; a type absent from it is not restricted.
        """


class AnalyticsAggregator(Protocol):
    """A unit of work that computes grouped analytics itself (optional).

    ``SqlStore`` provides it (``GROUP BY`` in the database); the analytics
    service uses it for an ``as_of`` at or after :meth:`last_opportunity_change`
    and otherwise, or for a backend without it, computes the figures with
    :mod:`crmkit.core.analytics` over the records it reads.  The answers must
    make :func:`crmkit.core.pushdown.pipeline_report` and
    :func:`~crmkit.core.pushdown.win_rate_reports` agree exactly with the pure
    functions.

    .. versionadded:: 0.1
    """

    def last_opportunity_change(self) -> datetime | None:
        """The latest ``updated_at`` of any opportunity (``None`` without any)."""

    def opportunity_stages(
        self, *, archived: bool | None = None, restrict: Restriction | None = None
    ) -> set[tuple[str, str]]:
        """Every distinct ``(pipeline, stage)`` of the stored opportunities.

        Args:
            archived: only archived (``True``) or live (``False``) ones; all by default.
            restrict: only the opportunities an access restriction lets through.
        """

    def open_deal_groups(self, query: OpenDealsQuery) -> OpenGroups | None:
        """The groups of the deals still in the pipeline (``None``: cannot, use the pure path).

        ``query.restrict``, when set, must be applied (an access restriction).
        """

    def closed_deal_groups(self, query: ClosedDealsQuery) -> ClosedGroups | None:
        """The groups of the won and lost deals (``None``: cannot, use the pure path).

        ``query.restrict``, when set, must be applied (an access restriction).
        """


class Store(Protocol):
    """A backend: opens units of work."""

    def get(self, cls: type[E], id: UUID) -> E:
        """Read one committed record outside any unit of work (a point lookup).

        The same result as ``repository(cls).get(id)`` in a fresh read unit of
        work; backends make it their fastest read.

        Raises:
            NotFoundError: there is none.
        """

    def unit_of_work(self, *, write: bool = True) -> AbstractContextManager[UnitOfWork]:
        """Begin a transaction (``write=False`` may run as a read-only snapshot)."""

    def close(self) -> None:
        """Release connections and files."""
