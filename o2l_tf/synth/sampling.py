"""Drawing one case's geometry: a plausible adult abdomen, its liver vessels, bowel and lesions.

Every function takes the case's random stream and draws from it in a fixed order; the order is part of the
phantom's definition (tests/synth/test_checksum.py pins the result). Lengths are millimetres times the case's
``body_scale``. The numbers come from the LiTS facts of the README's "What a phantom contains" table.
"""

from __future__ import annotations

import numpy as np

from o2l_tf.synth import shapes
from o2l_tf.synth.geometry import (Abdomen, Anatomy, BowelLoop, Ellipsoid, LeftLobe, Lesion, LungBase, RightLobe,
                                   Tube, carved_liver_sdf)


def sample_anatomy(rng: np.random.Generator, body_scale: float, phase: str) -> Anatomy:
    """The whole geometry of one case: abdomen, then vessels, bowel and lesions (which need its liver)."""
    abdomen = sample_abdomen(rng, body_scale)
    portal_trunk, vessels = sample_liver_vessels(abdomen, rng, body_scale)
    bowel = sample_bowel(abdomen, rng, body_scale)
    lesions = sample_lesions(abdomen, rng, phase, body_scale)
    return Anatomy(abdomen=abdomen, portal_trunk=portal_trunk, liver_vessels=vessels, bowel=bowel, lesions=lesions)


def sample_abdomen(rng: np.random.Generator, body_scale: float) -> Abdomen:
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
    liver_right = RightLobe(
        u=rng.uniform(0.40, 0.50) * cavity_a,
        v=rng.uniform(-0.1, 0.05) * cavity_b,
        a=rng.uniform(0.58, 0.70) * cavity_a,
        b=rng.uniform(0.80, 0.95) * cavity_b,
        angle=rng.uniform(-0.25, 0.15),
        drift_u=rng.uniform(0.05, 0.2) * cavity_a,
        drift_v=rng.uniform(0.1, 0.5) * cavity_b,
        taper_start=rng.uniform(0.5, 0.65),
    )
    liver_left = LeftLobe(
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
    lungs = tuple(
        LungBase(u=side * 0.5 * cavity_a, v=-0.15 * cavity_b, a=0.45 * cavity_a, b=0.8 * cavity_b,
                 base=-liver_height * rng.uniform(0.15, 0.3) - (10 * s if side < 0 else 0), ramp=rng.uniform(50, 80) * s)
        for side in (+1, -1)
    )
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
        (liver_right.u - 0.3 * liver_right.a, liver_right.v + 0.5 * liver_right.b,
         -liver_height * rng.uniform(0.6, 0.72)),
        (rng.uniform(11, 17) * s, rng.uniform(11, 17) * s, rng.uniform(25, 40) * s), angle=rng.uniform(-0.5, 0.5))
    return Abdomen(
        body_semi=(a_body, b_body), body_harmonics=harmonics,
        body_wave=(rng.uniform(0.0, 0.05), rng.uniform(0, 2 * np.pi)),
        fat_mm=fat_mm, muscle_mm=muscle_mm, spine_center=(0.0, spine_v), vertebra_radius=vertebra_radius,
        disc_period=rng.uniform(30, 38) * s, disc_phase=rng.uniform(0, 40),
        liver_height=liver_height, liver_right=liver_right, liver_left=liver_left,
        liver_noise=liver_noise, liver_noise_mm=rng.uniform(5, 10) * s, texture_noise=texture_noise,
        lungs=lungs, heart=heart, kidneys=tuple(kidneys), spleen=spleen, spleen_hollow=spleen_hollow, stomach=stomach,
        gallbladder=gallbladder, aorta_radius=rng.uniform(9, 13) * s,
        ivc_semi=(rng.uniform(11, 15) * s, rng.uniform(8, 11) * s),
        rib_angles=np.deg2rad(np.concatenate([rng.uniform(-70, -20, 2) - 90, [-160, -130, 140, 160],
                                              rng.uniform(10, 40, 2)])),
        rib_period=rng.uniform(28, 36) * s, rib_phase=rng.uniform(0, 40, 8),
        rib_bottom=-liver_height * rng.uniform(0.55, 0.8), table_gap=rng.uniform(5, 20) * s,
    )


def random_point_in_liver(abdomen: Abdomen, rng: np.random.Generator, depth_mm: float, tries: int = 400):
    """A point at least ``depth_mm`` inside the carved liver, by rejection sampling; None if there is none."""
    u0, u1, v0, v1 = abdomen.liver_bounds()
    for _ in range(tries):
        p = (rng.uniform(u0, u1), rng.uniform(v0, v1), rng.uniform(-abdomen.liver_height, 0))
        if float(carved_liver_sdf(abdomen, np.float32(p[0]), np.float32(p[1]), p[2])) < -depth_mm:
            return p
    return None


