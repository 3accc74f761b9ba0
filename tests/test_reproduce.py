"""o2l reproduce at small scale: every study's arms, reports checked against independent computations, resume."""

from __future__ import annotations

import csv
import hashlib
import json
import os

import nibabel as nib
import numpy as np
import pytest
from scipy import ndimage

from o2l_tf.reproduce import reproduce
from o2l_tf.reproduce.plan import RATIOS, arms, study_rows
from o2l_tfrecords_builder.build import build_phantom_records
from tests.helpers import expect_one_line_error, liver_dice_of_files, run_cli
from tests.notebook_runner import run_notebook

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    out = tmp_path_factory.mktemp("reproduce") / "small"
    lines = []
    report = reproduce(str(out), "all", build_phantom_records, "small", progress=False, log=lines.append)
    return out, report, lines


def read_csv(path):
    with open(path, newline="") as stream:
        return list(csv.DictReader(stream))


def canonical_labels(path):
    return np.asarray(nib.as_closest_canonical(nib.load(path)).dataobj).astype(np.uint8)


def numpy_box_partition(label):
    """Per axial slice: rectangles around 8-connected liver and lesion components, lesion drawn over liver."""
    out = np.zeros_like(label)
    for z in range(label.shape[2]):
        for value, mask in ((1, label[:, :, z] >= 1), (2, label[:, :, z] == 2)):
            components, _ = ndimage.label(mask, structure=np.ones((3, 3)))
            for rows, cols in ndimage.find_objects(components):
                if value == 1:
                    out[rows, cols, z] = np.where(out[rows, cols, z] == 2, 2, 1)
                else:
                    out[rows, cols, z] = 2
    return out


def dice(a, b):
    return 2 * np.count_nonzero(a & b) / (np.count_nonzero(a) + np.count_nonzero(b))


