"""Execute a notebook of ``notebooks/`` in a fresh kernel (nbclient), as the test suite's guard against rot."""

from __future__ import annotations

import os
from pathlib import Path

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"


def run_notebook(name: str, environment: dict[str, str]) -> list[dict]:
    """Run ``notebooks/<name>.ipynb`` with ``environment`` set (the kernel inherits it); returns every output.

    A failing cell raises nbclient's CellExecutionError with the cell's traceback.
    """
    import nbformat
    from nbclient import NotebookClient

    notebook = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    saved = {key: os.environ.get(key) for key in environment}
    os.environ.update(environment)
    try:
        NotebookClient(notebook, timeout=900, kernel_name="python3",
                       resources={"metadata": {"path": str(NOTEBOOKS)}}).execute()
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    return [output for cell in notebook.cells if cell.cell_type == "code" for output in cell.get("outputs", [])]
