"""A phantom's geometry: the organs as implicit surfaces in patient millimetres, and the liver label they carve.

Coordinates are patient millimetres in NIfTI's RAS+ world: ``u`` to the patient's right, ``v`` to
anterior, ``w`` to superior, with the body centred at ``u = v = 0`` and the liver dome at ``w = 0``.
The liver label is the liver envelope minus everything painted after the liver (``carved_liver_sdf``);
``rendering`` paints in that order, which keeps image and label consistent. ``sampling`` draws the numbers.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from o2l_tf.synth import shapes

BACKGROUND, LIVER, LESION = 0, 1, 2


@dataclass(frozen=True)
class Ellipsoid:
    center: tuple[float, float, float]
    semi_axes: tuple[float, float, float]
    angle: float = 0.0

    def sdf(self, u, v, w):
        return shapes.ellipsoid_sdf(u, v, w, self.center, self.semi_axes, self.angle)

    def spans(self, w, margin=0.0) -> bool:
        return abs(w - self.center[2]) <= self.semi_axes[2] + margin

    def reach(self) -> float:
        return max(self.semi_axes[0], self.semi_axes[1]) + 2.0


@dataclass(frozen=True)
class Tube:
    start: tuple[float, float, float]
    end: tuple[float, float, float]
    radius: float

    def sdf(self, u, v, w):
        return shapes.tube_sdf(u, v, w, self.start, self.end, self.radius)

    def spans(self, w, margin=0.0) -> bool:
        low, high = sorted((self.start[2], self.end[2]))
        return low - self.radius - margin <= w <= high + self.radius + margin

    def bounds(self, margin=2.0):
        """In-plane bounding rectangle (u0, u1, v0, v1) of the whole capsule."""
        us, vs = (self.start[0], self.end[0]), (self.start[1], self.end[1])
        pad = self.radius + margin
        return min(us) - pad, max(us) + pad, min(vs) - pad, max(vs) + pad


@dataclass(frozen=True)
class Lesion:
    """An irregular ball: ellipsoid plus band-limited noise on its surface, with a soft border."""

    shape: Ellipsoid
    noise: shapes.FourierNoise
    roughness_mm: float
    border_mm: float
    contrast_hu: float  # against the case's liver
    necrotic_core: float  # fraction of the radius that is necrotic fluid, 0 for none
    diameter_mm: float

    def sdf(self, u, v, w):
        return self.shape.sdf(u, v, w) + self.roughness_mm * self.noise(u, v, w)

    def reach(self) -> float:
        return max(self.shape.semi_axes) + 2 * self.roughness_mm + 2 * self.border_mm

    def record(self) -> dict:
        """What ``phantoms.json`` says about this lesion."""
        return {"diameter_mm": round(self.diameter_mm, 2), "contrast_hu": round(self.contrast_hu, 1),
                "center_mm": [round(float(c), 1) for c in self.shape.center]}


@dataclass(frozen=True)
class BowelLoop:
    tube: Tube
    wall_mm: float
    content: str  # "air", "fluid" or "stool"


@dataclass(frozen=True)
class RightLobe:
    """The right liver lobe: an ellipse per height, centred at (u, v) + drift × depth, tapering to a tip."""

    u: float
    v: float
    a: float
    b: float
    angle: float
    drift_u: float
    drift_v: float
    taper_start: float  # fraction of the liver height where the tip starts to thin


@dataclass(frozen=True)
class LeftLobe:
    """The left lobe: an anterior wedge across the midline between fractions t0 and t1 of the liver height."""

    u: float
    v: float
    a: float
    b: float
    angle: float
    t0: float
    t1: float


@dataclass(frozen=True)
class LungBase:
    """One lung base above the diaphragm: an ellipse that grows from ``base`` over ``ramp`` millimetres."""

    u: float
    v: float
    a: float
    b: float
    base: float
    ramp: float


@dataclass(frozen=True)
class Abdomen:
    """The body and every organ that shapes the liver label, in millimetres."""

    body_semi: tuple[float, float]
    body_harmonics: np.ndarray  # rows (k, amplitude, phase) perturbing the outline
    body_wave: tuple[float, float]  # (amplitude, phase) of the outline's slow change along z
    fat_mm: float
    muscle_mm: float
    spine_center: tuple[float, float]
    vertebra_radius: float
    disc_period: float
    disc_phase: float
    liver_height: float
    liver_right: RightLobe
    liver_left: LeftLobe
    liver_noise: shapes.FourierNoise
    liver_noise_mm: float
    texture_noise: shapes.FourierNoise
    lungs: tuple[LungBase, ...]
    heart: Ellipsoid
    kidneys: tuple[Ellipsoid, ...]
    spleen: Ellipsoid
    spleen_hollow: Ellipsoid
    stomach: Ellipsoid
    gallbladder: Ellipsoid
    aorta_radius: float
    ivc_semi: tuple[float, float]
    rib_angles: np.ndarray
    rib_period: float
    rib_phase: np.ndarray
    rib_bottom: float
    table_gap: float

    # ------------------------------------------------------------------ liver
    def liver_sdf(self, u, v, w, noise=None):
        """The liver envelope before carving: right and left lobe smoothly joined, dented by noise.

        ``noise``: the liver noise field already evaluated at (u, v, w), to reuse an interpolated one.
        """
        t = -float(w) / self.liver_height  # 0 at the dome, 1 at the inferior tip
        right, left = self.liver_right, self.liver_left
        # Right lobe: a round dome, a broad body, a thin anterolateral tip.
        dome = np.sqrt(max(0.0, 1 - ((0.22 - min(t, 0.22)) / 0.22) ** 2))
        taper = 1 - 0.8 * float(np.clip((t - right.taper_start) / (1 - right.taper_start), 0, 1))
        scale = max(dome * taper, 0.03)
        flatten = 1 - 0.5 * float(np.clip((t - 0.5) / 0.5, 0, 1))
        center_u = right.u + right.drift_u * t
        center_v = right.v + right.drift_v * max(t - 0.45, 0.0)
        envelope = shapes.ellipse_sdf(u, v, center_u, center_v, right.a * scale, right.b * scale * flatten,
                                      right.angle)
        # Left lobe: an anterior wedge across the midline, thinning towards the patient's left.
        if left.t0 < t < left.t1:
            left_scale = max(np.sin(np.pi * (t - left.t0) / (left.t1 - left.t0)) ** 0.7, 0.03)
            wedge = 1 - 0.6 * np.clip((left.u - u) / left.a, 0, 1)
            left_sdf = shapes.ellipse_sdf(u, v, left.u, left.v, left.a * left_scale, left.b * left_scale * wedge,
                                          left.angle)
            envelope = shapes.smooth_union(envelope, left_sdf, 15.0)
        envelope = envelope + self.liver_noise_mm * (self.liver_noise(u, v, w) if noise is None else noise)
        # Caps at dome and tip, so the shape closes in z.
        return np.maximum(envelope, max(float(w), -self.liver_height - float(w)))

    def liver_bounds(self):
        """In-plane rectangle (u0, u1, v0, v1) that contains the liver at every height."""
        right, left = self.liver_right, self.liver_left
        pad = 3 * self.liver_noise_mm + 5
        r = max(right.a, right.b)
        u0 = min(right.u - r, left.u - max(left.a, left.b)) - pad
        u1 = right.u + max(right.drift_u, 0) + r + pad
        v0 = right.v - r - pad
        v1 = max(right.v + max(right.drift_v, 0) + r, left.v + max(left.a, left.b)) + pad
        return u0, u1, v0, v1

    # ------------------------------------------------------------------ body
    def outline_bumps(self, u, v):
        """Height-independent lumps of the body outline (relative radius change by angle)."""
        theta = np.arctan2(v, u)
        bumps = 0.0
        for k, amp, ph in self.body_harmonics:
            bumps = bumps + amp * np.cos(k * theta + ph)
        return bumps

    def body_sdf(self, u, v, w, bumps=None):
        """Skin surface at height ``w``; pass precomputed ``outline_bumps`` to save the trigonometry."""
        a, b = self.body_semi
        amplitude, phase = self.body_wave
        size = 1 + amplitude * np.sin(2 * np.pi * float(w) / 300.0 + phase)
        chest = 1 + 0.08 * float(np.clip(w / 120.0, 0, 1))  # the thorax is deeper than the abdomen
        scale = size + (self.outline_bumps(u, v) if bumps is None else bumps)
        sdf = shapes.ellipse_sdf(u, v, 0.0, 0.0, a * scale, b * scale * chest)
        return np.maximum(sdf, -0.88 * b - v)  # the back lies flat on the table

    def wall_thickness(self, u, v):
        """Subcutaneous fat is thicker anteriorly and laterally, thinner over the back."""
        theta = np.arctan2(v, u)
        fat = self.fat_mm * (1.0 + 0.35 * np.sin(theta) + 0.25 * np.cos(2 * theta) ** 2)
        return fat, self.muscle_mm

    def cavity_sdf(self, u, v, w):
        """Inner surface of the abdominal wall (skin minus fat and muscle)."""
        fat, muscle = self.wall_thickness(u, v)
        return self.body_sdf(u, v, w) + fat + muscle

    def in_disc(self, w) -> bool:
        """Whether height ``w`` falls in an intervertebral disc rather than a vertebral body."""
        return bool(((w - self.disc_phase) % self.disc_period) < 0.25 * self.disc_period)

    def aorta_center(self):
        return (-0.7 * self.vertebra_radius,
                self.spine_center[1] + self.vertebra_radius + self.aorta_radius + 3.0)

    def ivc_center(self):
        return (1.3 * self.vertebra_radius, self.spine_center[1] + self.vertebra_radius + self.ivc_semi[1] + 6.0)


@dataclass(frozen=True)
class Anatomy:
    """One case's whole geometry: the abdomen and what lies in it (vessels, bowel, lesions)."""

    abdomen: Abdomen
    portal_trunk: Tube
    liver_vessels: tuple[tuple[Tube, str], ...]  # (tube, "portal" or "hepatic")
    bowel: tuple[BowelLoop, ...]
    lesions: tuple[Lesion, ...]


