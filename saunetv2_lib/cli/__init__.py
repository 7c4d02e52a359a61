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
