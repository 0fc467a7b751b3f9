"""crmkit_register_formats: file formats from plugins, for imports and exports."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import pytest

import crmkit
from crmkit import (
    FileFormat,
    MalformedRow,
    PluginError,
    ReadOptions,
    ValidationError,
    WriteOptions,
    hookimpl,
)
from crmkit.core.formats import SourceRow
from crmkit.testing import HookCall, RecordingPlugin
from tests.conftest import FixedClock


def read_bangs(path: Path, options: ReadOptions) -> Iterator[SourceRow | MalformedRow]:
    """Lines of ``!``-separated cells under a header line; a line without ``!`` is malformed."""
    with path.open(encoding=options.encoding or "utf-8") as lines:
        header = next(lines).rstrip("\n").split("!")
        for number, line in enumerate(lines, start=2):
            cells = line.rstrip("\n").split("!")
            if len(cells) != len(header):
                yield MalformedRow(number, "has the wrong number of cells")
            else:
                yield number, dict(zip(header, cells, strict=True))


def write_bangs(
    path: Path, columns: Sequence[str], rows: Iterable[Sequence[object]], options: WriteOptions
) -> int:
    count = 0
    with path.open("w", encoding=options.encoding) as out:
        out.write("!".join(columns) + "\n")
        for row in rows:
            out.write("!".join(json.dumps(c) if not isinstance(c, str) else c for c in row))
            out.write("\n")
            count += 1
    return count


BANG = FileFormat(
    key="bang", label="Bang", extensions=(".bang",), read=read_bangs, write=write_bangs
)


class Formats:
    """A plugin whose crmkit_register_formats returns ``result``."""

    def __init__(self, result: object) -> None:
        self.result = result

    @hookimpl
    def crmkit_register_formats(self, crm: crmkit.CRM) -> object:
        return self.result


def test_register_formats_adds_the_plugins_formats(clock: FixedClock) -> None:
    """A plugin's format is in crm.formats before the built-in ones (it wins an extension)."""
    with crmkit.open(":memory:", plugins=[Formats([BANG])], clock=clock) as crm:
        assert ["bang", "csv", "jsonl", "xlsx"] == crm.formats.keys()  # newest plugin first
        assert BANG == crm.formats.get("bang")


def test_register_formats_is_called_once_with_the_crm(clock: FixedClock) -> None:
    """crmkit_register_formats is called at open with crm= the new CRM."""
    recorder = RecordingPlugin()
    with crmkit.open(":memory:", plugins=[recorder], clock=clock) as crm:
        assert [HookCall("crmkit_register_formats", {"crm": crm})] == recorder.calls_to(
            "crmkit_register_formats"
        )


def test_a_plugin_format_imports_and_exports_by_extension(
    clock: FixedClock, tmp_path: Path
) -> None:
    """The format claiming a file's extension reads and writes it; rows are validated as usual."""
    source = tmp_path / "orgs.bang"
    source.write_text(
        "external_ref!name!emails\nA-1!Acme S.A.!ventas@acme.es\nA-2!!x@y.es\nbroken\n",
        encoding="utf-8",
    )
    with crmkit.open(":memory:", plugins=[Formats([BANG])], clock=clock) as crm:
        report = crm.imports.file(source, entity="organizations", mode="partial")
        written = crm.exports.file(tmp_path / "out.bang", entity="organizations")

        assert (1, [3, 4]) == (report.created, report.failed_lines)
        assert [("name", "required"), ("", "malformed")] == [
            (e.column, e.code) for e in report.errors
        ]
        assert 1 == written
        assert "A-1!Acme S.A." in (tmp_path / "out.bang").read_text("utf-8")


def test_builtins_off_leaves_only_the_plugins_formats(clock: FixedClock) -> None:
    """The built-in formats are a plugin too: builtins=False drops them."""
    with crmkit.open(":memory:", plugins=[Formats([BANG])], builtins=False, clock=clock) as crm:
        assert ["bang"] == crm.formats.keys()


def test_a_format_that_cannot_write_refuses_exports(clock: FixedClock, tmp_path: Path) -> None:
    """An import-only format is a ValidationError (code unsupported) for exports."""
    read_only = FileFormat(key="ro", label="Read only", extensions=(".ro",), read=read_bangs)
    with crmkit.open(":memory:", plugins=[Formats([read_only])], clock=clock) as crm:
        with pytest.raises(ValidationError) as caught:
            crm.exports.file(tmp_path / "x.ro", entity="contacts")

        assert ("format", "unsupported") == (caught.value.field, caught.value.code)


@pytest.mark.parametrize(
    "result",
    [
        [BANG, BANG],
        [FileFormat(key="csv", label="Another CSV", extensions=(".csv",), read=read_bangs)],
        ["csv"],
        BANG,
    ],
)
def test_register_formats_rejects_duplicates_and_wrong_types(
    result: object, clock: FixedClock
) -> None:
    """A key registered twice (the built-in csv too) or a non-FileFormat is a PluginError."""
    with pytest.raises(PluginError):
        crmkit.open(":memory:", plugins=[Formats(result)], clock=clock)


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"key": "CSV!"}, "key"),
        ({"extensions": "csv"}, "extensions"),
        ({"extensions": ["csv"]}, "extensions"),
        ({"read": None, "write": None}, "read"),
        ({"read": "not callable"}, "read"),
    ],
)
def test_file_format_checks_its_definition(options: dict[str, object], field: str) -> None:
    """A FileFormat with a bad key, extensions or functions cannot be made."""
    arguments: dict[str, object] = {
        "key": "bang",
        "label": "Bang",
        "extensions": (".bang",),
        "read": read_bangs,
        **options,
    }
    with pytest.raises(ValidationError) as caught:
        FileFormat(**arguments)  # type: ignore[arg-type]

    assert field == caught.value.field
