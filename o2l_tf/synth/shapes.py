"""Signed-distance primitives for the phantom anatomy.

Every organ is an implicit surface: a function that is negative inside, positive outside and
close to the distance in millimetres near the surface. Distances let us draw soft, partial-volume
edges (``occupancy``) and carve one organ out of another with ``max(a, -b)``.
All functions take broadcastable arrays of patient coordinates in mm: ``u`` towards the patient's
right, ``v`` towards anterior, ``w`` towards superior (the RAS+ world of NIfTI).
"""

from __future__ import annotations

import numpy as np

_EPS = 1e-6


def ellipse_sdf(u, v, center_u, center_v, semi_u, semi_v, angle=0.0):
    """Approximate signed distance to an axis-rotated ellipse (F / |grad F|, exact on the surface)."""
    du, dv = u - center_u, v - center_v
    if angle:
        c, s = np.cos(angle), np.sin(angle)
        du, dv = c * du + s * dv, -s * du + c * dv
    qu, qv = du / semi_u, dv / semi_v
    implicit = qu * qu + qv * qv - 1.0
    grad = 2.0 * np.sqrt((qu / semi_u) ** 2 + (qv / semi_v) ** 2)
    return implicit / np.maximum(grad, _EPS)


def ellipsoid_sdf(u, v, w, center, semi_axes, angle=0.0):
    """Signed distance to an ellipsoid rotated by ``angle`` about the superior axis."""
    du, dv, dw = u - center[0], v - center[1], w - center[2]
    if angle:
        c, s = np.cos(angle), np.sin(angle)
        du, dv = c * du + s * dv, -s * du + c * dv
    qu, qv, qw = du / semi_axes[0], dv / semi_axes[1], dw / semi_axes[2]
    implicit = qu * qu + qv * qv + qw * qw - 1.0
    grad = 2.0 * np.sqrt((qu / semi_axes[0]) ** 2 + (qv / semi_axes[1]) ** 2 + (qw / semi_axes[2]) ** 2)
    return implicit / np.maximum(grad, _EPS)


def tube_sdf(u, v, w, start, end, radius):
    """Signed distance to a capsule (a vessel or a bowel segment) between two 3D points."""
    start = np.asarray(start, np.float32)
    axis = np.asarray(end, np.float32) - start
    length2 = float(axis @ axis) + _EPS
    du, dv, dw = u - start[0], v - start[1], w - start[2]
    t = np.clip((du * axis[0] + dv * axis[1] + dw * axis[2]) / length2, 0.0, 1.0)
    return np.sqrt((du - t * axis[0]) ** 2 + (dv - t * axis[1]) ** 2 + (dw - t * axis[2]) ** 2) - radius


def smooth_union(a, b, k):
    """Polynomial smooth minimum: the union of two shapes with a fillet of about ``k`` mm."""
    h = np.clip(0.5 + 0.5 * (b - a) / k, 0.0, 1.0)
    return b + (a - b) * h - k * h * (1.0 - h)


def occupancy(sdf, width):
    """Fraction of a voxel inside the surface: a logistic ramp of ``width`` mm (partial volume)."""
    return 1.0 / (1.0 + np.exp(np.clip(sdf / width, -30.0, 30.0)))


class FourierNoise:
    """A smooth random 3D field: a sum of plane waves with random directions and wavelengths.

    Cheap to evaluate anywhere (no grid), reproducible from the generator, and band-limited, so
    it bends organ surfaces into irregular but anatomically smooth shapes.
    """

    def __init__(self, rng: np.random.Generator, modes: int, wavelength_mm: tuple[float, float]):
        directions = rng.normal(size=(modes, 3))
        directions /= np.linalg.norm(directions, axis=1, keepdims=True)
        wavelengths = rng.uniform(*wavelength_mm, size=modes)
        self.waves = (2 * np.pi * directions / wavelengths[:, None]).astype(np.float32)
        self.phases = rng.uniform(0, 2 * np.pi, size=modes).astype(np.float32)
        # Normalised so the field has unit standard deviation.
        self.scale = np.float32(np.sqrt(2.0 / modes))

    def __call__(self, u, v, w):
        total = 0.0
        for wave, phase in zip(self.waves, self.phases):
            total = total + np.sin(u * wave[0] + v * wave[1] + w * wave[2] + phase)
        return total * self.scale