def carved_liver_sdf(abdomen: Abdomen, u, v, w, cavity=None, noise=None, midline=None):
    """The liver label's signed distance: the envelope minus everything painted after the liver.

    ``cavity``, ``noise`` and ``midline`` (see ``midline_carve``) may be passed precomputed.
    """
    sdf = abdomen.liver_sdf(u, v, w, noise)
    cavity = abdomen.cavity_sdf(u, v, w) if cavity is None else cavity
    sdf = np.maximum(sdf, cavity + 2.0)
    for organ in (*abdomen.kidneys, abdomen.gallbladder, abdomen.spleen):
        if organ.spans(w, 3.0):
            sdf = np.maximum(sdf, -(organ.sdf(u, v, w) - 2.0))
    return np.maximum(sdf, midline_carve(abdomen, u, v) if midline is None else midline)


def midline_carve(abdomen: Abdomen, u, v):
    """The height-independent part of the carving: IVC, aorta and spine with their margins."""
    return -np.minimum(np.minimum(ivc_sdf(abdomen, u, v) - 1.5, aorta_sdf(abdomen, u, v) - 3.0),
                       spine_sdf(abdomen, u, v) - 3.0)


def aorta_sdf(abdomen: Abdomen, u, v):
    cu, cv = abdomen.aorta_center()
    return np.sqrt((u - cu) ** 2 + (v - cv) ** 2) - abdomen.aorta_radius


def ivc_sdf(abdomen: Abdomen, u, v):
    cu, cv = abdomen.ivc_center()
    return shapes.ellipse_sdf(u, v, cu, cv, *abdomen.ivc_semi)


def spine_sdf(abdomen: Abdomen, u, v):
    """Vertebral body plus the posterior arch and spinous process, as one bony region."""
    cu, cv = abdomen.spine_center
    r = abdomen.vertebra_radius
    body = shapes.ellipse_sdf(u, v, cu, cv, 1.15 * r, r)
    arch = shapes.ellipse_sdf(u, v, cu, cv - 1.45 * r, 0.75 * r, 0.6 * r)
    spinous = shapes.ellipse_sdf(u, v, cu, cv - 2.4 * r, 0.22 * r, 0.9 * r)
    return np.minimum(body, np.minimum(arch, spinous))
