"""The model registry: every architecture of the companion by name, built by one call.

The factories live in the modules below; this file only names them, so nothing in
``saunetv2_lib.models`` imports the registry back:

* :mod:`.layers`: the SA-UNetv2 layers (DropBlock, SA, CSA, the conv unit, two-stage GN);
* :mod:`.unet`: SA-UNetv2 and the paper's baselines on one U-shaped builder;
* :mod:`.costs`: FLOP counters of those layers and of the siblings' ops (TF-profiler rules);
* the seeds' sibling designs (issue 7): :mod:`.dca` (Dual Cross-Attention skips, seed 003),
  :mod:`.simple_unet` (SimpleUNet, seed 004), :mod:`.sa_umamba` (SA-UMamba, seed 002, from
  scratch: no VMamba weights here) with its scan in :mod:`.selective_scan`, and
  :mod:`.upsample`.

Every layer is a registered Keras serialisable with a FLOP counter equal to TensorFlow's
profiler (``*_test.py``). The paper's complexity figures come from :mod:`saunetv2_lib.paper`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import keras

from saunetv2_lib import paper
from saunetv2_lib.complexity import model_complexity
from saunetv2_lib.models import costs  # noqa: F401  (registers the layers' FLOP counters)
from saunetv2_lib.models.dca import sa_unet_v2_dca, unet_dca
from saunetv2_lib.models.sa_umamba import sa_umamba
from saunetv2_lib.models.simple_unet import simple_unet, simple_unet_small
from saunetv2_lib.models.unet import (
    attention_unet,
    build_unet,
    sa_unet,
    sa_unet_bn_relu,
    sa_unet_v2,
    unet,
)


@dataclass(frozen=True)
class ModelSpec:
    """A registry entry: the factory and a one-line description."""

    factory: Callable[..., keras.Model]
    description: str


PAPER_MODELS: dict[str, ModelSpec] = {
    "sa_unet_v2": ModelSpec(
        sa_unet_v2, "SA-UNetv2: 16-32-48-64, GN+SiLU, SA bottleneck, CSA skips"
    ),
    "sa_unet": ModelSpec(
        sa_unet, "SA-UNet with the v2 block (GN+SiLU), the paper's comparison row"
    ),
    "sa_unet_bn_relu": ModelSpec(sa_unet_bn_relu, "SA-UNet as published in 2020 (BN+ReLU)"),
    "unet": ModelSpec(unet, "U-Net, widths 32-512, 4 pools, v2 block"),
    "attention_unet": ModelSpec(
        attention_unet, "Attention U-Net, widths 64-512, 3 pools, additive gates"
    ),
}

SIBLING_MODELS: dict[str, ModelSpec] = {
    "unet_dca": ModelSpec(
        unet_dca, "U-Net (32-512, 4 pools) with Dual Cross-Attention skips (seed 003)"
    ),
    "sa_unet_v2_dca": ModelSpec(
        sa_unet_v2_dca, "SA-UNetv2 with Dual Cross-Attention in place of CSA (seed 003)"
    ),
    "simple_unet": ModelSpec(
        simple_unet, "SimpleUNet: width 32, R 0.5, dilation 2, adaptive fusion (seed 004)"
    ),
    "simple_unet_small": ModelSpec(
        simple_unet_small, "SimpleUNet at its smallest width 16 (~16k parameters, seed 004)"
    ),
    "sa_umamba": ModelSpec(
        sa_umamba, "SA-UMamba: RSSS (SS2D + RFAConv) VM-UNet, C 96, from scratch (seed 002)"
    ),
}

MODELS: dict[str, ModelSpec] = {**PAPER_MODELS, **SIBLING_MODELS}


def get_model(
    name: str, input_shape: Sequence[int | None] = (592, 592, 3), **kwargs
) -> keras.Model:
    """Build the registered model ``name`` (see :data:`MODELS`) for ``input_shape``."""
    if name not in MODELS:
        raise KeyError(f"Unknown model {name!r}; available: {', '.join(MODELS)}.")
    return MODELS[name].factory(input_shape, **kwargs)


def register_model(name: str, spec: ModelSpec) -> None:
    """Add a model to the registry (a new design registers itself here)."""
    MODELS[name] = spec


def complexity_table(names: Sequence[str], size: int = 592, channels: int = 3) -> list[dict]:
    """Complexity rows of registered models built at ``size x size x channels``, with the paper's figures.

    Keys: those of :func:`saunetv2_lib.complexity.model_complexity`, plus ``model``,
    ``paper_params_m`` and ``paper_gflops`` (the paper's GFLOPs are at 592 only: ``None`` otherwise).
    """
    rows = []
    for name in names:
        model = get_model(name, (size, size, channels))
        row = model_complexity(model)
        row["model"] = name
        paper_params_m, paper_gflops = paper.registered_model_complexity(name)
        row["paper_params_m"] = paper_params_m
        row["paper_gflops"] = paper_gflops if size == 592 else None
        rows.append(row)
        keras.backend.clear_session()
    return rows


__all__ = [
    "MODELS",
    "PAPER_MODELS",
    "SIBLING_MODELS",
    "ModelSpec",
    "build_unet",
    "complexity_table",
    "get_model",
    "register_model",
]
