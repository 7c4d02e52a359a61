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
    "GROUP_NORM_STATISTICS": "config",
    "MONITORS": "config",
    "PRECISIONS": "config",
    "RESUMABLE_CHANGES": "config",
    "TrainConfig": "config",
    "TrainResult": "config",
    "list_profiles": "config",
    "load_profile": "config",
    "BestCheckpoint": "callbacks",
    "EpochTimer": "callbacks",
    "ResumeState": "callbacks",
    "StepCheckpoints": "callbacks",
    "StopBeforeDeadline": "callbacks",
    "read_history": "history",
    "as_float32": "loop",
    "build_model": "loop",
    "run_result": "loop",
    "strategy_from_env": "loop",
    "train": "loop",
}

__all__ = sorted(_PUBLIC)


__getattr__, __dir__ = lazy_exports(__name__, _PUBLIC, globals())
