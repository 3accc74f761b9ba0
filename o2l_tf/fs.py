"""File operations on local paths with the standard library, and on URLs (``gs://...``) with TensorFlow's gfile.

Only a URL imports TensorFlow, so commands that touch local files alone (``o2l build-records``, its
worker processes) never pay TensorFlow's 3 s import.
"""

from __future__ import annotations

import os
import shutil


def is_url(path: str) -> bool:
    return "://" in path


def _gfile():
    import tensorflow as tf

    return tf.io.gfile


def open_file(path: str, mode: str = "rb"):
    return _gfile().GFile(path, mode) if is_url(path) else open(path, mode)


def exists(path: str) -> bool:
    return _gfile().exists(path) if is_url(path) else os.path.exists(path)


def isdir(path: str) -> bool:
    return _gfile().isdir(path) if is_url(path) else os.path.isdir(path)


def listdir(path: str) -> list[str]:
    """Entry names, without the trailing ``/`` some file systems add to folders."""
    names = _gfile().listdir(path) if is_url(path) else os.listdir(path)
    return [name.rstrip("/") for name in names]


def makedirs(path: str) -> None:
    _gfile().makedirs(path) if is_url(path) else os.makedirs(path, exist_ok=True)


def remove(path: str) -> None:
    _gfile().remove(path) if is_url(path) else os.remove(path)


def rmtree(path: str) -> None:
    _gfile().rmtree(path) if is_url(path) else shutil.rmtree(path)


def rename(source: str, target: str) -> None:
    """Rename, replacing ``target``; atomic on local disks."""
    _gfile().rename(source, target, overwrite=True) if is_url(source) else os.replace(source, target)
