"""o2l reproduce's reports from hand-made results: row values, detection by size, several seeds."""

from __future__ import annotations

import pytest

from o2l_tf.errors import InputError
from o2l_tf.reproduce import reproduce
from o2l_tf.reproduce.plan import study_rows
from o2l_tf.reproduce.report import row_values, seeds_table


def _result(lesion_per_case: float, fp: int, found_large: int, clean_free: bool):
    """A finished arm: 4 cases, one of them tumour-free (its prediction clean or not)."""
    summary = {"liver": {"dice_global": 0.95, "dice_per_case": 0.94},
               "lesion": {"dice_global": 0.7, "dice_per_case": lesion_per_case},
               "tumour_burden": {"rmse": 0.02},
               "detection": {"recall": 0.5, "precision": 0.5, "fp": fp,
                             "by_size": {"> 20 mm": {"lesions": 4, "found": found_large,
                                                     "recall": found_large / 4},
                                         "10-20 mm": {"lesions": 2, "found": 1, "recall": 0.5},
                                         "< 10 mm": {"lesions": 0, "found": 0, "recall": None}}}}
    cases = [{"burden_reference": 0.1, "burden_prediction": 0.1} for _ in range(3)]
    cases.append({"burden_reference": 0.0, "burden_prediction": 0.0 if clean_free else 0.001})
    return {"summary": summary, "cases": cases, "seconds": 10.0}


def test_row_values_by_hand():
    values = row_values(study_rows("table1")[0], _result(0.6, 6, 3, True))
    assert values["false_positives_per_case"] == 1.5  # 6 over 4 cases
    assert values["recall_over_20mm"] == 0.75 and values["recall_10_to_20mm"] == 0.5
    assert values["recall_under_10mm"] is None
    assert (values["tumour_free_cases"], values["tumour_free_without_lesion"]) == (1, 1)
    assert values["lesion_dice_per_case"] == pytest.approx(60.0)


def test_seeds_table_shows_the_mean_and_each_seed():
    arms = {row.arm for row in study_rows("table1")}
    by_seed = {0: {arm: _result(0.6, 4, 4, True) for arm in arms}, 2: {arm: _result(0.5, 8, 2, False) for arm in arms}}
    table = seeds_table("table1", by_seed)
    full = next(line for line in table.splitlines() if line.startswith("| full supervision"))
    cells = [c.strip() for c in full.strip("|").split("|")]
    assert cells[4] == "55.0 (60.0, 50.0)"  # lesion Dice per case: mean, then seed 0 and seed 2
    assert cells[7] == "0.75 (1.00, 0.50)"  # recall > 20 mm
    assert cells[9] == "1.5 (1.0, 2.0)"  # false positives per case
    assert cells[10] == "1 of 2"  # tumour-free cases without lesion voxels, pooled over seeds


def test_adjacent_seeds_are_refused(tmp_path):
    with pytest.raises(InputError, match="adjacent"):
        reproduce(str(tmp_path), "table1", None, "small", seeds=[0, 1], progress=False, log=lambda *_: None)


def test_studies_run_one_by_one_add_up_to_one_report(tmp_path, monkeypatch):
    """--study table2, then --study perturbation: the second report still shows Table II (finished earlier)."""
    from o2l_tf.io_utils import write_json
    from o2l_tf.reproduce import runner

    def finished(seed, study, value):
        for row in study_rows(study):
            (tmp_path / f"seed-{seed}" / "arms" / row.arm).mkdir(parents=True, exist_ok=True)
            write_json(str(tmp_path / f"seed-{seed}" / "arms" / row.arm / "result.json"), _result(value, 4, 4, True))

    for seed in (0, 2):
        finished(seed, "table2", 0.8)
    monkeypatch.setattr(runner.Reproduction, "run", lambda self, studies: finished(self.seed, studies[0], 0.3) or {})
    reproduce(str(tmp_path), "perturbation", None, "small", seeds=[0, 2], progress=False, log=lambda *_: None)
    report = (tmp_path / "report.md").read_text()
    assert "### Table II" in report and "### Sec. IV-F" in report and "### Table I " not in report
    assert "30.0 (30.0, 30.0)" in report and "80.0 (80.0, 80.0)" in report  # each study's own arms
    for seed in (0, 2):
        per_seed = (tmp_path / f"seed-{seed}" / "report.md").read_text()
        assert "Table II" in per_seed and "IV-F" in per_seed
