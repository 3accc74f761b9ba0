"""``make bench``: o2l's speed and memory against this machine's own limits, as ratios measured in one run.

Writes ``benchmarks/results/latest.json`` and ``latest.md``. Every figure is the median of several runs after a
warm-up, with min and max. FLOPs are analytic (o2l_tf/models/flops.py: 2 x multiply-adds of every convolution);
a training step counts 3 x the forward FLOPs (forward, input gradients, weight gradients).

Sections: 1 matmul peak (fp32, bf16); 2 training throughput of teacher and student through ``o2l_tf.training.run
.train`` (the real fit loop, data pipeline, checkpoints), paper size and demo size, float32 and mixed_bfloat16
(steady state), and the network's inference; 3 the same backbone in PyTorch (benchmarks/torch_unet.py, skipped when torch is
absent); 4 input pipeline alone; 5 ``o2l predict`` end to end on 512 x 512 phantoms of 100/200/400 slices with the
demo student section 2 trained, in child processes (peak RSS from GNU time), and of 200/400 slices with the model
declaring 0.75x the volume's pixel size, so every batch is resampled in-plane and back; 6 ``o2l build-records`` against a
plain nibabel read; 7 ``o2l evaluate`` on a 512 x 512 x 200 case.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
RESULTS = os.path.join(HERE, "results")
GIB = 1 << 30


def stats(values: list[float]) -> dict:
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "runs": len(values)}


def repeat(function, runs: int, warmup: int = 1) -> list[float]:
    """Seconds of ``runs`` calls after ``warmup`` untimed ones."""
    for _ in range(warmup):
        function()
    seconds = []
    for _ in range(runs):
        started = time.perf_counter()
        function()
        seconds.append(time.perf_counter() - started)
    return seconds


def child(args: list[str]) -> tuple[float, float]:
    """Run a command; (seconds, its peak RSS in GiB).

    The RSS comes from GNU time's %M: a child forked from this (large) process would report this process's RSS
    at fork time as its own maximum (Linux keeps the high-water mark across exec), so the measured command is
    started by /usr/bin/time, a small process.
    """
    with tempfile.NamedTemporaryFile("r", suffix=".rss") as report:
        started = time.perf_counter()
        done = subprocess.run(["/usr/bin/time", "-f", "%M", "-o", report.name, *args], stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE)
        seconds = time.perf_counter() - started
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(args)} failed: {done.stderr.decode()[-2000:]}")
        kib = int(report.read().strip().splitlines()[-1])
    return seconds, kib * 1024 / GIB


# --------------------------------------------------------------------------------------------------- 1. peak
def matmul_peak(dtype: str, size: int = 2048, runs: int = 5) -> dict:
    import tensorflow as tf

    a = tf.random.normal((size, size), dtype=tf.float32)
    b = tf.random.normal((size, size), dtype=tf.float32)
    a, b = tf.cast(a, dtype), tf.cast(b, dtype)
    chain = 8
    scale = tf.cast(1.0 / np.sqrt(size), dtype)

    @tf.function
    def work(x, y):
        for _ in range(chain):  # each product feeds the next: nothing to fold or deduplicate
            x = tf.matmul(x, y) * scale
        return tf.reduce_sum(tf.cast(x, tf.float32))

    seconds = repeat(lambda: work(a, b).numpy(), runs, warmup=2)
    flops = 2 * size ** 3 * chain
    return {"dtype": dtype, "size": size, "gflops": stats([flops / s / 1e9 for s in seconds])}


# ------------------------------------------------------------------------------------------------ cohorts
def synth(out: str, cases: int, size: int, slices: tuple[int, int], seed: int = 0) -> str:
    from o2l_tf.synth.cohort import CohortSpec, write_cohort

    if not os.path.exists(os.path.join(out, "phantoms.json")):
        write_cohort(out, CohortSpec(cases, size, slices, seed=seed), workers=min(2, cases), overwrite=True,
                     progress=False)
    return out


def records(work: str, name: str, size: int, cases: int = 3, slices=(16, 20), split=(100, 0, 0)) -> str:
    from o2l_tfrecords_builder.build import BuildConfig, build_records

    phantoms = synth(os.path.join(work, f"phantoms-{name}"), cases, size, slices)
    out = os.path.join(work, f"records-{name}")
    build_records(BuildConfig(data=phantoms, split=split), out, workers=2, overwrite=True, progress=False)
    return out


# --------------------------------------------------------------------------------------------- 2. training
DEMO_TRAINING_CASES = 36  # make demo's strong + weak cases (40 phantoms split 30:60:10)
SIZES = {  # name: (preset, records, per-epoch examples per case)
    "paper": ("paper", "paper", 6),  # 320 x 320 crops, batch 2, 32 base filters
    "demo": ("demo", "demo", 24),  # the demo preset: 96 x 96 crops, batch 4, 16 base filters
}


def training(work: str, role: str, size: str, precision: str, epochs: int, peaks: dict) -> dict:
    from o2l_tf.configs.run import apply_overrides, preset
    from o2l_tf.models import flops
    from o2l_tf.training.run import train

    preset_name, records_name, per_case = SIZES[size]
    config = apply_overrides(preset(preset_name, role), [
        f"train.epochs={epochs}", f"train.precision={precision}", "train.images_every=100000",
        f"data.examples_per_case={per_case}", "train.weak_labels=none"])
    records_dir = os.path.join(work, f"records-{records_name}")
    run_dir = os.path.join(work, "runs", f"{role}-{size}-{precision}")
    shutil.rmtree(run_dir, ignore_errors=True)  # a finished run with the same config would resume, not train
    run = train(config, records_dir, run_dir, overwrite=True,
                progress=False, log=lambda *_: None)
    examples = run["steps_per_epoch"] * config.data.batch_size
    epoch_rates = [examples / s for s in run["epoch_seconds"][1:]]  # epoch 1 traces and warms up
    # Steady state: steps of an epoch after its first, as in a paper-size epoch of hundreds of steps; the
    # bench's epochs are short (3 cases), so their start-up would weigh ~10x more than in real training.
    rates = [steps * config.data.batch_size for steps in run["steady_steps_per_second"][1:]]
    crop = config.data.crop_size
    forward = (flops.teacher_flops(config.model, crop, crop) if role == "teacher"
               else flops.student_flops(config.model, crop, crop, with_branch=True))
    gflops = [3 * forward * r / 1e9 for r in rates]
    peak = peaks["bfloat16" if precision == "mixed_bfloat16" else "float32"]["gflops"]["median"]
    return {"role": role, "size": size, "precision": precision, "crop": crop, "batch": config.data.batch_size,
            "base_filters": config.model.base_filters, "images_per_s": stats(rates), "gflops": stats(gflops),
            "epoch_images_per_s": stats(epoch_rates), "steps_per_epoch": run["steps_per_epoch"],
            "fraction_of_peak": statistics.median(gflops) / peak, "forward_gflop_per_image": forward / 1e9}


# -------------------------------------------------------------------------------------------- inference
def inference(base_filters: int, precision: str, peaks: dict, batch: int = 4, size: int = 512, runs: int = 5) -> dict:
    import keras

    from o2l_tf.configs.model import ModelConfig
    from o2l_tf.inference.loading import InferenceModel, in_precision
    from o2l_tf.inference.volume import SlicePredictor
    from o2l_tf.models import UNetBackbone, flops

    config = ModelConfig(base_filters=base_filters)
    keras.config.set_dtype_policy("float32")  # in_precision converts; the network is built in float32
    keras.utils.set_random_seed(0)
    network = in_precision(UNetBackbone(config), "bfloat16" if precision == "mixed_bfloat16" else "float32")
    predictor = SlicePredictor(InferenceModel(network, "student", (-200.0, 250.0), 16, "<bench>"))
    hu = np.random.default_rng(0).uniform(-200, 250, (batch, size, size, 3)).astype(np.float32)
    seconds = repeat(lambda: predictor(hu), runs, warmup=2)
    rates = [batch / s for s in seconds]
    forward = flops.backbone_flops(config, size, size)
    gflops = [forward * r / 1e9 for r in rates]
    peak = peaks["bfloat16" if precision == "mixed_bfloat16" else "float32"]["gflops"]["median"]
    return {"base_filters": base_filters, "precision": precision, "batch": batch, "size": size,
            "slices_per_s": stats(rates), "gflops": stats(gflops), "fraction_of_peak": statistics.median(gflops) / peak}


# ---------------------------------------------------------------------------------------- input pipeline
def input_pipeline(work: str, size: str, batches: int = 200, runs: int = 3) -> dict:
    """Records -> augmented batches, as training reads them: start-up (shuffle buffer fill) and steady rate."""
    from o2l_tf.configs.run import apply_overrides, preset
    from o2l_tf.data import pipeline
    from o2l_tf.data import records as rec
    from o2l_tf.training.run import _sources

    preset_name, records_name, per_case = SIZES[size]
    config = apply_overrides(preset(preset_name, "student"),
                             [f"data.examples_per_case={per_case}", "train.weak_labels=none"])
    records_dir = os.path.join(work, f"records-{records_name}")
    sources, _ = _sources(config, records_dir, rec.load_manifest(records_dir), None, False, print)
    startups, rates = [], []
    for epoch in range(runs + 1):  # a new seed per run, as each training epoch has; the first run warms up
        data = iter(pipeline.training_dataset(sources, config.data, "student", True, batches + 1, epoch, 0))
        started = time.perf_counter()
        next(data)
        first = time.perf_counter()
        for _ in range(batches):
            next(data)
        if epoch:
            startups.append(first - started)
            rates.append(batches * config.data.batch_size / (time.perf_counter() - first))
    return {"size": size, "crop": config.data.crop_size, "batch": config.data.batch_size,
            "shuffle_buffer": config.data.shuffle_buffer, "examples_per_s": stats(rates),
            "startup_s": stats(startups)}


def mixed_epochs(work: str, runs: int = 3) -> dict:
    """The mixed student's input as the demo trains it: epochs of the demo's steps (27) drawn from four streams
    (strong and weak, each with its lesion-slice stream), every epoch's streams built afresh (start-up included)."""
    from o2l_tf.configs.run import apply_overrides, preset
    from o2l_tf.data import pipeline
    from o2l_tf.data import records as rec
    from o2l_tf.training.run import _sources

    records_dir = records(work, "mixed", 192, cases=6, slices=(48, 56), split=(34, 66, 0))
    # box-partition weak targets: no teacher needed; the demo's pseudo-label examples carry soft labels as well
    config = apply_overrides(preset("demo", "student"), ["train.weak_labels=boxes"])
    sources, _ = _sources(config, records_dir, rec.load_manifest(records_dir), None, False, print)
    steps = math.ceil(DEMO_TRAINING_CASES * config.data.examples_per_case / config.data.batch_size)  # as train()
    # one dataset for every epoch, as fit reads it; each epoch's batches timed from the end of the one before
    data = iter(pipeline.training_dataset(sources, config.data, "student", True, steps, 0, 0, end_epoch=runs + 1))
    rates = []
    for epoch in range(runs + 1):  # the first epoch warms up
        started = time.perf_counter()
        for _ in range(steps):
            next(data)
        if epoch:
            rates.append(steps * config.data.batch_size / (time.perf_counter() - started))
    return {"streams": sum(len(pipeline._source_streams(s, config.data, 0)) for s in sources), "steps": steps,
            "crop": config.data.crop_size, "shuffle_buffer": config.data.shuffle_buffer, "examples_per_s": stats(rates)}


