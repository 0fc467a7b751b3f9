"""Importing files into the CRM: ``crm.imports``.

Rows stream from the file a batch at a time.  Each row's cells are read into
the arguments of the service's creation method (type conversion only), then
validated by the domain exactly as ``create`` and ``bulk_create`` do; new
records of a batch are inserted at once (``executemany``), existing ones
(matched by ``external_ref``, else by ``id``) go through the service's
``update``, which writes nothing when no value differs.

.. versionadded:: 0.1
"""

from __future__ import annotations

import contextlib
import gc
import inspect
import os
import re
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, TypeVar
from uuid import UUID

import attrs

from crmkit.core.entities import Entity, Market, Master, Outcome, Position, Source, Zone
from crmkit.core.errors import (
    AccessDenied,
    ConcurrencyError,
    CrmkitError,
    DuplicateError,
    NotFoundError,
    ValidationError,
)
from crmkit.core.formats import FileFormat, MalformedRow, ReadOptions
from crmkit.io.columns import (
    ENTITIES,
    OMIT,
    Column,
    Kind,
    ReadContext,
    columns_of,
    json_value,
    read_cell,
    structure_json,
    text_value,
    unescape_formula,
)
from crmkit.io.report import ImportMode, ImportReport, RowError
from crmkit.services.base import _collector_paused

if TYPE_CHECKING:
    from crmkit.app import CRM
    from crmkit.services.base import Event
    from crmkit.services.duplicates import OnCreate
    from crmkit.stores.base import UnitOfWork

__all__ = ["ImportService"]

U = TypeVar("U")

#: Rows validated and written together.
DEFAULT_BATCH: Final = 500

#: Called after each batch with the number of rows read so far.
Progress = Callable[[int], None]


class _Rollback(Exception):
    """Leaves the import's transaction without committing (dry run, atomic with errors)."""


def format_for(crm: CRM, path: Path, format: str | None, *, reading: bool) -> FileFormat:
    """The registered format named ``format``, or the one claiming ``path``'s extension.

    Raises:
        ValidationError: unknown format (code ``format``), or one that cannot
            read (or write) files (code ``unsupported``).
    """
    if format is None:
        suffix = path.suffix.lower()
        found = next((f for f in crm.formats if suffix in f.extensions), None)
        if found is None:
            raise ValidationError(
                "format",
                f"no format claims {suffix or 'files without an extension'}: pass format=",
                code="format",
                value=str(path),
            )
    else:
        found = crm.formats.get(format)
    if (found.read if reading else found.write) is None:
        action = "read" if reading else "written"
        raise ValidationError(
            "format", f"{found.label} files cannot be {action}", code="unsupported", value=found.key
        )
    return found


def entity_type(entity: object) -> type[Entity]:
    """The entity type a file holds, by its plural name (``"contacts"``).

    Raises:
        ValidationError: not one of ``crmkit.io.columns.ENTITIES``.
    """
    found = ENTITIES.get(entity) if isinstance(entity, str) else None
    if found is None:
        raise ValidationError(
            "entity", f"must be one of: {', '.join(ENTITIES)}", code="choice", value=entity
        )
    return found


_TEXT: Final = Kind.TEXT


def _normal(name: str) -> str:
    return re.sub(r"[\s\-]+", "_", name.strip().lower())


@attrs.define
class _Row:
    """A row on its way: its line, arguments, the cells by column, its errors."""

    line: int
    args: dict[str, Any] = attrs.Factory(dict)
    cells: dict[Column, object] = attrs.Factory(dict)
    #: column name -> file header (shared by the rows with the same headers: read only)
    headers: dict[str, str] = attrs.Factory(dict)
    errors: list[RowError] = attrs.Factory(list)

    def fail(self, error: CrmkitError, column: str = "") -> None:
        if isinstance(error, ValidationError):
            column = column or _column_of(error.field)
            code, message = error.code, error.reason
        elif isinstance(error, DuplicateError):
            column = column or error.field
            code, message = "duplicate", f"another {error.entity} has the same {error.field}"
        elif isinstance(error, AccessDenied):  # in a scope: hidden, absent or not theirs
            code, message = "denied", str(error)
        elif isinstance(error, ConcurrencyError):
            code, message = "conflict", "the record changed during the import; import it again"
        elif isinstance(error, NotFoundError):
            code, message = "reference", str(error)
        else:
            code, message = "invalid", str(error)
        self.errors.append(RowError(self.line, self.headers.get(column, column), code, message))


