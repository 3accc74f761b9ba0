"""The training pipeline: augmentation keeps image, target and boxes aligned; epochs are seeded."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from o2l_tf.configs.run import DataSettings
from o2l_tf.data import pipeline


def pattern(size=64):
    """Image, one-hot target and boxes that encode the same 8x8 block grid, so alignment can be checked."""
    rows, cols = np.meshgrid(np.arange(size) // 8, np.arange(size) // 8, indexing="ij")
    block = (rows * 8 + cols) % 3
    image = np.stack([block / 2.0, rows / 8.0, cols / 8.0], -1).astype("float32")
    target = np.eye(3, dtype="float32")[block]
    boxes = np.stack([block >= 1, block == 2], -1).astype("float32")
    return image, target, boxes


def test_augmentation_keeps_image_target_and_boxes_aligned():
    image, target, boxes = pattern()
    for index in range(40):
        out_image, out_target, out_boxes = (t.numpy() for t in pipeline.augment(
            image, target, boxes, tf.constant([7, index], tf.int64), 32, (0.8, 1.2), True))
        assert out_image.shape == (32, 32, 3) and out_target.shape == (32, 32, 3) and out_boxes.shape == (32, 32, 2)
        classes = np.argmax(out_target, -1)
        np.testing.assert_allclose(out_target.sum(-1), 1.0)
        # Boxes follow the target exactly (both nearest-resampled with the same geometry).
        np.testing.assert_array_equal(out_boxes[..., 0], classes >= 1)
        np.testing.assert_array_equal(out_boxes[..., 1], classes == 2)
        # The image (bilinear) agrees with the target wherever the target is uniform in a 3x3 neighbourhood.
        from scipy import ndimage

        uniform = ndimage.maximum_filter(classes, 3) == ndimage.minimum_filter(classes, 3)
        uniform[[0, -1], :] = uniform[:, [0, -1]] = False  # the crop edge hides the neighbours
        assert uniform.mean() > 0.25
        np.testing.assert_allclose(out_image[..., 0][uniform] * 2, classes[uniform], atol=1e-4)


def test_foreground_crops_hold_the_lesion_and_stay_aligned():
    size = 96
    image = np.zeros((size, size, 3), "float32")
    target = np.zeros((size, size, 3), "float32")
    target[..., 0] = 1
    target[60:64, 70:74] = [0, 0, 1]  # one small lesion far from the centre
    image[60:64, 70:74, 0] = 1.0
    boxes = np.zeros((size, size, 2), "float32")
    boxes[60:64, 70:74] = 1
    lesion_boxes = tf.constant([[60, 70, 63, 73]], tf.int64)  # x0, y0, x1, y1 inclusive: rows, then columns
    organ_boxes = tf.constant([[60, 70, 63, 73]], tf.int64)
    hits = {}
    for share, scales in ((0.0, (1.0, 1.0)), (1.0, (1.0, 1.0)), (1.0, (0.8, 1.2))):
        hits[share, scales] = 0
        for index in range(60):
            out_image, out_target, out_boxes = (t.numpy() for t in pipeline.augment(
                image, target, boxes, tf.constant([3, index], tf.int64), 32, scales, True, share, organ_boxes,
                lesion_boxes))
            has_lesion = out_target[..., 2] > 0.5
            if scales == (1.0, 1.0):
                np.testing.assert_array_equal(out_image[..., 0] > 0.5, has_lesion)
            np.testing.assert_array_equal(out_boxes[..., 1] > 0.5, has_lesion)
            hits[share, scales] += bool(has_lesion.any())
    assert hits[1.0, (1.0, 1.0)] == 60  # always: the lesion lies in the middle half of the crop
    assert hits[1.0, (0.8, 1.2)] == 60  # the box is followed through the rescaling
    assert hits[0.0, (1.0, 1.0)] < 30  # uniform crops of 32 from 96 rarely contain it (expected ~1/9 of the time)


def test_foreground_crops_pick_lesions_not_pixels():
    """A big and a small lesion in one slice: crops go to each about half the time (by pixel: 1 in 65)."""
    size = 128
    target = np.zeros((size, size, 3), "float32")
    target[..., 0] = 1
    target[8:40, 8:40] = [0, 0, 1]  # 1024 pixels
    target[110:114, 110:114] = [0, 0, 1]  # 16 pixels
    image, boxes = np.zeros((size, size, 3), "float32"), np.zeros((size, size, 2), "float32")
    lesion_boxes = tf.constant([[8, 8, 39, 39], [110, 110, 113, 113]], tf.int64)
    small = 0
    for index in range(80):
        _, out_target, _ = pipeline.augment(image, target, boxes, tf.constant([5, index], tf.int64), 32,
                                            (1.0, 1.0), False, 1.0, lesion_boxes[:1], lesion_boxes)
        lesion = out_target.numpy()[..., 2] > 0.5
        small += bool(lesion.any() and lesion.sum() <= 16)
    assert 25 <= small <= 55


def test_scale_one_without_flips_is_a_plain_crop():
    image, target, boxes = pattern()
    out_image, out_target, _ = pipeline.augment(image, target, boxes, tf.constant([1, 2], tf.int64), 32, (1.0, 1.0),
                                                False)
    out_image = out_image.numpy()
    top, left = int(round(out_image[0, 0, 1] * 8)) * 8, int(round(out_image[0, 0, 2] * 8)) * 8
    matches = [(r, c) for r in range(33) for c in range(33) if np.array_equal(image[r:r + 32, c:c + 32], out_image)]
    assert len(matches) >= 1 and abs(matches[0][0] - top) < 8 and abs(matches[0][1] - left) < 8
    np.testing.assert_array_equal(out_target.numpy(), target[matches[0][0]:matches[0][0] + 32,
                                                             matches[0][1]:matches[0][1] + 32])


def test_flips_are_the_four_mirror_images_drawn_per_example():
    """A whole-image crop at scale 1 is the input mirrored along none, one or both axes, the same for image,
    target and boxes; each of the four occurs, as the two seeded coin flips say."""
    rng = np.random.default_rng(0)
    image = rng.uniform(0, 1, (16, 16, 3)).astype("float32")
    target = np.eye(3, dtype="float32")[rng.integers(0, 3, (16, 16))]
    boxes = (rng.uniform(0, 1, (16, 16, 2)) > 0.5).astype("float32")
    mirrors = {(v, h): (lambda a, v=v, h=h: a[::-1 if v else 1, ::-1 if h else 1]) for v in (0, 1) for h in (0, 1)}
    seen = set()
    for index in range(24):
        seed = tf.constant([3, index], tf.int64)
        outputs = [t.numpy() for t in pipeline.augment(image, target, boxes, seed, 16, (1.0, 1.0), True)]
        drawn = [k for k, mirror in mirrors.items()
                 if all(np.array_equal(out, mirror(a)) for out, a in zip(outputs, (image, target, boxes)))]
        assert len(drawn) == 1  # exactly one mirror image, and the same one for all three
        draws = tf.random.experimental.stateless_split(seed, 6)
        coins = tuple(int(tf.random.stateless_uniform([], draws[k]).numpy() < 0.5) for k in (3, 4))
        assert drawn[0] == coins
        seen.add(drawn[0])
    assert seen == set(mirrors)


def test_small_images_are_padded_with_background():
    image, target, boxes = pattern(16)
    out_image, out_target, out_boxes = pipeline.augment(image, target, boxes, tf.constant([0, 0], tf.int64), 32,
                                                        (1.0, 1.0), False)
    assert out_image.shape == (32, 32, 3)
    np.testing.assert_allclose(out_target.numpy().sum(-1), 1.0)
    assert out_target.numpy()[0, 0, 0] == 1.0 and out_boxes.numpy()[0, 0].sum() == 0


def test_box_partition_one_hot():
    channels = np.zeros((4, 4, 2), "float32")
    channels[:3, :3, 0] = 1
    channels[1, 1, 1] = 1
    channels[3, 3, 1] = 1
    partition = np.argmax(pipeline.box_partition(channels).numpy(), -1)
    np.testing.assert_array_equal(partition, [[1, 1, 1, 0], [1, 2, 1, 0], [1, 1, 1, 0], [0, 0, 0, 2]])
    from o2l_tf.data.boxes import box_partition  # the NumPy twin (o2l reproduce's box-partition arm)

    np.testing.assert_array_equal(box_partition(channels), partition)
    np.testing.assert_array_equal(box_partition(channels.astype(np.uint8)), partition)


def test_epochs_are_seeded_and_resumable(small_records):
    from o2l_tf.data import records

    manifest = records.load_manifest(small_records)
    sources = [(records.split_files(small_records, "strong", manifest), "GZIP", records.parse_example,
                lambda e: pipeline.one_hot(e["label"]), 1.0)]
    settings = DataSettings(crop_size=32, batch_size=2, shuffle_buffer=16)

    def first_batch(epoch, seed=0):
        dataset = pipeline.training_dataset(sources, settings, "teacher", False, 3, epoch, seed)
        inputs, target = next(iter(dataset))
        return inputs["image"].numpy(), target.numpy()

    again = first_batch(1)
    np.testing.assert_array_equal(first_batch(1)[0], again[0])
    assert not np.array_equal(first_batch(2)[0], again[0])
    assert not np.array_equal(first_batch(1, seed=3)[0], again[0])


def test_a_run_of_epochs_is_the_epochs_one_by_one(small_records):
    """fit takes every epoch from one dataset; epoch k's batches must be those a run resumed at k draws."""
    import keras
    from o2l_tf.data import records

    keras.utils.set_random_seed(0)  # a global seed of 0 once broke tensor-seeded tf.data ops
    manifest = records.load_manifest(small_records)
    sources = [(records.split_files(small_records, "strong", manifest), "GZIP", records.parse_example,
                lambda e: pipeline.one_hot(e["label"]), 1.0)]
    settings = DataSettings(crop_size=32, batch_size=2, shuffle_buffer=16)

    def images(first, end, steps=3):
        data = iter(pipeline.training_dataset(sources, settings, "teacher", False, steps, first, 5, end_epoch=end))
        return [next(data)[0]["image"].numpy() for _ in range(steps * (end - first))]

    together = images(1, 4)
    one_by_one = images(1, 2) + images(2, 3) + images(3, 4)
    for a, b in zip(together, one_by_one, strict=True):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(together[0], together[3])  # epochs differ
    # Autotuning off in both datasets fit reads: with it, deleting an iterator waited for its optimisation thread
    # (8-60 s stalls in fit).
    validation = pipeline.validation_dataset(sources[0][0], "GZIP", settings, "teacher", False, 16)
    for dataset in (pipeline.training_dataset(sources, settings, "teacher", False, 3, 0, 5), validation):
        assert dataset.options().autotune.enabled is False


