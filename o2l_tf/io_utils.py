"""Small file helpers shared by every command: atomic writes, JSON files and reproducible gzip."""

from __future__ import annotations

import gzip
import json
import os
import tempfile

from o2l_tf import fs


def atomic_write_bytes(path: str, data: bytes) -> None:
    """Write ``data`` to ``path`` under a temporary name in the same folder, then rename.

    A killed process leaves at most a ``.tmp`` file, never a truncated file under the final name.
    """
    folder = os.path.dirname(os.path.abspath(path))
    handle, temporary = tempfile.mkstemp(prefix=os.path.basename(path) + ".", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
        os.chmod(temporary, 0o666 & ~_umask())
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise


def reproducible_gzip(data: bytes, level: int = 1) -> bytes:
    """Gzip with a zero timestamp and no file name, so equal inputs give byte-identical files."""
    return gzip.compress(data, compresslevel=level, mtime=0)


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


def write_json(path: str, record) -> None:
    """Write JSON atomically (temporary name, then rename) on local disk or any TensorFlow file system (gs://...).

    Keys are sorted so that equal records give equal bytes.
    """
    temporary = path + ".tmp"
    with fs.open_file(temporary, "w") as stream:
        stream.write(json.dumps(record, indent=1, sort_keys=True))
    fs.rename(temporary, path)


def read_json(path: str):
    """Read JSON from local disk or any TensorFlow file system."""
    with fs.open_file(path, "r") as stream:
        return json.loads(stream.read())
