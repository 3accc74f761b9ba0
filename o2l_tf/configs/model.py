"""Model settings: the U-Net backbone, the teacher's box attention variant, the student's branch."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from o2l_tf.data.schema import NUM_CLASSES
from o2l_tf.errors import InputError

ATTENTION_VARIANTS = ("o2l", "multichannel", "none")

# How o2l reads the five rows of the paper's Table II (teacher ablation):
TABLE_II = {
    "w/o attention & w/o shortcut": dict(attention="none", shortcut=False),
    "multi-channel input": dict(attention="multichannel", shortcut=True),
    "w/o attention & w/ shortcut": dict(attention="none", shortcut=True),
    "w/ attention & w/o shortcut": dict(attention="o2l", shortcut=False),
    "w/ attention & w/ shortcut": dict(attention="o2l", shortcut=True),
}


def deep_supervision_name(level: int) -> str:
    """The student's output (and head) on the decoder stage at 1 / 2**level resolution (deep supervision)."""
    return f"deep_supervision_{level}"


@dataclass(frozen=True)
class ModelConfig:
    """Defaults: 4 scales, 32 base filters (32-64-128-256, bottleneck 512), the paper's O2L teacher.

    - ``depth``: number of 2x down-samplings (the paper's 4 scales); inputs must be multiples of 2**depth.
    - ``attention``/``shortcut``: the teacher variant (see ``TABLE_II``).
    - ``localization_channels``: channels C of each sub-pixel branch (conv to C*r*r, depth_to_space(r)).
    - ``localization_scales``: decoder stages feeding the localization branch, as down-sampling exponents
      (3 = 1/8 resolution ... 0 = full resolution); None (default) means every decoder stage.
    - ``deep_supervision``: students only, not the paper's: this many coarser decoder stages (1/2, 1/4, ...) get
      a segmentation head of their own during training (nnU-Net's deep supervision); 0 (default) = none. The
      inference model never has them.
    """

    depth: int = 4
    base_filters: int = 32
    attention: str = "o2l"
    shortcut: bool = True
    num_classes: int = NUM_CLASSES
    image_channels: int = 3
    localization_channels: int = 16
    localization_scales: tuple[int, ...] | None = None
    norm_momentum: float = 0.99  # BatchNormalization moving-average momentum (Keras default)
    deep_supervision: int = 0

    def validate(self) -> None:
        if self.depth < 1:
            raise InputError(f"depth must be at least 1, got {self.depth}")
        if self.base_filters < 1:
            raise InputError(f"base_filters must be at least 1, got {self.base_filters}")
        if self.attention not in ATTENTION_VARIANTS:
            raise InputError(f"attention must be one of {ATTENTION_VARIANTS}, got {self.attention!r}")
        if self.num_classes < 2:
            raise InputError(f"num_classes must be at least 2, got {self.num_classes}")
        if not self.branch_scales or any(not 0 <= s < self.depth for s in self.branch_scales):
            raise InputError(f"localization_scales must be in [0, {self.depth - 1}], got {self.localization_scales}")
        if not 0.0 <= self.norm_momentum < 1.0:
            raise InputError(f"norm_momentum must be in [0, 1), got {self.norm_momentum}")
        if not 0 <= self.deep_supervision < self.depth:
            raise InputError(f"deep_supervision must be in [0, {self.depth - 1}] (coarser decoder stages), "
                             f"got {self.deep_supervision}")
        if self.localization_channels < 1:
            raise InputError(f"localization_channels must be at least 1, got {self.localization_channels}")

    @property
    def branch_scales(self) -> tuple[int, ...]:
        """The decoder stages of the localization branch, deepest first."""
        scales = range(self.depth) if self.localization_scales is None else self.localization_scales
        return tuple(sorted(set(scales), reverse=True))

    def check_input_size(self, height: int | None, width: int | None) -> None:
        multiple = 2 ** self.depth
        for name, size in (("height", height), ("width", width)):
            if size is not None and size % multiple:
                raise InputError(f"input {name} {size} is not a multiple of 2**depth = {multiple}")

    def to_dict(self) -> dict:
        values = asdict(self)
        if self.localization_scales is not None:
            values["localization_scales"] = list(self.localization_scales)
        return values

    @classmethod
    def from_dict(cls, values: dict) -> "ModelConfig":
        values = dict(values)
        if values.get("localization_scales") is not None:
            values["localization_scales"] = tuple(values["localization_scales"])
        return cls(**values)