def test_epochs_reach_every_example_not_only_the_first_window(small_records):
    """An epoch reads only (shuffle buffer + draws) examples of each stream; across epochs they must cover the
    split. Before each shard was read from a seeded offset, every epoch restarted at the same records and a
    split larger than that window was never seen in full (converge: 565 of 1,980 weak examples in 80 epochs)."""
    from o2l_tf.data import records

    manifest = records.load_manifest(small_records)
    strong = manifest["splits"]["strong"]
    settings = DataSettings(crop_size=32, batch_size=4, shuffle_buffer=4)
    draws, epochs = 4, 40

    def reached(examples):
        source = pipeline.TrainingSource(records.split_files(small_records, "strong", manifest), "GZIP",
                                         records.parse_example, lambda e: (e["case_id"], e["slice_index"]), 1.0,
                                         examples=examples)
        seen = set()
        for epoch in range(epochs):
            [(stream, _)] = pipeline._source_streams(source, settings, tf.constant(epoch, tf.int64))
            seen.update((c, int(z)) for _, (c, z), *_ in stream.take(draws).as_numpy_iterator())
        return len(seen)

    assert strong["examples"] >= 40  # so that the window (8 examples) is a small part of the split
    assert reached(0) <= settings.shuffle_buffer + draws  # the old behaviour: the same window every epoch
    # 40 epochs x 4 draws of ~50 examples; uniform draws would reach about 1 - exp(-160/50) = 96 % of them
    assert reached(strong["examples"]) >= 0.8 * strong["examples"]


