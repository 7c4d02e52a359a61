"""``--malloc``: a training command re-executes itself under tcmalloc, and says when it cannot."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from saunetv2_lib import host
from saunetv2_lib.cli import CommandError, build_parser, main, use_malloc

TCMALLOC = host.find_allocator("tcmalloc")


def test_the_training_commands_take_malloc_with_auto_by_default():
    parser = build_parser()
    assert parser.parse_args(["campaign", "status"]).malloc == "auto"
    assert parser.parse_args(["train", "--malloc", "system"]).malloc == "system"
    with pytest.raises(SystemExit):
        parser.parse_args(["train", "--malloc", "jemalloc"])


def test_asking_for_a_missing_tcmalloc_is_an_error_and_auto_goes_on(monkeypatch, capsys):
    monkeypatch.setattr(host, "find_allocator", lambda name="tcmalloc": None)
    monkeypatch.setattr(host, "memory_allocator", lambda: "system")
    with pytest.raises(CommandError, match="libtcmalloc-minimal4"):
        use_malloc("tcmalloc", None)
    use_malloc("auto", None)  # no library: a warning, no exec
    assert "apt-get install libtcmalloc-minimal4" in capsys.readouterr().err
    assert main(["campaign", "status", "--malloc", "tcmalloc"]) == 2
    assert "libtcmalloc-minimal4" in capsys.readouterr().err


def test_a_call_from_python_never_replaces_its_process(monkeypatch):
    monkeypatch.setattr(host, "find_allocator", lambda name="tcmalloc": "libtcmalloc_minimal.so.4")
    monkeypatch.setattr(host, "memory_allocator", lambda: "system")
    monkeypatch.setattr(os, "execve", lambda *a: pytest.fail("execve from a Python call"))
    use_malloc("auto", ["campaign", "status"])


@pytest.mark.skipif(TCMALLOC is None, reason="libtcmalloc-minimal4 is not installed")
def test_a_command_line_reexecutes_itself_once_under_tcmalloc(tmp_path):
    script = tmp_path / "command.py"
    script.write_text(
        textwrap.dedent(
            """
            import os, sys
            from saunetv2_lib.cli import use_malloc
            from saunetv2_lib.host import memory_allocator
            print("start", memory_allocator(), sys.argv[1:], flush=True)
            use_malloc("auto", None)
            print("running", memory_allocator(), os.environ.get("LD_PRELOAD"), flush=True)
            """
        )
    )
    env = {k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", "SAUNETV2_MALLOC_REEXEC")}
    out = subprocess.run(
        [sys.executable, str(script), "--hours", "1"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    assert out == [
        "start system ['--hours', '1']",
        "start tcmalloc ['--hours', '1']",
        f"running tcmalloc {TCMALLOC}",
    ]
