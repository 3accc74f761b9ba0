"""``o2l reproduce``: the paper's experiments (Tables I and II, Fig. 10, Sec. IV-F) on synthetic phantoms."""

from __future__ import annotations

from o2l_tf.reproduce.plan import SCALES, STUDIES


def reproduce(out: str, study: str, scale: str = "small", seed: int = 0, progress: bool = True, log=print) -> str:
    """Train (or resume) every arm the studies need, score them on the test phantoms, write the reports."""
    from o2l_tf.errors import InputError
    from o2l_tf.reproduce.report import write_reports
    from o2l_tf.reproduce.runner import Reproduction

    if study != "all" and study not in STUDIES:
        raise InputError(f"--study must be one of {', '.join(STUDIES)} or all, got {study!r}")
    studies = list(STUDIES) if study == "all" else [study]
    reproduction = Reproduction(out, scale, seed, progress, log)
    results = reproduction.run(studies)
    command = f"o2l reproduce --study {study} --scale {scale} --seed {seed} --out {out}"
    report = write_reports(out, studies, results, command, scale, seed)
    reproduction.stage("done: " + ", ".join(f"{out}/{s}.md" for s in studies)
                       + (f", {out}/report.md" if len(studies) > 1 else ""))
    return report


__all__ = ["SCALES", "STUDIES", "reproduce"]
