"""Shared fixtures: small phantom cohorts generated once per session."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@pytest.fixture(scope="session")
def lits_cohort(tmp_path_factory):
    """Six 48-px phantoms in LiTS layout (gzip), with previews."""
    from o2l_tf.synth.cohort import CohortSpec, write_cohort

    out = str(tmp_path_factory.mktemp("lits"))
    spec = CohortSpec(cases=6, size=48, slices=(16, 24), seed=3)
    summaries = write_cohort(out, spec, workers=2, preview=True, overwrite=True, progress=False)
    return out, spec, summaries
