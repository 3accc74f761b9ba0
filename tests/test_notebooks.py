"""The notebooks run from top to bottom (quick parameters) and show what they promise; committed without outputs."""

from __future__ import annotations

import json

import pytest

from tests.notebook_runner import NOTEBOOKS, run_notebook


def test_committed_notebooks_hold_no_outputs():
    names = sorted(p.name for p in NOTEBOOKS.glob("*.ipynb"))
    assert names == ["01_quickstart.ipynb", "02_records_and_boxes.ipynb", "03_results.ipynb"]
    for name in names:
        cells = json.loads((NOTEBOOKS / name).read_text())["cells"]
        assert all(not c.get("outputs") and c.get("execution_count") is None for c in cells if c["cell_type"] == "code")


@pytest.mark.slow
def test_quickstart_runs_the_whole_pipeline(tmp_path):
    outputs = run_notebook("01_quickstart", {"O2L_NOTEBOOK_QUICK": "1", "O2L_NOTEBOOK_WORK": str(tmp_path)})
    text = "".join(o.get("text", "") for o in outputs)
    assert "teacher final loss" in text and "student final loss" in text and "Table I layout (2 case(s))" in text
    assert sum("image/png" in o.get("data", {}) for o in outputs) == 3  # phantoms, records, a prediction preview
    assert (tmp_path / "runs" / "student" / "student.keras").exists()
    assert len(list((tmp_path / "predictions").glob("segmentation-*.nii.gz"))) == 2


@pytest.mark.slow
def test_records_notebook_renders_boxes_perturbations_and_user_boxes(tmp_path):
    outputs = run_notebook("02_records_and_boxes", {"O2L_NOTEBOOK_QUICK": "1", "O2L_NOTEBOOK_WORK": str(tmp_path)})
    assert sum("image/png" in o.get("data", {}) for o in outputs) == 3
    text = "".join(o.get("text", "") for o in outputs)
    assert "weak boxes from user" in text and "case_id,class,x0,y0,z0,x1,y1,z1" in text
    for name in ("example.png", "perturbed.png", "user-boxes.png"):
        assert (tmp_path / name).read_bytes()[:4] == b"\x89PNG"
