"""``bulk_update``: change many records of one type at once, atomically or partially.

Every item is checked before anything is written, in three stages:

1. the record is read (in a scope: among the records the user may see) and
   the change is computed by the domain (:func:`crmkit.core.changes.update`),
   then authorized (in a scope: the record must be writable as it is and as
   it would be); the item's ``expected_version``, when given, is compared;
2. plugins' ``crmkit_validate_<entity>`` hooks see the changed records (in
   atomic mode only when stage 1 refused nothing);
3. the records are written (``update_many`` where the store has it), audited
   and queued for plugins.  A unique value taken (``DuplicateError``) or a
   version changed meanwhile (``ConcurrencyError``) refuses that item.

``mode="atomic"`` (the default) changes nothing when any item is refused and
raises the first refused item's error; ``mode="partial"`` changes exactly
the items that pass and reports the others.

.. versionadded:: 0.1
"""

from __future__ import annotations

import inspect
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Generic, Literal, TypeVar
from uuid import UUID

import attrs

from crmkit.core import changes
from crmkit.core.entities import Entity
from crmkit.core.errors import (
    AccessDenied,
    ConcurrencyError,
    CrmkitError,
    DuplicateError,
    NotFoundError,
    ValidationError,
)
from crmkit.core.events import Updated
from crmkit.services.base import UNSET, _check_version

if TYPE_CHECKING:
    from crmkit.app import CRM
    from crmkit.services.base import Event
    from crmkit.stores.base import Repository, UnitOfWork

__all__ = ["BulkMode", "BulkRefusal", "BulkUpdateReport", "BulkUpdates"]

E = TypeVar("E", bound=Entity)
I = TypeVar("I", bound=UUID)  # noqa: E741 - the id type of a service, as in _Service[E, I]

#: ``"atomic"``: any refused item and nothing changes; ``"partial"``: the others change.
BulkMode = Literal["atomic", "partial"]


@attrs.frozen
class BulkRefusal:
    """Why one item of a bulk update was refused.

    Attributes:
        index: the item's position in the changes given (0-based).
        id: the id the item named (as given).
        code: ``denied`` (the user may not change it; in a scope also for a
            hidden or absent record: the same refusal), ``not_found`` (no
            such record, system context), ``conflict`` (its version is not
            the expected one), ``duplicate`` (a unique value is taken), or
            the :class:`~crmkit.ValidationError` code (``type``,
            ``required``, ``unknown_field``...).
        field: the field at fault (``""``: the item as a whole).
        message: a sentence saying what is wrong (never the hidden record's data).

    .. versionadded:: 0.1
    """

    index: int
    id: object
    code: str
    field: str
    message: str


@attrs.frozen(kw_only=True)
class BulkUpdateReport:
    """The outcome of ``bulk_update``.

    Attributes:
        entity: the entity type (``"organization"``).
        mode: ``"atomic"`` or ``"partial"``.
        updated: the ids of the records changed, in item order.
        unchanged: the ids of records the items left as they were (no value differed).
        refused: the refused items, in item order (always ``()`` for a
            successful atomic update).

    .. versionadded:: 0.1
    """

    entity: str
    mode: BulkMode
    updated: tuple[UUID, ...]
    unchanged: tuple[UUID, ...]
    refused: tuple[BulkRefusal, ...]

    @property
    def ok(self) -> bool:
        """No item was refused."""
        return not self.refused

    @property
    def refused_ids(self) -> list[object]:
        """The ids of the refused items, in item order."""
        return [r.id for r in self.refused]


@attrs.define
class _Item:
    index: int
    id: UUID
    previous: Entity
    entity: Entity
    event: Updated[Any]


class _Refused(Exception):
    """Leaves an atomic bulk update's transaction: an item was refused while writing."""

    def __init__(self, error: CrmkitError, index: int):
        self.error = error
        self.index = index


def _refusal(index: int, id: object, error: CrmkitError) -> BulkRefusal:
    if isinstance(error, ValidationError):
        return BulkRefusal(index, id, error.code, error.field, error.reason)
    if isinstance(error, AccessDenied):
        return BulkRefusal(index, id, "denied", "", str(error))
    if isinstance(error, ConcurrencyError):
        return BulkRefusal(index, id, "conflict", "", str(error))
    if isinstance(error, DuplicateError):
        return BulkRefusal(index, id, "duplicate", error.field, str(error))
    if isinstance(error, NotFoundError):
        return BulkRefusal(index, id, "not_found", "", str(error))
    return BulkRefusal(index, id, "invalid", "", str(error))  # pragma: no cover


