"""Exporting records to files: ``crm.exports``.

An export writes the records a ``find`` with the same criteria returns, a
page at a time, in the columns an import reads: exporting then importing
gives back the same records (custom fields included).

.. versionadded:: 0.1
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final
from uuid import UUID

from crmkit.core.custom_fields import CUSTOM_PREFIX, CustomField
from crmkit.core.entities import Entity, Master
from crmkit.core.errors import ValidationError
from crmkit.core.formats import FileFormat, WriteOptions
from crmkit.core.money import Money
from crmkit.core.query import Filter, In
from crmkit.io.columns import (
    Column,
    Kind,
    columns_of,
    escape_formula,
    json_value,
    text_value,
)
from crmkit.io.imports import (
    _MASTER_SERVICES,
    check_delimiter,
    entity_type,
    file_path,
    format_for,
    record_service,
)

if TYPE_CHECKING:
    from crmkit.app import CRM

__all__ = ["ExportService", "Exporter"]

#: Records read per query while exporting.
PAGE: Final = 1000


class Exporter:
    """Turns records of one entity type into rows of cells for one format.

    Args:
        columns: the columns to write, in order.
        text: cells are text (CSV, XLSX), not JSON values.
        formula_safe: escape text cells a spreadsheet would run as formulas
            (a ``'`` before ``= + - @``, tab, CR).

    .. versionadded:: 0.1
    """

    def __init__(self, columns: Sequence[Column], *, text: bool, formula_safe: bool):
        self.columns = tuple(columns)
        self.text = text
        self.formula_safe = formula_safe

    def row(self, entity: Entity, refs: Mapping[UUID, str]) -> list[object]:
        """The cells of one record (``refs``: referenced ids to their key or external_ref)."""
        cells: list[object] = []
        for column in self.columns:
            value = column.value_of(entity)
            if self.text:
                cell = text_value(column, value, refs)
                cells.append(escape_formula(cell) if self.formula_safe else cell)
            else:
                cells.append(json_value(column, value, refs))
        return cells


class ExportService:
    """Exports records to CSV, JSON Lines or XLSX (and plugins' formats): ``crm.exports``.

    .. versionadded:: 0.1
    """

    def __init__(self, crm: CRM):
        self._crm = crm

    def csv(self, path: str | os.PathLike[str], *, entity: str, **options: Any) -> int:
        """Export to CSV; options and criteria as :meth:`file`."""
        return self.file(path, entity=entity, format="csv", **options)

    def jsonl(self, path: str | os.PathLike[str], *, entity: str, **options: Any) -> int:
        """Export to JSON Lines; options and criteria as :meth:`file`."""
        return self.file(path, entity=entity, format="jsonl", **options)

    def xlsx(self, path: str | os.PathLike[str], *, entity: str, **options: Any) -> int:
        """Export to an XLSX workbook (needs the ``xlsx`` extra); as :meth:`file`."""
        return self.file(path, entity=entity, format="xlsx", **options)

    def file(
        self,
        path: str | os.PathLike[str],
        *,
        entity: str,
        format: str | None = None,
        lossless: bool = False,
        columns: Sequence[str] | None = None,
        encoding: str = "utf-8",
        delimiter: str = ",",
        where: Sequence[Filter] = (),
        order_by: str | Sequence[str] = (),
        limit: int | None = None,
        offset: int = 0,
        archived: bool | None = False,
        **equals: object,
    ) -> int:
        """Write the records ``crm.<entity>.find(...)`` returns with the same criteria.

        Args:
            path: the file to write (replaced if it exists).
            entity: ``"organizations"``, ``"contacts"``, ``"leads"``,
                ``"opportunities"`` or ``"interactions"``.
            format: a registered format's key; by default the one claiming
                the file's extension.
            lossless: write every cell exactly as stored.  By default cells
                of spreadsheet formats (CSV, XLSX) starting with ``= + - @``,
                a tab or a carriage return get a ``'`` in front so that no
                spreadsheet runs them as formulas; imports remove it again.
            columns: the columns to write (default: ``id``, every field, then
                every custom field).
            encoding: the text encoding (``"utf-8-sig"`` for Excel).
            delimiter: the CSV separator (``";"`` for Spanish spreadsheets).
            where: typed filters, as ``find``'s positional ones.
            order_by: as :meth:`~crmkit.services.base._Service.find`.
            limit: as ``find``.
            offset: as ``find``.
            archived: as ``find`` (archived records are left out by default).
            equals: ``field=value`` criteria, as ``find``.

        Returns:
            How many records were written.

        Raises:
            ValidationError: bad arguments or criteria, an unknown column.
        """
        cls = entity_type(entity)
        if not isinstance(lossless, bool):
            raise ValidationError("lossless", "must be True or False", code="type", value=lossless)
        check_delimiter(delimiter)
        target = file_path(path)
        if not isinstance(where, list | tuple):
            raise ValidationError("where", "must be a list of filters", code="type", value=where)
        chosen = format_for(self._crm, target, format, reading=False)
        assert chosen.write is not None
        service: Any = getattr(self._crm, entity)
        criteria: dict[str, Any] = {"order_by": order_by, "archived": archived, **equals}
        service.count(*where, archived=archived, **equals)  # check the criteria before writing
        definitions = self._crm.custom_fields.for_entity(cls.ENTITY)
        every = columns_of(cls.ENTITY, definitions)
        named = {c.name for c in every}
        if columns is None or any(n not in named for n in columns if isinstance(n, str)):
            # values kept under removed definitions are exported too
            pages = _pages(service, tuple(where), criteria, limit, offset)
            every = (*every, *_leftover_columns(cls.ENTITY, definitions, pages))
        chosen_columns = _select(every, columns)
        exporter = Exporter(
            chosen_columns,
            text=chosen.text_cells,
            formula_safe=chosen.spreadsheet and not lossless,
        )
        rows = self._rows(service, exporter, tuple(where), criteria, limit, offset)
        return _write(chosen, target, exporter, rows, encoding, delimiter)

    def _rows(
        self,
        service: Any,
        exporter: Exporter,
        where: tuple[Filter, ...],
        criteria: dict[str, Any],
        limit: int | None,
        offset: int,
    ) -> Iterator[list[object]]:
        masters: dict[UUID, str] = {}
        for column in exporter.columns:
            if column.kind is Kind.MASTER and column.target is not None:
                assert issubclass(column.target, Master)
                masters_of = _MASTER_SERVICES[column.target](self._crm)
                masters.update((m.id, m.key) for m in masters_of.find(archived=None))
        for page in _pages(service, where, criteria, limit, offset):
            refs = {**masters, **self._references(exporter, page)}
            for entity in page:
                yield exporter.row(entity, refs)

    def _references(self, exporter: Exporter, page: Sequence[Entity]) -> dict[UUID, str]:
        """The external_refs of the records a page refers to (ids without one stay ids)."""
        wanted: dict[type[Entity], set[UUID]] = {}
        for column in exporter.columns:
            if column.kind is not Kind.RECORD or column.target is None:
                continue
            for entity in page:
                value = column.value_of(entity)
                if isinstance(value, UUID):
                    wanted.setdefault(column.target, set()).add(value)
        refs: dict[UUID, str] = {}
        for target, ids in wanted.items():
            service = record_service(self._crm, target)
            for record in service.find(In("id", sorted(ids)), archived=None):
                if record.external_ref is not None:
                    refs[record.id] = record.external_ref
        return refs


def _pages(
    service: Any,
    where: tuple[Filter, ...],
    criteria: dict[str, Any],
    limit: int | None,
    offset: int,
) -> Iterator[Sequence[Entity]]:
    """The records ``find`` returns, :data:`PAGE` at a time."""
    done = 0
    while limit is None or done < limit:
        size = PAGE if limit is None else min(PAGE, limit - done)
        page = service.find(*where, limit=size, offset=offset + done, **criteria)
        if not page:
            return
        yield page
        done += len(page)
        if len(page) < size:
            return


def _leftover_columns(
    entity: str, definitions: Sequence[CustomField], pages: Iterable[Sequence[Entity]]
) -> list[Column]:
    """A column for each custom key the records hold without a current definition.

    Such values stay stored when their definition is removed; an export
    writes them (money as ``12.50 EUR``, several values as a list, anything
    else as text) in key order, after the defined fields, so none is lost.
    Importing them back needs their definition registered again.
    """
    defined = {d.key for d in definitions}
    first: dict[str, object] = {}
    for page in pages:
        for record in page:
            for key, value in getattr(record, "custom", {}).items():
                if key not in defined and value is not None:
                    first.setdefault(key, value)
    columns = []
    for key in sorted(first):
        value = first[key]
        kind = Kind.MONEY if isinstance(value, Money) else Kind.TEXT
        if isinstance(value, tuple | frozenset):
            kind = Kind.LIST
        # a stand-in definition: an export reads only its key
        stand_in = CustomField(entity=entity, key=key, label=key, type="text")
        columns.append(Column(f"{CUSTOM_PREFIX}{key}", kind, "custom", custom=stand_in))
    return columns


def _select(every: Sequence[Column], names: Sequence[str] | None) -> list[Column]:
    if names is None:
        return list(every)
    by_name = {c.name: c for c in every}
    if isinstance(names, str) or not all(isinstance(n, str) for n in names):
        raise ValidationError("columns", "must be a list of column names", code="type")
    chosen = []
    for name in names:
        if name not in by_name:
            raise ValidationError(
                "columns",
                f"{name!r} is not a column: {', '.join(by_name)}",
                code="unknown_column",
                value=name,
            )
        chosen.append(by_name[name])
    return chosen


def _write(
    chosen: FileFormat,
    target: Path,
    exporter: Exporter,
    rows: Iterator[list[object]],
    encoding: str,
    delimiter: str,
) -> int:
    """Write to ``<target>.part``, then put it in place: a failed export leaves no half file."""
    assert chosen.write is not None
    names = [c.name for c in exporter.columns]
    partial = target.with_name(target.name + ".part")
    try:
        try:
            written = chosen.write(
                partial, names, rows, WriteOptions(encoding=encoding, delimiter=delimiter)
            )
            partial.replace(target)
        finally:
            partial.unlink(missing_ok=True)
        return written
    except OSError as exc:
        raise ValidationError(
            "path", f"cannot be written: {exc.strerror}", code="file", value=str(target)
        ) from None
    except LookupError:
        raise ValidationError(
            "encoding", "is not a known text encoding", code="encoding", value=encoding
        ) from None
    except UnicodeEncodeError as exc:
        raise ValidationError(
            "encoding",
            f"cannot hold the character {exc.object[exc.start : exc.end]!r}: use UTF-8",
            code="encoding",
            value=encoding,
        ) from None
