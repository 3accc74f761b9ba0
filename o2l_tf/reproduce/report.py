"""Reports of ``o2l reproduce``: a markdown table and a CSV per study, the Fig. 10 plot, and the run's provenance."""

from __future__ import annotations

import csv
import io
import os
import platform
import subprocess

from o2l_tf import __version__, machine
from o2l_tf.io_utils import atomic_write_bytes, read_json
from o2l_tf.reproduce.plan import RATIOS, Row, study_rows

TITLES = {
    "table2": "Table II: teacher ablation (pseudo-labels of the held-out test cases given their true boxes)",
    "table1": "Table I / Sec. IV-E: students on the held-out test cases (predict with post-processing, evaluate)",
    "ratios": "Fig. 10: strong:weak ratios (the method; 90:0 is full supervision)",
    "perturbation": "Sec. IV-F: perturbed weak boxes",
}
COLUMNS = ["row", "arm", "liver_dice_global", "liver_dice_per_case", "lesion_dice_global", "lesion_dice_per_case",
           "burden_rmse", "lesion_recall", "lesion_precision", "recall_over_20mm", "recall_10_to_20mm",
           "recall_under_10mm", "false_positives_per_case", "tumour_free_cases", "tumour_free_without_lesion",
           "seconds"]
SIZE_COLUMNS = {"> 20 mm": "recall_over_20mm", "10-20 mm": "recall_10_to_20mm", "< 10 mm": "recall_under_10mm"}
PAPER = ["paper_liver_dice_global", "paper_liver_dice_per_case", "paper_lesion_dice_global",
         "paper_lesion_dice_per_case", "paper_burden_rmse"]


def code_commit() -> str | None:
    """The git commit of the o2l source tree, if it is a checkout."""
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=os.path.dirname(__file__),
                              capture_output=True, text=True, timeout=5).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def environment() -> dict:
    """Versions and hardware, for the report's provenance line."""
    import keras
    import numpy
    import tensorflow as tf

    return {"o2l": __version__, "commit": code_commit(), "python": platform.python_version(), "tensorflow": tf.__version__,
            "keras": keras.__version__, "numpy": numpy.__version__, "platform": platform.platform(), "cpu": machine.cpu()[0],
            "cores": os.cpu_count(), "gpus": len(tf.config.list_physical_devices("GPU"))}


def row_values(row: Row, result: dict) -> dict:
    summary = result["summary"]
    liver, lesion, detection = summary["liver"], summary["lesion"], summary["detection"]
    values = {"row": row.label, "arm": row.arm,
              "liver_dice_global": 100 * liver["dice_global"], "liver_dice_per_case": 100 * liver["dice_per_case"],
              "lesion_dice_global": 100 * lesion["dice_global"], "lesion_dice_per_case": 100 * lesion["dice_per_case"],
              "burden_rmse": summary["tumour_burden"]["rmse"], "lesion_recall": detection["recall"],
              "lesion_precision": detection["precision"], "seconds": result["seconds"],
              "false_positives_per_case": detection["fp"] / max(len(result["cases"]), 1)}
    for name, column in SIZE_COLUMNS.items():
        values[column] = (detection.get("by_size") or {}).get(name, {}).get("recall")
    # LiTS: a tumour-free case scores lesion Dice 1 only when the prediction has no lesion voxel either.
    free = [case for case in result["cases"] if float(case["burden_reference"]) == 0.0]
    values["tumour_free_cases"] = len(free)
    values["tumour_free_without_lesion"] = sum(float(case["burden_prediction"]) == 0.0 for case in free)
    paper = list(row.paper or ()) + [None] * (len(PAPER) - len(row.paper or ()))
    values.update(zip(PAPER, paper))
    return values


def study_values(study: str, results: dict[str, dict]) -> list[dict]:
    return [row_values(row, results[row.arm]) for row in study_rows(study)]


