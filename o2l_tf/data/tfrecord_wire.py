"""TFRecord files and ``tf.train.Example`` bytes written without TensorFlow.

``o2l build-records`` spends most of its time serializing and compressing; importing TensorFlow alone
costs 3 s per process, so the writer produces the three formats itself and TensorFlow only reads them:
- ``tf.train.Example`` protobuf wire format, map entries sorted by key exactly as TensorFlow's
  ``SerializeToString(deterministic=True)`` orders them (tests compare the bytes);
- TFRecord framing: ``uint64 length, masked crc32c(length), data, masked crc32c(data)``;
- GZIP shards as a sequence of independently deflated chunks, one per record, each ended by a sync
  flush so they concatenate into one valid deflate stream (the scheme of pigz): records are compressed
  once, in parallel workers, and a shard is assembled by copying chunks in any order.
"""

from __future__ import annotations

import functools
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import google_crc32c
import numpy as np
from isal import isal_zlib

INT64, FLOAT, BYTES = "int64", "float", "bytes"
_FEATURE_FIELD = {BYTES: 1, FLOAT: 2, INT64: 3}  # tensorflow/core/example/feature.proto
_CRC_MASK_DELTA = 0xA282EAD8
# A gzip header with no name and a zero timestamp (equal inputs give equal bytes), OS "unknown".
GZIP_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"
_FINAL_EMPTY_BLOCK = b"\x03\x00"  # a fixed-Huffman block with BFINAL set and no symbols


# ----------------------------------------------------------------------------------- protobuf wire format
def _varint(value: int) -> bytes:
    value &= (1 << 64) - 1  # negative int64 values are encoded as their 64-bit two's complement
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _length_delimited(field: int, payload: bytes) -> bytes:
    return _varint(field << 3 | 2) + _varint(len(payload)) + payload


def _feature(kind: str, values: Sequence) -> bytes:
    if kind == BYTES:
        body = b"".join(_length_delimited(1, bytes(v)) for v in values)
    elif kind == FLOAT:
        packed = np.asarray(values, "<f4").tobytes()
        body = _length_delimited(1, packed) if packed else b""
    elif kind == INT64:
        packed = b"".join(_varint(int(v)) for v in values)
        body = _length_delimited(1, packed) if packed else b""
    else:
        raise ValueError(f"feature kind must be one of {INT64}, {FLOAT}, {BYTES}; got {kind!r}")
    return _length_delimited(_FEATURE_FIELD[kind], body)


def _map_key_order(a: bytes, b: bytes) -> int:
    """protobuf's (upb) deterministic map order: bytes compared over the common prefix, then the longer first."""
    common = min(len(a), len(b))
    if a[:common] != b[:common]:
        return -1 if a[:common] < b[:common] else 1
    return len(b) - len(a)


def encode_example(features: dict[str, tuple[str, Sequence]]) -> bytes:
    """``tf.train.Example`` bytes of ``{key: (kind, values)}``, keys in protobuf's deterministic order."""
    keys = sorted((key.encode() for key in features), key=functools.cmp_to_key(_map_key_order))
    entries = b"".join(
        _length_delimited(1, _length_delimited(1, key) + _length_delimited(2, _feature(*features[key.decode()])))
        for key in keys)
    return _length_delimited(1, entries)


# --------------------------------------------------------------------------------------- TFRecord framing
def masked_crc32c(data: bytes) -> int:
    crc = google_crc32c.value(data)
    return (((crc >> 15) | (crc << 17)) + _CRC_MASK_DELTA) & 0xFFFFFFFF


def frame_record(data: bytes) -> bytes:
    """One TFRecord: length, its masked CRC, the data, its masked CRC."""
    length = struct.pack("<Q", len(data))
    return b"".join((length, struct.pack("<I", masked_crc32c(length)), data, struct.pack("<I", masked_crc32c(data))))


# ---------------------------------------------------------------------------------- chunked gzip streams
@dataclass(frozen=True)
class Chunk:
    """Where one record's bytes sit in a work file, and what a shard needs to append them."""

    offset: int
    size: int  # bytes in the work file (deflated, or raw without compression)
    raw_size: int  # framed record bytes before compression
    crc32: int  # zlib CRC-32 of the framed record (gzip's checksum), 0 without compression

    def as_list(self) -> list[int]:
        return [self.offset, self.size, self.raw_size, self.crc32]


def deflate_chunk(data: bytes, level: int) -> bytes:
    """Raw deflate of ``data`` ended by a sync flush: byte-aligned, not final, needs no preceding context."""
    compressor = isal_zlib.compressobj(level, isal_zlib.DEFLATED, -15)
    return compressor.compress(data) + compressor.flush(isal_zlib.Z_SYNC_FLUSH)


class ChunkWriter:
    """Appends framed records to a work file, deflated one by one when ``compressed``."""

    def __init__(self, stream, compressed: bool, level: int):
        self._stream, self._compressed, self._level = stream, compressed, level
        self._offset = 0
        self.chunks: list[Chunk] = []

    def write(self, record: bytes) -> None:
        framed = frame_record(record)
        if self._compressed:
            payload, crc = deflate_chunk(framed, self._level), isal_zlib.crc32(framed)
        else:
            payload, crc = framed, 0
        self._stream.write(payload)
        self.chunks.append(Chunk(self._offset, len(payload), len(framed), crc))
        self._offset += len(payload)


def assemble_shard(out, pieces: Iterable[tuple[bytes, Chunk]], compressed: bool) -> None:
    """Write chunks (in the given order) as one TFRecord file: a gzip stream when ``compressed``."""
    if not compressed:
        for payload, _ in pieces:
            out.write(payload)
        return
    out.write(GZIP_HEADER)
    crc, size = 0, 0
    for payload, chunk in pieces:
        out.write(payload)
        crc = isal_zlib.crc32_combine(crc, chunk.crc32, chunk.raw_size)
        size += chunk.raw_size
    out.write(_FINAL_EMPTY_BLOCK + struct.pack("<II", crc, size & 0xFFFFFFFF))