def test_lesion_slices_share_of_examples(small_records):
    """data.lesion_slices: that share of examples from slices with a lesion box, on top of those drawn anyway."""
    from o2l_tf.data import records

    manifest = records.load_manifest(small_records)
    strong = manifest["splits"]["strong"]
    assert strong["lesion_examples"] == sum(1 for e in records.read_split(small_records, "strong")
                                            if e["lesion_boxes"].shape[0] > 0)
    natural = strong["lesion_examples"] / strong["examples"]
    assert 0 < natural < 0.8

    def lesion_share(share):
        settings = DataSettings(crop_size=32, batch_size=4, shuffle_buffer=16, lesion_slices=share, scale_range=(1, 1))
        source = pipeline.TrainingSource(records.split_files(small_records, "strong", manifest), "GZIP",
                                         records.parse_example, lambda e: pipeline.one_hot(e["label"]), 1.0,
                                         "strong", strong["lesion_examples"])
        # Whole slices as crops: the lesion boxes' channel tells which slices were drawn.
        settings.crop_size = 48
        batches = pipeline.training_dataset([source], settings, "teacher", False, 50, 0, 1)
        drawn = [float(inputs["lesion_box"][k].numpy().max()) for inputs, _ in batches.take(50) for k in range(4)]
        return float(np.mean(drawn))

    assert lesion_share(0.0) == pytest.approx(natural, abs=0.1)
    assert lesion_share(1.0) == 1.0
    assert lesion_share(0.5) == pytest.approx(0.5 + 0.5 * natural, abs=0.1)


def test_box_partition_of_rasterized_hand_made_boxes():
    from o2l_tf.data.boxes import box_channels

    channels = box_channels([(1, 1, 5, 6)], [(2, 2, 3, 3), (7, 7, 8, 8)], (10, 10)).astype("float32")
    partition = np.argmax(pipeline.box_partition(channels).numpy(), -1)
    expected = np.zeros((10, 10), np.uint8)
    expected[1:6, 1:7] = 1
    expected[2:4, 2:4] = 2
    expected[7:9, 7:9] = 2  # a lesion box outside the organ box is still lesion (and part of the organ channel)
    np.testing.assert_array_equal(partition, expected)
    assert channels[8, 8, 0] == 1