def _column_of(field: str) -> str:
    """The column a ValidationError's field path names (``emails[1]``: ``emails``)."""
    root = field.split("[", 1)[0]
    if root.startswith("custom."):
        return ".".join(root.split(".", 2)[:2])
    return root.split(".", 1)[0]


class _Header:
    """The columns of a file's headers: by ``mapping``, else by name."""

    def __init__(self, columns: Sequence[Column], mapping: Mapping[str, str | None] | None):
        self.columns = tuple(columns)
        self._by_name = {c.name: c for c in columns}
        self._by_normal = {_normal(c.name): c for c in columns}
        self._found: dict[str, Column | None] = {}
        if mapping is not None and not isinstance(mapping, Mapping):
            raise ValidationError(
                "mapping", "must map file headers to column names", code="type", value=mapping
            )
        self._mapping = dict(mapping or {})
        for header, name in self._mapping.items():
            if name is not None and (not isinstance(name, str) or name not in self._by_name):
                raise ValidationError(
                    f"mapping.{header}",
                    f"is not a column: {', '.join(self._by_name)}",
                    code="unknown_column",
                    value=name,
                )

    def column(self, header: str) -> Column | None:
        """The column of ``header`` (``None``: mapped to ``None``, skipped).

        Raises:
            ValidationError: the header matches no column (code ``unknown_column``).
        """
        try:
            return self._found[header]
        except KeyError:
            pass
        if header in self._mapping:
            name = self._mapping[header]
            found = None if name is None else self._by_name[name]
        else:
            found = self._by_name.get(header) or self._by_normal.get(_normal(header))
            if found is None:
                raise ValidationError(
                    "mapping",
                    f"the column {header!r} matches no field: map it to one, or to None to skip it",
                    code="unknown_column",
                    value=header,
                )
        self._found[header] = found
        return found


