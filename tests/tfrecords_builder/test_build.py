"""build-records: round trip, boxes, orientation, splits, perturbation, determinism and resume."""

from __future__ import annotations

import filecmp
import json
import os

import nibabel as nib
import numpy as np
import pytest
import tensorflow as tf

from o2l_tf.data import records, schema
from o2l_tf.data.boxes import LESION_PERTURBATION, LIVER_PERTURBATION, perturb_box
from o2l_tfrecords_builder import build as build_module
from o2l_tfrecords_builder.build import BuildConfig, assign_splits, build_records
from tests.tfrecords_builder.conftest import save_case

SPLIT = (40, 40, 20)  # of 5 cases: 2 strong, 2 weak, 1 val


def build(data, out, **overrides):
    """Records at the scans' own spacing unless ``spacing`` is given (the tests of resampling say so)."""
    overrides.setdefault("spacing", "native")
    config = BuildConfig(data=data, split=overrides.pop("split", SPLIT), seed=overrides.pop("seed", 0), **overrides)
    return build_records(config, str(out), workers=1, progress=False)


def examples(out, split):
    return list(records.read_split(str(out), split).as_numpy_iterator())


def components_bfs(mask):
    """Independent 8-connected component labelling (plain breadth-first search)."""
    seen = np.zeros(mask.shape, bool)
    boxes = []
    for start in zip(*np.nonzero(mask)):
        if seen[start]:
            continue
        queue, members = [start], []
        seen[start] = True
        while queue:
            x, y = queue.pop()
            members.append((x, y))
            for dx in (-1, 0, 1):
                for dy in (-1, 0, 1):
                    nx, ny = x + dx, y + dy
                    if 0 <= nx < mask.shape[0] and 0 <= ny < mask.shape[1] and mask[nx, ny] and not seen[nx, ny]:
                        seen[nx, ny] = True
                        queue.append((nx, ny))
        xs, ys = zip(*members)
        boxes.append((min(xs), min(ys), max(xs), max(ys)))
    return sorted(boxes)


