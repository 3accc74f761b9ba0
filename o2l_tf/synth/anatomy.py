"""A random abdomen: organ geometry sampled once per case, rendered one axial slice at a time.

Coordinates are patient millimetres in NIfTI's RAS+ world: ``u`` to the patient's right, ``v`` to
anterior, ``w`` to superior, with the body centred at ``u = v = 0`` and the liver dome at ``w = 0``.
Rendering follows a painter's order. The rule that keeps image and label consistent: whatever is
painted after the liver (kidneys, spleen, IVC, gallbladder, aorta, spine) is carved out of the liver
label first; whatever is painted before it (wall, ribs, lungs, heart, bowel, stomach) is hidden under it.
Compact objects are evaluated only inside their bounding window, which keeps a 512x512 slice cheap.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from o2l_tf.synth import shapes
from o2l_tf.synth.tissues import TissueValues

BACKGROUND, LIVER, LESION = 0, 1, 2


@dataclass
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


@dataclass
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


@dataclass
class Lesion:
    """An irregular ball: ellipsoid plus band-limited noise on its surface, with a soft border."""

    shape: Ellipsoid
    noise: shapes.FourierNoise
    roughness_mm: float
    border_mm: float
    contrast_hu: float
    necrotic_core: float  # fraction of the radius that is necrotic fluid, 0 for none
    diameter_mm: float

    def sdf(self, u, v, w):
        return self.shape.sdf(u, v, w) + self.roughness_mm * self.noise(u, v, w)

    def reach(self) -> float:
        return max(self.shape.semi_axes) + 2 * self.roughness_mm + 2 * self.border_mm


@dataclass
class BowelLoop:
    tube: Tube
    wall_mm: float
    content: str  # "air", "fluid" or "stool"


@dataclass
class Anatomy:
    """All per-case geometry, in millimetres."""

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
    liver_right: dict
    liver_left: dict
    liver_noise: shapes.FourierNoise
    liver_noise_mm: float
    texture_noise: shapes.FourierNoise
    lungs: list[dict]
    heart: Ellipsoid
    kidneys: list[Ellipsoid]
    spleen: Ellipsoid
    spleen_hollow: Ellipsoid
    stomach: Ellipsoid
    gallbladder: Ellipsoid
    aorta_radius: float
    ivc_semi: tuple[float, float]
    portal_trunk: Tube
    liver_vessels: list[tuple[Tube, str]]
    lesions: list[Lesion]
    bowel: list[BowelLoop]
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
        taper = 1 - 0.8 * float(np.clip((t - right["taper_start"]) / (1 - right["taper_start"]), 0, 1))
        scale = max(dome * taper, 0.03)
        flatten = 1 - 0.5 * float(np.clip((t - 0.5) / 0.5, 0, 1))
        center_u = right["u"] + right["drift_u"] * t
        center_v = right["v"] + right["drift_v"] * max(t - 0.45, 0.0)
        envelope = shapes.ellipse_sdf(u, v, center_u, center_v, right["a"] * scale,
                                      right["b"] * scale * flatten, right["angle"])
        # Left lobe: an anterior wedge across the midline, thinning towards the patient's left.
        if left["t0"] < t < left["t1"]:
            left_scale = max(np.sin(np.pi * (t - left["t0"]) / (left["t1"] - left["t0"])) ** 0.7, 0.03)
            wedge = 1 - 0.6 * np.clip((left["u"] - u) / left["a"], 0, 1)
            left_sdf = shapes.ellipse_sdf(u, v, left["u"], left["v"], left["a"] * left_scale,
                                          left["b"] * left_scale * wedge, left["angle"])
            envelope = shapes.smooth_union(envelope, left_sdf, 15.0)
        envelope = envelope + self.liver_noise_mm * (self.liver_noise(u, v, w) if noise is None else noise)
        # Caps at dome and tip, so the shape closes in z.
        return np.maximum(envelope, max(float(w), -self.liver_height - float(w)))

    def liver_bounds(self):
        """In-plane rectangle (u0, u1, v0, v1) that contains the liver at every height."""
        right, left = self.liver_right, self.liver_left
        pad = 3 * self.liver_noise_mm + 5
        r = max(right["a"], right["b"])
        u0 = min(right["u"] - r, left["u"] - max(left["a"], left["b"])) - pad
        u1 = right["u"] + max(right["drift_u"], 0) + r + pad
        v0 = right["v"] - r - pad
        v1 = max(right["v"] + max(right["drift_v"], 0) + r, left["v"] + max(left["a"], left["b"])) + pad
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


def sample_anatomy(rng: np.random.Generator, body_scale: float) -> Anatomy:
    """Draw a plausible adult abdomen; ``body_scale`` multiplies every length (patient size)."""
    s = body_scale
    a_body, b_body = rng.uniform(140, 175) * s, rng.uniform(100, 130) * s
    harmonics = np.stack([np.arange(2, 6), rng.uniform(0.0, 0.035, 4), rng.uniform(0, 2 * np.pi, 4)], axis=1)
    fat_mm = rng.uniform(8, 35) * s
    muscle_mm = rng.uniform(8, 14) * s
    spine_v = -0.88 * b_body + fat_mm * 0.6 + rng.uniform(48, 60) * s
    vertebra_radius = rng.uniform(17, 22) * s
    cavity_a = a_body - fat_mm - muscle_mm
    cavity_b = b_body - fat_mm - muscle_mm

    liver_height = rng.uniform(150, 200) * s
    liver_right = dict(
        u=rng.uniform(0.40, 0.50) * cavity_a,
        v=rng.uniform(-0.1, 0.05) * cavity_b,
        a=rng.uniform(0.58, 0.70) * cavity_a,
        b=rng.uniform(0.80, 0.95) * cavity_b,
        angle=rng.uniform(-0.25, 0.15),
        drift_u=rng.uniform(0.05, 0.2) * cavity_a,
        drift_v=rng.uniform(0.1, 0.5) * cavity_b,
        taper_start=rng.uniform(0.5, 0.65),
    )
    liver_left = dict(
        u=rng.uniform(-0.25, -0.05) * cavity_a,
        v=rng.uniform(0.35, 0.55) * cavity_b,
        a=rng.uniform(0.35, 0.55) * cavity_a,
        b=rng.uniform(0.2, 0.32) * cavity_b,
        angle=rng.uniform(-0.3, 0.1),
        t0=rng.uniform(0.02, 0.12),
        t1=rng.uniform(0.5, 0.7),
    )
    liver_noise = shapes.FourierNoise(rng, modes=8, wavelength_mm=(70 * s, 180 * s))
    texture_noise = shapes.FourierNoise(rng, modes=6, wavelength_mm=(15 * s, 60 * s))

    # Lung bases sit above the diaphragm, lower at the back; the heart rests on the left lobe.
    lungs = [
        dict(u=side * 0.5 * cavity_a, v=-0.15 * cavity_b, a=0.45 * cavity_a, b=0.8 * cavity_b,
             base=-liver_height * rng.uniform(0.15, 0.3) - (10 * s if side < 0 else 0), ramp=rng.uniform(50, 80) * s)
        for side in (+1, -1)
    ]
    heart = Ellipsoid((-0.15 * cavity_a, 0.25 * cavity_b, rng.uniform(40, 60) * s),
                      (rng.uniform(55, 70) * s, rng.uniform(45, 55) * s, rng.uniform(55, 65) * s), rng.uniform(-0.6, -0.2))
    # Kidneys: posterior, beside the spine; the right one sits lower under the liver.
    kidney_w = -liver_height * rng.uniform(0.7, 0.85)
    kidneys = []
    for side in (+1, -1):
        drop = rng.uniform(10, 30) * s if side > 0 else 0.0
        kidneys.append(Ellipsoid(
            center=(side * (vertebra_radius + rng.uniform(38, 50) * s), spine_v + rng.uniform(0, 12) * s, kidney_w - drop),
            semi_axes=(rng.uniform(24, 30) * s, rng.uniform(20, 25) * s, rng.uniform(48, 60) * s),
            angle=side * rng.uniform(0.35, 0.7),
        ))
    spleen_center = (-0.62 * cavity_a, spine_v + rng.uniform(5, 30) * s, -liver_height * rng.uniform(0.25, 0.4))
    spleen_semi = (rng.uniform(25, 35) * s, rng.uniform(45, 60) * s, rng.uniform(45, 65) * s)
    spleen = Ellipsoid(spleen_center, spleen_semi, angle=rng.uniform(-0.7, -0.3))
    spleen_hollow = Ellipsoid((spleen_center[0] + 0.9 * spleen_semi[0], spleen_center[1], spleen_center[2]),
                              (spleen_semi[0] * 0.9, spleen_semi[1] * 0.8, spleen_semi[2] * 1.2), angle=spleen.angle)
    stomach = Ellipsoid(
        (-rng.uniform(0.25, 0.4) * cavity_a, rng.uniform(0.05, 0.25) * cavity_b, -liver_height * rng.uniform(0.2, 0.4)),
        (rng.uniform(35, 50) * s, rng.uniform(30, 45) * s, rng.uniform(45, 70) * s), angle=rng.uniform(-0.6, 0.0))
    gallbladder = Ellipsoid(
        (liver_right["u"] - 0.3 * liver_right["a"], liver_right["v"] + 0.5 * liver_right["b"],
         -liver_height * rng.uniform(0.6, 0.72)),
        (rng.uniform(11, 17) * s, rng.uniform(11, 17) * s, rng.uniform(25, 40) * s), angle=rng.uniform(-0.5, 0.5))
    anatomy = Anatomy(
        body_semi=(a_body, b_body), body_harmonics=harmonics,
        body_wave=(rng.uniform(0.0, 0.05), rng.uniform(0, 2 * np.pi)),
        fat_mm=fat_mm, muscle_mm=muscle_mm, spine_center=(0.0, spine_v), vertebra_radius=vertebra_radius,
        disc_period=rng.uniform(30, 38) * s, disc_phase=rng.uniform(0, 40),
        liver_height=liver_height, liver_right=liver_right, liver_left=liver_left,
        liver_noise=liver_noise, liver_noise_mm=rng.uniform(5, 10) * s, texture_noise=texture_noise,
        lungs=lungs, heart=heart, kidneys=kidneys, spleen=spleen, spleen_hollow=spleen_hollow, stomach=stomach,
        gallbladder=gallbladder, aorta_radius=rng.uniform(9, 13) * s,
        ivc_semi=(rng.uniform(11, 15) * s, rng.uniform(8, 11) * s),
        portal_trunk=Tube((0, 0, 0), (0, 0, 1), 1.0), liver_vessels=[], lesions=[], bowel=[],
        rib_angles=np.deg2rad(np.concatenate([rng.uniform(-70, -20, 2) - 90, [-160, -130, 140, 160],
                                              rng.uniform(10, 40, 2)])),
        rib_period=rng.uniform(28, 36) * s, rib_phase=rng.uniform(0, 40, 8),
        rib_bottom=-liver_height * rng.uniform(0.55, 0.8), table_gap=rng.uniform(5, 20) * s,
    )
    _add_vessels(anatomy, rng, s)
    _add_bowel(anatomy, rng, s, cavity_a, cavity_b)
    return anatomy


def random_point_in_liver(anatomy: Anatomy, rng: np.random.Generator, depth_mm: float, tries: int = 400):
    """A point at least ``depth_mm`` inside the carved liver, by rejection sampling; None if there is none."""
    u0, u1, v0, v1 = anatomy.liver_bounds()
    for _ in range(tries):
        p = (rng.uniform(u0, u1), rng.uniform(v0, v1), rng.uniform(-anatomy.liver_height, 0))
        if float(carved_liver_sdf(anatomy, np.float32(p[0]), np.float32(p[1]), p[2])) < -depth_mm:
            return p
    return None


def _add_vessels(anatomy: Anatomy, rng: np.random.Generator, s: float) -> None:
    right = anatomy.liver_right
    hilum = (right["u"] - 0.45 * right["a"], right["v"] + 0.15 * right["b"], -0.55 * anatomy.liver_height)
    confluence = (rng.uniform(-5, 15) * s, anatomy.spine_center[1] + anatomy.vertebra_radius + rng.uniform(35, 50) * s,
                  -0.85 * anatomy.liver_height)
    anatomy.portal_trunk = Tube(hilum, confluence, rng.uniform(6, 8) * s)
    ivc_u, ivc_v = anatomy.ivc_center()
    ivc_top = (ivc_u, ivc_v, -0.12 * anatomy.liver_height)
    vessels: list[tuple[Tube, str]] = []
    for _ in range(rng.integers(5, 9)):
        target = random_point_in_liver(anatomy, rng, depth_mm=8 * s)
        if target is not None:
            vessels.append((Tube(hilum, target, rng.uniform(2.5, 5.5) * s), "portal"))
    for _ in range(3):
        target = random_point_in_liver(anatomy, rng, depth_mm=8 * s)
        if target is not None:
            vessels.append((Tube(ivc_top, target, rng.uniform(3.0, 6.0) * s), "hepatic"))
    anatomy.liver_vessels = vessels


def _add_bowel(anatomy: Anatomy, rng: np.random.Generator, s: float, cavity_a: float, cavity_b: float) -> None:
    loops = []
    low, high = -anatomy.liver_height * 2.0, -anatomy.liver_height * 0.45
    for _ in range(rng.integers(40, 60)):
        start = np.array([rng.uniform(-0.8, 0.8) * cavity_a, rng.uniform(-0.3, 0.75) * cavity_b, rng.uniform(low, high)])
        direction = rng.normal(size=3)
        direction /= np.linalg.norm(direction)
        end = start + rng.uniform(30, 90) * s * direction
        loops.append(BowelLoop(Tube(tuple(start), tuple(end), rng.uniform(9, 20) * s), rng.uniform(2, 4) * s,
                               str(rng.choice(["air", "fluid", "stool"], p=[0.3, 0.35, 0.35]))))
    anatomy.bowel = loops


def carved_liver_sdf(anatomy: Anatomy, u, v, w, cavity=None, noise=None, midline=None):
    """The liver label's signed distance: the envelope minus everything painted after the liver.

    ``cavity``, ``noise`` and ``midline`` (see ``midline_carve``) may be passed precomputed.
    """
    sdf = anatomy.liver_sdf(u, v, w, noise)
    cavity = anatomy.cavity_sdf(u, v, w) if cavity is None else cavity
    sdf = np.maximum(sdf, cavity + 2.0)
    for organ in (*anatomy.kidneys, anatomy.gallbladder, anatomy.spleen):
        if organ.spans(w, 3.0):
            sdf = np.maximum(sdf, -(organ.sdf(u, v, w) - 2.0))
    return np.maximum(sdf, midline_carve(anatomy, u, v) if midline is None else midline)


def midline_carve(anatomy: Anatomy, u, v):
    """The height-independent part of the carving: IVC, aorta and spine with their margins."""
    return -np.minimum(np.minimum(ivc_sdf(anatomy, u, v) - 1.5, aorta_sdf(anatomy, u, v) - 3.0),
                       spine_sdf(anatomy, u, v) - 3.0)


def aorta_sdf(anatomy: Anatomy, u, v):
    cu, cv = anatomy.aorta_center()
    return np.sqrt((u - cu) ** 2 + (v - cv) ** 2) - anatomy.aorta_radius


def ivc_sdf(anatomy: Anatomy, u, v):
    cu, cv = anatomy.ivc_center()
    return shapes.ellipse_sdf(u, v, cu, cv, *anatomy.ivc_semi)


def spine_sdf(anatomy: Anatomy, u, v):
    """Vertebral body plus the posterior arch and spinous process, as one bony region."""
    cu, cv = anatomy.spine_center
    r = anatomy.vertebra_radius
    body = shapes.ellipse_sdf(u, v, cu, cv, 1.15 * r, r)
    arch = shapes.ellipse_sdf(u, v, cu, cv - 1.45 * r, 0.75 * r, 0.6 * r)
    spinous = shapes.ellipse_sdf(u, v, cu, cv - 2.4 * r, 0.22 * r, 0.9 * r)
    return np.minimum(body, np.minimum(arch, spinous))


class SliceGrid:
    """The in-plane grid of a case with everything about it that does not change along z."""

    COARSE_MM = 3.0  # smooth fields (wavelengths >= 15 mm) are sampled every ~3 mm and interpolated

    def __init__(self, anatomy: Anatomy, u: np.ndarray, v: np.ndarray, pixel_mm: float):
        self.u, self.v, self.pixel_mm = u, v, pixel_mm
        self.u_axis, self.v_axis = u[:, 0], v[0, :]
        self.bumps = anatomy.outline_bumps(u, v)
        self.fat, self.muscle = anatomy.wall_thickness(u, v)
        self.midline = midline_carve(anatomy, u, v)
        step = max(1, min(4, int(self.COARSE_MM / pixel_mm)))
        self.coarse_u, self.coarse_v = u[::step, ::step], v[::step, ::step]

    def smooth_field(self, field, w) -> np.ndarray:
        """Evaluate a smooth field on the coarse grid and interpolate it to every pixel."""
        coarse = field(self.coarse_u, self.coarse_v, w).astype(np.float32)
        if coarse.shape == self.u.shape:
            return coarse
        factors = [full / small for full, small in zip(self.u.shape, coarse.shape)]
        return ndimage.zoom(coarse, factors, order=1, grid_mode=True, mode="nearest")


class Canvas:
    """One axial slice being painted: HU, label, coordinate grids and the partial-volume width."""

    def __init__(self, grid: SliceGrid, w: float, air: float):
        self.grid = grid
        self.u, self.v, self.w = grid.u, grid.v, np.float32(w)
        self.u_axis, self.v_axis = grid.u_axis, grid.v_axis
        self.pv = 0.5 * grid.pixel_mm
        self.hu = np.full(grid.u.shape, air, np.float32)
        self.label = np.zeros(grid.u.shape, np.uint8)

    def window(self, u0, u1, v0, v1):
        """Index window covering the rectangle [u0, u1] x [v0, v1]; None when it misses the slice."""
        i0, i1 = np.searchsorted(self.u_axis, [u0, u1])
        j0, j1 = np.searchsorted(self.v_axis, [v0, v1])
        if i0 >= i1 or j0 >= j1:
            return None
        return slice(int(i0), int(i1)), slice(int(j0), int(j1))

    def around(self, center_u, center_v, reach):
        return self.window(center_u - reach, center_u + reach, center_v - reach, center_v + reach)

    def paint(self, sdf, value, region=None, width=None):
        """Blend ``value`` into the slice with the partial-volume occupancy of ``sdf``."""
        occ = shapes.occupancy(sdf, width or self.pv)
        if region is None:
            self.hu += occ * (value - self.hu)
        else:
            patch = self.hu[region]
            patch += occ * (value - patch)


def render_slice(anatomy: Anatomy, tissues: TissueValues, grid: SliceGrid, w: float):
    """Noise-free HU and the label of one axial slice at height ``w``."""
    t = tissues
    c = Canvas(grid, w, t.air)
    u, v, w = c.u, c.v, c.w
    a_body, b_body = anatomy.body_semi
    table_v = -0.88 * b_body - anatomy.table_gap
    c.paint(np.maximum(table_v - 8.0 - v, v - table_v), t.table)

    body = anatomy.body_sdf(u, v, w, grid.bumps)
    fat, muscle = grid.fat, grid.muscle
    c.paint(body, t.fat)
    c.paint(body + fat, t.muscle)
    cu, cv = anatomy.spine_center
    r = anatomy.vertebra_radius
    for side in (-1, 1):  # paraspinal muscles
        region = c.around(side * 1.5 * r, cv - 2.0 * r, 1.4 * r)
        if region:
            c.paint(shapes.ellipse_sdf(u[region], v[region], side * 1.5 * r, cv - 2.0 * r, 1.3 * r, 1.2 * r),
                    t.muscle, region)
    if w < -anatomy.liver_height * 0.75:  # psoas muscles appear below the liver
        grow = min(1.0, float(-anatomy.liver_height * 0.75 - w) / 80.0)
        for side in (-1, 1):
            region = c.around(side * 1.9 * r, cv + 0.2 * r, r + 2)
            if region:
                c.paint(shapes.ellipse_sdf(u[region], v[region], side * 1.9 * r, cv + 0.2 * r,
                                           0.9 * r * grow + 1, 0.8 * r * grow + 1), t.muscle, region)
    cavity = body + fat + muscle
    texture = grid.smooth_field(anatomy.texture_noise, w)
    c.paint(cavity, t.visceral_fat + 12.0 * texture)

    # Ribs: oblique bands around the cage, cut as small ovals inside the wall.
    if w > anatomy.rib_bottom:
        for angle, phase in zip(anatomy.rib_angles, anatomy.rib_phase):
            if (w + phase + 6.0 * angle) % anatomy.rib_period < 0.45 * anatomy.rib_period:
                dist = np.hypot(a_body * np.cos(angle), b_body * np.sin(angle))
                depth = anatomy.fat_mm + 0.6 * anatomy.muscle_mm + 4.0
                ru = (1 - depth / dist) * a_body * np.cos(angle)
                rv = max((1 - depth / dist) * b_body * np.sin(angle), -0.8 * b_body)
                region = c.around(ru, rv, 9.0)
                if region:
                    rib = shapes.ellipse_sdf(u[region], v[region], ru, rv, 7.0, 5.0, angle + np.pi / 2)
                    c.paint(rib, t.cortical_bone * 0.8, region)
                    c.paint(rib + 2.0, t.marrow, region)

    # Thorax above the diaphragm: lung bases and the heart.
    for lung in anatomy.lungs:
        if w > lung["base"]:
            grow = min(1.0, float(w - lung["base"]) / lung["ramp"]) ** 0.5
            region = c.around(lung["u"], lung["v"], max(lung["a"], lung["b"]) * grow + 2)
            if region:
                sdf = shapes.ellipse_sdf(u[region], v[region], lung["u"], lung["v"], lung["a"] * grow + 0.5,
                                         lung["b"] * grow + 0.5)
                c.paint(np.maximum(sdf, cavity[region] + 2.0), -860.0 + 40.0 * texture[region], region)
    _paint_ellipsoid(c, anatomy.heart, t.ivc)

    # Bowel and stomach (hidden under the liver where they meet it).
    for loop in anatomy.bowel:
        if not loop.tube.spans(w):
            continue
        region = c.window(*loop.tube.bounds())
        if region is None:
            continue
        ru, rv = u[region], v[region]
        outer = np.maximum(loop.tube.sdf(ru, rv, w), cavity[region] + 1.0)
        c.paint(outer, t.bowel_wall, region)
        if loop.content == "stool":
            content = -250.0 + 200.0 * anatomy.texture_noise(ru * 3, rv * 3, w)
        else:
            content = t.air if loop.content == "air" else t.fluid
        c.paint(outer + loop.wall_mm, content, region)
    if anatomy.stomach.spans(w):
        region = c.around(anatomy.stomach.center[0], anatomy.stomach.center[1], anatomy.stomach.reach())
        if region:
            stomach = anatomy.stomach.sdf(u[region], v[region], w)
            c.paint(stomach, t.bowel_wall, region)
            c.paint(stomach + 4.0, t.fluid, region)
            air_level = anatomy.stomach.center[1] + 0.3 * anatomy.stomach.semi_axes[1]
            c.paint(np.maximum(stomach + 4.0, air_level - v[region]), t.air, region)
    if anatomy.portal_trunk.spans(w):
        region = c.window(*anatomy.portal_trunk.bounds())
        if region:
            c.paint(anatomy.portal_trunk.sdf(u[region], v[region], w), t.portal_vein, region)

    # Liver, its vessels and its lesions, inside the liver's window.
    if -anatomy.liver_height - 5 < w < 5:
        region = c.window(*anatomy.liver_bounds())
        if region:
            noise = grid.smooth_field(anatomy.liver_noise, w)[region]
            _paint_liver(c, anatomy, t, region, cavity[region], noise, texture[region], grid.midline[region])

    # Organs painted after the liver (already carved out of its label).
    for kidney in anatomy.kidneys:
        if kidney.spans(w, 2.0):
            region = c.around(kidney.center[0], kidney.center[1], kidney.reach())
            if region:
                k = kidney.sdf(u[region], v[region], w)
                c.paint(k, t.kidney_cortex, region)
                c.paint(k + 6.0, t.kidney_medulla, region)
    if anatomy.spleen.spans(w, 2.0):
        region = c.around(anatomy.spleen.center[0], anatomy.spleen.center[1], anatomy.spleen.reach())
        if region:
            ru, rv = u[region], v[region]
            c.paint(np.maximum(anatomy.spleen.sdf(ru, rv, w), -anatomy.spleen_hollow.sdf(ru, rv, w)), t.spleen, region)
    _paint_ellipsoid(c, anatomy.gallbladder, t.bile)
    iu, iv = anatomy.ivc_center()
    region = c.around(iu, iv, max(anatomy.ivc_semi) + 2)
    if region:
        c.paint(ivc_sdf(anatomy, u[region], v[region]), t.ivc, region)
    au, av = anatomy.aorta_center()
    region = c.around(au, av, anatomy.aorta_radius + 2)
    if region:
        c.paint(aorta_sdf(anatomy, u[region], v[region]), t.aorta, region)
    region = c.window(cu - 1.4 * r, cu + 1.4 * r, cv - 3.5 * r, cv + 1.2 * r)
    if region:
        ru, rv = u[region], v[region]
        spine = spine_sdf(anatomy, ru, rv)
        c.paint(spine, t.cortical_bone, region)
        c.paint(spine + 2.5, t.marrow, region)
        if anatomy.in_disc(float(w)):
            c.paint(shapes.ellipse_sdf(ru, rv, cu, cv, 1.15 * r, r) - 0.5, t.disc, region)
        c.paint(shapes.ellipse_sdf(ru, rv, cu, cv - 1.35 * r, 0.45 * r, 0.42 * r), t.csf, region)
    return c.hu, c.label


def _paint_ellipsoid(c: Canvas, organ: Ellipsoid, value: float) -> None:
    if organ.spans(c.w, 2.0):
        region = c.around(organ.center[0], organ.center[1], organ.reach())
        if region:
            c.paint(organ.sdf(c.u[region], c.v[region], c.w), value, region)


def _paint_liver(c: Canvas, anatomy: Anatomy, t: TissueValues, region, cavity, noise, texture, midline) -> None:
    u, v, w = c.u[region], c.v[region], c.w
    liver = carved_liver_sdf(anatomy, u, v, w, cavity, noise, midline)
    c.paint(liver, t.liver + 4.0 * texture, region)
    for tube, kind in anatomy.liver_vessels:
        if tube.spans(w):
            value = t.portal_vein if kind == "portal" else t.hepatic_vein
            c.paint(np.maximum(tube.sdf(u, v, w), liver), value, region)
    label = (liver < 0).astype(np.uint8)
    hu = c.hu[region]
    for lesion in anatomy.lesions:
        reach = lesion.reach()
        if abs(w - lesion.shape.center[2]) > reach:
            continue
        inner = _sub_window(u, v, lesion.shape.center, reach)
        if inner is None:
            continue
        lu, lv, lliver = u[inner], v[inner], liver[inner]
        lesion_sdf = lesion.sdf(lu, lv, w)
        inside = np.maximum(lesion_sdf, lliver)
        patch = hu[inner]
        value = t.liver + lesion.contrast_hu
        patch += shapes.occupancy(inside, max(c.pv, lesion.border_mm)) * (value - patch)
        if lesion.necrotic_core > 0:
            core = np.maximum(lesion_sdf + (1 - lesion.necrotic_core) * lesion.diameter_mm / 2, lliver)
            patch += shapes.occupancy(core, max(c.pv, 2 * lesion.border_mm)) * (min(value, t.fluid + 10.0) - patch)
        label[inner] = np.where(inside < 0, LESION, label[inner])
    c.label[region] = np.maximum(c.label[region], label)


def _sub_window(u, v, center, reach):
    """Index window, inside already-windowed grids, of a square of half-size ``reach``; None if empty."""
    us, vs = u[:, 0], v[0, :]
    i0, i1 = np.searchsorted(us, [center[0] - reach, center[0] + reach])
    j0, j1 = np.searchsorted(vs, [center[1] - reach, center[1] + reach])
    if i0 >= i1 or j0 >= j1:
        return None
    return slice(int(i0), int(i1)), slice(int(j0), int(j1))
