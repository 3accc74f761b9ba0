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


@pytest.fixture(scope="session")
def small_records(tmp_path_factory):
    """Records of six 48-px phantoms (split 50:34:16), shared by the pipeline and training tests."""
    from o2l_tf.synth.cohort import CohortSpec, write_cohort
    from o2l_tfrecords_builder.build import BuildConfig, build_records

    root = tmp_path_factory.mktemp("training")
    write_cohort(str(root / "phantoms"), CohortSpec(cases=6, size=48, slices=(16, 22), seed=5), progress=False)
    # native spacing: these tests take whole 48-px slices as crops (resampling is tested in tests/tfrecords_builder,
    # tests/inference/test_spacing.py and, end to end, by o2l demo in tests/test_demo.py)
    build_records(BuildConfig(data=str(root / "phantoms"), split=(50, 34, 16), spacing="native"),
                  str(root / "records"), progress=False)
    return str(root / "records")
