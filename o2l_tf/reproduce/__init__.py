"""``o2l reproduce``: the paper's experiments (Tables I and II, Fig. 10, Sec. IV-F) on synthetic phantoms."""

from __future__ import annotations

import os

from o2l_tf.reproduce.plan import SCALES, STUDIES


def reproduce(out: str, study: str, build_records, scale: str = "small", seed: int = 0, progress: bool = True,
              log=print, seeds: list[int] | None = None) -> str:
    """Train (or resume) every arm the studies need, score them on the test phantoms, write the reports.

    ``build_records``: the records step (``tfrecords_builder.build.build_phantom_records``; see
    ``o2l_tf.data.records_builder``).

    ``seeds``: several independent repetitions (each its own training and held-out cohort, in ``out/seed-N``),
    then ``out/report.md`` with every score as the mean over seeds and each seed's value.
    """
    from o2l_tf.errors import InputError
    from o2l_tf.reproduce.report import write_reports, write_seed_report
    from o2l_tf.reproduce.runner import Reproduction, finished_results

    if study != "all" and study not in STUDIES:
        raise InputError(f"--study must be one of {', '.join(STUDIES)} or all, got {study!r}")
    studies = list(STUDIES) if study == "all" else [study]
    if seeds:
        if len(set(seeds)) != len(seeds) or any(abs(a - b) == 1 for a in seeds for b in seeds):
            raise InputError(f"--seeds must be distinct and not adjacent (seed S's test phantoms use seed S + 1), "
                             f"got {', '.join(map(str, seeds))}")
        by_seed = {}
        for each in seeds:
            folder = os.path.join(out, f"seed-{each}")
            reproduction = Reproduction(folder, scale, build_records, each, progress, log)
            ran = reproduction.run(studies)
            by_seed[each] = {**finished_results(folder), **ran}
        # The reports cover every study finished in the folder, not only this call's: studies run one by one
        # (so that a stopped session leaves whole studies) still add up to one report.
        reported = [s for s in STUDIES if s in studies or all(_complete(s, results) for results in by_seed.values())]
        for each in seeds:
            write_reports(os.path.join(out, f"seed-{each}"), reported, by_seed[each],
                          f"o2l reproduce --study {study} --scale {scale} --seed {each} --out {out}/seed-{each}",
                          scale, each)
        command = f"o2l reproduce --study {study} --scale {scale} --seeds {' '.join(map(str, seeds))} --out {out}"
        report = write_seed_report(out, reported, by_seed, command, scale)
        log(f"done: {out}/report.md")
        return report
    reproduction = Reproduction(out, scale, build_records, seed, progress, log)
    results = reproduction.run(studies)
    command = f"o2l reproduce --study {study} --scale {scale} --seed {seed} --out {out}"
    report = write_reports(out, studies, results, command, scale, seed)
    reproduction.stage("done: " + ", ".join(f"{out}/{s}.md" for s in studies)
                       + (f", {out}/report.md" if len(studies) > 1 else ""))
    return report


def _complete(study: str, results: dict) -> bool:
    from o2l_tf.reproduce.plan import study_rows

    return all(row.arm in results for row in study_rows(study))


__all__ = ["SCALES", "STUDIES", "reproduce"]
