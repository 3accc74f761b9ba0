"""The records-building step as the workflows (``o2l demo``, ``o2l reproduce``) take it: a function, given.

The builder (``tfrecords_builder``) stands on this library; the library never imports it. Workflows that turn
phantom cohorts into records therefore receive the step as a ``RecordsBuilder``; the command line passes
``tfrecords_builder.build.build_phantom_records`` (installed as ``o2l_tfrecords_builder``).
"""

from __future__ import annotations

from typing import Protocol


class RecordsBuilder(Protocol):
    def __call__(self, data: str, out: str, split: tuple[int, int, int], seed: int = 0,
                 perturb_boxes: bool = False, workers: int = 1, progress: bool = True, spacing="auto") -> dict:
        """Build the records of the cohort folder ``data`` into ``out`` (replacing an earlier build there);
        ``spacing``: ``auto``, ``native`` or (x, y) mm, as ``o2l build-records --spacing``."""
