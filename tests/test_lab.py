"""The README's interactive command: scripts/lab.sh serves the notebooks with JupyterLab."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_lab_script_serves_the_notebooks_and_stops():
    if not (ROOT / ".venv" / "bin" / "jupyter").is_file():
        pytest.skip("no .venv/bin/jupyter: run scripts/setup.sh first")
    port, token = _free_port(), "saunetv2-test"
    server = subprocess.Popen(
        ["bash", str(ROOT / "scripts" / "lab.sh"), f"--port={port}",
         f"--IdentityProvider.token={token}", "--ServerApp.open_browser=False"],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True,
        env={**os.environ, "JUPYTER_RUNTIME_DIR": str(ROOT / "build" / "jupyter_runtime")},
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}/api/contents?token={token}"
    try:
        deadline, listing = time.monotonic() + 90, None
        while listing is None:
            if server.poll() is not None:
                pytest.fail(f"JupyterLab exited: {server.stderr.read().decode()[-2000:]}")
            if time.monotonic() > deadline:
                pytest.fail("JupyterLab did not answer within 90 s")
            try:
                with urllib.request.urlopen(url, timeout=5) as response:
                    listing = json.load(response)
            except OSError:
                time.sleep(0.5)
        names = {item["name"] for item in listing["content"]}
        assert {"03_loss.ipynb", "04_training.ipynb"} <= names, names
        with urllib.request.urlopen(
            f"http://127.0.0.1:{port}/api/kernelspecs?token={token}", timeout=10
        ) as response:
            kernels = json.load(response)
        assert "python3" in kernels["kernelspecs"]
        with urllib.request.urlopen(
            f"http://127.0.0.1:{port}/lab?token={token}", timeout=10
        ) as page:
            assert page.status == 200
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGTERM)
            try:
                server.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)
                server.wait()
    assert server.returncode is not None
