"""How much memory does one training pass of a campaign run take? (issue 14, item 4)

Usage (from the repository root, on an otherwise idle machine)::

    .venv/bin/python benchmarks/bench_memory.py baselines/b_sa_unet_v2_s1:1 \
        baselines/b_attention_unet_s1:4 baselines/b_attention_unet_s1:2

Each target ``campaign/run:micro_batches`` builds the run exactly as the campaign declares it
(:func:`saunetv2_lib.training.build_model` of its configuration, ``micro_batches`` replaced) in a
fresh process under the malloc the campaign uses (tcmalloc when installed), then calls
``train_on_batch`` on random images of the run's side, ``max(2, micro_batches)`` times, so that at
least one optimizer step completes. It prints the peak resident memory of that process (the
campaign's own process, which also holds the dataset, peaked within half a GiB of it for
SA-UNetv2 and U-Net) and the seconds per pass after the first (tracing) one: two or three passes,
so read them as +-20 %. The report goes to ``benchmarks/results/<UTC time>_training_memory.json``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"

_CHILD = """
import json, resource, sys, time
import numpy as np
from saunetv2_lib.experiments.campaign import load_campaign
from saunetv2_lib.training import build_model

campaign, run, micro = sys.argv[1], sys.argv[2], int(sys.argv[3])
spec = load_campaign(campaign).run(run)
config = spec.config().replace(micro_batches=micro)
model = build_model(config)
size = config.micro_batch_size
rng = np.random.default_rng(0)
x = rng.random((size, config.side, config.side, 3), dtype=np.float32)
y = (rng.random((size, config.side, config.side, 1)) < 0.1).astype("float32")
seconds = []
for _ in range(max(2, micro)):
    start = time.perf_counter()
    model.train_on_batch(x, y)
    seconds.append(time.perf_counter() - start)
print("REPORT" + json.dumps({
    "model": config.model, "side": config.side, "batch_size": config.batch_size,
    "micro_batches": micro, "images_per_pass": size,
    "peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
    "s_per_pass": seconds[1:], "optimizer_steps": int(model.optimizer.iterations.numpy()),
}))
"""


def measure(target: str) -> dict:
    """Run one ``campaign/run:micro_batches`` target in a fresh process; its report."""
    from saunetv2_lib.host import find_allocator

    where, _, micro = target.partition(":")
    campaign, _, run = where.partition("/")
    if not (campaign and run and micro.isdigit()):
        raise SystemExit(f"target {target!r}: expected campaign/run:micro_batches")
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=str(REPO))
    allocator = find_allocator()
    if allocator:
        env["LD_PRELOAD"] = allocator
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, campaign, run, micro],
        env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    if done.returncode != 0 or "REPORT" not in done.stdout:
        raise SystemExit(f"{target}: exit {done.returncode}\n{done.stderr[-2000:]}")
    report = json.loads(done.stdout.split("REPORT", 1)[1])
    return {"target": target, "malloc": "tcmalloc" if allocator else "system", **report}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("targets", nargs="+", help="campaign/run:micro_batches")
    args = parser.parse_args(argv)
    from saunetv2_lib.host import host_info

    rows = []
    for target in args.targets:
        row = measure(target)
        rows.append(row)
        per_pass = sum(row["s_per_pass"]) / len(row["s_per_pass"])
        print(
            f"{target:40s} {row['images_per_pass']} images a pass: "
            f"peak {row['peak_rss_gib']:.2f} GiB, {per_pass:.1f} s a pass "
            f"({per_pass / row['images_per_pass']:.2f} s an image)"
        )
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%MZ")
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"{stamp}_training_memory.json"
    report = {
        "command": "python benchmarks/bench_memory.py " + " ".join(args.targets),
        "host": host_info(),
        "rows": rows,
    }
    out.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    print(f"report: {out.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
