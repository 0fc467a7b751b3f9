"""examples/plugin_package, installed with pip into a fresh virtual environment.

The package (distribution ``crmkit-solar``) is built and installed the way a
user would, ``pip install <dir>``, into a throwaway venv under the test's
temporary directory; the project's own environment is never touched.  The
venv sees the crmkit under test (and its dependencies) through a ``.pth``
file, and the checks run in that venv's interpreter, so the plugin is found
only through its installed entry point.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import site
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

import crmkit

PACKAGE = Path(__file__).resolve().parents[2] / "examples" / "plugin_package"

#: Seconds any one step (creating the venv, pip, a check script) may take.
STEP_TIMEOUT = 120


def _run(args: list[str | Path]) -> str:
    """Run a command; its stdout, or a failure showing what it printed."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "PYTHON"))}
    env.update(PIP_CONFIG_FILE=os.devnull, PIP_DISABLE_PIP_VERSION_CHECK="1", PIP_NO_INPUT="1")
    result = subprocess.run(
        [str(a) for a in args],
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=STEP_TIMEOUT,
        env=env,
        check=False,
    )
    if result.returncode != 0:
        pytest.fail(f"{args[:3]} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result.stdout


@pytest.fixture(scope="module")
def venv_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The interpreter of a new venv where crmkit-solar is pip-installed."""
    root = tmp_path_factory.mktemp("plugin-package")
    # pip builds in the source tree (build/, *.egg-info): build a copy, not the checkout
    source = root / "crmkit-solar"
    shutil.copytree(
        PACKAGE, source, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__")
    )
    venv = root / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", venv])
    python = venv / ("Scripts" if os.name == "nt" else "bin") / "python"
    purelib = _run([python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"])
    # crmkit, its dependencies, pip and setuptools from this environment (processing
    # their .pth files too, so an editable crmkit is found); the venv's own
    # site-packages stays first on sys.path
    ours = [*site.getsitepackages(), str(Path(crmkit.__file__).resolve().parents[1])]
    (Path(purelib.strip()) / "_crmkit_under_test.pth").write_text(
        "".join(f"import site; site.addsitedir({d!r})\n" for d in ours), encoding="utf-8"
    )
    _run(
        [
            python,
            "-m",
            "pip",
            "install",
            "--no-deps",  # crmkit comes from the checkout, not from an index
            "--no-index",
            "--no-build-isolation",  # offline: build with this environment's setuptools
            "--check-build-dependencies",
            "--no-cache-dir",
            "--quiet",
            source,
        ]
    )
    return python


def run_in_venv(python: Path, code: str) -> Any:
    """Run ``code`` in the venv, with warnings as errors; the JSON it printed."""
    return json.loads(_run([python, "-W", "error", "-c", textwrap.dedent(code)]))


def test_this_environment_does_not_have_the_plugin() -> None:
    """crmkit_solar is not importable here: only the venv of these tests has it."""
    assert importlib.util.find_spec("crmkit_solar") is None


def test_the_installed_distribution_declares_its_crmkit_entry_point(venv_python: Path) -> None:
    """pip installed crmkit-solar into the venv, with entry point solar in group crmkit."""
    found = run_in_venv(
        venv_python,
        """
        import json, sys
        from importlib.metadata import distribution
        from pathlib import Path

        dist = distribution("crmkit-solar")
        print(json.dumps({
            "version": dist.version,
            "entry_points": [[e.group, e.name, e.value] for e in dist.entry_points],
            "in_venv": Path(str(dist.locate_file(""))).resolve().is_relative_to(
                Path(sys.prefix).resolve()
            ),
        }))
        """,
    )

    assert {
        "version": "0.1.0",
        "entry_points": [["crmkit", "solar", "crmkit_solar.plugin"]],
        "in_venv": True,
    } == found


def test_load_entry_points_brings_the_pipeline_field_and_kind(venv_python: Path) -> None:
    """Opened with load_entry_points=True, a CRM has and uses what the package registers."""
    found = run_in_venv(
        venv_python,
        """
        import json
        from datetime import date
        from decimal import Decimal

        import crmkit
        from crmkit import Money

        crm = crmkit.open(":memory:", load_entry_points=True)
        roofs = crm.organizations.create(name="Tejados del Sur S.L.")
        opp = crm.opportunities.create(
            name="12 kWp on the warehouse", organization=roofs,
            pipeline="solar-install", custom={"system_kwp": "12.4"},
        )
        visit = crm.interactions.log(
            kind="site-survey", organization=roofs, opportunity=opp, subject="Roof measured",
        )
        try:
            crm.opportunities.update(
                opp.id, expected_version=opp.version, custom={"system_kwp": "0.1"}
            )
        except crmkit.ValidationError as error:
            refused = [error.field, error.code]
        opp = crm.opportunities.advance(opp.id, to="design")
        opp = crm.opportunities.update(
            opp.id, expected_version=opp.version, amount=Money("14880", "EUR"),
            expected_close=date(2026, 6, 30),
        )
        opp = crm.opportunities.advance(opp.id, to="proposal")
        won = crm.opportunities.win(opp.id)
        pipeline = crm.pipelines.get("solar-install")
        print(json.dumps({
            "plugins": [n for n in crm.plugins.plugin_names() if not n.startswith("crmkit.")],
            "stages": [s.key for s in pipeline.stages],
            "label_es": pipeline.stage("survey").label_for("es"),
            "system_kwp": str(crm.opportunities.get(opp.id).custom["system_kwp"]),
            "refused": refused,
            "visit": [visit.kind, crm.interactions.kinds.get(visit.kind).label("es")],
            "won": [won.stage, str(won.probability), [c.target for c in won.history]],
        }))
        """,
    )

    assert {
        "plugins": ["solar"],
        "stages": ["survey", "design", "proposal", "permit", "installed", "dropped"],
        "label_es": "Visita técnica",
        "system_kwp": "12.4",
        "refused": ["custom.system_kwp", "out_of_range"],
        "visit": ["site-survey", "Visita técnica"],
        "won": ["installed", "1", ["survey", "design", "proposal", "installed"]],
    } == found


def test_the_installed_plugin_stays_out_unless_asked(venv_python: Path) -> None:
    """Without load_entry_points=True the package is installed but not loaded."""
    found = run_in_venv(
        venv_python,
        """
        import json, sys

        import crmkit

        crm = crmkit.open(":memory:")
        print(json.dumps([
            "solar-install" in crm.pipelines,
            "site-survey" in crm.interactions.kinds,
            "crmkit_solar" in sys.modules,
        ]))
        """,
    )

    assert [False, False, False] == found
