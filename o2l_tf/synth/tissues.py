"""Hounsfield units per tissue and contrast phase.

Sources: the LiTS facts of the README's "What a phantom contains" table (portal-venous values) and standard
abdominal CT values for the non-contrast phase. Each case draws its own values from these ranges,
so absolute intensity never identifies an organ: the spleen overlaps the liver in both phases and
muscle overlaps it in the non-contrast phase.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

PHASES = ("non_contrast", "portal_venous")


@dataclass(frozen=True)
class TissueValues:
    phase: str
    air: float
    fat: float
    visceral_fat: float
    muscle: float
    liver: float
    spleen: float
    kidney_cortex: float
    kidney_medulla: float
    aorta: float
    portal_vein: float
    hepatic_vein: float
    ivc: float
    bowel_wall: float
    fluid: float
    bile: float
    cortical_bone: float
    marrow: float
    disc: float
    csf: float
    table: float
    # Fixed in every case: aerated lung, bowel content, and the amplitudes of the smooth texture fields (HU per
    # unit of the field, which spans about -1 to 1) that keep fat, lung, stool and parenchyma from being flat.
    lung: float = -860.0
    lung_texture: float = 40.0
    visceral_fat_texture: float = 12.0
    liver_texture: float = 4.0
    stool: float = -250.0
    stool_texture: float = 200.0

    @property
    def rib_cortex(self) -> float:
        """Thin rib cortex, partial-volumed with marrow: 80 % of the vertebral cortex."""
        return self.cortical_bone * 0.8

    @property
    def blood(self) -> float:
        """The heart's blood pool, as the IVC's (the same phase of contrast)."""
        return self.ivc

    @property
    def necrosis(self) -> float:
        """A necrotic core's ceiling: fluid with debris, never brighter than the lesion around it."""
        return self.fluid + 10.0


def sample_tissues(rng: np.random.Generator, phase: str) -> TissueValues:
    """Draw one case's tissue values for ``phase`` (``non_contrast`` or ``portal_venous``)."""
    u = rng.uniform
    if phase == "portal_venous":
        liver = u(100, 120)
        spleen = float(np.clip(liver + u(-5, 15), 105, 130))
        kidney = u(150, 200)
        aorta = u(150, 200)
        portal = u(150, 200)
        hepatic = liver + u(25, 60)
        ivc = u(110, 160)
    elif phase == "non_contrast":
        liver = u(45, 65)
        spleen = float(np.clip(liver + u(-12, 3), 38, 60))
        kidney = u(28, 40)
        aorta = u(35, 50)
        portal = liver - u(8, 18)
        hepatic = liver - u(8, 18)
        ivc = u(35, 50)
    else:
        raise ValueError(f"unknown contrast phase {phase!r}; expected one of {PHASES}")
    return TissueValues(
        phase=phase,
        air=-1000.0,
        fat=u(-110, -80),
        visceral_fat=u(-100, -70),
        muscle=u(40, 55),
        liver=liver,
        spleen=spleen,
        kidney_cortex=kidney,
        kidney_medulla=kidney * (0.75 if phase == "portal_venous" else 0.95),
        aorta=aorta,
        portal_vein=portal,
        hepatic_vein=hepatic,
        ivc=ivc,
        bowel_wall=u(35, 70) if phase == "portal_venous" else u(30, 45),
        fluid=u(0, 20),
        bile=u(0, 15),
        cortical_bone=u(700, 1000),
        marrow=u(250, 350),
        disc=u(70, 100),
        csf=u(5, 20),
        table=u(-250, -100),
    )
