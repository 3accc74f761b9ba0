"""Scanner noise defined on the 512-px reference grid (o2l_tf/synth/noise.py)."""

import numpy as np
import pytest
from scipy import integrate, ndimage
from scipy.stats import norm

from o2l_tf.synth.noise import ScanNoise, area_overlap, averaging_weights
from o2l_tf.synth.phantom import generate_phantom


def block_average(volume: np.ndarray, size: int) -> np.ndarray:
    """Area-weighted average of each axial slice onto ``size`` x ``size`` pixels of the same field."""
    edges = np.arange(volume.shape[0] + 1) / volume.shape[0]
    weights = area_overlap(np.arange(size + 1) / size, edges)
    return np.stack([weights @ volume[:, :, k].astype(np.float64) @ weights.T for k in range(volume.shape[2])], -1)


def test_averaging_weights_match_numerical_integration():
    render, reference, sigma = np.array([0.0, 2.0, 4.5]), np.array([-1.0, 0.5, 1.0, 3.0]), 0.7
    weights = averaging_weights(render, reference, sigma)
    for k in range(2):
        for i in range(3):
            inner = lambda x: norm.cdf((x - reference[i]) / sigma) - norm.cdf((x - reference[i + 1]) / sigma)  # noqa: E731
            expected = integrate.quad(inner, render[k], render[k + 1])[0] / (render[k + 1] - render[k])
            assert weights[k, i] == pytest.approx(expected, abs=1e-9)


def test_area_overlap_by_hand():
    overlap = area_overlap(np.array([0.0, 1.5, 3.0]), np.array([0.0, 1.0, 2.0, 3.0]))
    np.testing.assert_allclose(overlap, [[2 / 3, 1 / 3, 0], [0, 1 / 3, 2 / 3]])


@pytest.mark.parametrize("sigma", [0.5, 1.0])
def test_reference_rendering_has_the_drawn_sd(sigma):
    noise = ScanNoise(400.0, 512, sd_hu=20.0, sigma_ref_px=sigma)
    values = np.stack([noise.slice(np.random.default_rng(k)) for k in range(3)])
    assert values.std() == pytest.approx(20.0, rel=0.03)
    assert abs(values.mean()) < 0.5


@pytest.mark.parametrize("size", [192, 128, 96])
def test_coarse_rendering_is_the_reference_noise_block_averaged(size):
    reference = ScanNoise(400.0, 512, sd_hu=15.0, sigma_ref_px=0.7).slice(np.random.default_rng(4))
    coarse = ScanNoise(400.0, size, sd_hu=15.0, sigma_ref_px=0.7).slice(np.random.default_rng(4))
    np.testing.assert_allclose(coarse, block_average(reference[:, :, None], size)[:, :, 0], atol=1e-3)
    assert coarse.std() < 0.85 * reference.std()  # averaging lowers the noise: the point of the model


def test_rendering_at_half_the_pixels_is_two_by_two_means_of_the_full_one():
    fine = ScanNoise(300.0, 256, sd_hu=20.0, sigma_ref_px=1.0).slice(np.random.default_rng(2))
    coarse = ScanNoise(300.0, 128, sd_hu=20.0, sigma_ref_px=1.0).slice(np.random.default_rng(2))
    # Both are averages of the same 512-px noise; 2 x 2 whole pixels of the 256-px one make one 128-px pixel.
    np.testing.assert_allclose(coarse, fine.reshape(128, 2, 128, 2).mean(axis=(1, 3)), atol=1e-3)


def _liver_noise_sd(volume: np.ndarray, label: np.ndarray) -> float:
    """Robust SD (MAD) of the high-pass residual inside the eroded liver parenchyma."""
    inside = ndimage.binary_erosion(label == 1, np.ones((5, 5, 1)))
    residual = (volume - ndimage.uniform_filter(volume, (5, 5, 1)))[inside]
    return float(1.4826 * np.median(np.abs(residual - np.median(residual))))


@pytest.mark.parametrize("index", [0, 1, 2])
def test_same_anatomy_at_512_block_averaged_has_the_noise_of_the_192_rendering(index):
    """The issue's physical check: as downsampling a real scan, within 10 %."""
    fine = generate_phantom(index, 512, (4, 4), seed=3)
    coarse = generate_phantom(index, 192, (4, 4), seed=3)
    assert fine.lesions == coarse.lesions and fine.phase == coarse.phase  # one anatomy, two grids
    downsampled = block_average(fine.volume, 192)
    measured = _liver_noise_sd(coarse.volume.astype(np.float64), coarse.segmentation)
    assert measured == pytest.approx(_liver_noise_sd(downsampled, coarse.segmentation), rel=0.10)
