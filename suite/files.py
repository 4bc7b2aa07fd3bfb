"""Writing result files safely: atomic writes, folders swapped in whole, one writer per run folder.

- :func:`atomic_write_text` (and ``_json``, ``_csv``): a temporary file in the same folder, then
  ``os.replace``; a crash never leaves half a file and never destroys the previous version. Files
  get the permissions the user's umask gives a new file (``tempfile`` alone would make them 0600,
  unreadable to a collaborator on a shared volume).
- :func:`atomic_replace_dir`: a folder (a checkpoint) built aside and swapped in; :func:`recover_dir`
  finishes a swap a kill interrupted, so a resume never finds the folder missing.
- :class:`RunLock`: one writer per run folder; a second one gets a one-line
  :class:`FolderLocked` naming the holder. A lock left by a killed process on this host is stale and
  taken over, by one process only however many try at once; :func:`lock_state` tells a live writer's
  lock from a stale one.
- :func:`clean_leftovers`: temporary files and half-built folders of writers that were killed.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
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
           "remove_dir", "clean_leftovers", "RunLock", "FolderLocked", "lock_state", "json_safe"]

LOCK_FILE = ".lock"
#: Beside :data:`LOCK_FILE` only while a stale lock is being taken over: the takers hold an OS lock on it in turn.
TAKEOVER_FILE = ".lock.takeover"
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


def _read_lock(path: Path) -> dict[str, Any] | None:
    """The writer a lock file names: None without a lock file, ``{}`` for one that cannot be read or parsed."""
    try:
        holder = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return {}
    return holder if isinstance(holder, dict) else {}


def _is_stale(path: Path, holder: dict[str, Any], host: str) -> bool:
    """Whether the lock at ``path``, naming ``holder``, was left by a writer that is gone: a process that no
    longer exists on this host (``host``), or another host's lock not refreshed for
    :data:`FOREIGN_LOCK_STALE_SECONDS` (its writer died with its node)."""
    if holder.get("host") == host:
        return isinstance(holder.get("pid"), int) and not _alive(holder["pid"])
    try:
        return time.time() - path.stat().st_mtime > FOREIGN_LOCK_STALE_SECONDS
    except OSError:
        return False


def lock_state(directory: Path) -> str | None:
    """The run folder ``directory``'s lock: ``"held"`` while its writer may be alive (a process that exists on
    this host, or another host's lock refreshed within :data:`FOREIGN_LOCK_STALE_SECONDS`: no process of
    another host can be checked), ``"stale"`` when its writer is gone (killed, or died with its node; or the
    lock file is damaged), which the next writer takes over (:class:`RunLock`), or None without a lock."""
    path = Path(directory) / LOCK_FILE
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    except OSError:  # e.g. another user's lock this user cannot read: its writer may be alive
        return "held"
    try:
        holder = json.loads(text)
    except ValueError:
        return "stale"
    if not isinstance(holder, dict) or not holder:
        return "stale"
    return "stale" if _is_stale(path, holder, socket.gethostname()) else "held"


#: ``flock`` errors of a file system without locks.
_NO_LOCKS = {errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOTSUP, errno.ENOSYS, errno.EINVAL, errno.EBADF}


def _lock_file(path: Path) -> int | None:
    """A descriptor of ``path`` (created if missing) holding an exclusive ``flock`` on it, once the file this
    process locked is still the one at ``path`` (the holder before it removes it on the way out); None where
    the file system has no locks."""
    while True:
        try:
            fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o666 & ~_umask())
        except PermissionError:  # another user's file: a read-only descriptor locks as well
            fd = os.open(path, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            mine = os.fstat(fd)
            try:
                now = os.stat(path)
            except FileNotFoundError:
                now = None
        except OSError as error:
            os.close(fd)
            if error.errno in _NO_LOCKS:
                return None
            raise
        except BaseException:
            os.close(fd)
            raise
        if now is not None and (now.st_dev, now.st_ino) == (mine.st_dev, mine.st_ino):
            return fd
        os.close(fd)  # removed or replaced while this process waited: lock the current one


@contextlib.contextmanager
def _takeover_lock(directory: Path):
    """One process at a time takes over a stale lock in ``directory``: an OS lock (``flock``) on
    :data:`TAKEOVER_FILE`, which is there only meanwhile. The kernel releases it when its process dies, so a
    taker killed halfway never blocks the next one. It serializes the processes of this host (and those of
    several hosts where the file system's locks reach them, as NFS's do); where the file system has no locks
    at all, the takeover goes on unserialized."""
    path = directory / TAKEOVER_FILE
    fd = _lock_file(path)
    try:
        yield
    finally:
        if fd is not None:
            path.unlink(missing_ok=True)  # before unlocking: a process waiting on this file sees it gone and retries
            os.close(fd)


def _link_count(path: str) -> int:
    try:
        return os.stat(path).st_nlink
    except OSError:
        return 0


class RunLock:
    """One writer per run folder: ``with RunLock(folder, what):`` (``what``: the command, for the message).

    The lock is a file holding the writer's host, process id, start time and command, made whole and
    exclusively: written aside, then hard-linked into place (``link`` never replaces a file, and is atomic on
    local disks and NFS), so no one ever reads a lock half-written. The writer refreshes it (:meth:`touch`) as
    it goes. A second writer raises :class:`FolderLocked` naming them. A lock is stale, and taken over, when
    its process no longer exists on this host (the writer was killed), or when it belongs to another host and
    has not been refreshed for :data:`FOREIGN_LOCK_STALE_SECONDS` (the writer died with its node). Taking
    over is done under an OS lock (:func:`_takeover_lock`): of the processes that find one stale lock at once,
    exactly one takes it and the others are refused, naming it.
    """

    def __init__(self, directory: Path, what: str = ""):
        self.path = directory / LOCK_FILE
        self.what = what
        self.held = False

    def _holder(self) -> dict[str, Any]:
        return _read_lock(self.path) or {}

    def _create(self, content: str) -> bool:
        """Put a lock file holding ``content`` in place unless there is one; whether this call did."""
        fd, tmp = tempfile.mkstemp(prefix=f"{LOCK_FILE}.", suffix=".tmp", dir=self.path.parent)
        try:
            os.fchmod(fd, 0o666 & ~_umask())
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(content)
            try:
                os.link(tmp, self.path)
            except FileExistsError:
                return _link_count(tmp) == 2  # on NFS a link made can report EEXIST (its request sent twice)
            except FileNotFoundError:  # the holder's clean_leftovers removed it: there is a holder
                return False
            except OSError as error:  # a file system without hard links
                if error.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.ENOSYS, errno.EMLINK):
                    raise
                return self._create_in_place(content)
            return True
        finally:
            Path(tmp).unlink(missing_ok=True)

    def _create_in_place(self, content: str) -> bool:
        try:
            fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666 & ~_umask())
        except FileExistsError:
            return False
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(content)
        return True

    def _refusal(self, holder: dict[str, Any]) -> FolderLocked:
        return FolderLocked(
            f"{self.path.parent} is being written by another run (pid {holder.get('pid')} on "
            f"{holder.get('host')}, since {holder.get('started')}); wait for it to finish, or if it is gone "
            f"remove {self.path}")

    def acquire(self) -> None:
        directory = self.path.parent
        directory.mkdir(parents=True, exist_ok=True)
        host = socket.gethostname()
        me = json.dumps({"host": host, "pid": os.getpid(), "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                         "command": self.what})
        for _ in range(5):
            if self._create(me):
                self.held = True
                return
            holder = _read_lock(self.path)
            if holder == {}:  # damaged (or made by an older version, which wrote it after creating it): look again
                time.sleep(0.2)
                holder = _read_lock(self.path)
            if holder is None:  # released meanwhile
                continue
            if holder and not _is_stale(self.path, holder, host):
                raise self._refusal(holder) from None
            with _takeover_lock(directory):  # its writer is gone: one taker at a time
                holder = _read_lock(self.path)  # again, alone now: another taker may have been first
                if holder and not _is_stale(self.path, holder, host):
                    raise self._refusal(holder) from None
                if holder is not None:
                    self.path.unlink(missing_ok=True)
                if self._create(me):
                    self.held = True
                    return
        raise FolderLocked(f"could not lock {directory}: its lock file keeps changing")

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
