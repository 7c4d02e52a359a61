"""CPU inference benchmark: the paper's four models on every inference path, in one process.

Method (:func:`benchmark`, ``saunetv2 bench``):

* every model is built once at ``size x size x 3`` with seeded random weights (the cost of dense
  float convolutions does not depend on the weight values), and one seeded uniform image batch of
  ``batch_size`` is used throughout;
* for each path (:data:`saunetv2_lib.export.PATHS`) each model's predictor is built (conversion
  time ``prepare_s``), then called ``warmup`` times (the first call, with tracing or compilation,
  is ``first_call_s``);
* the timed calls are *interleaved*: all predictors stay alive and round ``r`` times every
  (path, model) pair once, so a change of machine load affects all models and paths alike and the
  ratios stay meaningful on a shared machine (the cost: every runtime's buffers are held at once);
* seconds are per image (call time / ``batch_size``), wall clock (``time.perf_counter``);
  ``images_per_s = 1 / median_s``;
* ``ratio`` is the median over rounds of (this model's time / SA-UNetv2's time in the same round)
  on the same path: the paper's 0.95 s / 1.12 s gives SA-UNet 1.18 (SA-UNetv2 / SA-UNet 0.85);
  ``vs_keras`` is the median over rounds of (the Keras path's time / this path's time) for the same
  model (above 1: faster than Keras);
* memory: ``tracemalloc`` does not see TensorFlow's or the runtimes' C++ allocations, so the
  resident set (RSS) is used. With ``memory="isolated"`` (the default) every model x path is run
  again in a fresh child process, after the timing: it builds the model and the predictor, resets
  the kernel's peak-RSS counter (VmHWM, via ``/proc/self/clear_refs``), makes two calls and
  reports ``rss_delta_mb`` = that peak minus the RSS just before the calls (the inference working
  memory: activations, arenas, scratch buffers) and ``process_peak_mb`` = the child's whole peak
  (Python + TensorFlow + model + conversion + inference). ``memory="inline"`` measures the delta
  around the warm-up calls in the benchmark process itself: no extra processes, but memory that an
  earlier model or path freed is reused without raising the RSS, so those deltas are lower bounds
  that depend on the order. Where the counter cannot be reset (not Linux) the lifetime
  ``ru_maxrss`` is used and ``memory_method`` says so.

The paper's figures (its Table 1A CPU column, spec 2.4) are shown beside the measurements; they
ran on another CPU (:data:`saunetv2_lib.paper.CPU_HARDWARE`).
"""

from __future__ import annotations

import datetime as dt
import gc
import json
import os
import re
import resource
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from saunetv2_lib import paper
from saunetv2_lib.export import PATHS, default_threads, make_predictor
from saunetv2_lib.host import format_host, host_info
from saunetv2_lib.paths import BENCHMARK_RESULTS_DIR

DEFAULT_MODELS = ("sa_unet_v2", "sa_unet", "unet", "attention_unet")
DEFAULT_PATHS = ("keras", "keras_fast", "xla", "tflite", "onnx")
REFERENCE_MODEL = "sa_unet_v2"

# The paper timed one 592x592 image (spec 2.4); its seconds come from saunetv2_lib.paper.
PAPER_SIDE = 592


# ------------------------------------------------------------------------------------ memory
def _status_kb(field: str) -> float | None:
    try:
        with open("/proc/self/status", encoding="ascii") as handle:
            for line in handle:
                if line.startswith(field + ":"):
                    return float(line.split()[1])
    except OSError:
        pass
    return None


def _ru_maxrss_mb() -> float:
    scale = 1.0 if sys.platform == "darwin" else 1024.0  # bytes on macOS, kB on Linux
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale / 1e6


