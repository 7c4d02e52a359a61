"""The one host reader: CPU model, cores, versions, the notebook line and the training summary."""

from __future__ import annotations

import os
import sys

import keras
import numpy as np

from saunetv2_lib import __version__
from saunetv2_lib.host import (
    cpu_model,
    environment_info,
    format_host,
    host_description,
    host_info,
    usable_cores,
)


def test_host_info_names_cpu_cores_and_library_versions():
    import onnxruntime
    import tensorflow as tf

    host = host_info()
    if sys.platform.startswith("linux"):
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            assert f": {cpu_model()}\n" in handle.read()
    assert host["cores"] >= host["usable_cores"] >= 1
    assert host["versions"]["tensorflow"] == tf.__version__
    assert host["versions"]["keras"] == keras.__version__
    assert host["versions"]["numpy"] == np.__version__
    assert host["versions"]["onnxruntime"] == onnxruntime.__version__
    line = format_host(host)
    assert cpu_model() in line and f"keras {keras.__version__}" in line


def test_the_notebook_line_and_the_training_summary_name_the_same_machine():
    assert host_description() == f"{cpu_model()}, {usable_cores()} cores"
    info = environment_info()
    assert info["cpu_model"] == cpu_model() and info["cpu_count"] == os.cpu_count()
    assert info["cpu_affinity"] == usable_cores()
    assert info["backend"] == keras.backend.backend()
    assert info["versions"]["saunetv2_lib"] == __version__
    assert info["versions"]["keras"] == keras.__version__