class ImportService:
    """Imports CSV, JSON Lines and XLSX files (and plugins' formats): ``crm.imports``.

    .. versionadded:: 0.1
    """

    def __init__(self, crm: CRM):
        self._crm = crm

    def csv(self, path: str | os.PathLike[str], *, entity: str, **options: Any) -> ImportReport:
        """Import a CSV file; options as :meth:`file`."""
        return self.file(path, entity=entity, format="csv", **options)

    def jsonl(self, path: str | os.PathLike[str], *, entity: str, **options: Any) -> ImportReport:
        """Import a JSON Lines file; options as :meth:`file`."""
        return self.file(path, entity=entity, format="jsonl", **options)

    def campaign_metrics(
        self,
        path: str | os.PathLike[str],
        *,
        campaign: Any,
        mapping: Mapping[str, str | None] | None = None,
        format: str | None = None,
        mode: ImportMode = "atomic",
        dry_run: bool = False,
        encoding: str | None = None,
        delimiter: str | None = None,
        date_format: str | None = None,
        at: Any = None,
        batch_size: int = DEFAULT_BATCH,
    ) -> ImportReport:
        """Import an e-mail marketing tool's per-contact report into a campaign.

        Each row names a contact by e-mail address and says whether (or
        when) the campaign's message was sent, opened, clicked, bounced and
        whether they unsubscribed; the facts land on the campaign's
        :class:`~crmkit.CampaignEmail` records (see
        :mod:`crmkit.io.campaign_metrics` for the headers, in English and
        Spanish, and the cell formats).  Facts are only added: importing
        the same file twice changes nothing the second time.

        Args:
            path: the file (CSV, JSON Lines, XLSX...).
            campaign: the campaign (record, id or name).
            mapping: file header -> ``email``, ``sent``, ``opened``,
                ``clicked``, ``bounced``, ``unsubscribed`` or ``None`` (skip).
            format: a registered format's key; default by extension.
            mode: ``"atomic"`` (default) or ``"partial"``, as :meth:`file`.
            dry_run: check every row, write nothing.
            encoding: the file's encoding (default: sniffed).
            delimiter: the CSV separator (default: sniffed).
            date_format: a ``strptime`` format for non-ISO dates and times.
            at: the time of a bare "yes" (default: now).
            batch_size: rows written together.

        Returns:
            An :class:`~crmkit.io.ImportReport` (``entity="campaign_emails"``):
            an unknown address is a row error (code ``reference``), a bad cell
            too (code ``flag``).

        Raises:
            NotFoundError: no such campaign.
            ValidationError: bad arguments, a file without an e-mail column
                (code ``header``), a file that cannot be read.
        """
        from crmkit.io.campaign_metrics import import_metrics

        return import_metrics(
            self._crm,
            path,
            campaign=campaign,
            mapping=mapping,
            format=format,
            mode=mode,
            dry_run=dry_run,
            encoding=encoding,
            delimiter=delimiter,
            date_format=date_format,
            at=at,
            batch_size=batch_size,
        )

    def file(
        self,
        path: str | os.PathLike[str],
        *,
        entity: str,
        format: str | None = None,
        mapping: Mapping[str, str | None] | None = None,
        mode: ImportMode = "atomic",
        dry_run: bool = False,
        encoding: str | None = None,
        delimiter: str | None = None,
        decimal_comma: bool = False,
        date_format: str | None = None,
        currency: str | None = None,
        unescape_formulas: bool = True,
        batch_size: int = DEFAULT_BATCH,
        progress: Progress | None = None,
        duplicate_check: OnCreate | None = None,
    ) -> ImportReport:
        """Import the records of a file: create new ones, update those it matches.

        A row matches an existing record by ``external_ref`` (archived ones
        too), else by ``id``; matched records are updated with the row's
        values and keep their version when nothing differs, so importing the
        same file twice changes nothing the second time.

        Args:
            path: the file.
            entity: ``"organizations"``, ``"contacts"``, ``"leads"``,
                ``"opportunities"`` or ``"interactions"``.
            format: a registered format's key (``"csv"``, ``"jsonl"``,
                ``"xlsx"``); by default the one claiming the file's extension.
            mapping: file header -> column name (a creation argument such as
                ``"first_name"``, or ``"custom.<key>"``); ``None`` skips the
                header.  Unmapped headers match columns by name, ignoring case,
                spaces and hyphens.
            mode: ``"atomic"`` (default): any error and nothing is written;
                ``"partial"``: valid rows are written, a batch per transaction.
            dry_run: validate every row through the domain, write nothing.
            encoding: the file's encoding (default: sniffed, UTF-8 with or
                without BOM, else Latin-1).
            delimiter: the CSV separator (default: sniffed ``,`` ``;`` or tab).
            decimal_comma: numbers are written ``1.234,56``.
            date_format: a ``strptime`` format for non-ISO dates (``"%d/%m/%Y"``).
            currency: the currency of amounts written without one.
            unescape_formulas: remove the ``'`` a formula-safe export puts
                before cells starting with ``= + - @``, tab or CR.
            batch_size: rows validated and written together.
            progress: called after each batch with the rows read so far.
            duplicate_check: the duplicate check on create for the new
                contacts and organizations: ``"off"``, ``"warn"`` (created,
                listed in the report's ``warnings``) or ``"refuse"`` (a row
                error, code ``duplicate``); default: the CRM's
                ``crm.duplicates.on_create``.  One blocking pass per batch
                (see :mod:`crmkit.services.duplicates`).

        Returns:
            An :class:`~crmkit.io.ImportReport`; refused rows are in ``errors``.

        Raises:
            ValidationError: bad arguments, an unknown column (code
                ``unknown_column``), a file that cannot be read (codes
                ``file``, ``encoding``, ``header``).  Row errors are reported,
                not raised.
        """
        cls = entity_type(entity)
        if mode not in ("atomic", "partial"):
            raise ValidationError(
                "mode", 'must be "atomic" or "partial"', code="choice", value=mode
            )
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValidationError("batch_size", "must be a positive integer", value=batch_size)
        for name, flag in (
            ("dry_run", dry_run),
            ("decimal_comma", decimal_comma),
            ("unescape_formulas", unescape_formulas),
        ):
            if not isinstance(flag, bool):
                raise ValidationError(name, "must be True or False", code="type", value=flag)
        check_delimiter(delimiter)
        for name, text in (
            ("encoding", encoding),
            ("date_format", date_format),
            ("currency", currency),
            ("format", format),
        ):
            if text is not None and not isinstance(text, str):
                raise ValidationError(name, "must be text", code="type", value=text)
        if progress is not None and not callable(progress):
            raise ValidationError("progress", "must be callable", code="type", value=progress)
        check: OnCreate = self._crm.duplicates.on_create
        if duplicate_check is not None:
            if duplicate_check not in ("off", "warn", "refuse"):
                raise ValidationError(
                    "duplicate_check",
                    'must be "off", "warn" or "refuse"',
                    code="choice",
                    value=duplicate_check,
                )
            check = duplicate_check
        source = file_path(path)
        chosen = format_for(self._crm, source, format, reading=True)
        assert chosen.read is not None
        columns = columns_of(cls.ENTITY, self._crm.custom_fields.for_entity(cls.ENTITY))
        run = _Import(
            self._crm,
            entity,
            cls,
            _Header(columns, mapping),
            ReadContext(
                text=chosen.text_cells,
                decimal_comma=decimal_comma,
                date_format=date_format,
                currency=currency,
                timezone=self._crm.timezone,
                unescape_formulas=unescape_formulas,
            ),
            check,
        )
        rows = chosen.read(source, ReadOptions(encoding=encoding, delimiter=delimiter))
        with contextlib.closing(_paced(run.batches(rows, batch_size, progress))) as batches:
            return run_batches(self._crm, run, batches, entity=entity, mode=mode, dry_run=dry_run)


