"""One anatomy at two pixel sizes through a trained model: do the labels agree once predict resamples?

Usage: .venv/bin/python benchmarks/spacing_agreement.py RUN_DIR WORK_DIR  (RUN_DIR: e.g. demo/runs/student after make demo)
Renders case 0 of the demo's held-out seed (1) at 0.7 and 1.5 mm pixels, predicts both, resamples the coarse labels
onto the fine grid and prints the Dice between them (and each against its own reference).
"""
import json
import os
import sys

import nibabel as nib
import numpy as np

from o2l_tf.synth.phantom import generate_phantom
from o2l_tf.inference.predict import PredictOptions, predict_files
from o2l_tf.data import resample

run = sys.argv[1]; work = sys.argv[2]
os.makedirs(work, exist_ok=True)
index, seed, slices = 0, 1, (48, 64)  # the demo's held-out cohort seed 1, case 0
p512 = generate_phantom(index, size=64, slices=slices, seed=seed).spacing[0] * 64 / 512
paths = {}
for name, pixel in (("fine", 0.7), ("coarse", 1.5)):
    ph = generate_phantom(index, size=int(round(512 * p512 / pixel)), slices=slices, seed=seed)
    v, l = ph.to_nifti()
    d = os.path.join(work, name); os.makedirs(d, exist_ok=True)
    v.to_filename(os.path.join(d, "volume-0.nii.gz")); l.to_filename(os.path.join(d, "segmentation-0.nii.gz"))
    paths[name] = os.path.join(d, "volume-0.nii.gz")
    print(name, ph.volume.shape, ph.spacing)
out = {}
for name, path in paths.items():
    o = os.path.join(work, "pred-" + name)
    predict_files(run, [path], o, PredictOptions(precision="float32"), progress=False, log=lambda *a: None)
    img = nib.load(os.path.join(o, "segmentation-0.nii.gz"))
    out[name] = nib.as_closest_canonical(img)
fine = np.asarray(out["fine"].dataobj); coarse = np.asarray(out["coarse"].dataobj)
on_fine = np.stack([resample.resample_labels(coarse[:, :, z], fine.shape[:2], 3) for z in range(fine.shape[2])], -1)
def dice(a, b): return 2 * np.logical_and(a, b).sum() / max(1, a.sum() + b.sum())
res = {"liver_dice_between": dice(fine >= 1, on_fine >= 1), "lesion_dice_between": dice(fine == 2, on_fine == 2)}
for name in ("fine", "coarse"):
    ref = np.asarray(nib.as_closest_canonical(nib.load(paths[name].replace("volume", "segmentation"))).dataobj)
    pred = np.asarray(out[name].dataobj)
    res[f"{name}_liver_dice_vs_truth"] = dice(pred >= 1, ref >= 1)
print(json.dumps({k: round(float(v), 4) for k, v in res.items()}))
