"""tf.data pipelines for training and validation, with the paper's augmentation (Sec. IV-A/B).

Training examples are drawn per epoch from a stream seeded by (seed, epoch): a run resumed at epoch k sees
exactly the batches an uninterrupted run would have seen from epoch k on, without replaying earlier epochs
(the fit loop builds one such dataset per epoch).
Augmentation (random scaling 0.8-1.2, random crop, random flips) is applied identically to the three slices,
the target (hard or soft label) and both box channels, with stateless random ops seeded per example.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import tensorflow as tf

from o2l_tf.configs.model import deep_supervision_name
from o2l_tf.data import records, schema

AUTOTUNE = tf.data.AUTOTUNE
NUM_CLASSES = schema.NUM_CLASSES
EPOCH_GRAPH_SEED = 20231  # any non-zero constant; see _epoch_batches
OFFSET_SEED = 7919  # pairs with an epoch's seed to draw where each shard starts being read (_files_dataset)


def one_hot(label) -> tf.Tensor:
    return tf.one_hot(tf.cast(label, tf.int32), NUM_CLASSES, dtype=tf.float32)


def box_partition(box_channels) -> tf.Tensor:
    """Sec. III-D localization target as one-hot: lesion box -> 2, organ box only -> 1, else 0."""
    organ, lesion = box_channels[..., 0] > 0.5, box_channels[..., 1] > 0.5
    classes = tf.where(lesion, 2, tf.where(organ, 1, 0))
    return one_hot(classes)


def decode_soft_label(raw, height, width) -> tf.Tensor:
    """uint8-quantised teacher probabilities back to a distribution per pixel."""
    quantised = tf.reshape(tf.io.decode_raw(raw, tf.uint8), [height, width, NUM_CLASSES])
    probabilities = tf.cast(quantised, tf.float32) / schema.PROBABILITY_LEVELS
    return probabilities / tf.maximum(tf.reduce_sum(probabilities, -1, keepdims=True), 1e-6)


def parse_pseudo_example(serialized, hu_window=None) -> dict:
    """A weak example with the teacher's soft label attached (written by ``o2l pseudo-label``)."""
    example = records.parse_example(serialized, hu_window)
    extra = tf.io.parse_single_example(serialized, {schema.SOFT_LABEL: tf.io.FixedLenFeature([], tf.string)})
    shape = tf.shape(example["label"])
    example["soft_label"] = decode_soft_label(extra[schema.SOFT_LABEL], shape[0], shape[1])
    return example


def _random_box_point(boxes, seed) -> tf.Tensor:
    """A uniformly chosen box of ``boxes`` (N, 4: x0, y0, x1, y1 inclusive), then a uniform point inside it
    (float row, column). One box per connected component: small lesions are picked as often as big ones."""
    seeds = tf.random.experimental.stateless_split(seed, 2)
    pick = tf.random.stateless_uniform([], seeds[0], 0, tf.maximum(tf.shape(boxes)[0], 1), dtype=tf.int32)
    box = tf.cast(boxes[pick], tf.float32)
    return box[:2] + tf.random.stateless_uniform([2], seeds[1]) * (box[2:] - box[:2] + 1.0)


