"""saunetv2_lib: the runnable companion to "SA-UNetv2: Rethinking Spatial Attention U-Net for
Retinal Vessel Segmentation" (arXiv 2509.11774).

Submodules: ``layers`` (DropBlock, SA, CSA, conv unit), ``models`` (factories and registry),
``losses``, ``metrics``, ``complexity``, ``data`` (readers, splits, FOV, padding, augmentation,
pipeline, synthetic data), ``training``, ``evaluation``, ``cli``.
"""

__version__ = "0.1.0"
