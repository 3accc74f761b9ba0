"""The DiceScore training metric against a hand-counted case and a NumPy pooled Dice."""

from __future__ import annotations

import numpy as np
import pytest

from o2l_tf.metrics.dice import DiceScore


def _one_hot(classes: np.ndarray) -> np.ndarray:
    return np.eye(3, dtype=np.float32)[classes]


def test_hand_counted_liver_and_lesion_dice():
    truth = np.array([[[0, 1, 1, 2]]])  # liver >= 1: 3 pixels, lesion: 1
    pred = np.array([[[1, 1, 2, 0]]])   # liver >= 1: 3 pixels, 2 shared; lesion: 1 pixel, none shared
    liver, lesion = DiceScore("liver"), DiceScore("lesion")
    for metric in (liver, lesion):
        metric.update_state(_one_hot(truth), _one_hot(pred))
    assert float(liver.result()) == pytest.approx(2 * 2 / 6)
    assert float(lesion.result()) == pytest.approx(0.0)


def test_pooled_over_batches_ignoring_padding_like_numpy():
    rng = np.random.default_rng(3)
    metric = DiceScore("lesion")
    inter = total = 0.0
    for _ in range(3):
        truth, pred = rng.integers(0, 3, (2, 8, 8)), rng.integers(0, 3, (2, 8, 8))
        target = _one_hot(truth)
        target[:, :2] = 0  # padding rows: no target class, ignored whatever is predicted
        logits = rng.normal(size=(2, 8, 8, 3)).astype(np.float32) + 5 * _one_hot(pred)
        metric.update_state(target, logits)
        valid = target.sum(-1) > 0.5
        t, p = (truth == 2) & valid, (logits.argmax(-1) == 2) & valid
        inter, total = inter + (t & p).sum(), total + t.sum() + p.sum()
    assert float(metric.result()) == pytest.approx(2 * inter / total, rel=1e-6)
    metric.reset_state()
    assert float(metric.result()) == 1.0  # nothing seen, nothing predicted


def test_unknown_target_refused():
    with pytest.raises(ValueError, match="target"):
        DiceScore("spleen")