# ---------------------------------------------------------------------------------------------- predict
def long_volume(source_dir: str, out_dir: str, slices: int) -> tuple[str, float]:
    """A 512 x 512 phantom volume of ``slices`` slices (the phantom mirrored along z as often as needed)."""
    import nibabel as nib

    image = nib.load(os.path.join(source_dir, "volume-0.nii.gz"))
    data = np.asarray(image.dataobj)
    reps = [data, data[:, :, ::-1]] * (slices // (2 * data.shape[2]) + 1)
    volume = np.concatenate(reps, axis=2)[:, :, :slices]
    path = os.path.join(out_dir, f"volume-{slices}.nii.gz")
    nib.save(nib.Nifti1Image(volume, image.affine, image.header), path)
    return path, volume.nbytes / GIB


def predict_model(work: str) -> str:
    """The demo-size student (16 base filters) section 2 trained (4 short epochs, float32), as training exports it.

    A trained model predicts a compact liver, as in real use; random weights (the fallback, when section 2 did
    not run) scatter labels into tens of thousands of components and so inflate post-processing's memory.
    """
    import keras

    from o2l_tf.configs.run import preset
    from o2l_tf.training.run import build_model

    trained = os.path.join(work, "runs", "student-demo-float32", "student.keras")
    if os.path.exists(trained):
        return trained
    path = os.path.join(work, "predict-model", "student.keras")
    if not os.path.exists(path):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        keras.utils.set_random_seed(0)
        build_model(preset("demo", "student")).inference_model().save(path)
    return path


RESAMPLED_FACTOR = 0.75  # the resampled rows: a model trained at 0.75x the volume's pixel (a 683-px network grid)


def resampled_model(work: str, model: str, volume: str) -> str:
    """The same network in a run folder whose export.json names an in-plane spacing of ``RESAMPLED_FACTOR`` times
    the volume's, so o2l predict resamples every batch to it and back (the worst case: a finer network grid)."""
    import nibabel as nib

    folder = os.path.join(work, "predict-model-resampled")
    os.makedirs(folder, exist_ok=True)
    shutil.copy(model, os.path.join(folder, "student.keras"))
    zooms = nib.load(volume).header.get_zooms()
    with open(os.path.join(folder, "export.json"), "w") as stream:
        json.dump({"hu_window": [-200.0, 250.0], "spacing_mm": [float(zooms[0]) * RESAMPLED_FACTOR,
                                                                 float(zooms[1]) * RESAMPLED_FACTOR]}, stream)
    return folder


def predict_bench(work: str, o2l: str, runs: int) -> dict:
    source = synth(os.path.join(work, "phantoms-512"), 1, 512, (100, 100))
    model = predict_model(work)
    results = {}
    rows = [(100, 1, False), (200, runs, False), (400, 1, False), (200, 1, True), (400, 1, True)]
    for slices, repeats, resampled in rows:
        folder = os.path.join(work, f"predict-{slices}")
        os.makedirs(folder, exist_ok=True)
        path, gib = long_volume(source, folder, slices)
        chosen = resampled_model(work, model, path) if resampled else model
        warmup = slices == 200 and not resampled  # 200 slices: one warm-up run, then ``runs``
        measures = []
        for k in range(repeats + (1 if warmup else 0)):
            out = os.path.join(work, f"predictions-{slices}-{k}{'-resampled' if resampled else ''}")
            shutil.rmtree(out, ignore_errors=True)
            measures.append(child([o2l, "predict", "--model", chosen, path, "-o", out, "--quiet"]))
        kept = measures[1:] if warmup else measures
        results[f"{slices}-resampled" if resampled else slices] = {
            "seconds": stats([s for s, _ in kept]), "slices_per_s": stats([slices / s for s, _ in kept]),
            "peak_rss_gib": stats([r for _, r in kept]), "volume_gib": gib, "slices": slices,
            "resampled_to": RESAMPLED_FACTOR if resampled else None}
    return results


def model_only_rss(o2l_python: str, model: str) -> float:
    """TensorFlow plus the model as o2l predict loads it (default precision) after one 512² batch."""
    code = ("import os; os.environ['TF_CPP_MIN_LOG_LEVEL']='2'\n"
            "from o2l_tf.inference.loading import load_inference_model\n"
            "from o2l_tf.inference.volume import SlicePredictor\nimport numpy as np\n"
            f"m = load_inference_model({model!r}, precision='auto'); p = SlicePredictor(m)\n"
            "p(np.zeros((4, 512, 512, 3), np.float32))\n")
    return child([o2l_python, "-c", code])[1]


# ---------------------------------------------------------------------------------------- build-records
def build_records_bench(work: str, o2l: str, python: str, runs: int) -> dict:
    source = synth(os.path.join(work, "phantoms-build"), 4, 512, (60, 80), seed=3)
    files = sorted(os.path.join(source, n) for n in os.listdir(source) if n.endswith(".nii.gz"))
    read = ("import sys, numpy as np, nibabel as nib\n"
            "for path in sys.argv[1:]:\n    np.asarray(nib.load(path).dataobj)\n")
    nibabel = [child([python, "-c", read, *files]) for _ in range(runs)]
    build = []
    for k in range(runs):
        out = os.path.join(work, f"built-{k}")
        shutil.rmtree(out, ignore_errors=True)  # a fresh build each time (an existing one would be reused)
        build.append(child([o2l, "build-records", "--data", source, "--out", out, "--split", "50:50:0", "--quiet"]))
    import nibabel as nib

    voxels = sum(int(np.prod(nib.load(p).shape)) for p in files if "volume-" in p)
    slices = sum(nib.load(p).shape[2] for p in files if "volume-" in p)
    megabytes = sum(int(np.prod(nib.load(p).shape)) * nib.load(p).get_data_dtype().itemsize for p in files) / 1e6
    return {"cases": 4, "slices": slices, "voxels": voxels, "megabytes_decoded": megabytes,
            "build": {"seconds": stats([s for s, _ in build]), "mb_per_s": stats([megabytes / s for s, _ in build]),
                      "slices_per_s": stats([slices / s for s, _ in build]),
                      "peak_rss_gib": stats([r for _, r in build])},
            "nibabel_read": {"seconds": stats([s for s, _ in nibabel]),
                             "mb_per_s": stats([megabytes / s for s, _ in nibabel])}}


# ------------------------------------------------------------------------------------------------ evaluate
def evaluate_bench(work: str, runs: int) -> dict:
    import nibabel as nib

    from o2l_tf.metrics.evaluation import evaluate_case

    source = synth(os.path.join(work, "phantoms-512"), 1, 512, (100, 100))
    folder = os.path.join(work, "evaluate")
    os.makedirs(folder, exist_ok=True)
    label = nib.load(os.path.join(source, "segmentation-0.nii.gz"))
    data = np.asarray(label.dataobj)
    reference = np.concatenate([data, data[:, :, ::-1]], axis=2)
    prediction = np.roll(reference, (2, -2, 1), axis=(0, 1, 2))  # a good prediction, 1-2 voxels off
    paths = {}
    for name, array in (("reference", reference), ("prediction", prediction)):
        paths[name] = os.path.join(folder, f"{name}.nii.gz")
        nib.save(nib.Nifti1Image(array.astype(np.uint8), label.affine), paths[name])
    seconds = repeat(lambda: evaluate_case("0", paths["prediction"], paths["reference"]), runs, warmup=1)
    return {"shape": list(reference.shape), "case": "phantom truth vs the truth shifted by (2, -2, 1) voxels",
            "seconds": stats(seconds)}


# ------------------------------------------------------------------------------------------------ PyTorch
def pytorch_section(runs: int) -> dict:
    """benchmarks/torch_unet.py in a child process (its own thread pool); skipped when torch is absent."""
    import importlib.util

    if importlib.util.find_spec("torch") is None:
        return {"skipped": "torch is not installed (.venv/bin/pip install -e '.[bench]'; optional)"}
    done = subprocess.run([sys.executable, os.path.join(HERE, "torch_unet.py"), "--runs", str(runs)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        return {"skipped": f"torch_unet.py failed: {done.stderr.strip().splitlines()[-1:]}"}
    from o2l_tf.configs.model import ModelConfig
    from o2l_tf.models import flops

    measured = json.loads(done.stdout.strip().splitlines()[-1])
    for row in measured["training"]:  # the backbone's analytic FLOPs, 3 x forward per training image
        row["gflops"] = 3 * flops.backbone_flops(ModelConfig(), row["size"], row["size"]) * \
            row["images_per_s"]["median"] / 1e9
    return measured


def training_row(result: dict, role: str, size: str, precision: str) -> dict:
    return next(t for t in result["training"] if (t["role"], t["size"], t["precision"]) == (role, size, precision))


def inference_row(result: dict, base_filters: int, precision: str) -> dict:
    return next(i for i in result["inference"] if (i["base_filters"], i["precision"]) == (base_filters, precision))


def pytorch_ratios(result: dict) -> dict:
    """o2l over PyTorch, per precision: training as GFLOP/s (o2l's student also runs its localization branch,
    the PyTorch backbone does not), inference as slices/s of the same backbone on the same 512² batch."""
    torch_result = result["pytorch"]
    if "skipped" in torch_result:
        return {}
    ratios = {}
    for mine, theirs in (("float32", "float32"), ("mixed_bfloat16", "bfloat16")):
        ours = training_row(result, "student", "paper", mine)
        other = next(t for t in torch_result["training"] if t["precision"] == theirs)
        ratios[f"training_{theirs}"] = ours["gflops"]["median"] / other["gflops"]
        ours = inference_row(result, 32, mine)
        other = next(i for i in torch_result["inference"] if i["precision"] == theirs)
        ratios[f"inference_{theirs}"] = ours["slices_per_s"]["median"] / other["slices_per_s"]["median"]
    return ratios


# ------------------------------------------------------------------------------------------------ report
def environment() -> dict:
    import keras
    import tensorflow as tf

    from o2l_tf import machine

    return {"cpu": machine.cpu()[0], "cores": os.cpu_count(), "avx512_bf16": "avx512_bf16" in machine.cpu()[1],
            "amx": "amx_bf16" in machine.cpu()[1], "python": platform.python_version(),
            "tensorflow": tf.__version__, "keras": keras.__version__,
            "gpus": len(tf.config.list_physical_devices("GPU")), "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}


def _s(value: dict, digits: int = 1, scale: float = 1.0) -> str:
    return (f"{value['median'] * scale:.{digits}f} ({value['min'] * scale:.{digits}f}-"
            f"{value['max'] * scale:.{digits}f})")


def markdown(result: dict) -> str:
    env = result["environment"]
    lines = [f"Hardware: {env['cpu']}, {env['cores']} cores, AVX512-BF16 {env['avx512_bf16']}, GPUs {env['gpus']}; "
             f"TensorFlow {env['tensorflow']}, Keras {env['keras']}, Python {env['python']}; {env['date']}.",
             "Figures: median (min-max) of the timed runs after a warm-up.", "",
             "| Measure | Value | Target | Met |", "|---|---|---|---|"]
    peaks = result["peak"]
    for dtype, peak in peaks.items():
        lines.append(f"| matmul peak {dtype} | {_s(peak['gflops'], 0)} GFLOP/s | – | – |")
    for t in result["training"]:
        target = "≥ 80 % of fp32 peak" if t["precision"] == "float32" and t["size"] == "paper" and t["role"] == "student" else "–"
        met = "–" if target == "–" else ("yes" if t["fraction_of_peak"] >= 0.8 else "no")
        lines.append(f"| train {t['role']} {t['size']} ({t['crop']} px, batch {t['batch']}, base {t['base_filters']}) "
                     f"{t['precision']} | {_s(t['images_per_s'], 2)} img/s, {_s(t['gflops'], 0)} GFLOP/s, "
                     f"{100 * t['fraction_of_peak']:.0f} % of peak (whole {t['steps_per_epoch']}-step epochs: "
                     f"{_s(t['epoch_images_per_s'], 2)} img/s) | {target} | {met} |")
    for key, ratio in result["ratios"].items():
        target = result["targets"].get(key)
        met = "–" if target is None else ("yes" if ratio >= target else "no")
        lines.append(f"| {key.replace('_', ' ')} | {ratio:.2f}× | {'≥ %.1f×' % target if target else '–'} | {met} |")
    for i in result["inference"]:
        target = "≥ 90 % of fp32 peak" if i["precision"] == "float32" and i["base_filters"] == 32 else "–"
        met = "–" if target == "–" else ("yes" if i["fraction_of_peak"] >= 0.9 else "no")
        lines.append(f"| inference base {i['base_filters']} {i['precision']} ({i['size']}², batch {i['batch']}) | "
                     f"{_s(i['slices_per_s'], 2)} slices/s, {_s(i['gflops'], 0)} GFLOP/s, "
                     f"{100 * i['fraction_of_peak']:.0f} % of peak | {target} | {met} |")
    for p in result["input_pipeline"]:
        consumed = p["training_consumption"]
        ratio = p["examples_per_s"]["median"] / consumed
        lines.append(f"| input pipeline {p['size']} ({p['crop']} px) | {_s(p['examples_per_s'])} ex/s = {ratio:.0f}× "
                     f"the fastest training's {consumed:.1f} ex/s; {_s(p['startup_s'])} s start-up per epoch "
                     f"(shuffle buffer of {p['shuffle_buffer']}) | ≥ 10× | {'yes' if ratio >= 10 else 'no'} |")
    mixed = result.get("mixed_epochs")
    if mixed:
        consumed = max(training_row(result, "student", "demo", p)["images_per_s"]["median"]
                       for p in ("float32", "mixed_bfloat16"))
        ratio = mixed["examples_per_s"]["median"] / consumed
        lines.append(f"| input pipeline, the demo student's epochs ({mixed['steps']} steps from {mixed['streams']} "
                     f"streams, start-up included, shuffle buffers of {mixed['shuffle_buffer']}) | "
                     f"{_s(mixed['examples_per_s'])} ex/s = {ratio:.1f}× the demo student's {consumed:.1f} ex/s | ≥ 2× | "
                     f"{'yes' if ratio >= 2 else 'no'} |")
    predict = result["predict"]
    model_rss = result["predict_model_rss_gib"]
    for key, p in predict.items():
        budget = 4 * p["volume_gib"] + model_rss
        slices = p.get("slices", key)
        how = f", resampled in-plane to {p['resampled_to']}× its pixel and back" if p.get("resampled_to") else ""
        lines.append(f"| o2l predict 512×512×{slices} (demo student, 4 bench epochs{how}) | {_s(p['seconds'])} s, "
                     f"{_s(p['slices_per_s'])} slices/s, peak RSS {_s(p['peak_rss_gib'], 2)} GiB | RSS ≤ 4 × "
                     f"{p['volume_gib']:.2f} + {model_rss:.2f} = {budget:.2f} GiB | "
                     f"{'yes' if p['peak_rss_gib']['median'] <= budget else 'no'} |")
    build = result["build_records"]
    ratio = build["build"]["mb_per_s"]["median"] / build["nibabel_read"]["mb_per_s"]["median"]
    lines.append(f"| o2l build-records ({build['cases']} cases, {build['slices']} slices, {build['megabytes_decoded']:.0f} MB) "
                 f"| {_s(build['build']['mb_per_s'])} MB/s, {_s(build['build']['slices_per_s'])} slices/s, peak RSS "
                 f"{_s(build['build']['peak_rss_gib'], 2)} GiB; nibabel read {_s(build['nibabel_read']['mb_per_s'])} "
                 f"MB/s = {ratio:.2f}× | ≥ 0.5× | {'yes' if ratio >= 0.5 else 'no'} |")
    evaluation = result["evaluate"]
    lines.append(f"| o2l evaluate {'×'.join(map(str, evaluation['shape']))} | {_s(evaluation['seconds'], 2)} s | ≤ 5 s | "
                 f"{'yes' if evaluation['seconds']['median'] <= 5 else 'no'} |")
    torch_result = result["pytorch"]
    if "skipped" in torch_result:
        lines.append(f"| PyTorch comparison | {torch_result['skipped']} | ≥ 1.0× train, ≥ 1.2× infer | – |")
    else:
        for t in torch_result["training"]:
            ratio = result["pytorch_ratios"][f"training_{t['precision']}"]
            lines.append(f"| PyTorch {torch_result['torch']} backbone train {t['precision']} ({t['size']} px, batch "
                         f"{t['batch']}, channels-last) | {_s(t['images_per_s'], 2)} img/s, {t['gflops']:.0f} GFLOP/s; "
                         f"o2l student / PyTorch = {ratio:.2f}× in GFLOP/s | ≥ 1.0× | {'yes' if ratio >= 1.0 else 'no'} |")
        for i in torch_result["inference"]:
            ratio = result["pytorch_ratios"][f"inference_{i['precision']}"]
            lines.append(f"| PyTorch backbone inference {i['precision']} ({i['size']}², batch {i['batch']}) | "
                         f"{_s(i['slices_per_s'], 2)} slices/s; o2l / PyTorch = {ratio:.2f}× | ≥ 1.2× | "
                         f"{'yes' if ratio >= 1.2 else 'no'} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", default=None, help="scratch folder (default: a temporary one)")
    parser.add_argument("--runs", type=int, default=3, help="timed runs per measure")
    parser.add_argument("--epochs", type=int, default=4, help="training epochs per configuration (first = warm-up)")
    parser.add_argument("--resume", action="store_true", help="keep the sections already measured in --work")
    args = parser.parse_args()
    work = args.work or tempfile.mkdtemp(prefix="o2l-bench-")
    os.makedirs(work, exist_ok=True)
    o2l = os.path.join(os.path.dirname(sys.executable), "o2l")
    partial = os.path.join(work, "partial.json")
    started = time.perf_counter()
    result: dict = {}
    if args.resume and os.path.exists(partial):
        with open(partial) as stream:
            result = json.load(stream)

    def say(text):
        print(f"[{time.perf_counter() - started:5.0f} s] {text}", flush=True)

    def section(key, title, measure):
        """Measure once; every finished section is saved, so a failure later loses nothing (--resume)."""
        if key not in result:
            say(title)
            result[key] = measure()
            with open(partial, "w") as stream:
                json.dump(result, stream, indent=1)
        return result[key]

    section("environment", "environment", environment)
    section("peak", "1. matmul peak", lambda: {d: matmul_peak(d, runs=args.runs + 2) for d in ("float32", "bfloat16")})

    def train_all():
        records(work, "paper", 384)
        records(work, "demo", 192)
        measured = []
        for size in ("paper", "demo"):
            for role in ("teacher", "student"):
                for precision in ("float32", "mixed_bfloat16"):
                    measured.append(training(work, role, size, precision, args.epochs, result["peak"]))
                    say(f"   {role} {size} {precision}: {measured[-1]['images_per_s']['median']:.2f} img/s, "
                        f"{100 * measured[-1]['fraction_of_peak']:.0f} % of peak")
        return measured

    section("training", "2. training throughput (records of 384 px and 192 px phantoms)", train_all)
    section("inference", "   inference (whole 512 x 512 slices)",
            lambda: [inference(base, precision, result["peak"], runs=args.runs + 2)
                     for base in (32, 16) for precision in ("float32", "mixed_bfloat16")])

    def rate(role, size, precision):
        return training_row(result, role, size, precision)["images_per_s"]["median"]

    def infer(base, precision):
        return inference_row(result, base, precision)["slices_per_s"]["median"]

    result["ratios"] = {
        "bf16_vs_fp32_training_student_paper": rate("student", "paper", "mixed_bfloat16") / rate("student", "paper", "float32"),
        "bf16_vs_fp32_training_teacher_paper": rate("teacher", "paper", "mixed_bfloat16") / rate("teacher", "paper", "float32"),
        "bf16_vs_fp32_inference_base32": infer(32, "mixed_bfloat16") / infer(32, "float32"),
    }
    result["targets"] = {"bf16_vs_fp32_training_student_paper": 2.0, "bf16_vs_fp32_training_teacher_paper": 2.0,
                         "bf16_vs_fp32_inference_base32": 1.6}
    section("pytorch", "3. PyTorch U-Net backbone (benchmarks/torch_unet.py)", lambda: pytorch_section(args.runs))
    result["pytorch_ratios"] = pytorch_ratios(result)

    def pipelines():
        measured = []
        for size in ("paper", "demo"):
            measure = input_pipeline(work, size, runs=args.runs)
            measure["training_consumption"] = max(rate(role, size, p) for role in ("teacher", "student")
                                                  for p in ("float32", "mixed_bfloat16"))
            measured.append(measure)
        return measured

    section("input_pipeline", "4. input pipeline", pipelines)
    section("mixed_epochs", "   the demo student's epochs (four streams)", lambda: mixed_epochs(work, args.runs))
    section("predict", "5. o2l predict 512 x 512 x 100/200/400", lambda: predict_bench(work, o2l, args.runs))
    section("predict_model_rss_gib", "   model alone",
            lambda: model_only_rss(sys.executable, predict_model(work)))
    section("build_records", "6. o2l build-records",
            lambda: build_records_bench(work, o2l, sys.executable, args.runs))
    section("evaluate", "7. o2l evaluate", lambda: evaluate_bench(work, args.runs))
    result["seconds"] = result.get("seconds", 0.0) + time.perf_counter() - started
    os.makedirs(RESULTS, exist_ok=True)
    with open(os.path.join(RESULTS, "latest.json"), "w") as stream:
        json.dump(result, stream, indent=1)
    table = markdown(result)
    with open(os.path.join(RESULTS, "latest.md"), "w") as stream:
        stream.write(table + "\n")
    print(table)
    say(f"done: {RESULTS}/latest.json, latest.md")


if __name__ == "__main__":
    main()
