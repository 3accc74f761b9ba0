"""learning_rate_at against hand-worked values of both schedules."""

from __future__ import annotations

import pytest

from o2l_tf.training.callbacks import learning_rate_at


def test_paper_schedule_is_constant_then_decays_per_epoch():
    # Sec. IV-B: the student's 3e-4, x 0.95 per epoch from epoch 3000 (zero-based epochs).
    assert learning_rate_at(0, 3e-4, 3000, 0.95) == 3e-4
    assert learning_rate_at(2999, 3e-4, 3000, 0.95) == 3e-4
    assert learning_rate_at(3000, 3e-4, 3000, 0.95) == pytest.approx(3e-4 * 0.95)
    assert learning_rate_at(3002, 3e-4, 3000, 0.95) == pytest.approx(3e-4 * 0.95 ** 3)
    assert learning_rate_at(10_000, 1e-3, 0, 0.5) == 1e-3  # decay_start 0: never decays


def test_poly_schedule_matches_nnunet_formula():
    # lr * (1 - e / E) ** 0.9: epoch 0 -> base, half way -> base * 0.5 ** 0.9 = 0.5359 base, last epoch > 0.
    assert learning_rate_at(0, 1e-3, 0, 1.0, "poly", 56) == 1e-3
    assert learning_rate_at(28, 1e-3, 0, 1.0, "poly", 56) == pytest.approx(1e-3 * 0.535887, rel=1e-5)
    last = learning_rate_at(55, 1e-3, 0, 1.0, "poly", 56)
    assert last == pytest.approx(1e-3 * (1 / 56) ** 0.9) and 0 < last < 3e-5
    rates = [learning_rate_at(e, 1e-3, 0, 1.0, "poly", 56) for e in range(56)]
    assert all(a > b for a, b in zip(rates, rates[1:]))


def test_bad_schedules_are_refused():
    with pytest.raises(ValueError, match="number of epochs"):
        learning_rate_at(0, 1e-3, 0, 1.0, "poly", 0)
    with pytest.raises(ValueError, match="schedule"):
        learning_rate_at(0, 1e-3, 0, 1.0, "cosine", 10)
