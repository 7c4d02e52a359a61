"""The seeds' sibling designs (issue 7), registered in :data:`saunetv2_lib.models.MODELS`.

* :mod:`.dca`: Dual Cross-Attention skips (seed 003): ``unet_dca``, ``sa_unet_v2_dca``.
* :mod:`.simple_unet`: SimpleUNet (seed 004): ``simple_unet``, ``simple_unet_small``.
* :mod:`.sa_umamba`: SA-UMamba (seed 002, trained from scratch: no VMamba weights here):
  ``sa_umamba``; its selective scan is in :mod:`.selective_scan`.
* :mod:`.costs`: TF-profiler cost rules and counters the designs' layers need.
* :mod:`.compare`: train and evaluate the designs under one protocol and budget (not imported
  here: it pulls in training and evaluation).

Importing :mod:`saunetv2_lib.models` imports this package, so the registry, ``saunetv2 models``
and ``saunetv2 complexity`` always include the designs. Their layers are registered Keras
serialisables and have FLOP counters equal to TensorFlow's profiler (``*_test.py``).
"""

from saunetv2_lib.models import ModelSpec, register_model
from saunetv2_lib.siblings import costs  # noqa: F401  (registers core-layer counters)
from saunetv2_lib.siblings.dca import sa_unet_v2_dca, unet_dca
from saunetv2_lib.siblings.sa_umamba import sa_umamba
from saunetv2_lib.siblings.simple_unet import simple_unet, simple_unet_small

SIBLING_MODELS = {
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

for _name, _spec in SIBLING_MODELS.items():
    register_model(_name, _spec)

__all__ = [
    "SIBLING_MODELS",
    "sa_umamba",
    "sa_unet_v2_dca",
    "simple_unet",
    "simple_unet_small",
    "unet_dca",
]
