"""The one host reader: CPU model, cores, versions, the notebook line and the training summary."""

from __future__ import annotations

import os
import subprocess
import sys

import keras
import numpy as np
import pytest

from saunetv2_lib import __version__
from saunetv2_lib.host import (
    cpu_model,
    environment_info,
    find_allocator,
    format_host,
    host_description,
    host_info,
    memory_allocator,
    onednn_enabled,
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


def test_the_allocator_is_read_from_what_the_process_mapped():
    assert host_info()["allocator"] == memory_allocator() == environment_info()["allocator"]
    probe = "from saunetv2_lib.host import memory_allocator; print(memory_allocator())"
    env = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}
    plain = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True)
    assert plain.stdout.strip() == "system"
    library = find_allocator("tcmalloc")
    if library is None:
        pytest.skip("libtcmalloc-minimal4 is not installed")
    env["LD_PRELOAD"] = library
    loaded = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True)
    assert loaded.stdout.strip() == "tcmalloc"
    assert "malloc tcmalloc" in format_host({**host_info(), "allocator": "tcmalloc"})


def test_onednn_follows_tensorflows_switch(monkeypatch):
    monkeypatch.delenv("TF_ENABLE_ONEDNN_OPTS", raising=False)
    assert onednn_enabled()
    monkeypatch.setenv("TF_ENABLE_ONEDNN_OPTS", "0")
    assert not onednn_enabled()