def _paced(batches: Iterator[list[_Row]]) -> Generator[list[_Row], None, None]:
    """``batches``, Python's cyclic garbage collector paused while each is read and processed.

    A batch's rows and records live until it is written, so each collection
    would scan them again (about 14% of an import's time, measured on 60,000
    rows); after each batch the young objects are collected instead, which
    frees any reference cycle the batch made: memory stays bounded by a batch.
    Close the generator (``contextlib.closing``) so that an error ends the pause.
    """
    while True:
        with _collector_paused():
            batch = next(batches, None)
            if batch is None:
                return
            yield batch
            batch.clear()  # its rows go now, not in the collection below
        gc.collect(0)


class _Import:
    """The state of one import: columns, caches, counts and errors."""

    def __init__(
        self,
        crm: CRM,
        entity: str,
        cls: type[Entity],
        header: _Header,
        ctx: ReadContext,
        duplicate_check: OnCreate = "off",
    ):
        self.crm = crm
        self.service: Any = getattr(crm, entity)
        self.cls = cls
        self.header = header
        self.ctx = ctx
        self.rows = self.created = self.updated = self.unchanged = 0
        self.errors: list[RowError] = []
        self.warnings: list[RowError] = []
        self.duplicate_check: OnCreate = duplicate_check
        create = getattr(self.service, self.service._bulk_create_like)
        self.creatable = frozenset(_parameters(create))
        #: the creation method's defaults, for the arguments a row leaves out
        self.defaults = self.service._carried_defaults(
            {
                name: p.default
                for name, p in inspect.signature(create).parameters.items()
                if p.kind is inspect.Parameter.KEYWORD_ONLY
                and p.default is not inspect.Parameter.empty
            }
        )
        if cls.ENTITY == "interaction":  # logged ones too: what log() takes beyond plan()
            self.creatable |= {"status", "occurred_at", "outcome"}
        self.updatable = frozenset(_parameters(self.service.update))
        self._masters: dict[type[Master], dict[str, UUID]] = {}
        #: the columns referring to records
        self._record_columns = [c for c in header.columns if c.kind is Kind.RECORD]
        #: those referring to records of the imported type (a parent organization)
        self._own_columns = [c for c in self._record_columns if c.target is cls]
        #: the ids of records the current batch refers to, read in this transaction
        self._known: set[tuple[type[Entity], UUID]] = set()
        #: a row's keys -> its columns and their headers (see :meth:`_plan`)
        self._plans: dict[tuple[str, ...], tuple[list[tuple[str, Column]], dict[str, str]]] = {}

    # ------------------------------------------------------------- reading
    def batches(
        self,
        rows: Iterable[tuple[int, Mapping[str, object]] | MalformedRow],
        size: int,
        progress: Progress | None,
    ) -> Iterator[list[_Row]]:
        """Rows read into arguments, in batches; a key seen twice starts a new batch."""
        batch: list[_Row] = []
        keys: set[tuple[str, object]] = set()
        for source in rows:
            self.rows += 1
            if isinstance(source, MalformedRow):
                self.errors.append(RowError(source.line, "", "malformed", source.reason))
                continue
            row = self._read(*source)
            key = self._key(row)
            if len(batch) >= size or (keys and not keys.isdisjoint(self._needs(row, key))):
                yield batch
                if progress is not None:
                    progress(self.rows - 1)
                batch, keys = [], set()
            batch.append(row)
            if key is not None:
                keys.add(key)
        if batch:
            yield batch
        if progress is not None:
            progress(self.rows)

    def _needs(self, row: _Row, key: tuple[str, object] | None) -> set[tuple[str, object]]:
        """The keys of records the row (whose own key is ``key``) needs written first:
        its own (a second row for the same record) and those of the records of its
        type it refers to."""
        needs = set() if key is None else {key}
        if not self._own_columns:
            return needs
        for _, value in self._references(row, self._own_columns):
            if value is not None:
                needs.add(("external_ref", value) if isinstance(value, str) else ("id", value))
        return needs

    @staticmethod
    def _key(row: _Row) -> tuple[str, object] | None:
        if row.args.get("external_ref") is not None:
            return ("external_ref", row.args["external_ref"])
        if isinstance(row.args.get("id"), UUID):
            return ("id", row.args["id"])
        return None

    def _read(self, line: int, cells: Mapping[str, object]) -> _Row:
        keys = tuple(cells)
        plan = self._plans.get(keys)
        if plan is None:
            plan = self._plan(keys)
        columns, headers = plan
        row = _Row(line, headers=headers)
        args, row_cells, ctx = row.args, row.cells, self.ctx
        for header, column in columns:
            cell = cells[header]
            row_cells[column] = cell
            if column.kind is _TEXT and type(cell) is str and cell[:1] != "'" and cell.strip():
                value: object = cell  # read_cell's most common case, without the call
            else:
                try:
                    value = read_cell(column, cell, ctx)
                    if column.kind is Kind.JSON:
                        value = structure_json(column, value)
                except ValidationError as error:
                    row.errors.append(RowError(line, header, error.code, error.reason))
                    continue
                if value is OMIT:
                    continue
            if column.custom is not None:
                args.setdefault("custom", {})[column.custom.key] = value
            else:
                args[column.name] = value
        return row

    def _plan(self, keys: tuple[str, ...]) -> tuple[list[tuple[str, Column]], dict[str, str]]:
        """The columns of a row's headers (in order, skipped ones left out), and
        column name -> header; the rows of a file share them.

        Raises:
            ValidationError: a header matches no column (code ``unknown_column``).
        """
        columns: list[tuple[str, Column]] = []
        headers: dict[str, str] = {}
        for header in keys:
            column = self.header.column(header)
            if column is not None:
                headers[column.name] = header
                columns.append((header, column))
        if len(self._plans) >= 1000:  # rows with ever new keys (JSON Lines): start over
            self._plans.clear()
        plan = self._plans[keys] = (columns, headers)
        return plan

    # ---------------------------------------------------------- validating
    def process(self, batch: list[_Row]) -> None:
        """Validate a batch through the domain and write it (in the current transaction)."""
        self._resolve(batch)
        existing = self._existing(batch)
        creating: list[_Row] = []
        for row in batch:
            current = existing.get(id(row))
            if row.errors:
                pass
            elif current is not None:
                self._update(row, current)
            else:
                creating.append(row)
        self._create(creating)
        for row in batch:
            self.errors.extend(row.errors)

    def _resolve(self, batch: list[_Row]) -> None:
        """Turn the batch's references (external_refs or ids) into the ids they name.

        One query per target type and key for the whole batch, reading only
        ids; the services then take those ids without looking each one up
        again (:attr:`_known`).  A reference to no record is a row error
        (code ``reference``).
        """
        self._known = set()
        if not self._record_columns:
            return
        wanted: dict[tuple[type[Entity], str], set[object]] = {}
        references: list[tuple[_Row, Column, type[Entity], str | UUID]] = []
        for row in batch:
            for column, value in self._references(row):
                if column.target is not None and isinstance(value, str | UUID):
                    key = "external_ref" if isinstance(value, str) else "id"
                    wanted.setdefault((column.target, key), set()).add(value)
                    references.append((row, column, column.target, value))
        found: dict[tuple[type[Entity], object], UUID] = {}
        for (target, key), values in wanted.items():
            for value, id in self._ids_by(target, key, values).items():
                found[target, value] = id
                self._known.add((target, id))
        for row, column, target, value in references:
            found_id = found.get((target, value))
            if found_id is None:
                key = "external_ref" if isinstance(value, str) else "id"
                row.errors.append(
                    RowError(
                        row.line,
                        row.headers.get(column.name, column.name),
                        "reference",
                        f"there is no {target.ENTITY} with {key} {value}",
                    )
                )
            elif column.custom is not None:
                row.args["custom"][column.custom.key] = found_id
            else:
                row.args[column.name] = found_id

    def _ids_by(self, cls: type[Entity], key: str, values: set[object]) -> dict[object, UUID]:
        """The ids of the ``cls`` records (archived too) whose ``key`` is one of ``values``."""
        ordered = sorted(values, key=str)
        return self.crm._read(lambda uow: uow.repository(cls).ids_by(key, ordered))

    def _references(
        self, row: _Row, columns: Sequence[Column] | None = None
    ) -> Iterator[tuple[Column, object]]:
        """The row's references (of ``columns``, default every column naming a record)."""
        cells = row.cells
        for column in self._record_columns if columns is None else columns:
            if column not in cells:
                continue
            if column.custom is not None:
                yield column, row.args.get("custom", {}).get(column.custom.key)
            else:
                yield column, row.args.get(column.name)

    def _existing(self, batch: list[_Row]) -> dict[int, Entity]:
        """The records the batch's rows match (by the row object's ``id()``).

        Their ids are looked up first (ids only), and only the records found
        are read whole: a batch of new rows reads no record.
        """
        refs = {r.args["external_ref"] for r in batch if r.args.get("external_ref") is not None}
        ids = {r.args["id"] for r in batch if isinstance(r.args.get("id"), UUID)}
        by_ref = self._ids_by(self.cls, "external_ref", refs) if refs else {}
        by_id = self._ids_by(self.cls, "id", ids) if ids else {}
        wanted = {*by_ref.values(), *by_id.values()}
        if not wanted:
            return {}
        cls = self.cls
        records = self.crm._read(lambda uow: uow.repository(cls).get_many(wanted))
        matched: dict[int, Entity] = {}
        for row in batch:
            ref = row.args.get("external_ref")
            found = by_ref.get(ref) if ref is not None else None
            current = records.get(found) if found is not None else None
            if current is None:
                current = records.get(by_id.get(row.args.get("id")))  # type: ignore[arg-type]
            if current is not None:
                matched[id(row)] = current
        return matched

    def _create(self, rows: list[_Row]) -> None:
        items = []
        for row in rows:
            row.args.pop("id", None)
            unknown = (
                []
                if self.creatable.issuperset(row.args)
                else sorted(row.args.keys() - self.creatable)
            )
            for name in unknown:
                row.errors.append(
                    RowError(
                        row.line,
                        row.headers.get(name, name),
                        "unknown_column",
                        f"a new {self.cls.ENTITY} does not take {name}",
                    )
                )
            item = {**self.defaults, **row.args}
            for argument, field in _STORED_AS.get(self.cls.ENTITY, {}).items():
                if argument in item:
                    item[field] = item.pop(argument)
            items.append(item)
        valid = [r for r in rows if not r.errors]
        items = [i for r, i in zip(rows, items, strict=True) if not r.errors]
        known = self._known
        built = self.crm._read(lambda uow: self.service._build_each(uow, items, known))
        entities: list[Entity] = []
        made: list[_Row] = []
        for row, result in zip(valid, built, strict=True):
            if isinstance(result, ValidationError | AccessDenied):
                row.fail(result)
            else:
                entities.append(result)
                made.append(row)
        if entities and self.duplicate_check != "off" and self.service._screens_duplicates:
            entities, made = self._screen(entities, made)
        if not entities:
            return
        try:
            self._add(entities)
        except DuplicateError:  # a race: find the rows at fault one by one
            for row, entity in zip(made, entities, strict=True):
                try:
                    self._add([entity])
                except DuplicateError as error:
                    row.fail(error)
                else:
                    self.created += 1
            return
        self.created += len(entities)

    def _screen(self, entities: list[Entity], rows: list[_Row]) -> tuple[list[Entity], list[_Row]]:
        """The duplicate check on create of a batch's new records (one blocking pass).

        Each is checked against the stored records (earlier batches
        included) and the batch's records before it.  ``"refuse"``: a likely
        duplicate is a row error (code ``duplicate``) and is not created;
        ``"warn"``: it is created and listed in the report's ``warnings``.
        Returns the records (and rows) to create.
        """
        duplicates = self.crm.duplicates
        found = self.crm._read(lambda uow: duplicates._candidates_many(uow, entities))
        lines = {e.id: r.line for e, r in zip(entities, rows, strict=True)}
        kept: list[Entity] = []
        kept_rows: list[_Row] = []
        for entity, row, candidates in zip(entities, rows, found, strict=True):
            if not candidates:
                kept.append(entity)
                kept_rows.append(row)
                continue
            best = candidates[0]
            other = best.right if best.left == entity.id else best.left
            reason = max(best.reasons, key=lambda r: r.weight)
            what = f"the {self.cls.ENTITY} of line {lines[other]}" if other in lines else str(other)
            issue = RowError(
                row.line,
                row.headers.get(reason.field, ""),
                "duplicate",
                f"probably the same as {what} (probability {best.probability:.2f}; "
                f"{reason.field}: {reason.detail})",
            )
            if self.duplicate_check == "refuse":
                row.errors.append(issue)
            else:
                self.warnings.append(issue)
                kept.append(entity)
                kept_rows.append(row)
        return kept, kept_rows

    def _add(self, entities: list[Entity]) -> None:
        """Insert new records in the current transaction (a savepoint: all or none)."""

        def add(uow: UnitOfWork, events: list[Event]) -> None:
            self.service._add_created(uow, events, entities)

        self.crm._write(add)

    def _update(self, row: _Row, current: Entity) -> None:
        if self._same(row, current):
            self.unchanged += 1
            return
        args = {k: v for k, v in row.args.items() if k in self.updatable}
        try:
            new = self.service.update(current.id, expected_version=current.version, **args)
        except (
            ValidationError,
            DuplicateError,
            ConcurrencyError,
            NotFoundError,
            AccessDenied,
        ) as error:
            row.fail(error)
            return
        if new.version == current.version:
            self.unchanged += 1
        else:
            self.updated += 1

    # ----------------------------------------------------------- comparing
    def _same(self, row: _Row, current: Entity) -> bool:
        """Every cell of the row already holds the record's value (so no update is needed).

        A cheap test in the file's own terms; when it says no, ``update``
        decides (and writes nothing if the values are equal after all).
        """
        for column, cell in row.cells.items():
            if column.name == "id":
                continue
            value = column.value_of(current)
            if column.kind is Kind.RECORD:
                given = (
                    row.args.get("custom", {}).get(column.custom.key)
                    if column.custom is not None
                    else row.args.get(column.name)
                )
                if getattr(given, "id", given) != value:
                    return False
            elif column.kind is Kind.MASTER:
                assert column.target is not None
                assert issubclass(column.target, Master)
                keys = self._master_keys(column.target)
                given_key = cell.strip() if isinstance(cell, str) else ""
                if (keys.get(given_key) if given_key else None) != value:
                    return False
            elif self.ctx.text:
                text = cell if isinstance(cell, str) else ""
                if self.ctx.unescape_formulas:
                    text = unescape_formula(text)
                if text_value(column, value, {}) != text:
                    return False
            elif json_value(column, value, {}) != cell:
                return False
        return True

    def _master_keys(self, cls: type[Master]) -> dict[str, UUID]:
        found = self._masters.get(cls)
        if found is None:
            service = _MASTER_SERVICES[cls](self.crm)
            found = self._masters[cls] = {
                m.key: m.id for m in service.find(archived=None, limit=None)
            }
        return found


