"""Copy what an ``o2l reproduce`` folder reports into a results folder that can be committed.

    python docs/results/collect.py REPRODUCE_OUT docs/results/NAME

Copied: the reports (``*.md``, ``*.csv``, ``*.png`` at the top and in ``seed-N/``), each folder's ``plan.json``
and every finished arm's ``result.json`` and ``evaluation.csv``. Not copied: phantoms, records, training runs and
predicted volumes (gigabytes, and rebuilt by the same command).
"""

from __future__ import annotations

import glob
import os
import shutil
import sys

PATTERNS = ("*.md", "*.csv", "*.png", "plan.json", "arms/*/result.json", "arms/*/evaluation.csv")


def collect(source: str, target: str) -> list[str]:
    copied = []
    folders = [source] + sorted(glob.glob(os.path.join(source, "seed-*")))
    for folder in folders:
        for pattern in PATTERNS:
            for path in sorted(glob.glob(os.path.join(folder, pattern))):
                destination = os.path.join(target, os.path.relpath(path, source))
                os.makedirs(os.path.dirname(destination), exist_ok=True)
                shutil.copyfile(path, destination)
                copied.append(destination)
    return copied


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    print(f"{len(collect(sys.argv[1], sys.argv[2]))} files copied to {sys.argv[2]}")
