"""Command-line plumbing shared by the suite's commands: one-line errors and their exit statuses.

Bad input (:class:`UsageError`, ``ConfigError``): one line, status 2. A command that could not do its
job for a reason the user can act on (:class:`CommandFailed`: a run diverged, the user's env failed):
one line, status 1. Ctrl-C: one line, status 130. No traceback in any of these.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence

from envs.config import ConfigError

__all__ = ["UsageError", "CommandFailed", "Parser", "run_cli", "positive_int", "positive_float", "non_negative_int",
           "probabilities", "add_import_flag", "import_user_modules"]


class UsageError(Exception):
    """Bad command-line input; the message is one line for the user."""


class CommandFailed(Exception):
    """A command that could not do its job (not bad input); the message is one line for the user."""


class Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors are one line (no usage dump) and exit with status 2."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", argparse.ArgumentDefaultsHelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def _number(kind: type, words: str, accepts) -> Callable[[str], int | float]:
    """An argparse ``type`` that converts with ``kind`` and keeps values ``accepts`` admits; else one line."""
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            value = None
        if value is None or not accepts(value):
            raise argparse.ArgumentTypeError(f"expected {words}, got {text!r}")
        return value

    parse.__name__ = words.replace(" ", "_")
    return parse


positive_int = _number(int, "a positive integer", lambda v: v > 0)
non_negative_int = _number(int, "a non-negative integer", lambda v: v >= 0)
positive_float = _number(float, "a positive number", lambda v: 0 < v < float("inf"))


def probabilities(text: str) -> tuple[float, ...]:
    """An argparse ``type``: a comma list of probabilities in [0, 1] (e.g. ``0,0.1,0.3``), sorted, unique."""
    try:
        values = sorted({float(part) for part in text.split(",") if part.strip()})
    except ValueError:
        values = []
    if not values or any(not 0.0 <= v <= 1.0 for v in values):
        raise argparse.ArgumentTypeError(f"expected a comma list of probabilities in [0, 1], got {text!r}")
    return tuple(values)


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
    except CommandFailed as error:
        print(f"{prog}: failed: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"\n{prog}: interrupted", file=sys.stderr)
        return 130
    except SystemExit as exit_:
        return exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