def _fmt(value, digits: int = 1) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def markdown_table(study: str, values: list[dict]) -> str:
    header = ["", "Liver Dice global %", "Liver Dice per case %", "Lesion Dice global %", "Lesion Dice per case %",
              "Burden RMSE", "Lesion recall", "Recall > 20 / 10-20 mm", "FP per case",
              "Paper (LiTS): liver G / PC, lesion G / PC, RMSE", "Time s"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for v in values:
        lines.append("| " + " | ".join([v["row"], _fmt(v["liver_dice_global"]), _fmt(v["liver_dice_per_case"]),
                                        _fmt(v["lesion_dice_global"]), _fmt(v["lesion_dice_per_case"]),
                                        _fmt(v["burden_rmse"], 4), _fmt(v["lesion_recall"], 2),
                                        f"{_fmt(v['recall_over_20mm'], 2)} / {_fmt(v['recall_10_to_20mm'], 2)}",
                                        _fmt(v["false_positives_per_case"], 1), _paper_text(v),
                                        _fmt(v["seconds"], 0)]) + " |")
    return f"### {TITLES[study]}\n\n" + "\n".join(lines)


def _paper_text(values: dict) -> str:
    paper = [values[k] for k in PAPER]
    if all(p is None for p in paper):
        return "–"
    return " / ".join(_fmt(p, 3 if k == "paper_burden_rmse" else 1) for k, p in zip(PAPER, paper) if p is not None)


def values_csv(values: list[dict]) -> bytes:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS + PAPER, lineterminator="\n")
    writer.writeheader()
    for v in values:
        writer.writerow({k: (f"{v[k]:.6g}" if isinstance(v[k], float) else ("" if v[k] is None else v[k]))
                         for k in COLUMNS + PAPER})
    return buffer.getvalue().encode()


def plot_ratios(values: list[dict], path: str) -> None:
    """Fig. 10 on the phantoms: Dice global and per case of liver and lesion against the strong share."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    strong = [s for s, _ in RATIOS]
    figure, axis = plt.subplots(figsize=(6.4, 4.0), dpi=100)
    for key, label, style in (("liver_dice_global", "liver, Dice global", "o-"),
                              ("liver_dice_per_case", "liver, Dice per case", "s--"),
                              ("lesion_dice_global", "lesion, Dice global", "^-"),
                              ("lesion_dice_per_case", "lesion, Dice per case", "v--")):
        axis.plot(strong, [v[key] for v in values], style, label=label)
    axis.set_xticks(strong, [f"{s}:{w}" for s, w in RATIOS])
    axis.set_xlabel("strong : weak cases (%), 10 % validation")
    axis.set_ylabel("Dice %")
    axis.set_ylim(0, 100)
    axis.grid(alpha=0.3)
    axis.legend(loc="best", fontsize=8)
    axis.set_title("o2l on synthetic phantoms (not LiTS)")
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    plt.close(figure)
    atomic_write_bytes(path, buffer.getvalue())


def provenance(command: str, scale: str, seeds: list[int], env: dict, started_at: str | None) -> str:
    commit = env["commit"] or "unknown"
    if started_at and started_at != env["commit"]:
        commit = f"started at {started_at}, reported at {commit}"
    if len(seeds) == 1:
        seed_text = f"seed {seeds[0]} (training phantoms seed {seeds[0]}, held-out test phantoms seed {seeds[0] + 1})"
    else:
        seed_text = (f"seeds {', '.join(map(str, seeds))} (each: training phantoms seed S, held-out test phantoms "
                     f"seed S + 1, never trained on)")
    return (f"Command: `{command}`  \nScale: {scale}, {seed_text}  \no2l {env['o2l']} (commit {commit}), Python "
            f"{env['python']}, TensorFlow {env['tensorflow']}, Keras {env['keras']}, NumPy {env['numpy']}  \n"
            f"Hardware: {env['cpu']}, {env['cores']} cores, {env['gpus']} GPU(s); {env['platform']}")


def write_study(out: str, study: str, results: dict[str, dict], header: str) -> str:
    """``<study>.md`` and ``<study>.csv`` in ``out`` (and ``ratios.png``); returns the study's markdown section."""
    values = study_values(study, results)
    section = markdown_table(study, values)
    if study == "ratios":
        plot_ratios(values, os.path.join(out, "ratios.png"))
        section += "\n\n![Dice against the strong:weak ratio](ratios.png)"
    atomic_write_bytes(os.path.join(out, f"{study}.csv"), values_csv(values))
    atomic_write_bytes(os.path.join(out, f"{study}.md"), f"{header}\n\n{section}\n".encode())
    return section


