"""`o2l synth` output is pinned: a refactoring of the generator must not change a single voxel.

The digest covers what `o2l synth` writes for a small cohort: every image and label array with its dtype, shape and
affine, and every case's summary in `phantoms.json` (lesions, spacing, phase, orientation). It hashes decoded arrays,
not file bytes, so a gzip or NIfTI-header change in a dependency does not count as a phantom change.

A deliberate change to the phantom model changes the digest: rerun this file's `cohort_digest` and commit the new
value with the change (and say in the commit message why the phantoms changed).
"""

from __future__ import annotations

import hashlib
import json
import os

import nibabel as nib
import numpy as np

from o2l_tf.synth.cohort import CohortSpec, write_cohort

# o2l synth OUT --cases 6 --size 48 --slices 6:10 --seed 3 --no-gzip, and --cases 2 --size 96 --slices 4:5 --seed 4
COHORTS = (CohortSpec(cases=6, size=48, slices=(6, 10), seed=3, gzip=False),
           CohortSpec(cases=2, size=96, slices=(4, 5), seed=4, gzip=False))
DIGEST = "bb961e3641b862a4dadd4e7459f87e8be7270c97ed522b75f963c7c67fda6c82"


def cohort_digest(out_dir: str, spec: CohortSpec) -> str:
    write_cohort(out_dir, spec, progress=False)
    digest = hashlib.sha256()
    record = json.loads(open(os.path.join(out_dir, "phantoms.json")).read())
    for case in record["cases"]:
        for relative in (case["image"], case["label"]):
            image = nib.load(os.path.join(out_dir, relative))
            data = np.asarray(image.dataobj)
            digest.update(f"{relative} {data.dtype.str} {data.shape}".encode())
            digest.update(np.round(image.affine, 6).tobytes())
            digest.update(np.ascontiguousarray(data).tobytes())
        digest.update(json.dumps(case, sort_keys=True).encode())
    return digest.hexdigest()


def test_synth_output_matches_the_committed_digest(tmp_path):
    digests = [cohort_digest(str(tmp_path / f"cohort-{k}"), spec) for k, spec in enumerate(COHORTS)]
    combined = hashlib.sha256(" ".join(digests).encode()).hexdigest()
    assert combined == DIGEST, (
        f"o2l synth output changed (digest {combined}): if the phantom model was changed on purpose, commit this "
        "digest with the change; a refactoring must keep the old one")
