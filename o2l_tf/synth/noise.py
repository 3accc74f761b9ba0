"""Scanner noise that is a property of the scan, not of the grid it is rendered on.

A CT's noise is fixed by its dose and reconstruction; sampling the same scan on coarser pixels averages it.
The noise of a case is therefore defined once, on the *reference grid* (512 x 512 pixels over the case's field
of view, where LITS.md's 10-25 HU per voxel applies): white Gaussian values per reference pixel, smoothed
in-plane by a Gaussian of ``sigma_mm``, scaled so that one reference pixel has standard deviation ``sd_hu``.
The 512-px rendering holds the mean of that continuous field over each of its pixels, computed exactly as
``A @ W @ A.T`` with the 1D weights

    A[k, i] = (1 / p) * integral over pixel k of (G_sigma * box_i)(x) dx,

where ``box_i`` is reference pixel i. A coarser rendering is that 512-px noise area-averaged onto its pixels,
as downsampling a real scan would give (so a 192-px rendering has exactly the noise of the 512-px one
block-averaged to 192 px: tested); a finer one takes the field's means over its own pixels. Before, every size
drew 10-25 HU per voxel, which made coarse phantoms far noisier than any CT at their voxel size.
"""

from __future__ import annotations

import numpy as np
from scipy.special import ndtr

REFERENCE_SIZE = 512
_SQRT_2PI = np.sqrt(2.0 * np.pi)


def _psi(t: np.ndarray) -> np.ndarray:
    """Antiderivative of the standard normal CDF: psi(t) = t * Phi(t) + phi(t)."""
    return t * ndtr(t) + np.exp(-0.5 * t * t) / _SQRT_2PI


def area_overlap(render_edges: np.ndarray, source_edges: np.ndarray) -> np.ndarray:
    """``R[k, i]``: the fraction of render pixel k covered by source pixel i (rows sum to one inside)."""
    low = np.maximum(render_edges[:-1, None], source_edges[None, :-1])
    high = np.minimum(render_edges[1:, None], source_edges[None, 1:])
    return np.clip(high - low, 0.0, None) / np.diff(render_edges)[:, None]


def averaging_weights(render_edges: np.ndarray, reference_edges: np.ndarray, sigma_mm: float) -> np.ndarray:
    """``A[k, i]``: the mean over render pixel k of reference pixel i's unit value smoothed by G_sigma.

    Closed form of the double integral of a Gaussian over two intervals (``_psi`` twice); rows need not sum
    to one near the padded border of the reference grid.
    """
    a, b = render_edges[:-1, None], render_edges[1:, None]
    c, d = reference_edges[None, :-1], reference_edges[None, 1:]
    s = float(sigma_mm)
    double = s * (_psi((b - c) / s) - _psi((a - c) / s) - _psi((b - d) / s) + _psi((a - d) / s))
    return double / (b - a)


class ScanNoise:
    """The noise of one case: draws one field per slice on the reference grid, returns it on the render grid.

    ``field_mm``: the width of the (square) field of view; ``size``: render pixels across it; ``sigma_ref_px``:
    the in-plane smoothing in reference pixels; ``sd_hu``: the standard deviation of one reference pixel.
    """

    def __init__(self, field_mm: float, size: int, sd_hu: float, sigma_ref_px: float,
                 reference_size: int = REFERENCE_SIZE):
        reference_mm = field_mm / reference_size
        sigma_mm = sigma_ref_px * reference_mm
        # Reference pixels beyond the field, so render pixels at its border see as much smoothed noise as any.
        self.pad = int(np.ceil(6.0 * sigma_mm / reference_mm)) + 1
        reference_edges = (np.arange(-self.pad, reference_size + self.pad + 1) - reference_size / 2) * reference_mm
        field_edges = reference_edges[self.pad:-self.pad]
        render_edges = (np.arange(size + 1) - size / 2) * (field_mm / size)
        own = averaging_weights(field_edges, reference_edges, sigma_mm)  # the 512-px rendering
        if size < reference_size:
            weights = area_overlap(render_edges, field_edges) @ own
        elif size == reference_size:
            weights = own
        else:
            weights = averaging_weights(render_edges, reference_edges, sigma_mm)
        self.weights = weights.astype(np.float32)
        # One reference pixel's variance is sd^2: the white values' scale follows from the reference rendering's
        # weights (its middle row; every row is alike away from the padding).
        row_energy = float(np.sum(own[reference_size // 2] ** 2))
        self.white_sd = np.float32(sd_hu / row_energy)  # 2D variance = white_sd^2 * row_energy^2
        self.reference_pixels = reference_size + 2 * self.pad

    def slice(self, rng: np.random.Generator) -> np.ndarray:
        """The next slice's noise (HU, float32, render grid)."""
        white = rng.standard_normal((self.reference_pixels, self.reference_pixels), dtype=np.float32)
        return (self.weights @ (white * self.white_sd)) @ self.weights.T
