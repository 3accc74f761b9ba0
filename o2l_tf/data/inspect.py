"""``o2l inspect-records``: counts per split and a picture of a few examples with their boxes."""

from __future__ import annotations

import numpy as np

from o2l_tf import visualization as viz
from o2l_tf.data import schema
from o2l_tf.data.manifest import load_manifest


def summary_lines(records_dir: str, manifest: dict | None = None) -> list[str]:
    manifest = manifest or load_manifest(records_dir)
    lines = [f"{records_dir}: schema {manifest['schema_version']}, o2l {manifest['o2l_version']}, "
             f"layout {manifest['layout']}, weak boxes from {manifest['boxes']['weak_source']}"
             + (", perturbed" if manifest["boxes"]["perturbation"] else "")]
    spacing = manifest["preprocessing"].get("spacing", {"target_mm": None})
    target = spacing["target_mm"]
    lines.append("  in-plane spacing: native (not resampled)" if target is None else
                 f"  in-plane spacing: {target[0]:g} x {target[1]:g} mm ({spacing['mode']}; slices kept as scanned)")
    for split in schema.SPLITS:
        info = manifest["splits"][split]
        lines.append(f"  {split:<6} {len(info['cases']):>4} cases {info['examples']:>7} examples "
                     f"{len(info['shards']):>3} shards")
    return lines


def render_example(example: dict, min_size: int = 192) -> np.ndarray:
    """Centre slice in the liver window, box outlines (organ yellow, lesion cyan), label contours if any."""
    hu = example["hu"][:, :, 1]
    label = example["label"] if example["has_label"] else None
    rgb = viz.overlay(viz.window(viz.radiological(hu)), None if label is None else viz.radiological(label))
    height, width = hu.shape
    for kind, key in (("organ", "organ_boxes"), ("lesion", "lesion_boxes")):
        for x0, y0, x1, y1 in example[key]:
            # radiological() transposes and flips both axes: canonical (x, y) -> display (W-1-y, H-1-x)
            viz.draw_box(rgb, width - 1 - y1, height - 1 - x1, width - 1 - y0, height - 1 - x0, viz.BOX_COLORS[kind])
    return viz.upscale(rgb, max(1, -(-min_size // max(height, width))))


def render_records(records_dir: str, per_split: int = 4, manifest: dict | None = None) -> np.ndarray:
    """A montage: one row per split, examples with the most box area first (so livers are visible)."""
    from o2l_tf.data import records

    manifest = manifest or load_manifest(records_dir)
    tiles = []
    for split in schema.SPLITS:
        if not manifest["splits"][split]["shards"]:
            continue
        candidates = []
        for example in records.read_split(records_dir, split, manifest).take(64).as_numpy_iterator():
            candidates.append((float(example["box_channels"][..., 0].sum()), len(candidates), example))
        candidates.sort(key=lambda item: (-item[0], item[1]))
        row = [render_example(example) for _, _, example in candidates[:per_split]]
        while len(row) < per_split:
            row.append(np.zeros_like(row[0]))
        tiles.extend(row)
    return viz.montage(tiles, columns=per_split)