def _at(error: CrmkitError, index: int) -> CrmkitError:
    """The error to raise for item ``index`` (a ValidationError's field names the item)."""
    return error.at(f"[{index}]") if isinstance(error, ValidationError) else error


#: What refuses one item (any other error ends the whole call).
_ITEM_ERRORS = (ValidationError, AccessDenied, ConcurrencyError, DuplicateError, NotFoundError)


class BulkUpdates(Generic[E, I]):
    """``bulk_update`` for an entity service (mixed into the covered services).

    .. versionadded:: 0.1
    """

    _cls: type[E]
    _crm: CRM
    #: the argument names ``bulk_update`` items may hold, besides ``expected_version``
    _bulk_update_like: ClassVar[str] = "update"

    if TYPE_CHECKING:  # the service's own steps (from _Service, after this class in the MRO)

        def _repo(self, uow: UnitOfWork) -> Repository[E]: ...

        def _prepare(self, uow: UnitOfWork, values: Mapping[str, Any]) -> dict[str, Any]: ...

        def _validated(self, entity: E, previous: E | None) -> E: ...

    def _bulk_permit(self, uow: UnitOfWork, entity: E, previous: E) -> None:
        """Authorize one changed record (a scoped service checks the user's rights)."""

    def _bulk_absent(self, id: UUID) -> CrmkitError:
        """The error for an item naming no record (in a scope: no record the user may see)."""
        return NotFoundError(self._cls.ENTITY, id)

    def bulk_update(
        self,
        changes: Iterable[tuple[I, Mapping[str, Any]]],
        *,
        mode: BulkMode = "atomic",
    ) -> BulkUpdateReport:
        """Change many records at once: ``(id, {argument: value})`` pairs.

        Each mapping holds :meth:`update`'s keyword arguments (``name=...``,
        ``owner=...``); ``expected_version`` is optional per item (when given,
        a record at another version is refused with code ``conflict``).
        Every item is read, changed by the domain and authorized before any
        plugin hook runs or anything is written; the changes are written in
        one transaction (joining ``crm.transaction()``), audited like
        :meth:`update`'s.

        Args:
            changes: ``(id, values)`` pairs; an id at most once.
            mode: ``"atomic"`` (default): any refused item and nothing
                changes, and its error is raised; ``"partial"``: exactly the
                items that pass change, the others are reported.

        Returns:
            A :class:`BulkUpdateReport`: the ids updated and unchanged, and
            (partial mode) the refused items with their code.

        Raises:
            ValidationError: bad arguments (not pairs, an id twice, an unknown
                mode); in atomic mode, an invalid item (``field`` starts with
                its index, ``"[12].name"``).
            AccessDenied: atomic mode, in a scope: an item the user may not
                change, or a hidden or absent record (the same error).
            NotFoundError: atomic mode, system context: no such record.
            ConcurrencyError: atomic mode: a record is not at its item's
                ``expected_version``, or changed meanwhile.
            DuplicateError: atomic mode: a unique value (``external_ref``) is taken.
        """
        if mode not in ("atomic", "partial"):
            raise ValidationError(
                "mode", 'must be "atomic" or "partial"', code="choice", value=mode
            )
        items = _pairs(changes)
        allowed = frozenset(
            name
            for name, p in inspect.signature(
                getattr(self, self._bulk_update_like)
            ).parameters.items()
            if p.kind is inspect.Parameter.KEYWORD_ONLY
        )
        atomic = mode == "atomic"
        crm = self._crm

        def run(uow: UnitOfWork, events: list[Event]) -> BulkUpdateReport:
            refused: dict[int, BulkRefusal] = {}
            first: tuple[int, CrmkitError] | None = None

            def refuse(index: int, id: object, error: CrmkitError) -> None:
                nonlocal first
                refused[index] = _refusal(index, id, error)
                if first is None or index < first[0]:
                    first = (index, error)

            repo = self._repo(uow)
            ids = [id for id, _ in items if isinstance(id, UUID)]
            current = repo.get_many(ids)  # in a scope: the visible records only
            now = crm.now()
            planned: list[_Item] = []
            unchanged: list[UUID] = []
            for index, (id, values) in enumerate(items):
                try:
                    previous, new, event = self._bulk_change(uow, current, id, values, allowed, now)
                except _ITEM_ERRORS as error:
                    refuse(index, id, error)
                    continue
                if event is None:
                    unchanged.append(previous.id)
                else:
                    planned.append(_Item(index, previous.id, previous, new, event))
            if atomic and first is not None:
                raise _Refused(first[1], first[0])
            checked: list[_Item] = []
            for item in planned:  # plugins' validation hooks
                try:
                    self._validated(item.entity, item.previous)  # type: ignore[arg-type]
                except _ITEM_ERRORS as error:
                    if atomic:
                        raise _Refused(error, item.index) from None
                    refuse(item.index, item.id, error)
                else:
                    checked.append(item)
            written = self._bulk_write(uow, checked, atomic, refuse)
            for item in written:
                crm._record(uow, events, item.event)
            return BulkUpdateReport(
                entity=self._cls.ENTITY,
                mode=mode,
                updated=tuple(item.id for item in written),
                unchanged=tuple(unchanged),
                refused=tuple(refused[i] for i in sorted(refused)),
            )

        try:
            return crm._write(run)
        except _Refused as refused:
            raise _at(refused.error, refused.index) from None

    def _bulk_change(
        self,
        uow: UnitOfWork,
        current: Mapping[UUID, E],
        id: object,
        values: object,
        allowed: frozenset[str],
        now: Any,
    ) -> tuple[E, E, Updated[E] | None]:
        """The stored record, the changed one and the change (stage 1 for one item)."""
        if not isinstance(id, UUID):
            raise ValidationError("id", "must be a UUID", code="type", value=id)
        if not isinstance(values, Mapping):
            raise ValidationError("", "must map argument names to values", code="type")
        for name in values:
            if name not in allowed:
                raise ValidationError(
                    str(name),
                    f"is not an argument of {self._cls.ENTITY} update",
                    code="unknown_field",
                )
        previous = current.get(id)
        if previous is None:
            raise self._bulk_absent(id)
        arguments = {k: v for k, v in values.items() if v is not UNSET}
        expected = arguments.pop("expected_version", None)
        if expected is not None:
            _check_version(expected)
            if previous.version != expected:
                raise ConcurrencyError(previous.ENTITY, previous.id, expected, previous.version)
        new, event = changes.update(previous, self._prepare(uow, arguments), now=now)
        self._bulk_permit(uow, new, previous)  # also when nothing differs: no silent "unchanged"
        return previous, new, event

    def _bulk_write(
        self,
        uow: UnitOfWork,
        items: Sequence[_Item],
        atomic: bool,
        refuse: Any,
    ) -> list[_Item]:
        """Write the items at once; if the store refuses, one by one to find which."""
        if not items:
            return []
        repo: Any = self._repo(uow)
        try:
            with uow.savepoint():
                many = getattr(repo, "update_many", None)
                if many is not None:
                    many(
                        [i.entity for i in items],
                        expected_versions=[i.previous.version for i in items],
                    )
                else:
                    for i in items:
                        repo.update(i.entity, expected_version=i.previous.version)
            return list(items)
        except (DuplicateError, ConcurrencyError, NotFoundError):
            pass
        written: list[_Item] = []
        for item in items:
            try:
                with uow.savepoint():
                    repo.update(item.entity, expected_version=item.previous.version)
            except (DuplicateError, ConcurrencyError, NotFoundError) as error:
                if atomic:
                    raise _Refused(error, item.index) from None
                refuse(item.index, item.id, error)
            else:
                written.append(item)
        return written


def _pairs(changes: object) -> list[tuple[object, object]]:
    """The items of ``changes``, each an ``(id, values)`` pair; no id twice.

    Raises:
        ValidationError: not an iterable of pairs, or an id twice (field ``changes``).
    """
    if isinstance(changes, str | bytes | Mapping) or not isinstance(changes, Iterable):
        raise ValidationError(
            "changes", "must be (id, values) pairs", code="type", value=type(changes).__name__
        )
    items: list[tuple[object, object]] = []
    seen: set[object] = set()
    for index, pair in enumerate(changes):
        if not isinstance(pair, tuple | list) or len(pair) != 2:
            raise ValidationError(f"changes[{index}]", "must be an (id, values) pair", code="type")
        id, values = pair
        if isinstance(id, UUID):
            if id in seen:
                raise ValidationError(
                    f"changes[{index}]",
                    "names a record another item names",
                    code="duplicate",
                    value=id,
                )
            seen.add(id)
        items.append((id, values))
    return items
