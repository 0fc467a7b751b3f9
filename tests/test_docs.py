"""The documentation is tested: its examples run, and it covers every hook and enum value."""

from __future__ import annotations

import enum
import inspect
import re
import subprocess
import sys
from pathlib import Path

import pytest

from crmkit.core import (
    access,
    analytics,
    automation,
    campaigns,
    cases,
    contact_points,
    custom_fields,
    entities,
    forecast,
    insights,
    interactions,
    leads,
    pipelines,
    segments,
    targets,
)
from crmkit.plugins import hookspecs

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
EXAMPLES = ROOT / "examples"
PLUGIN_TESTS = ROOT / "tests" / "plugins"

SNIPPET = re.compile(r'^-{1,3}8<-{1,3} "(?P<path>[^"]+)"$')
PYTHON_BLOCK = re.compile(r"^```python\n(?P<code>.*?)^```$", re.DOTALL | re.MULTILINE)
HOOK_HEADING = re.compile(r"^## (?P<name>crmkit_\w+)\s*$", re.MULTILINE)


def _hook_names() -> set[str]:
    return {
        name
        for name, value in vars(hookspecs).items()
        if name.startswith("crmkit_") and inspect.isfunction(value)
    }


def _examples() -> list[Path]:
    return sorted(EXAMPLES.glob("*.py"))


def _pages_with_code() -> list[Path]:
    pages = [*sorted(DOCS.rglob("*.md")), ROOT / "README.md"]
    return [page for page in pages if _runnable_blocks(page)]


def _runnable_blocks(page: Path) -> list[str]:
    """The page's ```python blocks, leaving out those that only include a tested example."""
    blocks = [m["code"] for m in PYTHON_BLOCK.finditer(page.read_text(encoding="utf-8"))]
    return [
        code
        for code in blocks
        if not all(SNIPPET.match(line) for line in code.splitlines() if line.strip())
    ]


def _section(text: str, name: str) -> str | None:
    match = re.search(
        rf"^# --8<-- \[start:{re.escape(name)}\]\n(.*?)^# --8<-- \[end:{re.escape(name)}\]$",
        text,
        re.DOTALL | re.MULTILINE,
    )
    return None if match is None else match[1]


# ------------------------------------------------------------------ examples


def test_there_are_examples() -> None:
    """The examples directory is not empty (the parametrized tests below would pass vacuously)."""
    assert len(_examples()) >= 2


@pytest.mark.parametrize("example", _examples(), ids=lambda p: p.name)
def test_example_prints_the_output_the_docs_show(example: Path, tmp_path: Path) -> None:
    """Each example runs cleanly and prints exactly its ``.out`` file, which the docs include."""
    expected = example.with_suffix(".out").read_text(encoding="utf-8")

    result = subprocess.run(
        [sys.executable, "-W", "error", str(example)],
        cwd=tmp_path,  # an example that wrote a file would leave it here, not in the repo
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=120,
        check=False,
    )

    assert (0, "") == (result.returncode, result.stderr)
    assert expected == result.stdout