@pytest.fixture(scope="module")
def built(lits_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("records") / "r"
    manifest = build(lits_dir, out)
    return out, manifest


def test_round_trip_images_labels_and_neighbours(built, phantoms):
    out, manifest = built
    by_case = {str(i): p for i, p in enumerate(phantoms)}
    count = 0
    for split in ("strong", "val"):
        for example in examples(out, split):
            phantom = by_case[example["case_id"].decode()]
            z, depth = int(example["slice_index"]), phantom.volume.shape[2]
            clipped = np.clip(phantom.volume, -200, 250)
            expected = np.stack([clipped[:, :, max(z - 1, 0)], clipped[:, :, z], clipped[:, :, min(z + 1, depth - 1)]], -1)
            assert np.array_equal(example["hu"], expected)
            assert np.allclose(example["image"], (expected + 200.0) / 450.0, atol=1e-6)
            assert np.array_equal(example["label"], phantom.segmentation[:, :, z])
            assert example["has_label"] == 1
            count += 1
    assert count == manifest["splits"]["strong"]["examples"] + manifest["splits"]["val"]["examples"]


def test_boxes_are_circumscribed_rectangles_and_channels(built, phantoms):
    out, _ = built
    for example in examples(out, "strong"):
        label = phantoms[int(example["case_id"])].segmentation[:, :, int(example["slice_index"])]
        assert sorted(map(tuple, example["organ_boxes"].tolist())) == components_bfs(label >= 1)
        assert sorted(map(tuple, example["lesion_boxes"].tolist())) == components_bfs(label == 2)
        organ = np.zeros(label.shape, np.float32)
        for x0, y0, x1, y1 in example["organ_boxes"]:
            organ[x0:x1 + 1, y0:y1 + 1] = 1
        lesion = np.zeros(label.shape, np.float32)
        for x0, y0, x1, y1 in example["lesion_boxes"]:
            lesion[x0:x1 + 1, y0:y1 + 1] = 1
        assert np.array_equal(example["box_channels"][..., 1], lesion)
        assert np.array_equal(example["box_channels"][..., 0], np.maximum(organ, lesion))


def test_weak_records_hold_no_mask(built):
    out, manifest = built
    files = records.split_files(str(out), "weak")
    raw = list(tf.data.TFRecordDataset(files, compression_type="GZIP").as_numpy_iterator())
    assert len(raw) == manifest["splits"]["weak"]["examples"] > 0
    for serialized in raw:
        example = tf.train.Example.FromString(serialized)
        assert schema.LABEL not in example.features.feature
        assert example.features.feature[schema.HAS_LABEL].int64_list.value == [0]


def test_slice_selection_margin_and_val_keeps_everything(built, phantoms):
    out, manifest = built
    for case_id, entry in manifest["cases"].items():
        label = phantoms[int(case_id)].segmentation
        depth = label.shape[2]
        if entry["split"] == "val":
            assert entry["slices"] == list(range(depth))
            continue
        with_liver = np.nonzero((label >= 1).any(axis=(0, 1)))[0]
        expected = sorted({z for s in with_liver for z in range(max(0, s - 2), min(depth, s + 3))})
        assert entry["slices"] == expected


def test_splits_are_by_case_and_shards_mix_cases(built):
    out, manifest = built
    assigned = [set(manifest["splits"][s]["cases"]) for s in schema.SPLITS]
    assert sum(len(a) for a in assigned) == 5 and not (assigned[0] & assigned[1] or assigned[1] & assigned[2])
    order = [e["case_id"].decode() for e in examples(out, "strong")]
    runs = sum(1 for a, b in zip(order, order[1:]) if a != b)
    assert runs > 3  # shuffled across cases, not case after case


def test_split_percentages_by_case_count():
    ids = [str(i) for i in range(131)]
    assignment = assign_splits(ids, BuildConfig(data="x", split=(30, 60, 10), seed=1))
    counts = {s: sum(1 for v in assignment.values() if v == s) for s in schema.SPLITS}
    assert counts == {"strong": 39, "weak": 79, "val": 13}
    again = assign_splits(ids, BuildConfig(data="x", split=(30, 60, 10), seed=1))
    assert again == assignment


def test_same_phantom_in_two_orientations_gives_identical_shards(phantoms, tmp_path):
    for name, orientation in (("a", "RAS"), ("b", "PRS")):
        for index in range(3):
            save_case(str(tmp_path / name), index, phantoms[index], orientation)
    build(str(tmp_path / "a"), tmp_path / "ra", split=(34, 33, 33))
    build(str(tmp_path / "b"), tmp_path / "rb", split=(34, 33, 33))
    shards = sorted(n for n in os.listdir(tmp_path / "ra") if n.endswith(".tfrecord"))
    assert shards == sorted(n for n in os.listdir(tmp_path / "rb") if n.endswith(".tfrecord"))
    match, mismatch, _ = filecmp.cmpfiles(tmp_path / "ra", tmp_path / "rb", shards, shallow=False)
    assert match == shards and not mismatch
    axcodes = json.load(open(tmp_path / "rb" / "manifest.json"))["cases"]["0"]["original_axcodes"]
    assert axcodes == "PRS"


def test_int32_and_scaled_float_volumes_are_accepted(phantoms, tmp_path):
    save_case(str(tmp_path / "d"), 0, phantoms[0], volume_dtype=np.int32)
    save_case(str(tmp_path / "d"), 1, phantoms[1], volume_dtype=np.float64)
    save_case(str(tmp_path / "d"), 2, phantoms[2], volume_dtype=np.float32, slope=0.5)
    split_file = tmp_path / "split.json"
    split_file.write_text(json.dumps({"strong": ["0", "1"], "val": ["2"]}))
    config = BuildConfig(data=str(tmp_path / "d"), split_file=str(split_file), spacing="native")
    build_records(config, str(tmp_path / "r"), progress=False)
    for example in examples(tmp_path / "r", "strong") + examples(tmp_path / "r", "val"):
        phantom = phantoms[int(example["case_id"])]
        assert np.array_equal(example["hu"][:, :, 1], np.clip(phantom.volume[:, :, int(example["slice_index"])], -200, 250))


def test_three_d_user_boxes_map_through_reorientation(phantoms, tmp_path):
    for index in range(3):
        save_case(str(tmp_path / "d"), index, phantoms[index], "PRS" if index == 2 else None)
    split_file = tmp_path / "split.json"
    split_file.write_text(json.dumps({"strong": ["0"], "val": ["1"], "weak": ["2"]}))
    image = nib.load(tmp_path / "d" / "volume-2.nii.gz")
    low, high = np.array([5, 8, 3]), np.array([20, 30, 9])  # file voxel coordinates (P, R, S axes)
    boxes = tmp_path / "boxes.csv"
    boxes.write_text("case_id,class,slice,x0,y0,z0,x1,y1,z1\n"
                     f"2,liver,,{low[0]},{low[1]},{low[2]},{high[0]},{high[1]},{high[2]}\n"
                     "2,lesion,6,10,12,,14,15,\n")
    config = BuildConfig(data=str(tmp_path / "d"), split_file=str(split_file), boxes=str(boxes), margin_slices=0,
                         spacing="native")
    build_records(config, str(tmp_path / "r"), progress=False)
    # Independent mapping: file voxel -> world (file affine) -> canonical voxel (canonical affine).
    canonical = nib.as_closest_canonical(image)
    to_canonical = np.linalg.inv(canonical.affine) @ image.affine
    corners = np.array([[x, y, z, 1] for x in (low[0], high[0]) for y in (low[1], high[1]) for z in (low[2], high[2])])
    mapped = np.rint((to_canonical @ corners.T)[:3]).astype(int)
    c_low, c_high = mapped.min(axis=1), mapped.max(axis=1)
    lesion_corners = np.array([[10, 12, 6, 1], [14, 15, 6, 1]])
    lesion_mapped = np.rint((to_canonical @ lesion_corners.T)[:3]).astype(int)
    weak = examples(tmp_path / "r", "weak")
    assert sorted(int(e["slice_index"]) for e in weak) == list(range(c_low[2], c_high[2] + 1))
    for example in weak:
        assert example["organ_boxes"].tolist() == [[c_low[0], c_low[1], c_high[0], c_high[1]]]
        assert example["boxes_source"] == b"user" and example["has_label"] == 0
        if int(example["slice_index"]) == lesion_mapped[2, 0]:
            lx, ly = lesion_mapped[0], lesion_mapped[1]
            assert example["lesion_boxes"].tolist() == [[lx.min(), ly.min(), lx.max(), ly.max()]]
        else:
            assert example["lesion_boxes"].size == 0


def test_perturbation_stays_within_the_papers_bounds():
    rng = np.random.default_rng(0)
    for rule, (low, high) in ((LIVER_PERTURBATION, (0.95, 1.1)), (LESION_PERTURBATION, (0.9, 1.2))):
        ratios, shifts = [], []
        for _ in range(3000):
            box = (100, 120, 199, 259)  # 100 x 140 pixels
            x0, y0, x1, y1 = perturb_box(box, rng, rule, (512, 512))
            ratios += [(x1 - x0 + 1) / 100, (y1 - y0 + 1) / 140]
            shifts += [abs((x0 + x1) / 2 - 149.5) / 100, abs((y0 + y1) / 2 - 189.5) / 140]
        slack = 2 * rule.shift + 0.015  # each side moves by < shift * side; 1 px rounding
        assert low - slack <= min(ratios) and max(ratios) <= high + slack
        assert abs(np.mean(ratios) - (low + high) / 2) < 0.01
        assert max(shifts) <= rule.shift + 0.01
        assert min(ratios) < low and max(ratios) > high  # the vertex moves do happen


def test_perturbed_weak_boxes_are_recorded_and_clipped(lits_dir, tmp_path, built):
    manifest = build(lits_dir, tmp_path / "p", perturb_boxes=True)
    assert manifest["boxes"]["perturbation"]["liver"]["shift"] == pytest.approx(0.05)
    plain = {(e["case_id"], int(e["slice_index"])): e for e in examples(built[0], "weak")}
    changed = 0
    for example in examples(tmp_path / "p", "weak"):
        boxes = example["organ_boxes"]
        if boxes.size:
            assert example["boxes_perturbed"] == 1
            assert boxes.min() >= 0 and boxes[:, 2].max() <= 47 and boxes[:, 3].max() <= 47
            changed += not np.array_equal(boxes, plain[(example["case_id"], int(example["slice_index"]))]["organ_boxes"])
    assert changed > 0
    strong = examples(tmp_path / "p", "strong")
    assert all(e["boxes_perturbed"] == 0 for e in strong)  # only weak boxes are perturbed (Sec. IV-F)


def test_same_inputs_give_identical_bytes(lits_dir, tmp_path, built):
    build(lits_dir, tmp_path / "again")
    names = sorted(os.listdir(built[0]))
    assert names == sorted(os.listdir(tmp_path / "again"))
    match, mismatch, _ = filecmp.cmpfiles(built[0], tmp_path / "again", names, shallow=False)
    assert not mismatch and len(match) == len(names)


@pytest.mark.parametrize("where", ["cases", "cases, a work file lost", "shards"])
def test_resume_after_interruption_equals_uninterrupted_run(lits_dir, tmp_path, built, monkeypatch, where):
    out = tmp_path / "resume"
    if where.startswith("cases"):
        original, calls = build_module.process_case, []

        def flaky(job):
            calls.append(job)
            if len(calls) == 3:
                raise KeyboardInterrupt
            return original(job)

        monkeypatch.setattr(build_module, "process_case", flaky)
    else:
        original = build_module._write_split_shards

        def flaky(out_dir, work, split, entries, config):
            names = original(out_dir, work, split, entries, config)
            if split == "weak":
                raise KeyboardInterrupt  # after the shards, before the split is marked done
            return names

        monkeypatch.setattr(build_module, "_write_split_shards", flaky)
    with pytest.raises(KeyboardInterrupt):
        build(lits_dir, out)
    assert not (out / "manifest.json").exists()
    if where == "cases, a work file lost":  # a finished case whose chunks are gone is processed again
        finished = sorted((out / ".work" / "cases").glob("*.chunks"))
        assert finished
        finished[0].unlink()
    monkeypatch.undo()
    build(lits_dir, out)
    names = sorted(os.listdir(built[0]))
    assert sorted(os.listdir(out)) == names
    match, mismatch, _ = filecmp.cmpfiles(built[0], out, names, shallow=False)
    assert not mismatch and len(match) == len(names)


def test_msd_layout_and_case_list(tmp_path, phantoms):
    from o2l_tf.synth.cohort import CohortSpec, write_cohort

    write_cohort(str(tmp_path / "msd"), CohortSpec(cases=3, size=32, slices=(6, 8), layout="msd"), progress=False)
    manifest = build(str(tmp_path / "msd"), tmp_path / "r1", split=(34, 33, 33))
    assert manifest["layout"] == "msd" and set(manifest["cases"]) == {"liver_0", "liver_1", "liver_2"}
    listing = tmp_path / "cases.csv"
    listing.write_text("case_id,image,label\n" + "".join(
        f"p{i},msd/imagesTr/liver_{i}.nii.gz,msd/labelsTr/liver_{i}.nii.gz\n" for i in range(3)))
    config = BuildConfig(cases_file=str(listing), split=(34, 33, 33))
    manifest = build_records(config, str(tmp_path / "r2"), progress=False)
    assert set(manifest["cases"]) == {"p0", "p1", "p2"} and manifest["layout"] == "list"


def test_parallel_workers_give_the_same_bytes(lits_dir, tmp_path, built):
    config = BuildConfig(data=lits_dir, split=SPLIT, seed=0, spacing="native")
    build_records(config, str(tmp_path / "parallel"), workers=2, progress=False)
    names = sorted(os.listdir(built[0]))
    match, mismatch, _ = filecmp.cmpfiles(built[0], tmp_path / "parallel", names, shallow=False)
    assert not mismatch and len(match) == len(names)


def test_reader_refuses_other_schema_versions(built, tmp_path):
    import shutil

    from o2l_tf.errors import InputError

    copy = tmp_path / "old"
    shutil.copytree(built[0], copy)
    manifest = json.load(open(copy / "manifest.json"))
    manifest["schema_version"] = 0
    (copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(InputError, match="schema version 0"):
        records.load_manifest(str(copy))
    with pytest.raises(InputError, match="not a finished build"):
        records.load_manifest(str(tmp_path))


def test_the_build_never_imports_tensorflow(lits_dir, tmp_path):
    """TensorFlow's import (3 s per process) would be most of a build's time; the writer does without it."""
    import subprocess
    import sys

    code = ("import sys\n"
            "from o2l_tfrecords_builder.build import BuildConfig, build_records\n"
            f"build_records(BuildConfig(data={lits_dir!r}, split=(40, 40, 20)), {str(tmp_path / 'r')!r}, "
            "workers=1, progress=False)\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras')))\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
    assert os.path.exists(tmp_path / "r" / schema.MANIFEST)


def test_manifest_case_entries_hold_no_work_file_offsets(built):
    out, manifest = built
    assert not os.path.exists(out / ".work")
    for entry in manifest["cases"].values():
        assert "chunks" not in entry
        assert entry["examples"] == len(entry["slices"]) and entry["serialized_bytes"] > 0


# ------------------------------------------------------------------------------------- in-plane spacing
def test_auto_spacing_is_the_median_of_the_strong_cases_and_records_hold_it(lits_dir, phantoms, tmp_path):
    from o2l_tf.data import resample

    manifest = build(lits_dir, tmp_path / "auto", spacing="auto")
    strong = manifest["splits"]["strong"]["cases"]
    expected = [round(float(np.median([phantoms[int(c)].spacing[axis] for c in strong])), 4) for axis in (0, 1)]
    assert manifest["preprocessing"]["spacing"] == {"mode": "auto", "target_mm": expected}
    assert manifest["config"]["spacing"] == "auto"
    by_case = {str(i): p for i, p in enumerate(phantoms)}
    checked = 0
    for split in ("strong", "val"):
        for example in examples(tmp_path / "auto", split):
            phantom = by_case[example["case_id"].decode()]
            entry = manifest["cases"][example["case_id"].decode()]
            shape = resample.resampled_shape(phantom.volume.shape[:2], phantom.spacing[:2], expected)
            assert tuple(entry["canonical_shape"][:2]) == shape == example["hu"].shape[:2]
            assert entry["native_shape"] == list(phantom.volume.shape)
            np.testing.assert_allclose(entry["spacing_mm"][:2], expected, rtol=0.03)  # round(H * s / t) pixels
            np.testing.assert_allclose(entry["spacing_mm"][2], phantom.spacing[2])  # slices are not resampled
            z = int(example["slice_index"])
            hu = np.clip(phantom.volume[:, :, z], -200, 250)
            assert np.array_equal(example["hu"][:, :, 1], resample.resample_image(hu, shape))
            assert np.array_equal(example["label"], resample.resample_labels(phantom.segmentation[:, :, z], shape, 3))
            checked += 1
    assert checked > 0


def test_a_case_already_at_the_target_spacing_gives_the_native_bytes(lits_dir, phantoms, tmp_path, built):
    target = f"{phantoms[0].spacing[0]},{phantoms[0].spacing[1]}"
    from o2l_tfrecords_builder.build import parse_spacing

    manifest = build(lits_dir, tmp_path / "fixed", spacing=parse_spacing(target))
    native = built[1]
    assert manifest["cases"]["0"]["canonical_shape"] == native["cases"]["0"]["canonical_shape"]
    ours = [e for s in schema.SPLITS for e in examples(tmp_path / "fixed", s) if e["case_id"] == b"0"]
    theirs = [e for s in schema.SPLITS for e in examples(built[0], s) if e["case_id"] == b"0"]
    assert len(ours) == len(theirs) > 0
    for a, b in zip(sorted(ours, key=lambda e: int(e["slice_index"])), sorted(theirs, key=lambda e: int(e["slice_index"]))):
        assert np.array_equal(a["hu"], b["hu"]) and np.array_equal(a["box_channels"], b["box_channels"])


def test_user_boxes_are_scaled_with_the_grid(phantoms, tmp_path):
    for index in range(3):
        save_case(str(tmp_path / "d"), index, phantoms[index], "RAS")
    split_file = tmp_path / "split.json"
    split_file.write_text(json.dumps({"strong": ["0"], "val": ["1"], "weak": ["2"]}))
    boxes = tmp_path / "boxes.csv"
    boxes.write_text("case_id,class,slice,x0,y0,z0,x1,y1,z1\n2,liver,,8,10,3,31,29,5\n")
    spacing = phantoms[2].spacing[0] * 2  # half as many pixels
    config = BuildConfig(data=str(tmp_path / "d"), split_file=str(split_file), boxes=str(boxes), margin_slices=0,
                         spacing=(spacing, spacing))
    build_records(config, str(tmp_path / "r"), progress=False)
    weak = examples(tmp_path / "r", "weak")
    assert len(weak) == 3
    for example in weak:
        assert example["hu"].shape[:2] == (24, 24)
        assert example["organ_boxes"].tolist() == [[4, 5, 15, 14]]  # pixels 8..31 of 48 -> 4..15 of 24


@pytest.mark.parametrize("text, message", [("fine", "auto, native or X,Y"), ("0.8", "auto, native or X,Y"),
                                           ("0.01,0.8", "0.05-20 mm")])
def test_bad_spacing_is_refused(lits_dir, tmp_path, text, message):
    from o2l_tf.errors import InputError
    from o2l_tfrecords_builder.build import parse_spacing

    with pytest.raises(InputError, match=message):
        build(lits_dir, tmp_path / "r", spacing=parse_spacing(text))
