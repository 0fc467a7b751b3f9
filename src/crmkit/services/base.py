"""What every entity service shares: reads, finds, writes, bulk creation, references.

Services live over a :class:`~crmkit.app.CRM`; they take keyword arguments,
return frozen domain objects and raise only :mod:`crmkit` errors.

.. versionadded:: 0.1
"""

from __future__ import annotations

import contextlib
import enum
import gc
import inspect
import threading
import typing
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar, Final, Generic, TypeVar
from uuid import UUID

import attrs

from crmkit.core import changes
from crmkit.core.contact_points import EmailAddress, PhoneNumber
from crmkit.core.custom_fields import CUSTOM_ENTITIES
from crmkit.core.entities import (
    Contact,
    Entity,
    Market,
    Master,
    Organization,
    Position,
    Source,
    User,
    Zone,
)
from crmkit.core.errors import AccessDenied, ConcurrencyError, NotFoundError, ValidationError
from crmkit.core.events import Archived, Created, Restored, StageChanged, Updated
from crmkit.core.ids import (
    MarketId,
    OrganizationId,
    PositionId,
    SourceId,
    UserId,
    ZoneId,
    uuid7,
)
from crmkit.core.query import Contains, Eq, Filter, Has, In, Order, Query, Range, check_query
from crmkit.stores.base import Repository, UnitOfWork

if TYPE_CHECKING:
    import pandas

    from crmkit.app import CRM
    from crmkit.plugins.host import DeliveryReport

__all__ = [
    "UNSET",
    "DomainEvent",
    "Event",
    "Notice",
    "Unset",
]

E = TypeVar("E", bound=Entity)
M = TypeVar("M", bound=Master)
I = TypeVar("I", bound=UUID)  # noqa: E741 - the id type of a service, as in Generic[E, I]
T = TypeVar("T")
R = TypeVar("R", bound=Entity)  # any record a service writes (one of its own or another's)


@attrs.frozen
class Notice:
    """A plugin notification queued by a service, delivered after commit.

    ``deliver`` calls the host's notification and returns its
    :class:`~crmkit.DeliveryReport` (or ``None``).
    """

    deliver: Callable[[], DeliveryReport | None]


#: A change to one record, audited and heard by plugins.
DomainEvent = Created[Any] | Updated[Any] | Archived[Any] | Restored[Any] | StageChanged

#: What a unit of work collects: domain events (audited) and notices.
Event = DomainEvent | Notice


class Unset(enum.Enum):
    """The type of :data:`UNSET`: "leave this field as it is"."""

    UNSET = "UNSET"

    def __repr__(self) -> str:
        return "UNSET"


#: Default of every ``update`` argument: the field keeps its value.
UNSET: Final = Unset.UNSET

# ================================================================ services


