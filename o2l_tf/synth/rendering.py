"""Rendering one axial slice of an ``Anatomy``: noise-free HU and the label, painted with partial-volume edges.

Rendering follows a painter's order. The rule that keeps image and label consistent: whatever is
painted after the liver (kidneys, spleen, IVC, gallbladder, aorta, spine) is carved out of the liver
label first (``geometry.carved_liver_sdf``); whatever is painted before it (wall, ribs, lungs, heart, bowel,
stomach) is hidden under it. Compact objects are evaluated only inside their bounding window, which keeps a
512x512 slice cheap. Every intensity comes from the case's ``TissueValues``.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from o2l_tf.synth import shapes
from o2l_tf.synth.geometry import LESION, Abdomen, Anatomy, Ellipsoid, aorta_sdf, carved_liver_sdf, ivc_sdf, \
    midline_carve, spine_sdf
from o2l_tf.synth.tissues import TissueValues


class SliceGrid:
    """The in-plane grid of a case with everything about it that does not change along z."""

    COARSE_MM = 3.0  # smooth fields (wavelengths >= 15 mm) are sampled every ~3 mm and interpolated

    def __init__(self, anatomy: Anatomy, u: np.ndarray, v: np.ndarray, pixel_mm: float):
        abdomen = anatomy.abdomen
        self.u, self.v, self.pixel_mm = u, v, pixel_mm
        self.u_axis, self.v_axis = u[:, 0], v[0, :]
        self.bumps = abdomen.outline_bumps(u, v)
        self.fat, self.muscle = abdomen.wall_thickness(u, v)
        self.midline = midline_carve(abdomen, u, v)
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
        return _index_window(self.u_axis, self.v_axis, u0, u1, v0, v1)

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

    def paint_ellipsoid(self, organ: Ellipsoid, value: float) -> None:
        if organ.spans(self.w, 2.0):
            region = self.around(organ.center[0], organ.center[1], organ.reach())
            if region:
                self.paint(organ.sdf(self.u[region], self.v[region], self.w), value, region)


def _index_window(u_axis, v_axis, u0, u1, v0, v1):
    """Index window of the rectangle [u0, u1] x [v0, v1] on sorted axes; None when empty."""
    i0, i1 = np.searchsorted(u_axis, [u0, u1])
    j0, j1 = np.searchsorted(v_axis, [v0, v1])
    if i0 >= i1 or j0 >= j1:
        return None
    return slice(int(i0), int(i1)), slice(int(j0), int(j1))


def render_slice(anatomy: Anatomy, tissues: TissueValues, grid: SliceGrid, w: float):
    """Noise-free HU and the label of one axial slice at height ``w``, painted back to front."""
    c = Canvas(grid, w, tissues.air)
    a = anatomy.abdomen
    cavity, texture = _paint_table_and_wall(c, a, tissues)
    _paint_ribs(c, a, tissues)
    _paint_thorax(c, a, tissues, cavity, texture)
    _paint_gut(c, anatomy, tissues, cavity)
    if anatomy.portal_trunk.spans(c.w):
        region = c.window(*anatomy.portal_trunk.bounds())
        if region:
            c.paint(anatomy.portal_trunk.sdf(c.u[region], c.v[region], c.w), tissues.portal_vein, region)
    if -a.liver_height - 5 < c.w < 5:
        region = c.window(*a.liver_bounds())
        if region:
            noise = grid.smooth_field(a.liver_noise, c.w)[region]
            _paint_liver(c, anatomy, tissues, region, cavity[region], noise, texture[region], grid.midline[region])
    _paint_after_liver(c, a, tissues)
    return c.hu, c.label


def _paint_table_and_wall(c: Canvas, a: Abdomen, t: TissueValues):
    """Table, skin, fat, muscle (paraspinal, psoas below the liver) and visceral fat; returns (cavity, texture)."""
    u, v, w = c.u, c.v, c.w
    table_v = -0.88 * a.body_semi[1] - a.table_gap
    c.paint(np.maximum(table_v - 8.0 - v, v - table_v), t.table)
    body = a.body_sdf(u, v, w, c.grid.bumps)
    fat, muscle = c.grid.fat, c.grid.muscle
    c.paint(body, t.fat)
    c.paint(body + fat, t.muscle)
    cv = a.spine_center[1]
    r = a.vertebra_radius
    for side in (-1, 1):  # paraspinal muscles
        region = c.around(side * 1.5 * r, cv - 2.0 * r, 1.4 * r)
        if region:
            c.paint(shapes.ellipse_sdf(u[region], v[region], side * 1.5 * r, cv - 2.0 * r, 1.3 * r, 1.2 * r),
                    t.muscle, region)
    if w < -a.liver_height * 0.75:  # psoas muscles appear below the liver
        grow = min(1.0, float(-a.liver_height * 0.75 - w) / 80.0)
        for side in (-1, 1):
            region = c.around(side * 1.9 * r, cv + 0.2 * r, r + 2)
            if region:
                c.paint(shapes.ellipse_sdf(u[region], v[region], side * 1.9 * r, cv + 0.2 * r,
                                           0.9 * r * grow + 1, 0.8 * r * grow + 1), t.muscle, region)
    cavity = body + fat + muscle
    texture = c.grid.smooth_field(a.texture_noise, w)
    c.paint(cavity, t.visceral_fat + t.visceral_fat_texture * texture)
    return cavity, texture


def _paint_ribs(c: Canvas, a: Abdomen, t: TissueValues) -> None:
    """Oblique bands around the cage, cut as small ovals inside the wall."""
    if c.w <= a.rib_bottom:
        return
    a_body, b_body = a.body_semi
    for angle, phase in zip(a.rib_angles, a.rib_phase):
        if (c.w + phase + 6.0 * angle) % a.rib_period < 0.45 * a.rib_period:
            dist = np.hypot(a_body * np.cos(angle), b_body * np.sin(angle))
            depth = a.fat_mm + 0.6 * a.muscle_mm + 4.0
            ru = (1 - depth / dist) * a_body * np.cos(angle)
            rv = max((1 - depth / dist) * b_body * np.sin(angle), -0.8 * b_body)
            region = c.around(ru, rv, 9.0)
            if region:
                rib = shapes.ellipse_sdf(c.u[region], c.v[region], ru, rv, 7.0, 5.0, angle + np.pi / 2)
                c.paint(rib, t.rib_cortex, region)
                c.paint(rib + 2.0, t.marrow, region)


def _paint_thorax(c: Canvas, a: Abdomen, t: TissueValues, cavity, texture) -> None:
    """Above the diaphragm: the lung bases and the heart."""
    for lung in a.lungs:
        if c.w > lung.base:
            grow = min(1.0, float(c.w - lung.base) / lung.ramp) ** 0.5
            region = c.around(lung.u, lung.v, max(lung.a, lung.b) * grow + 2)
            if region:
                sdf = shapes.ellipse_sdf(c.u[region], c.v[region], lung.u, lung.v, lung.a * grow + 0.5,
                                         lung.b * grow + 0.5)
                c.paint(np.maximum(sdf, cavity[region] + 2.0), t.lung + t.lung_texture * texture[region], region)
    c.paint_ellipsoid(a.heart, t.blood)


def _paint_gut(c: Canvas, anatomy: Anatomy, t: TissueValues, cavity) -> None:
    """Bowel loops and the stomach (hidden under the liver where they meet it)."""
    w = c.w
    for loop in anatomy.bowel:
        if not loop.tube.spans(w):
            continue
        region = c.window(*loop.tube.bounds())
        if region is None:
            continue
        ru, rv = c.u[region], c.v[region]
        outer = np.maximum(loop.tube.sdf(ru, rv, w), cavity[region] + 1.0)
        c.paint(outer, t.bowel_wall, region)
        if loop.content == "stool":
            content = t.stool + t.stool_texture * anatomy.abdomen.texture_noise(ru * 3, rv * 3, w)
        else:
            content = t.air if loop.content == "air" else t.fluid
        c.paint(outer + loop.wall_mm, content, region)
    stomach = anatomy.abdomen.stomach
    if stomach.spans(w):
        region = c.around(stomach.center[0], stomach.center[1], stomach.reach())
        if region:
            sdf = stomach.sdf(c.u[region], c.v[region], w)
            c.paint(sdf, t.bowel_wall, region)
            c.paint(sdf + 4.0, t.fluid, region)
            air_level = stomach.center[1] + 0.3 * stomach.semi_axes[1]
            c.paint(np.maximum(sdf + 4.0, air_level - c.v[region]), t.air, region)


def _paint_liver(c: Canvas, anatomy: Anatomy, t: TissueValues, region, cavity, noise, texture, midline) -> None:
    """Parenchyma, vessels and lesions inside the liver's window, and the liver and lesion labels."""
    u, v, w = c.u[region], c.v[region], c.w
    liver = carved_liver_sdf(anatomy.abdomen, u, v, w, cavity, noise, midline)
    c.paint(liver, t.liver + t.liver_texture * texture, region)
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
        center = lesion.shape.center
        inner = _index_window(u[:, 0], v[0, :], center[0] - reach, center[0] + reach,
                              center[1] - reach, center[1] + reach)
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
            patch += shapes.occupancy(core, max(c.pv, 2 * lesion.border_mm)) * (min(value, t.necrosis) - patch)
        label[inner] = np.where(inside < 0, LESION, label[inner])
    c.label[region] = np.maximum(c.label[region], label)


