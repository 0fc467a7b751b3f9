"""examples/analysis.ipynb runs top to bottom without an error (nbclient, a real kernel)."""

from __future__ import annotations

import base64
import time
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOK = Path(__file__).resolve().parents[2] / "examples" / "analysis.ipynb"


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # jupyter_client / zmq internals
@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # zmq's proactor event loop notice
def test_the_analysis_notebook_executes_cleanly(tmp_path: Path) -> None:
    """Every cell runs (building the demo book in a temporary directory), in under 60 s,
    and the charts are PNG images shown inline."""
    notebook = nbformat.read(NOTEBOOK, as_version=4)  # type: ignore[no-untyped-call]
    assert all(not cell.get("outputs") for cell in notebook.cells if cell.cell_type == "code")

    started = time.monotonic()
    NotebookClient(
        notebook,
        timeout=120,
        kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path)}},
    ).execute()
    elapsed = time.monotonic() - started

    errors = [
        output
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.outputs
        if output.output_type == "error"
    ]
    assert [] == errors
    assert elapsed < 60
    images = [
        base64.b64decode(output.data["image/png"])
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.outputs
        if "image/png" in output.get("data", {})
    ]
    assert 4 == len(images)
    assert all(image.startswith(b"\x89PNG") for image in images)
    tables = [
        output.data["text/html"]
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.outputs
        if "text/html" in output.get("data", {})
    ]
    assert sum("crmkit-table" in html for html in tables) >= 10
    assert (tmp_path / "crm.db").exists()
