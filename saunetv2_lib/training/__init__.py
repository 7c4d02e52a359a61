"""Training: configurations as data, a resumable ``model.fit`` loop, and data-parallel scale-out.

* :mod:`.config`: :class:`TrainConfig`, the named profiles (``configs/profiles.json``) and
  :class:`TrainResult`;
* :mod:`.callbacks`: what makes a run survive a kill (:class:`ResumeState`), the best
  checkpoint, the campaign's deadline pause and its step milestones;
* :mod:`.history`: the one reader of a run's ``history.csv``;
* :mod:`.loop`: :func:`train`, the model it compiles and the distribution strategy.

The names below are the public face; they load on first use, so ``import saunetv2_lib.training``
(and the CLI's help) does not start Keras.
"""

from __future__ import annotations

from saunetv2_lib.lazy import lazy_exports

_PUBLIC = {
    "config": (
        "GROUP_NORM_STATISTICS MONITORS PRECISIONS RESUMABLE_CHANGES"
        " TrainConfig TrainResult list_profiles load_profile"
    ),
    "callbacks": "BestCheckpoint EpochTimer ResumeState StepCheckpoints StopBeforeDeadline",
    "history": "read_history",
    "loop": "as_float32 build_model run_result strategy_from_env train",
}

__getattr__, __dir__, __all__ = lazy_exports(__name__, _PUBLIC, globals())
