"""tf.distribute: MirroredStrategy over 2 logical CPUs, and a 2-worker MultiWorkerMirroredStrategy cluster on
127.0.0.1 (TF_CONFIG), both follow the single-device loss trajectory; the two workers agree exactly."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest

HELPER = os.path.join(os.path.dirname(__file__), "distributed_run.py")
# Stated tolerance: 2 % on each epoch's mean loss. Two single-device runs of this tiny model already differ by up to
# ~0.5 % in their first epochs (multi-threaded CPU kernels sum in varying order and an untrained softmax amplifies
# it); BatchNorm is synchronized across replicas, so the replicas see the single device's batch statistics.
TOLERANCE = dict(rtol=2e-2)


def start(records, model_dir, logical, devices=None, env=None):
    return subprocess.Popen([sys.executable, HELPER, records, model_dir, str(logical)] + ([devices] if devices else []),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, **(env or {})})


def history(process):
    out, err = process.communicate(timeout=600)
    assert process.returncode == 0, err[-3000:]
    line = [l for l in out.splitlines() if l.startswith("HISTORY ")][-1]
    return json.loads(line[len("HISTORY "):])


def run(records, model_dir, logical, devices=None):
    return history(start(records, model_dir, logical, devices))


def free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for sock in sockets:
        sock.bind(("127.0.0.1", 0))
    ports = [sock.getsockname()[1] for sock in sockets]
    for sock in sockets:
        sock.close()
    return ports


@pytest.mark.slow
def test_two_logical_cpus_give_the_single_device_loss_trajectory(small_records, tmp_path):
    single = run(small_records, str(tmp_path / "one"), 1)
    mirrored = run(small_records, str(tmp_path / "two"), 2, "CPU:0,CPU:1")
    assert len(single) == len(mirrored) == 3
    np.testing.assert_allclose(mirrored, single, **TOLERANCE)


@pytest.mark.slow
def test_two_workers_with_tf_config_complete_and_agree(small_records, tmp_path):
    workers = [f"127.0.0.1:{port}" for port in free_ports(2)]
    processes = []
    for index in range(2):
        tf_config = {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}
        processes.append(start(small_records, str(tmp_path / f"worker{index}"), 1,
                               env={"TF_CONFIG": json.dumps(tf_config)}))
    chief, other = (history(process) for process in processes)
    assert len(chief) == len(other) == 3
    np.testing.assert_allclose(other, chief, rtol=1e-6)  # one synchronized model: the same numbers on both
    np.testing.assert_allclose(chief, run(small_records, str(tmp_path / "single"), 1), **TOLERANCE)
    # Only the chief (worker 0) writes the run folder; worker 1 writes its checkpoints to a temporary folder.
    assert os.path.exists(tmp_path / "worker0" / "teacher.keras")
    assert not os.path.exists(tmp_path / "worker1" / "teacher.keras")


def test_multi_worker_patch_refuses_an_untested_keras():
    from o2l_tf.errors import InputError
    from o2l_tf.training.strategy import check_patched_keras

    check_patched_keras("3.6.0")
    check_patched_keras("3.15.1")
    for version in ("3.5.0", "3.16.0", "4.0.0"):
        with pytest.raises(InputError, match="keras-team/keras#20585"):
            check_patched_keras(version)
