"""The machine and software a result came from: the one place that reads ``/proc/cpuinfo``.

It also tells which malloc the process runs on (:func:`memory_allocator`): on some hosts glibc's
malloc returns TensorFlow's large buffers to the kernel after every op, and the page faults of
refilling them made a training epoch 3.5x slower than under tcmalloc on one 2-core AMD EPYC
(``benchmarks/training_speed.md``).

:func:`host_info` (benchmarks, bundles), :func:`environment_info` (training summaries) and
:func:`host_description` (a line for a notebook) all start from :func:`cpu_model` and
:func:`usable_cores`.
"""

from __future__ import annotations

import ctypes.util
import importlib.metadata
import os
import platform
from collections.abc import Sequence
from typing import Any

# (key in the report, distribution names to try): the versions a benchmark records.
VERSION_PACKAGES = (
    ("tensorflow", ("tensorflow-cpu", "tensorflow")),
    ("keras", ("keras",)),
    ("numpy", ("numpy",)),
    ("onnxruntime", ("onnxruntime",)),
    ("tf2onnx", ("tf2onnx",)),
    ("onnx", ("onnx",)),
    ("ai_edge_litert", ("ai-edge-litert",)),
)


def cpu_model() -> str:
    """The CPU's model name from ``/proc/cpuinfo`` (``platform.processor()`` elsewhere)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def usable_cores() -> int:
    """CPU cores this process may run on (``os.sched_getaffinity`` where available)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


# malloc replacements a process may have loaded, by the library name they are found under.
ALLOCATORS = {"tcmalloc": "tcmalloc_minimal", "jemalloc": "jemalloc"}


def memory_allocator() -> str:
    """The malloc this process runs on: ``'tcmalloc'``, ``'jemalloc'`` or ``'system'``.

    Read from the shared libraries mapped into the process (``/proc/self/maps``), so it tells what
    was really loaded (``LD_PRELOAD``), not what was asked for; ``'system'`` elsewhere.
    """
    try:
        with open("/proc/self/maps", encoding="utf-8") as handle:
            mapped = handle.read()
    except OSError:
        return "system"
    for name in ALLOCATORS:
        if f"lib{name}" in mapped:
            return name
    return "system"


def find_allocator(name: str = "tcmalloc") -> str | None:
    """The shared library of allocator ``name`` (a key of :data:`ALLOCATORS`), or None.

    Debian ships tcmalloc as ``libtcmalloc-minimal4`` and jemalloc as ``libjemalloc2``.
    """
    return ctypes.util.find_library(ALLOCATORS[name])


def onednn_enabled() -> bool:
    """Whether TensorFlow's oneDNN kernels are on (``TF_ENABLE_ONEDNN_OPTS``; on by default)."""
    return os.environ.get("TF_ENABLE_ONEDNN_OPTS", "1").strip().lower() not in ("0", "false")


def _version(distributions: Sequence[str]) -> str | None:
    for name in distributions:
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return None


def host_info() -> dict[str, Any]:
    """The machine a benchmark ran on: CPU, cores, memory (GB), load, Python and library versions."""
    try:
        memory_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1e9
    except (ValueError, OSError, AttributeError):
        memory_gb = None
    try:
        load = [round(v, 2) for v in os.getloadavg()]
    except OSError:
        load = None
    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "usable_cores": usable_cores(),
        "memory_gb": None if memory_gb is None else round(memory_gb, 1),
        "load_average": load,
        "platform": platform.platform(),
        "allocator": memory_allocator(),
        "python": platform.python_version(),
        "keras_backend": os.environ.get("KERAS_BACKEND", "tensorflow"),
        "versions": {key: _version(names) for key, names in VERSION_PACKAGES},
    }


def format_host(host: dict[str, Any]) -> str:
    """One line naming the CPU, cores, load and library versions of a :func:`host_info` dict."""
    versions = ", ".join(f"{k} {v}" for k, v in host["versions"].items() if v)
    load = host.get("load_average")
    load_text = "" if not load else f", load {'/'.join(str(v) for v in load)}"
    allocator = host.get("allocator", "system")
    malloc_text = "" if allocator == "system" else f", malloc {allocator}"
    return (
        f"host: {host['cpu']}, {host['usable_cores']} of {host['cores']} cores, "
        f"{host['memory_gb']} GB{load_text}{malloc_text}; Python {host['python']}, {versions}"
    )


def host_description() -> str:
    """``'<CPU model>, <n> cores'`` of this machine."""
    return f"{cpu_model()}, {usable_cores()} cores"


def environment_info() -> dict[str, Any]:
    """Hardware and software facts for a training ``summary.json``: CPU, cores, GPUs, versions."""
    import keras
    import numpy as np

    from saunetv2_lib import __version__

    info: dict[str, Any] = {
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "cpu_affinity": usable_cores(),
        "platform": platform.platform(),
        "allocator": memory_allocator(),
        "backend": keras.backend.backend(),
        "versions": {
            "python": platform.python_version(),
            "keras": keras.__version__,
            "numpy": np.__version__,
            "saunetv2_lib": __version__,
        },
    }
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        info["versions"]["tensorflow"] = tf.__version__
        info["onednn"] = onednn_enabled()
        info["gpus"] = [d.name for d in tf.config.list_physical_devices("GPU")]
    elif keras.backend.backend() == "jax":
        import jax

        info["versions"]["jax"] = jax.__version__
        info["gpus"] = [str(d) for d in jax.devices() if d.platform == "gpu"]
    return info
