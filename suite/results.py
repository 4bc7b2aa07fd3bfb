"""The results files of a run and how they are written.

One run = (env, algo, seed), under ``<out>/<env>/<algo>/seed<k>/``:

- ``config.json``: everything needed to repeat the run (names, configs, seed, budgets, library
  versions, command line).
- ``progress.csv``: one row per training iteration (:data:`PROGRESS_COLUMNS` first, then
  algo-specific columns).
- ``eval.csv``: one row per evaluation episode and evaluated policy (:data:`EVAL_COLUMNS` first,
  then the env's episode metrics). Written last: a run is complete when it exists.
- ``checkpoint/``: what ``--resume`` continues from.

Every file is written atomically (temporary file in the same folder, then ``os.replace``), so a
crash never leaves a half-written file and never destroys the previous version.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd

__all__ = ["PROGRESS_COLUMNS", "EVAL_COLUMNS", "run_dir", "atomic_write_text", "atomic_write_json",
           "atomic_write_csv", "atomic_replace_dir", "ordered", "is_complete"]

PROGRESS_COLUMNS = ["iteration", "env_steps", "episodes", "wall_seconds", "episode_return_mean",
                    "episode_return_min", "episode_return_max", "invalid_action_rate"]
EVAL_COLUMNS = ["episode", "env_seed", "policy", "mask", "return", "length", "invalid_steps", "invalid_actions"]

CONFIG_FILE, PROGRESS_FILE, EVAL_FILE, CHECKPOINT_DIR = "config.json", "progress.csv", "eval.csv", "checkpoint"


def run_dir(out: str | Path, env: str, algo: str, seed: int) -> Path:
    return Path(out) / env / algo / f"seed{seed}"


def is_complete(directory: Path) -> bool:
    return (directory / EVAL_FILE).is_file()


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` via a temporary file and an atomic rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_json(path: Path, data: Any) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=False) + "\n")


def ordered(rows: list[dict[str, Any]], leading: list[str]) -> pd.DataFrame:
    """Rows as a frame with the ``leading`` columns first (in order), the rest after in first-seen order."""
    frame = pd.DataFrame(rows)
    rest = [c for c in frame.columns if c not in leading]
    return frame.reindex(columns=[c for c in leading if c in frame.columns] + rest)


def atomic_write_csv(path: Path, frame: pd.DataFrame) -> None:
    atomic_write_text(path, frame.to_csv(index=False))


def atomic_replace_dir(path: Path, fill) -> None:
    """Create a folder by calling ``fill(tmp_dir)``, then swap it in for ``path`` in one rename.

    The previous folder is kept until the new one is in place, so a crash mid-way leaves either
    the old or the new version.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    old = path.with_name(f".{path.name}.old")
    try:
        fill(tmp)
        if path.exists():
            shutil.rmtree(old, ignore_errors=True)
            os.replace(path, old)
        os.replace(tmp, path)
        shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if not path.exists() and old.exists():
            os.replace(old, path)
        raise
