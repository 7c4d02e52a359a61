"""saunetv2_lib: the runnable companion to "SA-UNetv2: Rethinking Spatial Attention U-Net for
Retinal Vessel Segmentation" (arXiv 2509.11774).

The public face, loaded on first use (``import saunetv2_lib`` starts no Keras):

* :func:`get_model`: a registered architecture by name (``models``);
* :class:`Protocol` and :func:`evaluate`: scoring under an explicit protocol (``evaluation``);
* :func:`train`: a resumable training run from a ``TrainConfig`` (``training``);
* :func:`load_weights`: a shipped ``.keras`` file, checked against its model card (``weights``).

``ARCHITECTURE.md`` maps the floors below (models, data, training, experiments, companion, cli).
"""

from __future__ import annotations

from saunetv2_lib.lazy import lazy_exports

__version__ = "0.1.0"

_PUBLIC = {
    "models": "get_model",
    "evaluation": "Protocol evaluate",
    "training": "TrainConfig train",
    "weights": "load_weights",
}

__getattr__, __dir__, __all__ = lazy_exports(__name__, _PUBLIC, globals())