def sample_liver_vessels(abdomen: Abdomen, rng: np.random.Generator, s: float):
    """The portal trunk and 5-8 portal and 3 hepatic branches from the hilum and the IVC into the liver."""
    right = abdomen.liver_right
    hilum = (right.u - 0.45 * right.a, right.v + 0.15 * right.b, -0.55 * abdomen.liver_height)
    confluence = (rng.uniform(-5, 15) * s, abdomen.spine_center[1] + abdomen.vertebra_radius + rng.uniform(35, 50) * s,
                  -0.85 * abdomen.liver_height)
    portal_trunk = Tube(hilum, confluence, rng.uniform(6, 8) * s)
    ivc_u, ivc_v = abdomen.ivc_center()
    ivc_top = (ivc_u, ivc_v, -0.12 * abdomen.liver_height)
    vessels: list[tuple[Tube, str]] = []
    for _ in range(rng.integers(5, 9)):
        target = random_point_in_liver(abdomen, rng, depth_mm=8 * s)
        if target is not None:
            vessels.append((Tube(hilum, target, rng.uniform(2.5, 5.5) * s), "portal"))
    for _ in range(3):
        target = random_point_in_liver(abdomen, rng, depth_mm=8 * s)
        if target is not None:
            vessels.append((Tube(ivc_top, target, rng.uniform(3.0, 6.0) * s), "hepatic"))
    return portal_trunk, tuple(vessels)


def sample_bowel(abdomen: Abdomen, rng: np.random.Generator, s: float) -> tuple[BowelLoop, ...]:
    """40-60 straight bowel loops below the liver's upper half, holding air, fluid or stool."""
    body_a, body_b = abdomen.body_semi
    cavity_a = body_a - abdomen.fat_mm - abdomen.muscle_mm
    cavity_b = body_b - abdomen.fat_mm - abdomen.muscle_mm
    loops = []
    low, high = -abdomen.liver_height * 2.0, -abdomen.liver_height * 0.45
    for _ in range(rng.integers(40, 60)):
        start = np.array([rng.uniform(-0.8, 0.8) * cavity_a, rng.uniform(-0.3, 0.75) * cavity_b, rng.uniform(low, high)])
        direction = rng.normal(size=3)
        direction /= np.linalg.norm(direction)
        end = start + rng.uniform(30, 90) * s * direction
        loops.append(BowelLoop(Tube(tuple(start), tuple(end), rng.uniform(9, 20) * s), rng.uniform(2, 4) * s,
                               str(rng.choice(["air", "fluid", "stool"], p=[0.3, 0.35, 0.35]))))
    return tuple(loops)


def sample_lesion_count(rng: np.random.Generator) -> int:
    """0-12 lesions, median about 3, a few cases without any (LITS.md: median 3, IQR 1-9)."""
    if rng.uniform() < 0.12:
        return 0
    return int(np.clip(np.round(np.exp(rng.normal(np.log(3.5), 1.1))), 1, 12))


def sample_lesion_diameter(rng: np.random.Generator) -> float:
    """Log-uniform 3-65 mm: many small lesions, some over 50 mm."""
    return float(np.exp(rng.uniform(np.log(3.0), np.log(65.0))))


def sample_lesions(abdomen: Abdomen, rng: np.random.Generator, phase: str, scale: float) -> tuple[Lesion, ...]:
    """Hypodense lesions (a few hyperdense ones), some larger ones with a necrotic core, inside the liver."""
    lesions = []
    for _ in range(sample_lesion_count(rng)):
        diameter = sample_lesion_diameter(rng) * scale
        radius = diameter / 2
        center = random_point_in_liver(abdomen, rng, depth_mm=0.4 * radius)
        if center is None:
            continue
        hyperdense = rng.uniform() < (0.15 if phase == "portal_venous" else 0.05)
        if hyperdense:
            contrast = rng.uniform(15, 50) if phase == "portal_venous" else rng.uniform(10, 25)
        else:
            contrast = -(rng.uniform(10, 80) if phase == "portal_venous" else rng.uniform(10, 40))
        necrosis = rng.uniform(0.3, 0.6) if diameter > 30 and rng.uniform() < 0.5 else 0.0
        lesions.append(Lesion(
            shape=Ellipsoid(center, tuple(radius * rng.uniform(0.8, 1.2, 3)), rng.uniform(0, np.pi)),
            noise=shapes.FourierNoise(rng, modes=5, wavelength_mm=(0.8 * diameter, 2.5 * diameter)),
            roughness_mm=rng.uniform(0.05, 0.2) * radius,
            border_mm=rng.uniform(0.03, 0.2) * radius,
            contrast_hu=float(contrast),
            necrotic_core=float(necrosis),
            diameter_mm=diameter,
        ))
    return tuple(lesions)