def test_every_study_writes_its_table_csv_and_provenance(small):
    out, report, _ = small
    for study in ("table2", "table1", "ratios", "perturbation"):
        rows = read_csv(out / f"{study}.csv")
        assert [r["row"] for r in rows] == [r.label for r in study_rows(study)]
        text = (out / f"{study}.md").read_text()
        assert "not LiTS" in text and "seed 0" in text and "TensorFlow" in text and "cores" in text
        assert "o2l reproduce --study all --scale small" in text
    assert (out / "ratios.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert report == (out / "report.md").read_text()
    assert len(read_csv(out / "ratios.csv")) == len(RATIOS)
    assert (out / "table1.csv").read_text().count("\n") == 6


def test_test_cohort_is_held_out(small):
    out, _, _ = small
    train = {hashlib.sha256((out / "phantoms" / n).read_bytes()).hexdigest() for n in os.listdir(out / "phantoms")
             if n.startswith("volume-")}
    test = {hashlib.sha256((out / "test" / n).read_bytes()).hexdigest() for n in os.listdir(out / "test")
            if n.startswith("volume-")}
    assert len(test) == 2 and not train & test


def test_box_partition_row_matches_numpy(small):
    out, _, _ = small
    pairs = []
    for name in sorted(os.listdir(out / "test")):
        if name.startswith("segmentation-"):
            truth = canonical_labels(out / "test" / name)
            pairs.append((truth, numpy_box_partition(truth)))
            written = canonical_labels(out / "arms" / "box-partition" / "predictions" / name)
            np.testing.assert_array_equal(written, pairs[-1][1])
    row = read_csv(out / "table2.csv")[0]
    for organ, select in (("liver", lambda v: v >= 1), ("lesion", lambda v: v == 2)):
        intersections = sum(np.count_nonzero(select(t) & select(p)) for t, p in pairs)
        sizes = sum(np.count_nonzero(select(t)) + np.count_nonzero(select(p)) for t, p in pairs)
        assert float(row[f"{organ}_dice_global"]) == pytest.approx(100 * 2 * intersections / sizes, rel=1e-5)
        per_case = np.mean([dice(select(t), select(p)) for t, p in pairs])
        assert float(row[f"{organ}_dice_per_case"]) == pytest.approx(100 * per_case, rel=1e-5)
    assert 30 < float(row["liver_dice_global"]) < 95  # boxes hold the liver plus its surroundings


def test_teachers_get_the_true_boxes(small):
    out, _, _ = small
    rows = read_csv(out / "test" / "boxes.csv")
    for name in sorted(os.listdir(out / "test")):
        if not name.startswith("segmentation-"):
            continue
        case = name.split("-")[1].split(".")[0]
        image = nib.load(out / "test" / name)
        label = np.asarray(image.dataobj)
        drawn = np.zeros(label.shape + (2,), bool)
        for r in (r for r in rows if r["case_id"] == case):
            low = [int(r[k]) for k in ("x0", "y0", "z0")]
            high = [int(r[k]) + 1 for k in ("x1", "y1", "z1")]
            drawn[low[0]:high[0], low[1]:high[1], low[2]:high[2], int(r["class"] == "lesion")] = True
        canonical = nib.as_closest_canonical(nib.Nifti1Image(drawn.astype(np.uint8), image.affine))
        boxes = np.asarray(canonical.dataobj).astype(bool)
        expected = numpy_box_partition(canonical_labels(out / "test" / name))
        np.testing.assert_array_equal(boxes[..., 0] | boxes[..., 1], expected >= 1)
        np.testing.assert_array_equal(boxes[..., 1], expected == 2)
    config = json.loads((out / "arms" / "teacher-o2l-shortcut" / "run" / "config.json").read_text())
    assert config["run"]["role"] == "teacher" and config["run"]["model"]["attention"] == "o2l"
    for name in ("teacher-none-no-shortcut", "teacher-multichannel-shortcut"):
        run = json.loads((out / "arms" / name / "run" / "config.json").read_text())["run"]
        assert run["model"]["attention"] == name.split("-")[1]


def test_student_rows_are_the_scores_of_their_files(small):
    out, _, _ = small
    row = next(r for r in read_csv(out / "table1.csv") if r["arm"] == "student-30-60")
    scores = [liver_dice_of_files(r["prediction"], r["reference"])
              for r in read_csv(out / "arms" / "student-30-60" / "evaluation.csv")]
    assert float(row["liver_dice_per_case"]) == pytest.approx(100 * np.mean(scores), abs=1e-4)


def test_arms_train_on_their_records(small):
    out, _, _ = small
    table = arms()
    for name, arm in table.items():
        result = json.loads((out / "arms" / name / "result.json").read_text())
        assert result["records"] == os.path.join("records", arm.records.name)
        if arm.role != "boxes":
            overrides = dict(o.split("=") for o in arm.overrides)
            run = result["config"]
            for key, value in overrides.items():
                section, field = key.split(".")
                assert str(run[section][field]).lower() == value.lower(), (name, key)
    manifests = {n: json.loads((out / "records" / n / "manifest.json").read_text()) for n in os.listdir(out / "records")}
    counts = {n: tuple(len(m["splits"][s]["cases"]) for s in ("strong", "weak", "val")) for n, m in manifests.items()}
    assert counts["split-10-80-10"] == (1, 8, 1) and counts["split-90-0-10"] == (9, 0, 1)
    assert counts["split-30-60-10"] == counts["split-30-60-10-perturbed"] == (3, 6, 1)
    perturbed, plain = manifests["split-30-60-10-perturbed"], manifests["split-30-60-10"]
    assert perturbed["boxes"]["perturbation"] and not plain["boxes"]["perturbation"]
    assert perturbed["splits"]["weak"]["cases"] == plain["splits"]["weak"]["cases"]
    # the perturbation arm's pseudo-labels come from the same O2L teacher as the unperturbed method's
    teachers = {json.loads((out / "records" / n / "pseudo_labels.json").read_text())["teacher_sha256"]
                for n in ("split-30-60-10", "split-30-60-10-perturbed")}
    assert len(teachers) == 1


def test_rerun_resumes_without_retraining(small, capsys):
    out, _, _ = small
    before = (out / "table1.csv").read_bytes()
    os.remove(out / "arms" / "student-strong-only" / "result.json")  # as if killed after training, before scoring
    code, stdout, err = run_cli(["reproduce", "--study", "table1", "--scale", "small", "--out", str(out), "--quiet"],
                                capsys)
    assert code == 0, err
    retrained = [line for line in stdout.splitlines() if ": train " in line]
    assert retrained == [next(line for line in retrained if "student-strong-only" in line)]
    assert "resuming from" in stdout and "epoch 1/" not in stdout  # the finished training is not run again
    assert stdout.count("not retrained") == 5
    scores = ("liver_dice_global", "liver_dice_per_case", "lesion_dice_global", "lesion_dice_per_case", "burden_rmse")
    assert [[r[k] for k in scores] for r in read_csv(out / "table1.csv")] == \
        [[r[k] for k in scores] for r in csv.DictReader(before.decode().splitlines())]


def test_committed_results_resume_elsewhere_retraining_only_a_needed_teacher(small, tmp_path):
    """Only result.json files survive (docs/results/collect.py): a student still to train gets its teacher back."""
    import shutil

    from o2l_tf.reproduce.plan import METHOD, O2L_TEACHER
    from o2l_tf.reproduce.runner import Reproduction

    out = tmp_path / "elsewhere"
    shutil.copytree(small[0], out, ignore=shutil.ignore_patterns("run", "predictions"))  # results, not runs
    os.remove(out / "arms" / METHOD / "result.json")
    lines = []
    results = Reproduction(str(out), "small", build_phantom_records, progress=False, log=lines.append).run(
        ["perturbation"])
    assert any(f"{O2L_TEACHER}: finished earlier but its run is not here" in line for line in lines)
    assert (out / "arms" / O2L_TEACHER / "run" / "teacher.keras").exists()
    assert results[METHOD]["summary"] and (out / "arms" / METHOD / "result.json").exists()
    trained = [line for line in lines if ": train " in line]
    assert len(trained) == 1 and METHOD in trained[0]  # the perturbed student is finished: not retrained


def test_another_scale_in_the_same_folder_is_refused(small, capsys):
    out, _, _ = small
    expect_one_line_error(capsys, ["reproduce", "--study", "table2", "--scale", "medium", "--out", str(out)],
                          "plan.json", "scale small")


def test_results_notebook_plots_the_csvs(small):
    out, _, _ = small
    outputs = run_notebook("03_results", {"O2L_RESULTS": str(out)})
    assert sum("image/png" in o.get("data", {}) for o in outputs) >= 3  # Table II, Table I, Fig. 10
    text = "".join(o.get("text", "") for o in outputs)
    assert "box partition itself" in text and "perturbed weak boxes" in text
