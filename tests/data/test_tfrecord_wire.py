"""The TensorFlow-free writer: its bytes against TensorFlow's own serializer and readers."""

from __future__ import annotations

import gzip
import random
import struct

import numpy as np
import pytest
import tensorflow as tf

from o2l_tf.data import tfrecord_wire as wire


def tf_example(features: dict) -> bytes:
    """The same features built and serialized by TensorFlow (the independent computation)."""
    kinds = {
        wire.INT64: lambda v: tf.train.Feature(int64_list=tf.train.Int64List(value=v)),
        wire.FLOAT: lambda v: tf.train.Feature(float_list=tf.train.FloatList(value=v)),
        wire.BYTES: lambda v: tf.train.Feature(bytes_list=tf.train.BytesList(value=v)),
    }
    feature = {key: kinds[kind](list(values)) for key, (kind, values) in features.items()}
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString(deterministic=True)


CASES = {
    "scalars": {"a": (wire.INT64, [1]), "b": (wire.BYTES, [b"abc"]), "c": (wire.FLOAT, [0.25])},
    "extremes": {"neg": (wire.INT64, [-1, -(2 ** 63), 2 ** 63 - 1, 0, 127, 128, 300]),
                 "floats": (wire.FLOAT, [-1e-3, 3.4e38, 1.0 / 3.0])},
    "empty lists": {"i": (wire.INT64, []), "f": (wire.FLOAT, []), "s": (wire.BYTES, []), "e": (wire.BYTES, [b""])},
    "key order": {"z": (wire.INT64, [1]), "A": (wire.INT64, [2]), "aa": (wire.INT64, [3]), "a": (wire.INT64, [4]),
                  "é": (wire.BYTES, [b"x"]), "ab": (wire.INT64, [5]), "b": (wire.INT64, [6]), "": (wire.INT64, [7])},
    "large bytes": {"image": (wire.BYTES, [np.arange(200_000, dtype=np.int16).tobytes()]),
                    "several": (wire.BYTES, [b"one", b"two" * 100])},
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_example_bytes_equal_tensorflow_deterministic_serialization(name):
    assert wire.encode_example(CASES[name]) == tf_example(CASES[name])


def test_unknown_feature_kind_is_refused():
    with pytest.raises(ValueError, match="feature kind"):
        wire.encode_example({"a": ("int32", [1])})


def test_masked_crc32c_of_the_standard_check_value():
    # CRC-32C("123456789") = 0xE3069283 (RFC 3720 B.4); TFRecord's mask: rotate right by 15, add 0xa282ead8.
    crc = 0xE3069283
    assert wire.masked_crc32c(b"123456789") == (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def test_framed_records_are_read_by_tensorflow(tmp_path):
    payloads = [b"", b"x", bytes(range(256)) * 40, wire.encode_example(CASES["scalars"])]
    path = tmp_path / "plain.tfrecord"
    path.write_bytes(b"".join(wire.frame_record(p) for p in payloads))
    assert list(tf.data.TFRecordDataset(str(path)).as_numpy_iterator()) == payloads
    # and they are byte for byte what TensorFlow's own writer produces
    reference = tmp_path / "reference.tfrecord"
    with tf.io.TFRecordWriter(str(reference)) as writer:
        for payload in payloads:
            writer.write(payload)
    assert path.read_bytes() == reference.read_bytes()


def test_a_corrupted_record_fails_tensorflows_checksum(tmp_path):
    framed = bytearray(wire.frame_record(b"some record data"))
    framed[14] ^= 1  # a data byte (after the 8-byte length and its 4-byte CRC)
    path = tmp_path / "bad.tfrecord"
    path.write_bytes(bytes(framed))
    with pytest.raises(tf.errors.DataLossError):
        list(tf.data.TFRecordDataset(str(path)).as_numpy_iterator())


@pytest.mark.parametrize("compressed", [True, False])
def test_shards_assembled_from_chunks_in_any_order(tmp_path, compressed):
    rng = random.Random(0)
    records = [rng.randbytes(rng.randrange(0, 3000)) + bytes(rng.randrange(0, 20000)) for _ in range(40)]
    work = tmp_path / "case.chunks"
    with open(work, "wb") as stream:
        writer = wire.ChunkWriter(stream, compressed=compressed, level=1)
        for record in records:
            writer.write(record)
    blob = work.read_bytes()
    assert sum(c.size for c in writer.chunks) == len(blob)
    order = list(range(len(records)))
    rng.shuffle(order)
    shard = tmp_path / "shard.tfrecord"
    with open(shard, "wb") as out:
        wire.assemble_shard(out, ((blob[c.offset:c.offset + c.size], c) for c in (writer.chunks[i] for i in order)),
                            compressed=compressed)
    expected = [records[i] for i in order]
    read = tf.data.TFRecordDataset(str(shard), compression_type="GZIP" if compressed else "")
    assert list(read.as_numpy_iterator()) == expected
    framed = b"".join(wire.frame_record(r) for r in expected)
    if compressed:
        assert gzip.decompress(shard.read_bytes()) == framed  # Python checks the combined CRC-32 and size
        assert len(shard.read_bytes()) < len(framed) / 2  # the zero runs did compress
    else:
        assert shard.read_bytes() == framed


def test_an_empty_gzip_shard_is_valid(tmp_path):
    shard = tmp_path / "empty.tfrecord"
    with open(shard, "wb") as out:
        wire.assemble_shard(out, [], compressed=True)
    assert gzip.decompress(shard.read_bytes()) == b""
    assert list(tf.data.TFRecordDataset(str(shard), compression_type="GZIP").as_numpy_iterator()) == []
    header = shard.read_bytes()[:10]
    assert header[:3] == b"\x1f\x8b\x08" and struct.unpack("<I", header[4:8])[0] == 0  # gzip, no timestamp