_MASTER_SERVICES: Final[dict[type[Master], Callable[[CRM], Any]]] = {
    Market: lambda crm: crm.markets,
    Source: lambda crm: crm.sources,
    Zone: lambda crm: crm.zones,
    Position: lambda crm: crm.positions,
    Outcome: lambda crm: crm.outcomes,
}


#: Creation arguments the services store under another name before ``_creating``.
_STORED_AS: Final = {
    "opportunity": {"campaign": "campaign_id"},
    "interaction": {"campaign": "campaign_id"},
}


def record_service(crm: CRM, target: type[Entity]) -> Any:
    """The service of a type of record files refer to (organizations, users...)."""
    for name, cls in ENTITIES.items():
        if cls is target:
            return getattr(crm, name)
    return crm.cases if target.ENTITY == "case" else crm.users


def write_units(
    crm: CRM,
    units: Iterable[U],
    process: Callable[[U], None],
    *,
    mode: ImportMode,
    dry_run: bool,
    failed: Callable[[], bool],
) -> bool:
    """``process`` each unit (a batch of rows, an event...); whether anything was written.

    ``partial`` (without ``dry_run``) commits each unit on its own; otherwise
    every unit runs in one transaction, rolled back on a dry run or when
    ``failed()`` says a row had an error, so nothing is written.
    """
    if mode == "partial" and not dry_run:
        for unit in units:
            with crm.transaction():
                process(unit)
        return True
    try:
        with crm.transaction():
            for unit in units:
                process(unit)
            if dry_run or failed():
                raise _Rollback
    except _Rollback:
        return False
    return True


