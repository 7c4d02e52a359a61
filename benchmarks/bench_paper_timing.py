"""Why the paper's CPU-time ratios are smaller than the FLOP ratios: time its recipe here.

Usage (from the repository root, on an otherwise idle machine)::

    .venv/bin/python benchmarks/bench_paper_timing.py

The paper's Table 1A CPU times (SA-UNetv2 0.95 s, U-Net 3.16 s, Attention U-Net 7.74 s) put
U-Net at 3.3x and Attention U-Net at 8.2x SA-UNetv2, while their FLOPs are 6.5x and 20x and our
steady-state times (``predict_on_batch`` on one warmed-up image) follow the FLOPs. The only
published timing recipe, the official STARE notebook's, warms up with one image and then times
one ``model.predict`` on the whole padded test set (spec 2.4). This script times the four models
both ways on the 20 DRIVE test images at 592 px and fits the paper's times as
``a + b x ours`` per recipe: a per-call cost ``a`` that does not scale with FLOPs compresses the
ratios. Each model is timed in a fresh process. The report goes to
``benchmarks/results/<UTC date>_paper_timing.json``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
MODELS = ("sa_unet_v2", "sa_unet", "unet", "attention_unet")


def _child(model_name: str, images: int) -> dict:
    import numpy as np

    from saunetv2_lib.data.datasets import load_split
    from saunetv2_lib.data.padding import pad_to_side
    from saunetv2_lib.efficiency import cpu_seconds_per_image, official_recipe_seconds
    from saunetv2_lib.models import get_model

    batch = np.stack(
        [pad_to_side(s.image, 592)[0] for s in load_split("drive", "test")[:images]]
    ).astype("float32")
    model = get_model(model_name, (592, 592, 3), seed=0)
    recipe = official_recipe_seconds(model, batch)
    steady = cpu_seconds_per_image(model, 592, repeats=3, warmup=1)
    return {"model": model_name, "official_recipe": recipe, "steady_state": steady}


def _fit(paper: list[float], ours: list[float]) -> dict:
    import numpy as np

    slope, intercept = np.polyfit(ours, paper, 1)
    predicted = intercept + slope * np.asarray(ours)
    residual = float(np.sum((np.asarray(paper) - predicted) ** 2))
    total = float(np.sum((np.asarray(paper) - np.mean(paper)) ** 2))
    return {"intercept_s": float(intercept), "slope": float(slope), "r2": 1 - residual / total}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--images", type=int, default=20)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(_child(args.child, args.images)))
        return 0
    from saunetv2_lib import paper
    from saunetv2_lib.host import host_info

    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=str(REPO))
    rows = []
    for name in MODELS:
        done = subprocess.run(
            [sys.executable, __file__, "--child", name, "--images", str(args.images)],
            env=env, capture_output=True, text=True, check=True,
        )  # fmt: skip
        rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
        print(f"{name:<16} recipe {rows[-1]['official_recipe']['seconds_per_image']:.3f} s/image, "
              f"steady {rows[-1]['steady_state']['median']:.3f} s", flush=True)  # fmt: skip
    table = paper.table("cpu_time")
    labels = {v: k for k, v in paper.REGISTRY.items()}
    for row in rows:
        row["paper_s"] = table.row(labels[row["model"]])["cpu_s"]
    base = rows[0]
    for row in rows:
        row["paper_ratio"] = row["paper_s"] / base["paper_s"]
        row["recipe_ratio"] = (
            row["official_recipe"]["seconds_per_image"]
            / base["official_recipe"]["seconds_per_image"]
        )
        row["steady_ratio"] = row["steady_state"]["median"] / base["steady_state"]["median"]
    paper_s = [r["paper_s"] for r in rows]
    report = {
        "host": host_info(),
        "measured": dt.datetime.now(dt.timezone.utc).isoformat(timespec="minutes"),
        "images": args.images,
        "rows": rows,
        "fit_steady": _fit(paper_s, [r["steady_state"]["median"] for r in rows]),
        "fit_recipe": _fit(paper_s, [r["official_recipe"]["seconds_per_image"] for r in rows]),
    }
    print(f"{'model':<16} {'paper x':>8} {'recipe x':>9} {'steady x':>9}")
    for row in rows:
        print(f"{row['model']:<16} {row['paper_ratio']:>8.2f} {row['recipe_ratio']:>9.2f} "
              f"{row['steady_ratio']:>9.2f}")  # fmt: skip
    print("paper = a + b x ours:", json.dumps({k: report[k] for k in ("fit_steady", "fit_recipe")}))
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%MZ")
    path = HERE / "results" / f"{stamp}_paper_timing.json"
    path.write_text(json.dumps(report, indent=1) + "\n", "utf-8")
    print(f"report: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
