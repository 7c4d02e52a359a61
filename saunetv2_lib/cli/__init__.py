"""The ``saunetv2`` command line: one entry point, a subcommand per library function.

Each command module opens with ``register(subparsers)``, its interface (the arguments, read
like a manual page), which adds its subcommands and sets ``func`` on the parser; the handlers
follow, and ``func(args)`` returns the exit code. Commands import their heavy
dependencies lazily so that ``saunetv2 --help`` is instant.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

# Modules that contribute subcommands, in the order they appear in --help.
COMMAND_MODULES = [
    "saunetv2_lib.cli.models",
    "saunetv2_lib.cli.data",
    "saunetv2_lib.cli.evaluate",
    "saunetv2_lib.cli.train",
    "saunetv2_lib.cli.campaign",
    "saunetv2_lib.cli.bench",
    "saunetv2_lib.cli.siblings",
    "saunetv2_lib.cli.reproduce",
    "saunetv2_lib.cli.weights",
]


class CommandError(Exception):
    """An error with a message meant for the user: printed as one line, exit code 2."""


MALLOC_CHOICES = ("auto", "tcmalloc", "system")
_REEXEC_MARK = "SAUNETV2_MALLOC_REEXEC"  # set in the re-executed process: never loop


def add_malloc_argument(parser: argparse.ArgumentParser) -> None:
    """``--malloc``, for the commands that train (their step runs on TensorFlow's allocations)."""
    parser.add_argument(
        "--malloc",
        choices=MALLOC_CHOICES,
        default="auto",
        help="the process's malloc. auto (default): tcmalloc when installed (Debian: "
        "libtcmalloc-minimal4), else the system's; the command re-executes itself with "
        "LD_PRELOAD. The training segments record which one ran",
    )


def use_malloc(choice: str, argv: list[str] | None) -> None:
    """Re-execute this command under tcmalloc when ``choice`` asks for it and it is not loaded.

    Only a real command line re-executes (``argv`` None); a call from Python keeps its process.
    ``'tcmalloc'`` fails when the library is missing; ``'auto'`` then goes on with the system's.
    """
    from saunetv2_lib.host import find_allocator, memory_allocator

    if choice == "system" or memory_allocator() == "tcmalloc":
        return
    library = find_allocator("tcmalloc")
    if library is None:
        if choice == "tcmalloc":
            raise CommandError(
                "--malloc tcmalloc: libtcmalloc_minimal is not installed "
                "(Debian: apt-get install libtcmalloc-minimal4)."
            )
        print(
            "saunetv2: tcmalloc is not installed; on some hosts glibc's malloc makes training "
            "several times slower (Debian: apt-get install libtcmalloc-minimal4)",
            file=sys.stderr,
        )
        return
    if argv is not None or os.environ.get(_REEXEC_MARK):
        if choice == "tcmalloc":
            print(f"saunetv2: --malloc tcmalloc: {library} was not loaded", file=sys.stderr)
        return
    preload = " ".join(filter(None, [library, os.environ.get("LD_PRELOAD")]))
    env = {**os.environ, "LD_PRELOAD": preload, _REEXEC_MARK: "1"}
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, [sys.executable, sys.argv[0], *sys.argv[1:]], env)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="saunetv2",
        description="SA-UNetv2 paper companion: models, data, training, evaluation, reproduction.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module_name in COMMAND_MODULES:
        importlib.import_module(module_name).register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    # The parser imports no Keras, so --help (and a usage error) answers at once.
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 1
    try:
        if getattr(args, "malloc", None):
            use_malloc(args.malloc, argv)  # before Keras: a re-executed process starts afresh
    except CommandError as error:
        print(f"saunetv2 {args.command}: error: {error}", file=sys.stderr)
        return 2
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from saunetv2_lib.quiet import native_stderr_silenced

    with native_stderr_silenced():
        import keras  # noqa: F401  (starts the backend once, quietly; commands reuse it)
    try:
        return int(args.func(args) or 0)
    except CommandError as error:
        print(f"saunetv2 {args.command}: error: {error}", file=sys.stderr)
        return 2
    except (FileNotFoundError, ValueError, KeyError) as error:
        # Library errors carry their own explanation; no traceback for the user.
        if isinstance(error, OSError) and error.filename:
            message = f"{error.strerror}: {error.filename}"
        else:
            message = error.args[0] if error.args else str(error)
        print(f"saunetv2 {args.command}: error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