def run_batches(
    crm: CRM,
    run: _Import,
    batches: Iterable[list[_Row]],
    *,
    entity: str,
    mode: ImportMode,
    dry_run: bool,
) -> ImportReport:
    """Write ``batches`` through ``run`` (see :func:`write_units`) and report."""
    written = write_units(
        crm, batches, run.process, mode=mode, dry_run=dry_run, failed=lambda: bool(run.errors)
    )
    return ImportReport(
        entity=entity,
        mode=mode,
        dry_run=dry_run,
        rows=run.rows,
        created=run.created,
        updated=run.updated,
        unchanged=run.unchanged,
        errors=tuple(sorted(run.errors, key=lambda e: e.line)),
        written=written,
        warnings=tuple(sorted(run.warnings, key=lambda e: e.line)),
    )


def file_path(path: object) -> Path:
    """``path`` as a :class:`~pathlib.Path`.

    Raises:
        ValidationError: not a path (code ``type``).
    """
    if not isinstance(path, str | os.PathLike) or not os.fspath(path):
        raise ValidationError("path", "must be a file path", code="type", value=path)
    return Path(os.fspath(path))


def check_delimiter(delimiter: object) -> None:
    """Raise unless ``delimiter`` is one character (or ``None``, sniffed).

    Raises:
        ValidationError: code ``delimiter``.
    """
    if delimiter is not None and not (isinstance(delimiter, str) and len(delimiter) == 1):
        raise ValidationError(
            "delimiter", "must be one character", code="delimiter", value=delimiter
        )


def _parameters(method: Callable[..., Any]) -> list[str]:
    return [
        name
        for name, p in inspect.signature(method).parameters.items()
        if p.kind is inspect.Parameter.KEYWORD_ONLY and name != "expected_version"
    ]
