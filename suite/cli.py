"""Command-line plumbing shared by the suite's commands: one-line usage errors, exit status 2."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence

from envs.config import ConfigError

__all__ = ["UsageError", "Parser", "run_cli", "positive_int", "positive_float", "non_negative_int", "add_import_flag",
           "import_user_modules"]


class UsageError(Exception):
    """Bad command-line input; the message is one line for the user."""


class Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors are one line (no usage dump) and exit with status 2."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", argparse.ArgumentDefaultsHelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {text!r}")
    return value


def add_import_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--import", dest="imports", action="append", default=[], metavar="MODULE",
                        help="import MODULE first (repeatable), e.g. a module of yours that calls envs.register")


def import_user_modules(modules: Sequence[str]) -> None:
    """Import the modules named by ``--import`` so their registrations take effect."""
    for name in modules:
        try:
            importlib.import_module(name)
        except ImportError as error:
            raise UsageError(f"cannot --import {name!r}: {error}") from None


def run_cli(main: Callable[[Sequence[str] | None], int], prog: str, argv: Sequence[str] | None = None) -> int:
    """Run ``main`` and return its exit status.

    Bad input (``UsageError`` / ``ConfigError``) becomes one line on stderr and status 2; argparse's
    own exits (usage errors, ``--help``) return their status too, so callers in Python get a code.
    """
    try:
        return main(argv)
    except (UsageError, ConfigError) as error:
        print(f"{prog}: error: {error}", file=sys.stderr)
        return 2
    except SystemExit as exit_:
        return exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