def write_reports(out: str, studies: list[str], results: dict[str, dict], command: str, scale: str,
                  seed: int) -> str:
    env = environment()
    plan = os.path.join(out, "plan.json")
    started_at = read_json(plan).get("started_at_commit") if os.path.exists(plan) else None
    header = ("# o2l reproduce: synthetic phantom results (not LiTS)\n\n"
              + provenance(command, scale, [seed], env, started_at)
              + "\n\nDice in %, global and per case over the held-out test phantoms; the paper's columns are its "
                "LiTS numbers, for orientation only.")
    sections = [write_study(out, study, results, header) for study in studies]
    report = header + "\n\n" + "\n\n".join(sections) + "\n"
    if len(studies) > 1:
        atomic_write_bytes(os.path.join(out, "report.md"), report.encode())
    return report


# ------------------------------------------------------------------------------------------ several seeds
SEED_SCORES = (("liver_dice_global", "Liver Dice G %", 1), ("liver_dice_per_case", "Liver Dice PC %", 1),
               ("lesion_dice_global", "Lesion Dice G %", 1), ("lesion_dice_per_case", "Lesion Dice PC %", 1),
               ("burden_rmse", "Burden RMSE", 3), ("lesion_recall", "Recall", 2),
               ("recall_over_20mm", "Recall > 20 mm", 2), ("recall_10_to_20mm", "Recall 10-20 mm", 2),
               ("false_positives_per_case", "FP per case", 1))


def _spread(values: list, digits: int) -> str:
    """``mean (seed values)``; the spread over seeds is what makes a difference meaningful or not."""
    known = [v for v in values if v is not None]
    if not known:
        return "–"
    return f"{sum(known) / len(known):.{digits}f} ({', '.join(_fmt(v, digits) for v in values)})"


def seeds_table(study: str, by_seed: dict[int, dict[str, dict]]) -> str:
    per_seed = {seed: study_values(study, results) for seed, results in by_seed.items()}
    rows = study_rows(study)
    header = ["", *(label for _, label, _ in SEED_SCORES), "Tumour-free cases without lesion voxels",
              "Paper (LiTS)"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for index, row in enumerate(rows):
        values = [per_seed[seed][index] for seed in by_seed]
        clean = sum(v["tumour_free_without_lesion"] for v in values)
        free = sum(v["tumour_free_cases"] for v in values)
        cells = [_spread([v[key] for v in values], digits) for key, _, digits in SEED_SCORES]
        lines.append("| " + " | ".join([row.label, *cells, f"{clean} of {free}", _paper_text(values[0])]) + " |")
    return f"### {TITLES[study]}\n\n" + "\n".join(lines)


def write_seed_report(out: str, studies: list[str], by_seed: dict[int, dict[str, dict]], command: str,
                      scale: str) -> str:
    """``out/report.md``: every study over all seeds (mean, then each seed's value in seed order)."""
    env = environment()
    seeds = list(by_seed)
    plans = [os.path.join(out, f"seed-{seed}", "plan.json") for seed in seeds]
    started = {read_json(p).get("started_at_commit") for p in plans if os.path.exists(p)}
    header = ("# o2l reproduce: synthetic phantom results (not LiTS), several seeds\n\n"
              + provenance(command, scale, seeds, env, started.pop() if len(started) == 1 else None)
              + f"\n\nEach cell: the mean over the {len(seeds)} seeds, then each seed's value in the order "
                f"{', '.join(map(str, seeds))}. Dice in %, global (G) and per case (PC) over each seed's held-out "
                f"phantoms; recall is LiTS detection (IoU > 0.5) by lesion diameter; the paper's columns are its "
                f"LiTS numbers, for orientation only. Per-seed reports: "
                + ", ".join(f"[seed {s}](seed-{s}/report.md)" for s in seeds) + ".")
    sections = [seeds_table(study, by_seed) for study in studies]
    report = header + "\n\n" + "\n\n".join(sections) + "\n"
    atomic_write_bytes(os.path.join(out, "report.md"), report.encode())
    return report