def _crop_corner(limit, crop_size: int, seeds, foreground_crop: float, organ_boxes, lesion_boxes, to_crop_frame):
    """Top-left corner of the crop: uniform, or -- with probability ``foreground_crop`` -- around a point of a
    uniformly chosen lesion box (else organ box) of the slice, so the rare class is seen often (nnU-Net's
    foreground oversampling, by object rather than by pixel: picking a random lesion *pixel* let the largest
    lesion of a slice take almost every crop)."""
    uniform = tf.stack([tf.random.stateless_uniform([], seeds[0], 0, limit[0], dtype=tf.int32),
                        tf.random.stateless_uniform([], seeds[1], 0, limit[1], dtype=tf.int32)])
    if foreground_crop <= 0 or organ_boxes is None:
        return uniform
    lesions = tf.shape(lesion_boxes)[0] > 0
    boxes = tf.cond(lesions, lambda: lesion_boxes, lambda: organ_boxes)
    count = tf.shape(boxes)[0]

    def around_foreground():
        point = to_crop_frame(_random_box_point(boxes, seeds[2]))
        # The point lands anywhere in the middle half of the crop, not always at its centre.
        jitter = tf.random.stateless_uniform([2], seeds[3], -(crop_size // 4), crop_size // 4 + 1, dtype=tf.int32)
        corner = tf.cast(tf.floor(point), tf.int32) - crop_size // 2 + jitter
        return tf.clip_by_value(corner, 0, limit - 1)

    wanted = tf.random.stateless_uniform([], seeds[4], 0.0, 1.0) < foreground_crop
    return tf.cond(tf.logical_and(wanted, count > 0), around_foreground, lambda: uniform)


def augment(image, target, boxes, seed, crop_size: int, scale_range, flip: bool, foreground_crop: float = 0.0,
            organ_boxes=None, lesion_boxes=None):
    """Random scale, crop and flips, identical for image (bilinear) and target/boxes (nearest).

    ``organ_boxes``/``lesion_boxes`` (N, 4, the record's box lists) place the foreground crops.
    """
    height, width = tf.shape(image)[0], tf.shape(image)[1]
    seeds = tf.random.experimental.stateless_split(seed, 6)
    scale = tf.random.stateless_uniform([], seeds[0], scale_range[0], scale_range[1])
    size = tf.cast(tf.round(tf.cast(tf.stack([height, width]), tf.float32) * scale), tf.int32)
    image = tf.image.resize(image, size, method="bilinear")
    labels = tf.image.resize(tf.concat([target, boxes], -1), size, method="nearest")
    # Pad to at least the crop: image with 0 (the window's low end), target with background.
    pad_h = tf.maximum(crop_size - size[0], 0)
    pad_w = tf.maximum(crop_size - size[1], 0)
    paddings = [[pad_h // 2, pad_h - pad_h // 2], [pad_w // 2, pad_w - pad_w // 2], [0, 0]]
    image = tf.pad(image, paddings)
    background = tf.pad(tf.ones_like(labels[..., :1]), paddings)
    labels = tf.pad(labels, paddings)
    labels = tf.concat([tf.maximum(labels[..., :1], 1.0 - background), labels[..., 1:]], -1)
    stack = tf.concat([image, labels], -1)
    limit = tf.shape(stack)[:2] - crop_size + 1
    corner_seeds = tf.random.experimental.stateless_split(seeds[5], 5)
    top_left = tf.cast(tf.stack([pad_h // 2, pad_w // 2]), tf.float32)
    factors = tf.cast(size, tf.float32) / tf.cast(tf.stack([height, width]), tf.float32)

    def to_crop_frame(point):  # a (row, column) of the record's slice in the scaled, padded frame
        return (point + 0.5) * factors - 0.5 + top_left

    corner = _crop_corner(limit, crop_size, corner_seeds, foreground_crop, organ_boxes, lesion_boxes, to_crop_frame)
    stack = stack[corner[0]:corner[0] + crop_size, corner[1]:corner[1] + crop_size]
    if flip:
        # One reverse over the drawn axes: a cond per axis around a negative-stride slice took about a third of
        # the pipeline's time (demo-size input pipeline: about 400 -> 560 examples/s).
        flips = tf.stack([tf.random.stateless_uniform([], seeds[k]) < 0.5 for k in (3, 4)])  # rows, columns
        stack = tf.reverse(stack, tf.boolean_mask(tf.constant([0, 1]), flips))
    channels = image.shape[-1] or 3
    stack = tf.ensure_shape(stack, [crop_size, crop_size, None])
    return stack[..., :channels], stack[..., channels:channels + NUM_CLASSES], stack[..., channels + NUM_CLASSES:]


def to_model_io(role: str, image, target, boxes, localization: bool = True, deep_supervision: int = 0):
    """(inputs, targets) as the teacher or the student consumes them. A deeply supervised student's coarser
    heads get the full-resolution target too: their loss averages it down (``o2l_tf.losses``)."""
    if role == "teacher":
        return {"image": image, "organ_box": boxes[..., :1], "lesion_box": boxes[..., 1:2]}, target
    if not localization and not deep_supervision:
        return {"image": image}, target
    targets = {"segmentation": target}
    if localization:
        targets["localization"] = box_partition(boxes)
    targets.update({deep_supervision_name(level): target for level in range(1, deep_supervision + 1)})
    return {"image": image}, targets


def _files_dataset(files, compression: str, parse, seed, examples: int = 0) -> tf.data.Dataset:
    """The shards' examples, files in a seeded order, each file read from a seeded offset round to its start.

    An epoch reads only the first (shuffle buffer + draws) examples of this stream; without the offsets every
    epoch would restart at the same records, and a split larger than that window would never be seen in full
    (measured on a converge weak split: 565 of 1,980 examples reached in 80 epochs). ``examples``: the split's
    example count, from which each shard's share is estimated (the builder spreads examples evenly by hash);
    0 reads every file from its start.
    """
    per_file = max(1, examples // max(1, len(files)))  # 1: every offset is 0
    offset_seed = tf.stack([tf.cast(seed, tf.int64), tf.constant(OFFSET_SEED, tf.int64)])
    offsets = tf.random.stateless_uniform([len(files)], offset_seed, minval=0, maxval=per_file, dtype=tf.int64)

    def rotated(name, offset):  # records offset.. then 0..offset (an offset past the end reads the file from 0)
        file_records = tf.data.TFRecordDataset(name, compression_type=compression)
        return file_records.skip(offset).concatenate(file_records.take(offset))

    shuffled = tf.data.Dataset.from_tensor_slices((files, offsets)).shuffle(len(files), seed=seed)
    dataset = shuffled.interleave(rotated, cycle_length=min(len(files), 8), num_parallel_calls=AUTOTUNE,
                                  deterministic=True)
    return dataset.map(parse, num_parallel_calls=AUTOTUNE, deterministic=True)


class TrainingSource(NamedTuple):
    """One stream of training examples: a split's shards and how to read its target.

    ``weight``: its share of the examples drawn; ``lesion_examples``: how many of its examples have a lesion box
    (from the manifest), so that lesion-slice oversampling knows whether there is anything to oversample.
    """

    files: list[str]
    compression: str
    parse: Callable
    target_of: Callable  # example -> (H, W, 3) target probabilities
    weight: float
    name: str = "strong"
    lesion_examples: int = 0
    examples: int = 0  # the split's example count (0: unknown; each epoch then reads every shard from its start)


def training_dataset(sources: list[TrainingSource], settings, role: str, localization: bool, steps_per_epoch: int,
                     epoch: int, seed: int, end_epoch: int | None = None, deep_supervision: int = 0):
    """The batches of epochs ``epoch`` .. ``end_epoch - 1`` (one epoch by default), in order.

    Each epoch's batches are a pure function of (seed, epoch), so resuming at epoch k replays nothing, and one
    dataset can feed a whole ``fit`` call (no per-epoch set-up). Several sources are mixed by weight (the
    student's strong one-hot and weak soft or box targets).
    """
    sources = [TrainingSource(*source) for source in sources]
    end_epoch = epoch + 1 if end_epoch is None else end_epoch
    epochs = tf.data.Dataset.range(int(epoch), int(end_epoch)).flat_map(
        lambda e: _epoch_batches(sources, settings, role, localization, steps_per_epoch, e, seed, deep_supervision))
    # repeat(): Keras takes exactly steps_per_epoch batches per epoch; the repeat only spares it an end-of-data
    # warning.
    return _fit_options(epochs.repeat().prefetch(AUTOTUNE))


def _has_lesion_box(example) -> tf.Tensor:
    return tf.shape(example["lesion_boxes"])[0] > 0


def _source_streams(source: TrainingSource, settings, epoch_seed):
    """(stream, weight) pairs of one source: all its examples and, with ``data.lesion_slices`` > 0, a second
    stream of only its slices with a lesion box, drawn that share of the time (nnU-Net's foreground
    oversampling, at the level of slices)."""
    def stream(keep=None):
        examples = _files_dataset(source.files, source.compression, source.parse, epoch_seed, source.examples)
        if keep is not None:
            examples = examples.filter(keep)
        examples = examples.repeat().shuffle(settings.shuffle_buffer, seed=epoch_seed)
        return examples.map(lambda e: (e["image"], source.target_of(e), e["box_channels"], e["organ_boxes"],
                                       e["lesion_boxes"]), num_parallel_calls=AUTOTUNE, deterministic=True)

    share = settings.lesion_slices if source.lesion_examples > 0 else 0.0  # nothing to oversample otherwise
    if share <= 0:
        return [(stream(), source.weight)]
    if share >= 1:
        return [(stream(_has_lesion_box), source.weight)]
    return [(stream(), source.weight * (1.0 - share)), (stream(_has_lesion_box), source.weight * share)]


def _epoch_batches(sources: list[TrainingSource], settings, role: str, localization: bool, steps_per_epoch: int,
                   epoch, seed: int, deep_supervision: int = 0):
    """One epoch's batches; ``epoch`` is an int64 scalar tensor (from the range of epochs)."""
    # tf.data's seeded ops pair their op seed with the graph's seed and compare the pair with (0, 0) in Python,
    # which fails for a tensor op seed when the graph seed is 0 (as after keras.utils.set_random_seed(0)). This
    # function's graph gets a fixed seed of its own, so an epoch's batches depend on (seed, epoch) alone.
    tf.compat.v1.get_default_graph().seed = EPOCH_GRAPH_SEED
    epoch_seed = tf.constant(int(seed) * 100003, tf.int64) + tf.cast(epoch, tf.int64)
    pairs = [pair for source in sources for pair in _source_streams(source, settings, epoch_seed)]
    streams, weights = [p[0] for p in pairs], [p[1] for p in pairs]
    mixed = streams[0] if len(streams) == 1 else tf.data.Dataset.sample_from_datasets(
        streams, weights=weights, seed=epoch_seed)
    indexed = mixed.take(steps_per_epoch * settings.batch_size).enumerate()

    def augment_one(index, element):
        image, target, boxes, organ_boxes, lesion_boxes = element
        example_seed = tf.stack([epoch_seed, tf.cast(index, tf.int64)])
        image, target, boxes = augment(image, target, boxes, example_seed, settings.crop_size,
                                       settings.scale_range, settings.flip, settings.foreground_crop,
                                       organ_boxes, lesion_boxes)
        return to_model_io(role, image, target, boxes, localization, deep_supervision)

    dataset = indexed.map(augment_one, num_parallel_calls=AUTOTUNE, deterministic=True)
    return dataset.batch(settings.batch_size, drop_remainder=True)


def _fit_options(dataset: tf.data.Dataset) -> tf.data.Dataset:
    """Options of every dataset fit reads (training and validation): multi-worker sharding by element (a split
    may have fewer shard files than there are workers), and no autotuning.

    With autotuning on, deleting an iterator waits for tf.data's model-optimisation thread, and fit deletes the
    validation iterator at every validation and the training one at its end. Measured in the demo's student: a
    stall of 8-25 s at one or two validations per run and of up to a minute at the end of fit (py-spy: the main
    thread in ``UnboundedThreadPool::LogicalThreadWrapper`` destruction under ``RootDataset::Iterator``); none
    with autotuning off. ``AUTOTUNE`` parallelism then keeps tf.data's initial value, the smaller of 16 and the
    number of schedulable cores.
    """
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    options.autotune.enabled = False
    return dataset.with_options(options)


def pad_to_multiple(tensor, multiple: int, value=0.0):
    """Pad height and width -- the two axes before the channels, of an image or a batch -- at their ends."""
    shape = tf.shape(tensor)
    height, width = shape[-3], shape[-2]
    pad_h = (multiple - height % multiple) % multiple
    pad_w = (multiple - width % multiple) % multiple
    batch = [[0, 0]] * (len(tensor.shape) - 3)
    return tf.pad(tensor, batch + [[0, pad_h], [0, pad_w], [0, 0]], constant_values=value)


def validation_dataset(files, compression: str, settings, role: str, localization: bool, multiple: int,
                       deep_supervision: int = 0):
    """Whole val slices (padded to the network's multiple; padded pixels have an all-zero target)."""
    dataset = tf.data.TFRecordDataset(files, compression_type=compression).map(
        lambda serialized: records.parse_example(serialized, settings.hu_window), num_parallel_calls=AUTOTUNE)
    if settings.val_max_examples:
        dataset = dataset.take(settings.val_max_examples)

    def prepare(example):
        image = pad_to_multiple(example["image"], multiple)
        target = pad_to_multiple(one_hot(example["label"]), multiple)
        boxes = pad_to_multiple(example["box_channels"], multiple)
        return to_model_io(role, image, target, boxes, localization, deep_supervision)

    return _fit_options(dataset.map(prepare, num_parallel_calls=AUTOTUNE).padded_batch(settings.val_batch_size)
                        .prefetch(AUTOTUNE))
