"""``o2l pseudo-label``: the trained teacher's soft labels for every weak example (Fig. 2, green path).

Written beside the weak shards as ``pseudo-weak-*.tfrecord``: each record is the weak example plus
``soft_label`` = teacher softmax quantised to uint8 (p * 255 rounded: error <= 1/510). ``pseudo_labels.json``
(written last) records the teacher file and its sha256, so a student never trains on labels of another teacher.
"""

from __future__ import annotations

import os

import tensorflow as tf

from o2l_tf import fs
from o2l_tf.data import records, schema
from o2l_tf.errors import InputError
from o2l_tf.io_utils import read_json, write_json
from o2l_tf.nifti import file_sha256

INFO = "pseudo_labels.json"
TEACHER_FILE = "teacher.keras"
PREFIX = "pseudo-weak"


def teacher_file(teacher_dir: str) -> str:
    path = os.path.join(teacher_dir, TEACHER_FILE)
    if not tf.io.gfile.exists(path):
        raise InputError(f"{teacher_dir}: holds no trained teacher ({TEACHER_FILE} missing; run o2l train --role teacher)")
    return path


def current(records_dir: str) -> dict | None:
    path = os.path.join(records_dir, INFO)
    if not tf.io.gfile.exists(path):
        return None
    info = read_json(path)
    if not all(tf.io.gfile.exists(os.path.join(records_dir, s)) for s in info["shards"]):
        return None
    return info


def generate(teacher_dir: str, records_dir: str, batch_size: int = 8, progress: bool = True) -> dict:
    """Run the teacher on every weak example (whole slices, with their boxes) and write the pseudo shards."""
    from o2l_tf.data.pipeline import pad_to_multiple
    from o2l_tf.inference.loading import load_inference_model

    path = teacher_file(teacher_dir)
    digest = file_sha256(path)
    manifest = records.load_manifest(records_dir)
    loaded = load_inference_model(path)  # its export.json's HU window: the teacher's input, as it trained
    if loaded.role != "teacher":
        raise InputError(f"{path}: is an o2l {loaded.role}, not a teacher annotator")
    teacher, multiple = loaded.network, loaded.divisor
    compression = records.compression(manifest)
    weak_shards = manifest["splits"]["weak"]["shards"]
    if not weak_shards:
        raise InputError(f"{records_dir}: the weak split is empty; nothing to pseudo-label")

    @tf.function
    def predict(images, organ, lesion):
        return teacher({"image": images, "organ_box": organ, "lesion_box": lesion}, training=False)

    def prepare(serialized):
        example = records.parse_example(serialized, loaded.hu_window)
        return (serialized, pad_to_multiple(example["image"], multiple),
                pad_to_multiple(example["box_channels"], multiple), tf.shape(example["image"])[:2])

    from tqdm.auto import tqdm

    bar = tqdm(total=manifest["splits"]["weak"]["examples"], desc="pseudo-label", unit="slice",
               disable=not progress, dynamic_ncols=True)
    names, total = [], 0
    options = tf.io.TFRecordOptions(compression_type=compression)
    for index, shard in enumerate(weak_shards):
        dataset = tf.data.TFRecordDataset(os.path.join(records_dir, shard), compression_type=compression)
        dataset = dataset.map(prepare).padded_batch(batch_size)
        name = schema.shard_name(PREFIX, index, len(weak_shards))
        temporary = os.path.join(records_dir, name + ".tmp")
        with tf.io.TFRecordWriter(temporary, options) as writer:
            for serialized, images, boxes, sizes in dataset:
                probabilities = predict(images, boxes[..., :1], boxes[..., 1:2]).numpy()
                for k in range(len(serialized)):
                    height, width = sizes[k].numpy()
                    example = tf.train.Example.FromString(serialized[k].numpy())
                    example.features.feature[schema.SOFT_LABEL].bytes_list.value.append(
                        records.quantise_probabilities(probabilities[k, :height, :width]).tobytes())
                    writer.write(example.SerializeToString(deterministic=True))
                    total += 1
                bar.update(len(serialized))
        tf.io.gfile.rename(temporary, os.path.join(records_dir, name), overwrite=True)
        names.append(name)
    bar.close()
    info = {"teacher": path if fs.is_url(path) else os.path.abspath(path), "teacher_sha256": digest,
            "shards": names, "examples": total, "schema_version": schema.SCHEMA_VERSION,
            "quantisation": "uint8, round(p * 255); renormalised per pixel when read"}
    write_json(os.path.join(records_dir, INFO), info)
    return info


def check_available(records_dir: str, teacher_dir: str | None) -> None:
    """Refuse early when a student needs pseudo-labels that neither exist nor can be made."""
    if teacher_dir is None and current(records_dir) is None:
        raise InputError(f"{records_dir}: no pseudo-labels for the weak split; pass --teacher DIR "
                         "(or run o2l pseudo-label) or choose --weak-labels boxes|none")
    if teacher_dir is not None:
        teacher_file(teacher_dir)


def ensure(records_dir: str, teacher_dir: str | None, progress: bool = True, log=print) -> dict:
    """Pseudo-labels made by ``teacher_dir``'s teacher: reuse them if current, else (re)generate them.

    Without ``teacher_dir``, existing pseudo-labels are used as they are; missing ones are an error.
    """
    check_available(records_dir, teacher_dir)
    info = current(records_dir)
    if teacher_dir is None:
        return info
    digest = file_sha256(teacher_file(teacher_dir))
    if info is not None and info["teacher_sha256"] == digest:
        return info
    reason = "missing" if info is None else "made by a different teacher"
    log(f"pseudo-labels {reason}: generating them with {teacher_file(teacher_dir)}")
    return generate(teacher_dir, records_dir, progress=progress)