class _Service(Generic[E, I]):
    """What every entity service does: get, find, count, archive, restore.

    ``E`` is the entity type and ``I`` its id type, so mypy rejects
    ``crm.organizations.get(contact.id)``.
    """

    _cls: type[E]
    #: friendly argument names for reference fields: name -> (field, entity type)
    _aliases: ClassVar[Mapping[str, tuple[str, type[Entity]]]] = {}
    #: the method whose arguments each ``bulk_create`` item holds
    _bulk_create_like: ClassVar[str] = "create"
    #: whether ``create`` runs the duplicate check (``crm.duplicates.on_create``)
    _screens_duplicates: ClassVar[bool] = False

    def __init__(self, crm: CRM):
        self._crm = crm

    def _repo(self, uow: UnitOfWork) -> Repository[E]:
        return uow.repository(self._cls)

    # ----------------------------------------------------------------- reads
    def get(self, id: I) -> E:
        """The record with ``id``.

        Raises:
            NotFoundError: there is none.
        """
        _check_uuid(id, "id")
        if self._crm._tx.get() is None:  # a point read needs no unit of work
            return self._crm.store.get(self._cls, id)
        return self._crm._read(lambda uow: self._repo(uow).get(id))

    def get_by_external_ref(self, external_ref: str) -> E:
        """The record the host system knows as ``external_ref``.

        Raises:
            NotFoundError: there is none.
        """
        _check_text(external_ref, "external_ref")
        found = self._crm._read(lambda uow: self._repo(uow).get_by("external_ref", external_ref))
        if found is None:
            raise NotFoundError(self._cls.ENTITY, external_ref)
        return found

    def find(
        self,
        *where: Filter,
        order_by: str | Sequence[str] = (),
        limit: int | None = None,
        offset: int = 0,
        archived: bool | None = False,
        **equals: object,
    ) -> list[E]:
        """Records matching every criterion, in order.

        Args:
            where: typed filters (:class:`~crmkit.Eq`, :class:`~crmkit.In`,
                :class:`~crmkit.Range`, :class:`~crmkit.Contains`, :class:`~crmkit.Has`).
            order_by: field names; ``"-name"`` sorts descending.  Ties are
                broken by id, so paging is stable.
            limit: at most this many records.
            offset: skip this many first.
            archived: ``False`` hides archived records (default), ``True``
                shows only them, ``None`` shows both.
            equals: ``field=value`` equality filters; reference fields accept
                keys, records or ids (``market="retail"``).

        Raises:
            ValidationError: an unknown field, a wrong value type, a bad limit.
        """
        query = self._query(where, equals, order_by, limit, offset, archived)
        return self._crm._read(lambda uow: self._repo(uow).find(self._resolved(uow, query)))

    def to_pandas(
        self,
        *where: Filter,
        order_by: str | Sequence[str] = (),
        limit: int | None = None,
        offset: int = 0,
        archived: bool | None = False,
        columns: str | Sequence[str] | None = None,
        **equals: object,
    ) -> pandas.DataFrame:
        """The records :meth:`find` returns, as a :class:`pandas.DataFrame`.

        One row per record, one column per field: ids as text, datetimes as
        ``datetime64[us, UTC]``, money as an exact ``Decimal`` column plus
        ``<field>_currency``, custom fields as ``custom.<key>`` columns (see
        :mod:`crmkit.frames`).  Every field but an opportunity's stage
        ``history`` by default; ``columns`` names the fields to show, in
        order (and only those are read).  Needs the ``pandas`` extra.

        Raises:
            ValidationError: bad criteria, as for :meth:`find`; a name in
                ``columns`` that is not a field (code ``unknown_column``).
            ImportError: pandas is not installed.
        """
        from crmkit.frames import fields_frame, frame_fields, records_frame

        query = self._query(where, equals, order_by, limit, offset, archived)
        shown = frame_fields(self._cls, columns)
        entity = self._cls.ENTITY
        fields = self._crm.custom_fields
        keys = [f.key for f in fields.for_entity(entity)] if entity in CUSTOM_ENTITIES else []

        def read(uow: UnitOfWork) -> pandas.DataFrame:
            repo = self._repo(uow)
            resolved = self._resolved(uow, query)
            cells = getattr(repo, "cells", None)
            if cells is None:  # a store without the column read: through the records
                return records_frame(self._cls, repo.find(resolved), keys, shown)
            # SqlStore: no records built; with no column shown, the ids count the rows
            values: dict[str, Sequence[Any]] = cells(resolved, shown or ("id",))
            count = len(next(iter(values.values())))
            return fields_frame(self._cls, values if shown else {}, count, keys)

        with _collector_paused():  # rows and cells only pile up: no cycles to collect
            return self._crm._read(read)

    def count(self, *where: Filter, archived: bool | None = False, **equals: object) -> int:
        """How many records match (same criteria as :meth:`find`)."""
        query = self._query(where, equals, (), None, 0, archived)
        return self._crm._read(lambda uow: self._repo(uow).count(self._resolved(uow, query)))

    def _query(
        self,
        where: Sequence[Filter],
        equals: Mapping[str, object],
        order_by: str | Sequence[str],
        limit: int | None,
        offset: int,
        archived: bool | None,
    ) -> Query:
        filters = list(where)
        for f in filters:
            if not isinstance(f, Eq | In | Range | Contains | Has):
                raise ValidationError(
                    "where",
                    "criteria must be Eq, In, Range, Contains or Has",
                    code="type",
                    value=f,
                )
        for name, value in equals.items():
            filters.append(Eq(name, value))
        if isinstance(order_by, str):
            specs = [order_by]
        elif isinstance(order_by, list | tuple):
            specs = list(order_by)
        else:
            raise ValidationError(
                "order_by", "must be a field name or a list of them", code="type", value=order_by
            )
        for spec in specs:
            if not isinstance(spec, str) or not spec.lstrip("-"):
                raise ValidationError(
                    "order_by",
                    "must be a field name or a list of them",
                    code="type",
                    value=order_by,
                )
        if archived is not None and not isinstance(archived, bool):
            raise ValidationError("archived", "must be True, False or None", value=archived)
        return Query(
            filters=tuple(filters),
            order=tuple(Order.parse(s) for s in specs),
            limit=limit,
            offset=offset,
            archived=archived,
        )

    def _resolved(self, uow: UnitOfWork, query: Query) -> Query:
        """Map friendly names (``market="retail"``) to stored fields and ids; check."""
        filters: list[Filter] = []
        for f in query.filters:
            alias = self._aliases.get(f.field)
            if alias is None:
                filters.append(f)
                continue
            target, cls = alias
            if isinstance(f, Eq):
                filters.append(Eq(target, _ref_id(uow, cls, f.value, f.field)))
            elif isinstance(f, In):
                filters.append(In(target, tuple(_ref_id(uow, cls, v, f.field) for v in f.values)))
            else:
                filters.append(attrs.evolve(f, field=target))
        order = tuple(
            attrs.evolve(o, field=self._aliases[o.field][0]) if o.field in self._aliases else o
            for o in query.order
        )
        resolved = attrs.evolve(
            query,
            filters=tuple(filters),
            order=order,
            custom_kinds=self._crm.custom_fields.kinds(self._cls.ENTITY),
        )
        try:
            check_query(self._cls, resolved)
        except ValidationError as error:
            argument = {
                target: name
                for name, (target, _) in self._aliases.items()
                if any(f.field == name for f in (*query.filters, *query.order))
            }.get(error.field)
            if argument is None:
                raise
            raise ValidationError(
                argument, error.reason, code=error.code, value=error.value
            ) from None
        return resolved

    # ---------------------------------------------------------------- writes
    def _validated(self, entity: R, previous: R | None) -> R:
        """``entity``, once plugins' ``crmkit_validate_<entity>`` hooks let it be written.

        Call it right before ``repo.add`` (``previous=None``) or
        ``repo.update`` (``previous`` the stored version) in every write.

        Raises:
            ValidationError: a plugin vetoed the change.
            HookError: a plugin failed otherwise.
        """
        self._crm.plugins.validate(self._crm, entity, previous)
        return entity

    def _creating(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """Complete a creation's arguments (a service may derive defaults)."""
        return dict(values)

    def _new(self, fields: dict[str, Any], now: datetime) -> tuple[E, Created[E]]:
        """The new record and its event, from prepared fields (a service may override)."""
        return changes.create(self._cls, id=uuid7(), now=now, **fields)

    def _create(self, values: dict[str, Any]) -> E:
        values = self._creating(values)

        def run(uow: UnitOfWork, events: list[Event]) -> E:
            fields = self._prepare(uow, values)
            entity, event = self._new(fields, self._crm.now())
            if self._screens_duplicates:
                self._crm.duplicates._screen(uow, entity)
            self._repo(uow).add(self._validated(entity, None))
            self._crm._record(uow, events, event)
            return entity

        return self._crm._write(run)

    def _update(self, id: I, expected_version: int, values: dict[str, Any]) -> E:
        _check_uuid(id, "id")
        _check_version(expected_version)
        values = {k: v for k, v in values.items() if v is not UNSET}

        def run(uow: UnitOfWork, events: list[Event]) -> E:
            repo = self._repo(uow)
            current = repo.get(id)
            _expect(current, expected_version)
            entity, event = changes.update(current, self._prepare(uow, values), now=self._crm.now())
            if event is not None:
                repo.update(self._validated(entity, current), expected_version=expected_version)
                self._crm._record(uow, events, event)
            return entity

        return self._crm._write(run)

    def _prepare(
        self,
        uow: UnitOfWork,
        values: Mapping[str, Any],
        resolve: Callable[[UnitOfWork, type[Entity], object, str], UUID | None] | None = None,
    ) -> dict[str, Any]:
        """Turn friendly arguments into entity fields (resolve references, read phones)."""
        resolve = resolve or _ref_id
        aliases = self._aliases
        fields: dict[str, Any] = {}
        for name, value in values.items():
            if name not in aliases and name not in _PREPARED:
                fields[name] = value  # most arguments are fields as they are
            elif name in aliases:
                target, cls = aliases[name]
                fields[target] = None if value is None else resolve(uow, cls, value, name)
            elif name == "custom":  # checked against the definitions; applied by changes
                if self._crm.custom_fields.applies(self._cls.ENTITY, value):
                    fields[name] = self._crm.custom_fields.patch(uow, self._cls.ENTITY, value)
            else:
                fields[name] = _phones(value, self._crm.default_region, name)
        return fields

    # ----------------------------------------------------------------- bulk
    def bulk_create(self, items: Iterable[Mapping[str, Any]], *, batch_size: int = 1000) -> list[E]:
        """Create many records at once: every item is validated first, then rows
        are inserted in batches (one executemany and one commit per batch).

        Each item maps :meth:`create`'s argument names to values (for
        interactions, :meth:`~crmkit.services.interactions.InteractionService.plan`'s).  Nothing is
        written unless every item is valid.  Batches commit one by one, so an
        interrupted call leaves whole batches; inside ``crm.transaction()`` the
        whole call is atomic.  Audit entries and ``created`` notifications are
        produced for every record.

        Contacts and organizations go through the duplicate check on create
        (``crm.duplicates.on_create``) as :meth:`create` does, all items in
        one blocking pass: each is checked against the stored records and
        the items before it.

        Raises:
            ValidationError: an invalid item; ``field`` starts with its index
                (``"[12].emails[0]"``).
            DuplicateError: an ``external_ref`` is taken (that batch is not
                written), or, with ``duplicate_check="refuse"``, an item is a
                likely duplicate (``field`` starts with its index; nothing
                is written).
        """
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValidationError("batch_size", "must be a positive integer", value=batch_size)
        items = list(items)
        allowed = frozenset(inspect.signature(getattr(self, self._bulk_create_like)).parameters)
        resolve = _cached_resolver()

        def fields_of(uow: UnitOfWork, item: object) -> dict[str, Any]:
            if not isinstance(item, Mapping):
                raise ValidationError("", "must be a mapping of field names to values")
            for name in item:
                if name not in allowed:
                    raise ValidationError(
                        str(name),
                        f"is not an argument of {self._cls.ENTITY} creation",
                        code="unknown_field",
                    )
            if "custom" in allowed and "custom" not in item:  # defaults, required fields
                item = {**item, "custom": None}
            return self._prepare(uow, self._creating(item), resolve)

        def one_by_one(uow: UnitOfWork) -> list[E]:
            # the reference: items in order, each checked whole; the first invalid one raises
            now = self._crm.now()
            entities: list[E] = []
            for i, item in enumerate(items):
                try:
                    entity, _ = self._new(fields_of(uow, item), now)
                except ValidationError as error:
                    raise error.at(f"[{i}]") from None
                entities.append(entity)
            return entities

        def stage_by_stage(uow: UnitOfWork) -> list[E]:
            # The same entities, each stage run over every item before the next
            # one starts: arguments (phones parsed), then e-mail addresses, then
            # the entities.  The e-mail and phone libraries then keep their code
            # and data in the CPU caches: about 15 us less per item, measured.
            now = self._crm.now()
            prepared = [fields_of(uow, item) for item in items]
            _parse_emails(self._cls, prepared)
            if type(self)._new is not _Service._new:  # the service makes its records itself
                return [self._new(fields, now)[0] for fields in prepared]
            return [_new_record(self._cls, fields, now) for fields in prepared]

        def validate(uow: UnitOfWork) -> list[E]:
            try:
                return stage_by_stage(uow)
            except ValidationError:  # name the first invalid item as one by one does
                return one_by_one(uow)

        with _collector_paused():
            entities = self._crm._read(validate)
        self._validated_all(entities)
        if self._screens_duplicates:  # the check on create, one blocking pass for all items
            self._crm._read(lambda uow: self._crm.duplicates._screen_bulk(uow, entities))

        def insert(batch: list[E]) -> Callable[[UnitOfWork, list[Event]], None]:
            return lambda uow, events: self._add_created(uow, events, batch)

        for start in range(0, len(entities), batch_size):
            self._crm._write(insert(entities[start : start + batch_size]))
        return entities

    def _add_created(self, uow: UnitOfWork, events: list[Event], batch: Sequence[E]) -> None:
        """Insert new records at once (one executemany), audited and queued for plugins.

        Creations no plugin hears of are audited but not queued: the queue
        lives until the commit, and an import's transaction may be long.
        """
        self._repo(uow).add_many(batch)
        hears = self._crm.plugins.hears_created(self._cls)
        self._crm._record_created(uow, events if hears else None, batch)

    def _build_each(
        self,
        uow: UnitOfWork,
        items: Sequence[Mapping[str, Any]],
        known: Iterable[tuple[type[Entity], UUID]] = (),
    ) -> list[E | ValidationError | AccessDenied]:
        """The new record each creation item makes, or the error refusing it.

        The checks of :meth:`bulk_create` (arguments, references, the
        entity's own rules, plugins' ``crmkit_validate_<entity>``), item by
        item, going on after an invalid one: imports report every bad row.
        Items hold the creation method's arguments; nothing is written.
        ``known`` lists ids (with their type) the caller read in this unit
        of work: references to them are not looked up again.
        """
        resolve = _cached_resolver(known)
        now = self._crm.now()
        vetoes = self._crm.plugins.validates(self._cls)
        own_new = type(self)._new is not _Service._new
        # the base _creating only copies the item, which _prepare does not change
        creating = self._creating if type(self)._creating is not _Service._creating else None
        # Stage by stage, as bulk_create does (arguments, e-mail addresses, then
        # records), with the collector paused; an item failing a stage skips the rest.
        results: list[dict[str, Any] | E | ValidationError | AccessDenied] = []
        with _collector_paused():
            for item in items:
                try:
                    values = item if creating is None else creating(item)
                    results.append(self._prepare(uow, values, resolve))
                except ValidationError as error:
                    results.append(error)
            email_fields = _email_fields(self._cls)
            prepared = [item for item in results if isinstance(item, dict)]
            try:
                _parse_emails(self._cls, prepared, email_fields)
            except ValidationError:  # item by item, parsed values kept as they are
                for item in prepared:
                    # a bad address is left as text (_parse_emails assigns a field only
                    # once it is parsed): the record's converter names it, below
                    with contextlib.suppress(ValidationError):
                        _parse_emails(self._cls, [item], email_fields)
            for i, fields in enumerate(results):
                if not isinstance(fields, dict):
                    continue
                try:
                    entity = (
                        self._new(fields, now)[0]
                        if own_new
                        else _new_record(self._cls, fields, now)
                    )
                    if vetoes:
                        self._validated(entity, None)
                except (ValidationError, AccessDenied) as error:  # AccessDenied: in a scope
                    results[i] = error
                else:
                    results[i] = entity
        return typing.cast(list[E | ValidationError | AccessDenied], results)

    def _carried_defaults(self, defaults: Mapping[str, Any]) -> dict[str, Any]:
        """Of the creation method's ``defaults``, those an item must carry to
        :meth:`_build_each`: the others give the field the record has anyway.

        An import passes each row's arguments with the defaults of the ones it
        leaves out; a default making the field's own default (``None``, an empty
        tuple, the same enum member...) need not be passed, and the item then
        has a few keys instead of twenty.  Custom values are always passed
        (required custom fields are checked on creation), and every default when
        the service reads or builds its items itself.
        """
        if type(self)._creating is not _Service._creating or type(self)._new is not _Service._new:
            return dict(defaults)
        fields = attrs.fields_dict(self._cls)
        carried: dict[str, Any] = {}
        for name, value in defaults.items():
            if not self._same_as_field_default(name, value, fields):
                carried[name] = value
        return carried

    def _same_as_field_default(
        self, name: str, value: object, fields: Mapping[str, attrs.Attribute[Any]]
    ) -> bool:
        """Whether argument ``name`` given as ``value`` makes its field's default."""
        if name == "custom" or (name in _PREPARED and value != ()):
            return False
        if name in self._aliases:  # a reference: only None stays as it is
            target = self._aliases[name][0]
            if value is not None:
                return False
        else:
            target = name
        a = fields.get(target)
        if a is None or not a.init or target in self._cls.SYSTEM_FIELDS:
            return False
        default = _converted_default(a)
        convert = typing.cast(Callable[[Any], Any] | None, a.converter)
        made = value if convert is None or name in self._aliases else _converted(convert, value)
        return (
            default is not _UNKNOWN
            and made is not _UNKNOWN
            and type(made) is type(default)
            and made == default
        )

    def _validated_all(self, entities: Sequence[E]) -> None:
        """Let plugins veto new records of ``bulk_create``; an error names the item's index."""
        if not self._crm.plugins.validates(self._cls):
            return
        for i, entity in enumerate(entities):
            try:
                self._validated(entity, None)
            except ValidationError as error:
                raise error.at(f"[{i}]") from None

    def archive(self, id: I, *, expected_version: int) -> E:
        """Archive the record: hidden from ``find`` by default, never deleted.

        Raises:
            NotFoundError: no such record.
            ConcurrencyError: it changed since ``expected_version``.
        """
        return self._toggle(id, expected_version, changes.archive)

    def restore(self, id: I, *, expected_version: int) -> E:
        """Bring an archived record back.

        Raises:
            NotFoundError: no such record.
            ConcurrencyError: it changed since ``expected_version``.
        """
        return self._toggle(id, expected_version, changes.restore)

    def _toggle(
        self,
        id: I,
        expected_version: int,
        change: Callable[..., tuple[E, Archived[E] | Restored[E] | None]],
    ) -> E:
        _check_uuid(id, "id")
        _check_version(expected_version)

        def run(uow: UnitOfWork, events: list[Event]) -> E:
            repo = self._repo(uow)
            current = repo.get(id)
            _expect(current, expected_version)
            entity, event = change(current, now=self._crm.now())
            if event is not None:
                repo.update(entity, expected_version=expected_version)
                self._crm._record(uow, events, event)
            return entity

        return self._crm._write(run)


def _cached_resolver(
    known: Iterable[tuple[type[Entity], UUID]] = (),
) -> Callable[[UnitOfWork, type[Entity], object, str], UUID | None]:
    """:func:`_ref_id` remembering the ids of keys and ids it resolved (bulk paths).

    ``known``: ids (with their type) already read in the unit of work, taken as resolved.
    """
    cache: dict[tuple[type[Entity], object], UUID | None] = {k: k[1] for k in known}

    def resolve(uow: UnitOfWork, cls: type[Entity], value: object, name: str) -> UUID | None:
        if isinstance(value, Entity):
            return _ref_id(uow, cls, value, name)
        key = (cls, value)
        if key not in cache:
            cache[key] = _ref_id(uow, cls, value, name)
        return cache[key]

    return resolve


def _check_uuid(value: object, name: str) -> None:
    if not isinstance(value, UUID):
        raise ValidationError(name, "must be a UUID", code="type", value=value)


def _check_text(value: object, name: str) -> None:
    if not isinstance(value, str):
        raise ValidationError(name, "must be text", code="type", value=value)


def _check_version(value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValidationError("expected_version", "must be a positive integer", value=value)


def _expect(current: Entity, expected_version: int) -> None:
    if current.version != expected_version:
        raise ConcurrencyError(current.ENTITY, current.id, expected_version, current.version)


def _ref_id(uow: UnitOfWork, cls: type[Entity], value: object, name: str) -> UUID | None:
    """The id a friendly reference names: a record, an id, or a master key."""
    if value is None:
        return None
    if isinstance(value, cls):
        return value.id  # type: ignore[no-any-return]
    repo = uow.repository(cls)
    if isinstance(value, UUID):
        if not repo.get_many([value]):
            raise ValidationError(
                name,
                f"refers to a {cls.ENTITY} that does not exist",
                code="reference",
                value=value,
            )
        return value
    if isinstance(value, str) and issubclass(cls, Master):
        found = repo.get_by("key", value)
        if found is None:
            raise ValidationError(
                name, f"there is no {cls.ENTITY} with that key", code="reference", value=value
            )
        return found.id  # type: ignore[no-any-return]
    expected = f"a {cls.ENTITY} key, record or id" if issubclass(cls, Master) else "an id"
    raise ValidationError(name, f"must be {expected}", code="type", value=value)


# ------------------------------------------------------------------ masters

#: What a reference argument accepts: the record, its id, or (masters) its key.
MarketRef = Market | MarketId | str
SourceRef = Source | SourceId | str
ZoneRef = Zone | ZoneId | str
PositionRef = Position | PositionId | str
UserRef = User | UserId
OrganizationRef = Organization | OrganizationId


#: the arguments besides references that ``_Service._prepare`` turns into something else
_PREPARED: Final = frozenset({"custom", "phones"})


def _phones(values: object, region: str | None, name: str) -> object:
    """Parse phone strings with the CRM's default region; other values pass to the entity."""
    if isinstance(values, str | bytes) or not isinstance(values, Iterable):
        return values
    items = list(values)
    parsed: list[object] = []
    for i, value in enumerate(items):
        if isinstance(value, str):
            try:
                parsed.append(PhoneNumber.parse(value, region=region))
            except ValidationError as exc:
                raise ValidationError(
                    f"{name}[{i}]", exc.reason, code=exc.code, value=exc.value
                ) from None
        else:
            parsed.append(value)
    return parsed


def _organization_of_contact(uow: UnitOfWork, fields: dict[str, Any]) -> None:
    """Given a contact but no organization, use the contact's organization (in place)."""
    if fields.get("organization_id") is None and fields.get("contact_id") is not None:
        contact = uow.repository(Contact).get(fields["contact_id"])
        fields["organization_id"] = contact.organization_id


# -------------------------------------------------------------------- bulk


def _parse_emails(
    cls: type[Entity],
    prepared: list[dict[str, Any]],
    email_fields: tuple[tuple[str, bool], ...] | None = None,
) -> None:
    """Turn the e-mail text of prepared creation fields into :class:`EmailAddress` values.

    The entity's converters would do the same (they keep ``EmailAddress``
    values as they are); this lets ``bulk_create`` validate every item's
    e-mails in one stage.  Lists are replaced, never changed in place.

    Raises:
        ValidationError: an invalid address (without the item's index).
    """
    for name, many in _email_fields(cls) if email_fields is None else email_fields:
        for fields in prepared:
            value = fields.get(name)
            if many:
                if type(value) is list or type(value) is tuple:
                    fields[name] = [EmailAddress(v) if type(v) is str else v for v in value]
            elif type(value) is str and value:
                fields[name] = EmailAddress(value)


_EMAIL_FIELDS: dict[type[Entity], tuple[tuple[str, bool], ...]] = {}


def _email_fields(cls: type[Entity]) -> tuple[tuple[str, bool], ...]:
    """The fields of ``cls`` holding e-mail addresses: (name, holds a tuple of them)."""
    found = _EMAIL_FIELDS.get(cls)
    if found is None:
        fields = []
        for name, hint in typing.get_type_hints(cls).items():
            if hint == tuple[EmailAddress, ...]:
                fields.append((name, True))
            elif hint == EmailAddress | None:
                fields.append((name, False))
        found = _EMAIL_FIELDS[cls] = tuple(fields)
    return found


def _new_record(cls: type[E], fields: dict[str, Any], now: datetime) -> E:
    """``changes.create(cls, id=uuid7(), now=now, **fields)``'s record, built by a
    :func:`_builder` when there is one for these field names."""
    key = (cls, tuple(fields))
    try:
        build = _BUILDERS[key]
    except KeyError:
        if len(_BUILDERS) >= 1000:  # items with ever new key orders: start over
            _BUILDERS.clear()
        entity, _BUILDERS[key] = _checked_builder(cls, fields, now)
        return entity
    if build is None:
        return changes.create(cls, id=uuid7(), now=now, **fields)[0]
    return typing.cast(E, build(fields, uuid7(), now))


_Builder = Callable[[dict[str, Any], UUID, datetime], Entity]
_BUILDERS: dict[tuple[type[Entity], tuple[str, ...]], _Builder | None] = {}
_UNKNOWN: Final = object()

#: the system fields of a new record as ``changes.create`` sets them (builder code)
_NEW_RECORD: Final = {
    "id": "id",
    "version": "1",
    "created_at": "now",
    "updated_at": "now",
    "archived": "False",
}


def _checked_builder(
    cls: type[E], fields: dict[str, Any], now: datetime
) -> tuple[E, _Builder | None]:
    """The record ``changes.create`` makes of ``fields``, and a builder making the
    same from values under the same names, or ``None`` if its first record differs.

    Raises:
        ValidationError: ``fields`` are invalid (nothing is decided then).
    """
    id = uuid7()
    entity, _ = changes.create(cls, id=id, now=now, **fields)
    build = _builder(cls, tuple(fields))
    if build is None:
        return entity, None
    try:
        built = build(fields, id, now)
    except Exception:  # not what changes.create does: do not use it
        return entity, None
    same = type(built) is type(entity) and all(
        getattr(built, a.name) == getattr(entity, a.name) for a in attrs.fields(cls)
    )
    return entity, build if same else None


def _builder(cls: type[Entity], names: tuple[str, ...]) -> _Builder | None:
    """A function doing what ``changes.create`` does for values given under ``names``.

    attrs' ``__init__`` runs every field's converter, also on defaults, which
    for an organization is half its cost.  This generated function runs the
    converters of the values given, takes each other field's default as its
    converter made it (computed once: converters are pure, the defaults they
    give immutable), then runs every validator and ``__attrs_post_init__``, as
    ``__init__`` does.  A given ``None``, ``()`` or default (the value of most
    optional arguments an import passes) takes its converted value computed
    once too (:func:`_converting`), and ``now`` is checked once per value.
    ``None`` when ``cls`` or ``names`` need an attrs feature or a
    ``changes.create`` step this does not reproduce.
    ``bulk_create`` also checks that the first record it builds equals the one
    ``changes.create`` makes.
    """
    given = set(names)
    if (
        len(given) != len(names)
        or given & cls.SYSTEM_FIELDS
        or "custom" in given  # changes.create turns a custom-field patch into values
        or hasattr(cls, "__attrs_pre_init__")
        or any("_attrs_cached_hash" in getattr(c, "__slots__", ()) for c in cls.__mro__)
    ):
        return None
    namespace: dict[str, Any] = {
        "_new": object.__new__,
        "_set": object.__setattr__,
        "_cls": cls,
        "_validators_disabled": attrs.validators.get_disabled,
        "_NONE": None,
        "_EMPTY": (),
    }
    lines = ["def build(values, id, now):", "    o = _new(_cls)"]
    checks: list[str] = []
    checks_of_now: list[str] = []
    used = set()
    for n, a in enumerate(attrs.fields(cls)):
        if not a.init:
            if a.default is not attrs.NOTHING or a.validator is not None:
                return None
            continue  # set by __attrs_post_init__
        if isinstance(a.converter, attrs.Converter):  # it takes the instance or the field
            return None
        if a.alias in _NEW_RECORD:
            value = _NEW_RECORD[a.alias]
            used.add(a.alias)
            if a.converter is not None:
                namespace[f"_convert{n}"] = a.converter
                value = f"_convert{n}({value})"
        elif a.alias in given:
            value = f"values[{a.alias!r}]"
            used.add(a.alias)
            if a.converter is not None:
                lines.append(f"    v = values[{a.alias!r}]")
                value = _converting(namespace, n, a)
        else:
            default = _converted_default(a)
            if default is _UNKNOWN:
                return None
            namespace[f"_default{n}"] = default
            value = f"_default{n}"
        lines.append(f"    _set(o, {a.name!r}, {value})")
        if a.validator is not None:
            namespace[f"_validate{n}"] = a.validator
            namespace[f"_field{n}"] = a
            check = f"_validate{n}(o, _field{n}, o.{a.name})"
            (checks_of_now if value == "now" else checks).append(check)
    if used != given | _NEW_RECORD.keys():
        return None
    if checks or checks_of_now:
        lines.append("    if not _validators_disabled():")
        if checks_of_now:  # the records of a batch share ``now``: checked once
            namespace["_checked_now"] = [None]
            lines.append("        if now is not _checked_now[0]:")
            lines += [f"            {check}" for check in checks_of_now]
            lines.append("            _checked_now[0] = now")
        lines += [f"        {check}" for check in checks]
    if hasattr(cls, "__attrs_post_init__"):
        lines.append("    o.__attrs_post_init__()")
    lines.append("    return o")
    exec("\n".join(lines), namespace)
    build: _Builder = namespace["build"]
    return build


def _converting(namespace: dict[str, Any], n: int, a: attrs.Attribute[Any]) -> str:
    """Builder code converting ``v``, the value given for field number ``n``.

    ``None``, ``()`` and the field's default (what most items leave as they
    are) take their converted value computed once, when they convert.
    """
    namespace[f"_convert{n}"] = convert = a.converter
    value = f"_convert{n}(v)"
    shortcuts: list[tuple[str, object]] = [("_NONE", None), ("_EMPTY", ())]
    raw = a.default
    if raw not in (attrs.NOTHING, None, ()) and not isinstance(raw, attrs.Factory):  # type: ignore[arg-type]
        namespace[f"_raw{n}"] = raw
        shortcuts.append((f"_raw{n}", raw))
    for i, (name, given) in enumerate(shortcuts):
        converted = _converted(convert, given)  # type: ignore[arg-type]
        if converted is not _UNKNOWN:
            namespace[f"_shortcut{n}_{i}"] = converted
            value = f"_shortcut{n}_{i} if v is {name} else {value}"
    return value


def _converted(convert: Callable[[Any], Any], value: object) -> object:
    """``convert(value)`` if it succeeds and can be shared by every record (or ``_UNKNOWN``)."""
    try:
        converted = convert(value)
        hash(converted)  # immutable: shared by every record
    except Exception:  # then the converter runs on each record, and decides
        return _UNKNOWN
    return converted


def _converted_default(a: attrs.Attribute[Any]) -> object:
    """The field's default as its converter makes it, if that can be shared (or ``_UNKNOWN``)."""
    default: Any = a.default
    if default is attrs.NOTHING:
        return _UNKNOWN
    if isinstance(default, attrs.Factory):  # type: ignore[arg-type]
        if default.takes_self:
            return _UNKNOWN
        default = default.factory()
    convert = typing.cast(Callable[[Any], Any] | None, a.converter)  # no attrs.Converter here
    try:
        if convert is not None:
            default = convert(default)
        hash(default)  # immutable: shared by every record
    except Exception:  # then attrs' own __init__ decides
        return _UNKNOWN
    return default


class _CollectorPause:
    """Pauses of Python's cyclic garbage collector, counted across threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pauses = 0
        self._was_enabled = False

    @contextmanager
    def __call__(self) -> Iterator[None]:
        with self._lock:
            if self._pauses == 0:
                self._was_enabled = gc.isenabled()
                gc.disable()
            self._pauses += 1
        try:
            yield
        finally:
            with self._lock:
                self._pauses -= 1
                if self._pauses == 0 and self._was_enabled:
                    gc.enable()


#: Pause the cyclic garbage collector while ``bulk_create`` validates.
#:
#: Validation keeps every new entity alive until the inserts, so each
#: collection would scan all of them again (about 8 us per item, measured on
#: 100,000 organizations); it creates no reference cycles to collect.  The
#: collector runs again when the last concurrent pause ends, unless it was
#: disabled before the first one.
_collector_paused: Final = _CollectorPause()