class PeakRSS:
    """Context manager measuring this process's peak resident memory inside the block (MB).

    On Linux it resets the kernel's peak-RSS counter on entry (``/proc/self/clear_refs``, which
    also lowers what ``getrusage`` reports as ``ru_maxrss`` for the process) and reads ``VmHWM`` on
    exit. Attributes after the block: ``before_mb``, ``peak_mb``, ``delta_mb`` (peak minus
    before, at least 0) and ``method`` (``"vmhwm"`` or ``"ru_maxrss"``).
    """

    def __enter__(self) -> PeakRSS:
        rss = _status_kb("VmRSS")
        try:
            with open("/proc/self/clear_refs", "w", encoding="ascii") as handle:
                handle.write("5")
            self.method = "vmhwm" if rss is not None else "ru_maxrss"
        except OSError:
            self.method = "ru_maxrss"
        self.before_mb = rss * 1024 / 1e6 if rss is not None else _ru_maxrss_mb()
        return self

    def __exit__(self, *exc_info) -> None:
        hwm = _status_kb("VmHWM") if self.method == "vmhwm" else None
        self.peak_mb = hwm * 1024 / 1e6 if hwm is not None else _ru_maxrss_mb()
        self.delta_mb = max(self.peak_mb - self.before_mb, 0.0)


def memory_probe(
    model: str, path: str, size: int, batch_size: int = 1, threads: int | None = None, seed: int = 0
) -> dict[str, Any]:
    """Inference memory of ``model`` on ``path`` measured in *this* process (see the module notes).

    Builds the model and predictor, then measures two calls with :class:`PeakRSS`. Meant to run
    in a fresh process (:func:`isolated_memory`); in a used process the numbers are lower bounds.
    """
    from saunetv2_lib.models import get_model

    predictor = make_predictor(get_model(model, (size, size, 3), seed=seed), path, threads)
    batch = np.random.default_rng(seed).random((batch_size, size, size, 3), dtype=np.float32)
    gc.collect()
    # VmHWM, not ru_maxrss: Linux carries the parent's peak into a child's ru_maxrss across exec.
    hwm_kb = _status_kb("VmHWM")
    lifetime_before = hwm_kb * 1024 / 1e6 if hwm_kb is not None else _ru_maxrss_mb()
    with PeakRSS() as memory:
        predictor.predict(batch)
        predictor.predict(batch)
    return {
        "peak_rss_mb": round(memory.peak_mb, 1),
        "rss_delta_mb": round(memory.delta_mb, 1),
        "process_peak_mb": round(max(lifetime_before, memory.peak_mb), 1),
        "memory_method": f"isolated-{memory.method}",
    }