def _paint_after_liver(c: Canvas, a: Abdomen, t: TissueValues) -> None:
    """Kidneys, spleen, gallbladder, IVC, aorta and spine: carved out of the liver label beforehand."""
    u, v, w = c.u, c.v, c.w
    for kidney in a.kidneys:
        if kidney.spans(w, 2.0):
            region = c.around(kidney.center[0], kidney.center[1], kidney.reach())
            if region:
                k = kidney.sdf(u[region], v[region], w)
                c.paint(k, t.kidney_cortex, region)
                c.paint(k + 6.0, t.kidney_medulla, region)
    if a.spleen.spans(w, 2.0):
        region = c.around(a.spleen.center[0], a.spleen.center[1], a.spleen.reach())
        if region:
            ru, rv = u[region], v[region]
            c.paint(np.maximum(a.spleen.sdf(ru, rv, w), -a.spleen_hollow.sdf(ru, rv, w)), t.spleen, region)
    c.paint_ellipsoid(a.gallbladder, t.bile)
    iu, iv = a.ivc_center()
    region = c.around(iu, iv, max(a.ivc_semi) + 2)
    if region:
        c.paint(ivc_sdf(a, u[region], v[region]), t.ivc, region)
    au, av = a.aorta_center()
    region = c.around(au, av, a.aorta_radius + 2)
    if region:
        c.paint(aorta_sdf(a, u[region], v[region]), t.aorta, region)
    cu, cv = a.spine_center
    r = a.vertebra_radius
    region = c.window(cu - 1.4 * r, cu + 1.4 * r, cv - 3.5 * r, cv + 1.2 * r)
    if region:
        ru, rv = u[region], v[region]
        spine = spine_sdf(a, ru, rv)
        c.paint(spine, t.cortical_bone, region)
        c.paint(spine + 2.5, t.marrow, region)
        if a.in_disc(float(w)):
            c.paint(shapes.ellipse_sdf(ru, rv, cu, cv, 1.15 * r, r) - 0.5, t.disc, region)
        c.paint(shapes.ellipse_sdf(ru, rv, cu, cv - 1.35 * r, 0.45 * r, 0.42 * r), t.csf, region)