@pytest.mark.parametrize("page", _pages_with_code(), ids=lambda p: str(p.relative_to(ROOT)))
def test_python_blocks_in_the_docs_run(
    page: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every ```python block of a page runs, in order, in one namespace per page."""
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {"__name__": f"docs_{page.stem.replace('-', '_')}"}

    for number, code in enumerate(_runnable_blocks(page), start=1):
        compiled = compile(code, f"{page.relative_to(ROOT)} (python block {number})", "exec")
        exec(compiled, namespace)


def test_every_snippet_names_an_existing_file_and_section() -> None:
    """Every ``--8<--`` include in the docs points to a file (and section) that exists."""
    missing: list[str] = []
    for page in sorted(DOCS.rglob("*.md")):
        for line in page.read_text(encoding="utf-8").splitlines():
            match = SNIPPET.match(line.strip())
            if match is None:
                continue
            path, _, section = match["path"].partition(":")
            target = ROOT / path
            if not target.is_file():
                missing.append(f"{page.name}: {path}")
            elif section and _section(target.read_text(encoding="utf-8"), section) is None:
                missing.append(f"{page.name}: {path}:{section}")

    assert [] == missing


def test_every_example_section_appears_in_the_docs() -> None:
    """No section of an example is left out of the docs (it would be tested but unseen)."""
    included = "\n".join(p.read_text(encoding="utf-8") for p in DOCS.rglob("*.md"))
    unused = [
        f"{example.name}:{name}"
        for example in _examples()
        for name in re.findall(
            r"^# --8<-- \[start:([\w-]+)\]$", example.read_text(encoding="utf-8"), re.MULTILINE
        )
        if f'"examples/{example.name}:{name}"' not in included
    ]

    assert [] == unused


# --------------------------------------------------------------------- hooks


def test_every_hook_is_documented() -> None:
    """Each hookspec has a ``## crmkit_<name>`` section, and no section names a missing hook."""
    text = (DOCS / "plugin-hooks.md").read_text(encoding="utf-8")
    documented = [m["name"] for m in HOOK_HEADING.finditer(text)]

    assert sorted(_hook_names()) == sorted(documented)


def test_every_hook_is_tested() -> None:
    """Each hook name appears in at least one test module under ``tests/plugins/``."""
    sources = [
        path.read_text(encoding="utf-8")
        for path in PLUGIN_TESTS.rglob("test_*.py")
        if path.name != "test_docs.py"
    ]
    untested = sorted(name for name in _hook_names() if not any(name in s for s in sources))

    assert [] == untested


def test_every_hook_section_says_when_it_was_added() -> None:
    """Each hook section ends its description with the version that added it."""
    text = (DOCS / "plugin-hooks.md").read_text(encoding="utf-8")
    sections = re.split(r"^## ", text, flags=re.MULTILINE)[1:]
    undated = [s.split("\n", 1)[0] for s in sections if not re.search(r"Added in \d+\.\d+", s)]

    assert [] == undated


# ------------------------------------------------------------ glossary etc.


def _enums() -> list[type[enum.Enum]]:
    found: list[type[enum.Enum]] = []
    for module in (
        access,
        entities,
        contact_points,
        pipelines,
        interactions,
        leads,
        cases,
        custom_fields,
        analytics,
        insights,
        forecast,
        targets,
        segments,
        campaigns,
        automation,
    ):
        for value in vars(module).values():
            if (
                isinstance(value, type)
                and issubclass(value, enum.Enum)
                and value.__module__ == module.__name__
            ):
                found.append(value)
    return found


def test_every_enum_value_is_in_the_glossary() -> None:
    """Each value of the core enums appears, in backticks, under its enum's heading."""
    text = (DOCS / "glossary.md").read_text(encoding="utf-8")
    missing: list[str] = []
    for enum_type in _enums():
        match = re.search(
            rf"^### {enum_type.__name__}\n(.*?)(?=^#)", text, re.DOTALL | re.MULTILINE
        )
        if match is None:
            missing.append(enum_type.__name__)
            continue
        missing += [
            f"{enum_type.__name__}.{member.name}"
            for member in enum_type
            if f"| `{member.value}` |" not in match[1]
        ]

    assert [] == missing


def test_every_validation_code_is_documented() -> None:
    """Each ``code="..."`` crmkit raises a ValidationError with has a row in the errors page."""
    used = {
        code
        for path in (ROOT / "src" / "crmkit").rglob("*.py")
        for code in re.findall(r'\bcode="(\w+)"', path.read_text(encoding="utf-8"))
    }
    text = (DOCS / "reference" / "errors.md").read_text(encoding="utf-8")
    section = text.split("## ValidationError", 1)[1].split("\n## ", 1)[0]
    documented = set(re.findall(r"`(\w+)`", section))

    assert [] == sorted(used - documented)


def test_changelog_page_is_the_changelog_file() -> None:
    """``docs/changelog.md`` only includes ``CHANGELOG.md``, so the two cannot drift."""
    page = (DOCS / "changelog.md").read_text(encoding="utf-8")

    assert '--8<-- "CHANGELOG.md"\n' == page


def test_readme_starts_with_the_two_commands() -> None:
    """The first code block of the README is ``make demo`` then ``make test``."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    first_block = re.search(r"^```\w*\n(.*?)^```$", readme, re.DOTALL | re.MULTILINE)
    assert first_block is not None
    commands = [line.split("#")[0].strip() for line in first_block[1].splitlines()]

    assert ["$ make demo", "$ make test"] == commands


def test_site_builds_without_warnings(tmp_path: Path) -> None:
    """``mkdocs build --strict`` succeeds: no broken link, snippet or docstring.

    Run here without ``--quiet``, which in MkDocs 1.6 hides the warnings that
    ``--strict`` counts.
    """
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "s")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    warnings = [line for line in result.stderr.splitlines() if not line.startswith("INFO")]

    assert (0, []) == (result.returncode, warnings)