def isolated_memory(
    model: str,
    path: str,
    size: int,
    batch_size: int = 1,
    threads: int | None = None,
    seed: int = 0,
    timeout_s: float = 900.0,
) -> dict[str, Any]:
    """:func:`memory_probe` in a fresh Python process; ``{"memory_error": ...}`` if it fails."""
    arguments = json.dumps([model, path, size, batch_size, threads, seed])
    environment = {
        **os.environ,
        "TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2"),
    }
    try:
        completed = subprocess.run(
            [sys.executable, "-m", "saunetv2_lib.efficiency", "--memory-probe", arguments],
            capture_output=True,
            text=True,
            timeout=timeout_s,
            env=environment,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return {"memory_error": f"memory probe timed out after {timeout_s:.0f} s"}
    lines = completed.stdout.strip().splitlines()
    if completed.returncode != 0 or not lines:
        tail = (completed.stderr.strip().splitlines() or ["no output"])[-1]
        return {"memory_error": f"memory probe failed (exit {completed.returncode}): {tail}"}
    return json.loads(lines[-1])


# ------------------------------------------------------------------------------------ timing
def summarize_times(seconds: Sequence[float], batch_size: int = 1) -> dict[str, float]:
    """``min_s``, ``median_s``, ``max_s``, ``mean_s`` per image and ``images_per_s`` from call times."""
    per_image = np.asarray(seconds, dtype=np.float64) / batch_size
    if per_image.size == 0:
        raise ValueError("No timed runs to summarise; use runs >= 1.")
    median = float(np.median(per_image))
    return {
        "median_s": median,
        "min_s": float(per_image.min()),
        "max_s": float(per_image.max()),
        "mean_s": float(per_image.mean()),
        "images_per_s": 1.0 / median if median > 0 else float("inf"),
    }


def _parse_names(names: Sequence[str] | str, known: Sequence[str], what: str) -> list[str]:
    if isinstance(names, str):
        names = [n.strip() for n in names.split(",") if n.strip()]
    names = list(dict.fromkeys(names))  # drop duplicates, keep order
    if not names:
        raise ValueError(f"No {what} given.")
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ValueError(f"Unknown {what} {', '.join(unknown)}; available: {', '.join(known)}.")
    return names


def benchmark(
    models: Sequence[str] | str = DEFAULT_MODELS,
    size: int = 592,
    runs: int = 5,
    warmup: int = 2,
    paths: Sequence[str] | str = DEFAULT_PATHS,
    batch_size: int = 1,
    threads: int | None = None,
    seed: int = 0,
    memory: str = "isolated",
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Time ``models`` on every path in ``paths``; see the module docstring for the method.

    ``memory`` is ``"isolated"`` (a fresh process per model and path, after the timing),
    ``"inline"`` (around the warm-up calls, order-dependent lower bounds) or ``"none"``.

    Returns:
        ``{"results": [row, ...], "host": host_info(), "settings": {...}}``; a row holds
        ``model, path, median_s, min_s, max_s, mean_s, images_per_s, ratio, vs_keras,
        first_call_s, prepare_s, peak_rss_mb, rss_delta_mb, memory_method, paper_s, times_s``
        (plus ``process_peak_mb`` when isolated), or ``model, path, error`` when the path could
        not be built for that model (e.g. a converter refused it).
    """
    from saunetv2_lib.models import MODELS, get_model

    models = _parse_names(models, list(MODELS), "model(s)")
    paths = _parse_names(paths, PATHS, "inference path(s)")
    if memory not in ("isolated", "inline", "none"):
        raise ValueError(f"memory must be 'isolated', 'inline' or 'none', got {memory!r}.")
    if runs < 1 or warmup < 1 or batch_size < 1:
        raise ValueError(
            f"runs, warmup and batch_size must be >= 1, got {runs}, {warmup}, {batch_size}."
        )
    threads = threads or default_threads()
    say = log or (lambda message: None)
    host = host_info()
    built = {name: get_model(name, (size, size, 3), seed=seed) for name in models}
    batch = np.random.default_rng(seed).random((batch_size, size, size, 3), dtype=np.float32)

    rows: dict[tuple[str, str], dict[str, Any]] = {}
    times: dict[tuple[str, str], list[float]] = {}
    predictors = {}
    for path in paths:
        for name in models:
            key = (name, path)
            start = time.perf_counter()
            try:
                predictor = make_predictor(built[name], path, threads)
            except (ImportError, ValueError) as error:
                rows[key] = {
                    "model": name,
                    "path": path,
                    "error": f"{type(error).__name__}: {error}",
                }
                say(f"{name} / {path}: cannot build ({error})")
                continue
            prepare = time.perf_counter() - start
            with PeakRSS() as inline:
                start = time.perf_counter()
                predictor.predict(batch)
                first = time.perf_counter() - start
                for _ in range(warmup - 1):
                    predictor.predict(batch)
            predictors[key] = predictor
            rows[key] = {
                "model": name,
                "path": path,
                "first_call_s": first / batch_size,
                "prepare_s": prepare,
                "peak_rss_mb": round(inline.peak_mb, 1),
                "rss_delta_mb": round(inline.delta_mb, 1),
                "memory_method": inline.method,
            }
            times[key] = []
            say(f"{name} / {path}: ready (prepare {prepare:.1f} s, first call {first:.2f} s)")
    for _ in range(runs):
        for key, predictor in predictors.items():
            start = time.perf_counter()
            predictor.predict(batch)
            times[key].append(time.perf_counter() - start)
    del predictors
    gc.collect()

    if memory == "isolated":
        for (name, path), row in rows.items():
            if "error" not in row:
                say(f"{name} / {path}: measuring memory in a fresh process")
                row.update(isolated_memory(name, path, size, batch_size, threads, seed))
    elif memory == "none":
        for row in rows.values():
            for field in ("peak_rss_mb", "rss_delta_mb", "memory_method"):
                row.pop(field, None)

    results = []
    for name in models:
        for path in paths:
            row = rows[(name, path)]
            if "error" not in row:
                key = (name, path)
                row.update(summarize_times(times[key], batch_size))
                own = np.asarray(times[key])
                reference = times.get((REFERENCE_MODEL, path))
                row["ratio"] = float(np.median(own / np.asarray(reference))) if reference else None
                keras_times = times.get((name, "keras"))
                row["vs_keras"] = (
                    float(np.median(np.asarray(keras_times) / own)) if keras_times else None
                )
                # The paper's seconds are for 592x592 images; beside other sizes they would mislead.
                row["paper_s"] = (
                    paper.registered_model_value(name, "cpu_s") if size == PAPER_SIDE else None
                )
                row["times_s"] = [t / batch_size for t in times[key]]
            results.append(row)
    try:
        host["load_average_end"] = [round(v, 2) for v in os.getloadavg()]
    except OSError:
        pass
    settings = {
        "size": size,
        "runs": runs,
        "warmup": warmup,
        "batch_size": batch_size,
        "threads": threads,
        "seed": seed,
        "memory": memory,
        "reference_model": REFERENCE_MODEL,
        "paper_cpu": paper.CPU_HARDWARE,
    }
    return {"results": results, "host": host, "settings": settings}


def _cell(value: Any, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def format_report(report: dict[str, Any]) -> str:
    """A plain-text table of :func:`benchmark`'s report with the host line."""
    settings = report["settings"]
    header = (
        f"{'model':<16} {'path':<12} {'median s':>9} {'min s':>7} {'max s':>7} {'img/s':>6} "
        f"{'x v2':>5} {'vs keras':>8} {'RSS+ MB':>8} {'proc MB':>8} {'paper s':>7}"
    )
    lines = [
        f"{settings['size']}x{settings['size']}, batch {settings['batch_size']}, "
        f"{settings['runs']} timed runs after {settings['warmup']} warm-up, seconds per image; "
        f"'x v2' = time / SA-UNetv2's in the same rounds; RSS+ = inference working memory, "
        f"proc = whole process peak ({settings['memory']} memory); paper: {settings['paper_cpu']}",
        header,
        "-" * len(header),
    ]
    for row in report["results"]:
        if "error" in row:
            lines.append(f"{row['model']:<16} {row['path']:<12} error: {row['error']}")
            continue
        lines.append(
            f"{row['model']:<16} {row['path']:<12} {row['median_s']:>9.3f} {row['min_s']:>7.3f} "
            f"{row['max_s']:>7.3f} {row['images_per_s']:>6.2f} {_cell(row['ratio'], '5.2f'):>5} "
            f"{_cell(row['vs_keras'], '8.2f'):>8} {_cell(row.get('rss_delta_mb'), '8.0f'):>8} "
            f"{_cell(row.get('process_peak_mb'), '8.0f'):>8} {_cell(row['paper_s'], '7.2f'):>7}"
        )
    lines.append(format_host(report["host"]))
    end = report["host"].get("load_average_end")
    if end:
        lines[-1] += f"; load at end {'/'.join(str(v) for v in end)}"
    return "\n".join(lines)


if __name__ == "__main__":
    # Child side of isolated_memory: one JSON line on stdout.
    if len(sys.argv) == 3 and sys.argv[1] == "--memory-probe":
        print(json.dumps(memory_probe(*json.loads(sys.argv[2]))))
    else:
        sys.exit("usage: python -m saunetv2_lib.efficiency --memory-probe JSON_ARGS")


# ------------------------------------------------------------------------- the paper's CPU times
def speed_ratios(seconds: Mapping[str, float], reference: str) -> dict[str, float]:
    """Each model's time over ``reference``'s (``{name: seconds[name] / seconds[reference]}``).

    ``2.0`` means twice as slow as the reference: how many times faster the reference is.
    """
    if reference not in seconds:
        raise KeyError(f"no time for the reference {reference!r}; have {', '.join(seconds)}.")
    return {name: value / seconds[reference] for name, value in seconds.items()}


def save_report(report: Mapping[str, Any], folder: str | Path = BENCHMARK_RESULTS_DIR) -> Path:
    """Write a :func:`benchmark` report as ``<UTC time>_<cpu>_<cores>c_<size>_<models>.json``.

    The name says when, where and what was measured, so reports from several machines sit side
    by side in ``benchmarks/results/``. Returns the written path.
    """
    host = report["host"]
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%MZ")
    cpu = re.sub(r"[^a-z0-9]+", "-", host["cpu"].lower()).strip("-")
    models = "-".join(dict.fromkeys(row["model"] for row in report["results"]))
    size = report["settings"]["size"]
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{stamp}_{cpu}_{host['usable_cores']}c_{size}_{models}.json"
    target.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return target


PAPER_TIMING_GLOB = "*_paper_timing.json"


def latest_paper_timing(results_dir: str | Path | None = None) -> dict[str, Any] | None:
    """The newest ``benchmarks/bench_paper_timing.py`` report, or ``None`` when there is none.

    ``results_dir`` defaults to the checkout's ``benchmarks/results/``; a pip-installed library
    without a checkout has none.
    """
    folder = Path(results_dir) if results_dir is not None else BENCHMARK_RESULTS_DIR
    reports = sorted(folder.glob(PAPER_TIMING_GLOB)) if folder.is_dir() else []
    return json.loads(reports[-1].read_text("utf-8")) if reports else None


def paper_timing_markdown(report: Mapping[str, Any]) -> str:
    """Notebook 6's diagnosis of the paper's CPU-time ratios, every number from ``report``."""
    rows = {row["model"]: row for row in report["rows"]}
    v2, unet, att = rows["sa_unet_v2"], rows["unet"], rows["attention_unet"]
    fit, recipe_fit = report["fit_steady"], report["fit_recipe"]
    extra = v2["official_recipe"]["seconds_per_image"] - v2["steady_state"]["median"]
    return (
        "**Why the paper's ratios are smaller than the FLOP ratios.** The paper's four CPU times "
        f"fit `paper = a + b × ours` with a = {fit['intercept_s']:.2f} s and b = {fit['slope']:.2f} "
        f"(R² = {fit['r2']:.3f}), *ours* being steady-state `predict_on_batch` times on this host "
        f"({report['measured']}). The paper's times thus carry about {fit['intercept_s']:.1f} s "
        "per image that does not grow with the model, on top of a CPU that is about "
        f"{fit['slope']:.1f}× slower per unit of our compute (a Kaggle 2-vCPU session at 2.2 GHz). "
        "A constant cost per image raises the small model's time most, which compresses its "
        f"ratios: U-Net {unet['paper_ratio']:.1f}× and Attention U-Net {att['paper_ratio']:.1f}× "
        f"in the paper, against {unet['steady_ratio']:.1f}× and {att['steady_ratio']:.1f}× here "
        "in steady state. The only published timing recipe, the official STARE notebook's, "
        "adds such a cost: it warms up on one image and then times one `model.predict` on the "
        "whole test set, the first call with that batch shape. Timed that way on this host "
        f"({report['images']} DRIVE test images), SA-UNetv2 takes "
        f"{v2['official_recipe']['seconds_per_image']:.2f} s per image instead of "
        f"{v2['steady_state']['median']:.2f} s (+{extra:.2f} s)"
        + _repeat_clause(v2)
        + ". Timed by the recipe, the ratios become "
        f"{unet['recipe_ratio']:.1f}× and {att['recipe_ratio']:.1f}× (fit: a = "
        f"{recipe_fit['intercept_s']:.2f} s, R² = {recipe_fit['r2']:.3f}). The paper's DRIVE "
        "timing script is not published, so the exact source of its constant is not known. "
        "Its ratios are a property of how it timed, not of the models."
    )


def _repeat_clause(row: Mapping[str, Any]) -> str:
    """What repeating the recipe's timed call says about where its extra time goes."""
    recipe = row["official_recipe"]
    if "repeat_seconds_per_image" not in recipe:
        return ""
    first, repeat = recipe["seconds_per_image"], recipe["repeat_seconds_per_image"]
    steady = row["steady_state"]["median"]
    once = (first - repeat) / (first - steady) if first > steady else 0.0
    where = (
        "most of the extra is paid once, by the first call with a new batch shape (retracing)"
        if once > 0.5
        else "most of the extra stays: the whole-set batch itself is slower per image here"
    )
    return f"; the same call repeated takes {repeat:.2f} s per image, so {where}"


# ------------------------------------------------------------ Keras predict timing (notebooks)
def cpu_seconds_per_image(
    model, side: int, repeats: int = 3, warmup: int = 1, seed: int = 0
) -> dict[str, Any]:
    """Seconds of one forward pass of one ``side x side`` RGB image (the paper's recipe).

    A seeded random image is predicted ``warmup`` times untimed (tracing), then ``repeats`` times
    with ``time.perf_counter``. Returns ``{"median", "min", "max", "runs"}`` in seconds.
    """
    return cpu_seconds_interleaved({"model": model}, side, repeats, warmup, seed)["model"]


def cpu_seconds_interleaved(
    models: Mapping[str, Any], side: int, repeats: int = 5, warmup: int = 1, seed: int = 0
) -> dict[str, dict[str, Any]]:
    """:func:`cpu_seconds_per_image` for several models, taking turns, on one seeded image.

    Each round times every model once, so load from other processes on a shared machine hits all
    models alike and the *ratios* between them stay meaningful; the per-model ``min`` is the
    least disturbed measurement. Returns ``{name: {"median", "min", "max", "runs"}}`` (seconds).
    """
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}.")
    image = np.random.default_rng(seed).random((1, side, side, 3), dtype=np.float32)
    for model in models.values():
        for _ in range(max(0, warmup)):
            model.predict_on_batch(image)
    runs: dict[str, list[float]] = {name: [] for name in models}
    for _ in range(repeats):
        for name, model in models.items():
            start = time.perf_counter()
            model.predict_on_batch(image)
            runs[name].append(time.perf_counter() - start)
    return {
        name: {
            "median": float(np.median(times)),
            "min": float(np.min(times)),
            "max": float(np.max(times)),
            "runs": times,
        }
        for name, times in runs.items()
    }


def official_recipe_seconds(model, images: np.ndarray, warmup_images: int = 1) -> dict[str, Any]:
    """Seconds per image as the official STARE notebook times them (spec 2.4), and once more.

    One untimed ``model.predict`` on the first ``warmup_images`` images, then one timed
    ``model.predict`` (Keras' default batch size, 32) on the whole ``(N, S, S, 3)`` batch,
    divided by ``N``. The warm-up batch has another shape than the timed one, so the timed call
    is the first with its shape and pays for a retrace and new kernels: a cost per call, not
    per FLOP. The same call is then timed again, without that cost.

    Returns:
        ``{"seconds_per_image", "total_s", "repeat_seconds_per_image", "images"}``.
    """
    images = np.asarray(images, dtype=np.float32)
    model.predict(images[:warmup_images], verbose=0)
    start = time.perf_counter()
    model.predict(images, verbose=0)
    total = time.perf_counter() - start
    start = time.perf_counter()
    model.predict(images, verbose=0)
    repeat = time.perf_counter() - start
    return {
        "seconds_per_image": total / len(images),
        "total_s": total,
        "repeat_seconds_per_image": repeat / len(images),
        "images": len(images),
    }
