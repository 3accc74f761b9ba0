"""tf.distribute: MirroredStrategy over 2 logical CPUs follows the single-device loss trajectory.

Not here yet: the 2-worker MultiWorkerMirroredStrategy test. Keras 3's Model.fit does not run under that strategy
(keras-team/keras#20585: "Attempt to convert a value (PerReplica ...)"); it needs o2l's own training step.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

HELPER = os.path.join(os.path.dirname(__file__), "distributed_run.py")
# Stated tolerance: 2 % on each epoch's mean loss. Two single-device runs of this tiny model already differ by up to
# ~0.5 % in their first epochs (multi-threaded CPU kernels sum in varying order and an untrained softmax amplifies
# it); BatchNorm is synchronized across replicas, so the replicas see the single device's batch statistics.
TOLERANCE = dict(rtol=2e-2)


def run(records, model_dir, logical, devices=None, env=None):
    process = subprocess.run([sys.executable, HELPER, records, model_dir, str(logical)] + ([devices] if devices else []),
                             capture_output=True, text=True, timeout=600, env={**os.environ, **(env or {})})
    assert process.returncode == 0, process.stderr[-3000:]
    line = [l for l in process.stdout.splitlines() if l.startswith("HISTORY ")][-1]
    return json.loads(line[len("HISTORY "):])


@pytest.mark.slow
def test_two_logical_cpus_give_the_single_device_loss_trajectory(small_records, tmp_path):
    single = run(small_records, str(tmp_path / "one"), 1)
    mirrored = run(small_records, str(tmp_path / "two"), 2, "CPU:0,CPU:1")
    assert len(single) == len(mirrored) == 3
    np.testing.assert_allclose(mirrored, single, **TOLERANCE)
