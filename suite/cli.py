"""Command-line plumbing shared by the suite's commands: one-line errors and their exit statuses.

Bad input (:class:`UsageError`, ``ConfigError``): one line, status 2. A command that could not do its
job for a reason the user can act on (:class:`CommandFailed`: a run diverged, the user's env failed):
one line, status 1. Ctrl-C: one line, status 130. No traceback in any of these.
"""

from __future__ import annotations

import argparse
import importlib
import math
import sys
import traceback
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

from envs.config import ConfigError

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["UsageError", "CommandFailed", "DefaultsHelpFormatter", "Parser", "run_cli", "positive_int",
           "positive_float", "non_negative_int", "finite_float", "bounded_int", "folder", "MAX_INT64", "probabilities",
           "add_import_flag", "import_user_modules", "one_line", "printed_table",
           "markdown_text", "markdown_table"]

#: The largest count any command takes: budgets, seeds and counters are 64-bit integers in numpy, pandas and
#: the result files, so a larger one could never be reached (or written).
MAX_INT64 = 2**63 - 1


class UsageError(Exception):
    """Bad command-line input; the message is one line for the user."""


class CommandFailed(Exception):
    """A command that could not do its job (not bad input); the message is one line for the user."""


class DefaultsHelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Argparse's ``(default: ...)`` after each option's help, only where it says something: not where the help
    already states its default in words ("(default: the algo's own ...)"), and not for a flag that is off, an
    option that is unset (None) or a repeatable one that starts empty."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        if "(default" in text or action.default is None or action.default is False \
                or (isinstance(action.default, (list, tuple)) and not action.default):
            return action.help
        return super()._get_help_string(action)


class Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors are one line (no usage dump) and exit with status 2, and whose help shows
    each option's default once (:class:`DefaultsHelpFormatter`)."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", DefaultsHelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def _number(kind: type, words: str, accepts) -> Callable[[str], int | float]:
    """An argparse ``type`` that converts with ``kind`` and keeps values ``accepts`` admits; else one line.
    Integers must also fit 64 bits (:data:`MAX_INT64`)."""
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            value = None
        if value is None or not accepts(value):
            raise argparse.ArgumentTypeError(f"expected {words}, got {text!r}")
        if kind is int and value > MAX_INT64:
            raise argparse.ArgumentTypeError(f"expected {words} of at most {MAX_INT64:,} (it must fit a 64-bit "
                                             f"integer), got {text!r}")
        return value

    parse.__name__ = words.replace(" ", "_")
    return parse


positive_int = _number(int, "a positive integer", lambda v: v > 0)
non_negative_int = _number(int, "a non-negative integer", lambda v: v >= 0)
positive_float = _number(float, "a positive number", lambda v: 0 < v < float("inf"))
finite_float = _number(float, "a finite number", math.isfinite)


def bounded_int(low: int, high: int, why: str) -> Callable[[str], int]:
    """An argparse ``type``: an integer from ``low`` to ``high``; ``why`` (a phrase) says where the bound comes
    from, in the one-line error."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or not low <= value <= high:
            raise argparse.ArgumentTypeError(f"expected {words} of at most {high:,} ({why}), got {text!r}")
        return value

    words = {0: "a non-negative integer", 1: "a positive integer"}.get(low, f"an integer of at least {low:,}")

    parse.__name__ = f"integer_from_{low}_to_{high}"
    return parse


def folder(text: str) -> str:
    """An argparse ``type``: a folder's name (not empty: that would be the current folder, unasked)."""
    if not text.strip():
        raise argparse.ArgumentTypeError(f"expected a folder name, got {text!r} (an empty name would write into "
                                         "the current folder; pass . for that)")
    return text


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
    """Import the modules named by ``--import`` so their registrations take effect. A name that is no module
    name, a module that cannot be found and a module that fails while it is imported (it raises, it has a
    syntax error) are each one line (:class:`UsageError`) naming the module."""
    for name in modules:
        if not all(part.isidentifier() for part in name.split(".")):
            raise UsageError(f"--import takes a module's dotted name as Python imports it (e.g. mypackage.envs; "
                             f"not a file path, not a relative name), got {name!r}")
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as error:
            if error.name is None or not (name == error.name or name.startswith(f"{error.name}.")):
                raise UsageError(f"cannot --import {name!r}: your module failed while it was imported: "
                                 f"{type(error).__name__}: {one_line(error)}{_where(error)}") from None
            raise UsageError(f"cannot --import {name!r}: {one_line(error)} (is its folder on the Python path? "
                             "run from it, or pip install its package)") from None
        except Exception as error:  # the user's own code: one line saying where it failed
            raise UsageError(f"cannot --import {name!r}: your module failed while it was imported: "
                             f"{type(error).__name__}: {one_line(error)}{_where(error)}") from None


def one_line(error: BaseException | str) -> str:
    """The first non-empty line of an error's message (what a one-line report shows)."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[0] if lines else "(no message)"


def markdown_text(text: Any) -> str:
    """Text from results (names read from files) made inert in a markdown table: no HTML, no cell breaks."""
    return (str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("|", "\\|")
            .replace("\n", " "))


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> list[str]:
    """A report's markdown table's lines, by pandas' ``DataFrame.to_markdown`` (tabulate's pipe tables). Cells are
    written as given (``disable_numparse``: "1,000" and "0.10" stay as formatted), so text from results must come
    through :func:`markdown_text` first."""
    import pandas as pd  # at call time: every command imports this module, not every command needs pandas

    frame = pd.DataFrame([list(row) for row in rows], columns=list(header), dtype=object)
    return frame.to_markdown(index=False, disable_numparse=True).splitlines()


def printed_table(frame: pd.DataFrame) -> list[str]:
    """The lines of the markdown table a command prints, by pandas' ``DataFrame.to_markdown`` (tabulate's pipe
    table). Cells are written as given (``disable_numparse``: "1,530" and "43.8%" stay as formatted) and are not
    padded to their column's width (``stralign=None``), so a row's line depends on that row alone: a command can
    print rows as they are measured, and ``| portfolio-m | 2 |`` can be searched for. Only the line under the
    header takes its dashes from the widths of the rows it was given."""
    return frame.to_markdown(index=False, disable_numparse=True, stralign=None).splitlines()


def _where(error: BaseException) -> str:
    """`` (at FILE, line N)``: where an exception was raised (a syntax error's own location is in its message)."""
    if isinstance(error, SyntaxError):
        return ""
    frames = traceback.extract_tb(error.__traceback__)
    return f" (at {frames[-1].filename}, line {frames[-1].lineno})" if frames else ""


def run_cli(main: Callable[[Sequence[str] | None], int], prog: str, argv: Sequence[str] | None = None) -> int:
    """Run ``main`` and return its exit status.

    Bad input (``UsageError`` / ``ConfigError``) becomes one line on stderr and status 2 (a message of
    several problems, one line each, each with the prefix); argparse's own exits (usage errors, ``--help``)
    return their status too, so callers in Python get a code.
    """
    try:
        return main(argv)
    except (UsageError, ConfigError) as error:
        for line in str(error).splitlines() or [""]:
            print(f"{prog}: error: {line}", file=sys.stderr)
        return 2
    except CommandFailed as error:
        print(f"{prog}: failed: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"\n{prog}: interrupted", file=sys.stderr)
        return 130
    except SystemExit as exit_:
        return exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
