"""Writing result files safely: atomic writes, folders swapped in whole, one writer per run folder.

- :func:`atomic_write_text` (and ``_json``, ``_csv``): a temporary file in the same folder, then
  ``os.replace``; a crash never leaves half a file and never destroys the previous version. Files
  get the permissions the user's umask gives a new file (``tempfile`` alone would make them 0600,
  unreadable to a collaborator on a shared volume).
- :func:`atomic_replace_dir`: a folder (a checkpoint) built aside and swapped in; :func:`recover_dir`
  finishes a swap a kill interrupted, so a resume never finds the folder missing.
- :class:`RunLock`: one writer per run folder; a second one gets a one-line
  :class:`FolderLocked` naming the holder. A lock left by a killed process on this host is stale and
  taken over.
- :func:`clean_leftovers`: temporary files and half-built folders of writers that were killed.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import socket
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

__all__ = ["atomic_write_text", "atomic_write_json", "atomic_write_csv", "atomic_replace_dir", "recover_dir",
           "remove_dir", "clean_leftovers", "RunLock", "FolderLocked", "json_safe"]

LOCK_FILE = ".lock"
#: A lock of another host not refreshed for this long is taken as left by a writer that died with its node.
FOREIGN_LOCK_STALE_SECONDS = 3600
#: Inside a folder built by :func:`atomic_replace_dir`: written once ``fill`` has finished.
COMPLETE_MARKER = ".complete"


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` via a temporary file and an atomic rename, with the umask's permissions."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def json_safe(value: Any) -> Any:
    """``value`` with non-finite floats as the strings ``"inf"``, ``"-inf"``, ``"nan"`` (strict JSON has
    no such numbers; the suite's configs read them back from these strings)."""
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, dict):
        return {key: json_safe(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(item) for item in value]
    return value


def atomic_write_json(path: Path, data: Any) -> None:
    """Strict JSON (non-finite floats as strings, see :func:`json_safe`), atomically."""
    atomic_write_text(path, json.dumps(json_safe(data), indent=2, allow_nan=False) + "\n")


def atomic_write_csv(path: Path, frame: pd.DataFrame) -> None:
    atomic_write_text(path, frame.to_csv(index=False))


def _old(path: Path) -> Path:
    return path.with_name(f".{path.name}.old")


def atomic_replace_dir(path: Path, fill: Callable[[Path], None]) -> None:
    """Create a folder by calling ``fill(tmp_dir)``, then swap it in for ``path``.

    The previous folder is kept (as ``.<name>.old``) until the new one is in place, and the new one is
    marked complete before the swap starts, so a kill at any point leaves either ``path`` or a
    complete folder :func:`recover_dir` puts back.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    os.chmod(tmp, 0o777 & ~_umask())
    old = _old(path)
    try:
        fill(tmp)
        (tmp / COMPLETE_MARKER).write_text(time.strftime("%Y-%m-%dT%H:%M:%S%z"))
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


def _built_aside(path: Path) -> list[Path]:
    """Folders :func:`atomic_replace_dir` was building for ``path`` (complete or not), newest first."""
    found = [p for p in path.parent.glob(f".{path.name}.*") if p.is_dir() and p != _old(path)]
    return sorted(found, key=lambda p: p.stat().st_mtime, reverse=True)


def recover_dir(path: Path) -> str | None:
    """Finish a swap of :func:`atomic_replace_dir` that a kill interrupted; say what was done (or None).

    Without ``path``: the newest complete folder built aside takes its place, else the previous one
    (``.<name>.old``). Folders left aside are then removed.
    """
    action = None
    if not path.exists():
        complete = [p for p in _built_aside(path) if (p / COMPLETE_MARKER).is_file()]
        if complete:
            os.replace(complete[0], path)
            action = f"recovered {path.name}/ from a complete copy a kill left aside"
        elif _old(path).is_dir():
            os.replace(_old(path), path)
            action = f"recovered {path.name}/ from its previous version (the newer one was not finished)"
    if path.exists():
        for leftover in [*_built_aside(path), _old(path)]:
            shutil.rmtree(leftover, ignore_errors=True)
    return action


def remove_dir(path: Path) -> None:
    """Remove ``path`` and every copy of it :func:`atomic_replace_dir` left aside."""
    for folder in [path, *_built_aside(path), _old(path)]:
        shutil.rmtree(folder, ignore_errors=True)


def clean_leftovers(directory: Path) -> list[str]:
    """Remove temporary files (``.<name>.*.tmp``) of writes a kill interrupted; their names."""
    removed = []
    for tmp in directory.glob(".*.tmp"):
        if tmp.is_file():
            tmp.unlink(missing_ok=True)
            removed.append(tmp.name)
    return removed


class FolderLocked(Exception):
    """Another writer holds the run folder. The message is one line for the user."""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class RunLock:
    """One writer per run folder: ``with RunLock(folder, what):`` (``what``: the command, for the message).

    The lock is a file created exclusively (``O_EXCL``, atomic on local disks and NFS) holding the
    writer's host, process id, start time and command; the writer refreshes it (:meth:`touch`) as it
    goes. A second writer raises :class:`FolderLocked` naming them. A lock is stale, and taken over,
    when its process no longer exists on this host (the writer was killed), or when it belongs to
    another host and has not been refreshed for :data:`FOREIGN_LOCK_STALE_SECONDS` (the writer died
    with its node).
    """

    def __init__(self, directory: Path, what: str = ""):
        self.path = directory / LOCK_FILE
        self.what = what
        self.held = False

    def _holder(self) -> dict[str, Any]:
        try:
            return json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        me = {"host": socket.gethostname(), "pid": os.getpid(), "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
              "command": self.what}
        for _ in range(3):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666 & ~_umask())
            except FileExistsError:
                holder = self._holder()
                if self._stale(holder, me["host"]):
                    self.path.unlink(missing_ok=True)  # its writer is gone
                    continue
                if not holder:  # being written right now, or damaged: look again shortly
                    time.sleep(0.2)
                    holder = self._holder()
                    if not holder:
                        self.path.unlink(missing_ok=True)
                        continue
                raise FolderLocked(
                    f"{self.path.parent} is being written by another run (pid {holder.get('pid')} on "
                    f"{holder.get('host')}, since {holder.get('started')}); wait for it to finish, or if it is gone "
                    f"remove {self.path}") from None
            with os.fdopen(fd, "w") as handle:
                handle.write(json.dumps(me))
            self.held = True
            return
        raise FolderLocked(f"could not lock {self.path.parent}: its lock file keeps changing")

    def _stale(self, holder: dict[str, Any], host: str) -> bool:
        if not holder:
            return False
        if holder.get("host") == host:
            return isinstance(holder.get("pid"), int) and not _alive(holder["pid"])
        try:
            return time.time() - self.path.stat().st_mtime > FOREIGN_LOCK_STALE_SECONDS
        except OSError:
            return False

    def touch(self) -> None:
        """Tell other hosts the writer is alive (a lock not touched for an hour is taken over)."""
        if self.held:
            try:
                os.utime(self.path)
            except OSError:
                pass

    def release(self) -> None:
        if self.held:
            holder = self._holder()
            if holder.get("pid") == os.getpid() and holder.get("host") == socket.gethostname():
                self.path.unlink(missing_ok=True)
            self.held = False

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()
