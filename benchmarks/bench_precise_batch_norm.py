"""Do precise BN statistics rescue the 300-step BN seeds of the ablation (issue 14)?

Scores each run's ``last.keras`` and ``best.keras`` under the paper protocol (DRIVE test, whole
image, per image, > 0.5) with the moving averages of training and with precise statistics
(:func:`saunetv2_lib.training.batchnorm.precise_batch_norm` on the run's training sources).

    SAUNETV2_DATA=../shared/data python benchmarks/bench_precise_batch_norm.py RUNS_ROOT \
        t3_sa_unet_bn_relu_s1 t3_sa_unet_bn_relu_s2 t3_sa_unet_bn_relu_s3

Measured 2026-12-03 on the superseded 300-step seeds (moving averages): last checkpoints F1
0.74 / 0.10 / 0.04 % with the moving averages, 75.67 / 74.27 / 73.11 % precise.
"""

import json
import sys
import time
from pathlib import Path

from saunetv2_lib.evaluation import Protocol, evaluate
from saunetv2_lib.experiments import campaign
from saunetv2_lib.training.batchnorm import precise_batch_norm
from saunetv2_lib.training.config import TrainConfig
from saunetv2_lib.training.loop import training_source_images

runs = Path(sys.argv[1])
out = {}
for name in sys.argv[2:]:
    run = runs / name
    config = TrainConfig.from_dict(json.loads((run / "config.json").read_text()))
    x = training_source_images(config)
    for ckpt in ("last.keras", "best.keras"):
        for precise in (False, True):
            model = campaign._float32_model(config, run / ckpt)
            t = time.perf_counter()
            n = precise_batch_norm(model, x, config.batch_size) if precise else 0
            dt = time.perf_counter() - t
            r = evaluate(
                model,
                config.dataset,
                "test",
                Protocol(anchor=config.anchor, side=config.side),
                root=config.data_root,
                batch_size=2,
            )
            key = f"{name}/{ckpt}/{'precise' if precise else 'moving'}"
            out[key] = {k: float(r.summary[k]) for k in ("f1", "accuracy", "mcc", "auc")} | {
                "bn": n,
                "precise_s": dt,
            }
            print(key, out[key], flush=True)
print(json.dumps(out, indent=1))
