"""Helpers shared by the command-line tests."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest

from o2l_cli.main import main

TF_NOISE = ("I0000", "WARNING", "E0000", "W0000")


def run_cli(args, capsys):
    """Run ``o2l args``; returns (exit code, stdout, stderr without TensorFlow's start-up log lines)."""
    with pytest.raises(SystemExit) as done:
        main(list(args))
    captured = capsys.readouterr()
    lines = [line for line in captured.err.splitlines() if not line.startswith(TF_NOISE)]
    return done.value.code, captured.out, "\n".join(lines)


def expect_one_line_error(capsys, args, *fragments) -> str:
    """The command fails with exit 2 and exactly one ``o2l <command>: error:`` line holding ``fragments``."""
    code, _, err = run_cli(args, capsys)
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith(f"o2l {args[0]}: error:"), lines
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]


def liver_dice_of_files(prediction_path: str, reference_path: str) -> float:
    """Liver (label >= 1) Dice of two label files, with NumPy: the independent check of o2l evaluate's rows."""
    prediction = np.asarray(nib.load(prediction_path).dataobj) >= 1
    reference = np.asarray(nib.load(reference_path).dataobj) >= 1
    return 2 * np.count_nonzero(prediction & reference) / (prediction.sum() + reference.sum())
