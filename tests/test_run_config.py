"""apply_overrides: every section, every value type, and the one-line errors of a bad --set."""

from __future__ import annotations

import pytest

from o2l_tf.configs.run import RunConfig, apply_overrides, preset
from o2l_tf.errors import InputError


def test_overrides_of_each_type_and_section_land_where_named():
    config = apply_overrides(preset("demo", "student"), [
        "model.base_filters=8",                 # int, in the frozen model dataclass
        "data.foreground_crop=0.25",            # float
        "train.localization=false",             # bool
        "train.segmentation_weights=1,1,4",     # tuple of floats
        "train.optimizer=sgd",                  # str
        "inference.min_lesion_mm3=0",           # the inference section
    ])
    assert config.model.base_filters == 8 and config.model.norm_momentum == 0.9  # the rest of the model kept
    assert config.data.foreground_crop == 0.25 and config.train.localization is False
    assert config.train.segmentation_weights == (1.0, 1.0, 4.0)
    assert (config.train.optimizer, config.inference.min_lesion_mm3) == ("sgd", 0.0)
    # and the result round-trips through the run's config.json
    assert RunConfig.from_dict(config.to_dict()).to_dict() == config.to_dict()


def test_later_overrides_win_and_no_override_changes_nothing():
    base = preset("demo", "teacher").to_dict()
    assert apply_overrides(preset("demo", "teacher"), []).to_dict() == base
    config = apply_overrides(preset("demo", "teacher"), ["train.epochs=3", "train.epochs=7"])
    assert config.train.epochs == 7


@pytest.mark.parametrize("item, message", [
    ("train.epochs", "expected section.key=value"),
    ("optim.lr=1", "unknown key"),
    ("train.epoch=3", "train has no setting 'epoch'"),
    ("train.epochs=three", "not a valid int"),
    ("train.localization=maybe", "not a valid bool"),
])
def test_bad_overrides_are_input_errors_naming_the_item(item, message):
    with pytest.raises(InputError, match=message) as caught:
        apply_overrides(preset("test", "teacher"), [item])
    assert item in str(caught.value)
