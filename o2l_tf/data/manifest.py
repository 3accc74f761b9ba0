"""The build's ``manifest.json``: found, parsed and checked against this o2l's schema version (no TensorFlow)."""

from __future__ import annotations

import os

from o2l_tf import fs
from o2l_tf.data import schema
from o2l_tf.errors import InputError
from o2l_tf.io_utils import read_json


def load_manifest(records_dir: str) -> dict:
    """The build's manifest; refuses a missing one or one of another schema version."""
    path = os.path.join(records_dir, schema.MANIFEST)
    if not fs.exists(path):
        what = "no such folder" if not fs.exists(records_dir) else f"no {schema.MANIFEST} (not a finished build)"
        raise InputError(f"{records_dir}: {what}")
    try:
        manifest = read_json(path)
    except ValueError as error:
        raise InputError(f"{path}: not valid JSON ({error})") from error
    version = manifest.get("schema_version")
    if version != schema.SCHEMA_VERSION:
        raise InputError(f"{path}: records use schema version {version}, this o2l reads version "
                         f"{schema.SCHEMA_VERSION}; rebuild them with this o2l's build-records")
    return manifest
