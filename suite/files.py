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
- :func:`clean_leftovers`: temporary files of the suite's writers that were killed (only theirs).
- A folder someone else made (a results folder is shared between people) is written without trusting it:
  ``root=`` on the writers (and :func:`inside`) keeps every write inside ``root``, never follows a symbolic
  link below it (a linked file is replaced, a linked folder refused: :class:`UnsafePath`), and
  :func:`safe_name` makes a name read from a file (an env name) one harmless file name.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import math
import os
import re
import secrets
import shutil
import socket
import stat
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path, PurePath
from typing import Any, BinaryIO

import pandas as pd

from suite.cli import UsageError

__all__ = ["atomic_write_text", "atomic_write_json", "atomic_write_csv", "atomic_savefig", "atomic_replace_dir",
           "recover_dir", "remove_dir", "clean_leftovers", "RUN_FILES", "RunLock", "FolderLocked", "lock_state",
           "json_safe", "inside", "safe_name", "UnsafePath"]

LOCK_FILE = ".lock"
#: Beside :data:`LOCK_FILE` only while a stale lock is being taken over: the takers hold an OS lock on it in turn.
TAKEOVER_FILE = ".lock.takeover"
#: A lock of another host not refreshed for this long is taken as left by a writer that died with its node.
FOREIGN_LOCK_STALE_SECONDS = 3600
#: Inside a folder built by :func:`atomic_replace_dir`: written once ``fill`` has finished.
COMPLETE_MARKER = ".complete"
#: The files the suite writes into a run folder (:mod:`suite.results`' names): the only ones whose leftover
#: temporary files :func:`clean_leftovers` removes.
RUN_FILES = ("config.json", "progress.csv", "eval.csv", "error.txt")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


class UnsafePath(UsageError):
    """A write that would leave its folder or go through a symbolic link (a folder someone else made can hold
    either); nothing was written. The message is one line for the user."""


def _one_line(text: str) -> str:
    """``text`` (a path or link target someone else chose) quoted, so that it cannot break the message's line."""
    return repr(text) if not text.isprintable() else text


def _names(relative: str | PurePath) -> tuple[str, ...]:
    """The names of ``relative`` (below a folder); :class:`UnsafePath` unless it is relative and names a file
    without ``..``."""
    text = os.fspath(relative)
    pure = PurePath(text)
    if not text or "\0" in text or pure.is_absolute() or pure.anchor or not pure.parts or ".." in pure.parts:
        raise UnsafePath(f"refusing to write {_one_line(text)}: a written name must stay inside its folder "
                         "(not absolute, no '..')")
    return pure.parts


def _relative_to(root: str | Path, path: str | Path) -> tuple[str, ...]:
    """``path``'s names below ``root`` (checked by :func:`_names`)."""
    try:
        relative = PurePath(path).relative_to(root)
    except ValueError:
        raise UnsafePath(f"refusing to write {_one_line(str(path))}: it is not inside {_one_line(str(root))}") \
            from None
    return _names(relative)


def _link_refusal(path: Path) -> UnsafePath:
    try:
        target = f" (to {_one_line(os.readlink(path))})"
    except OSError:
        target = ""
    return UnsafePath(f"{_one_line(str(path))} is a symbolic link{target}, and nothing is written through one: "
                      "remove the link, or write elsewhere (nothing was written there)")


def _not_a_folder(path: Path) -> UnsafePath:
    if path.is_symlink():
        return _link_refusal(path)
    return UnsafePath(f"{_one_line(str(path))} is not a folder; move it away, or write elsewhere")


def inside(root: str | Path, relative: str | PurePath) -> Path:
    """``root / relative``, once sure a write there stays inside ``root``: ``relative`` is neither absolute nor
    holds ``..``, and no folder on its way below ``root`` is a symbolic link (or not a folder); else
    :class:`UnsafePath`. ``root`` is the caller's own (it may be a link); the last name may be a link, which
    the writers here replace, never follow. Missing folders are not created (the writers with ``root=``
    create them, without following a link either)."""
    names = _names(relative)
    here = Path(root)
    for name in names[:-1]:
        here = here / name
        if here.is_symlink() or (os.path.lexists(here) and not here.is_dir()):
            raise _not_a_folder(here)
    return Path(root).joinpath(*names)


def safe_name(name: str, max_length: int = 120) -> str:
    """``name``, read from a file someone else wrote (an env name in a ``config.json``), as one harmless file
    name: path separators, ``..``, a leading dot and any character but letters, digits and ``_.,=+-`` become
    ``_`` (a run of them one ``_``: ``x/../pwned`` -> ``x_pwned-<hash>``). A name that had to change (or be cut
    to ``max_length`` bytes) ends in a hash of the original, so two names practically never share a file; a
    clean name is kept as it is."""
    safe = re.sub(r"(?:[^\w.,=+-]|\.{2,})+", "_", name)
    safe = re.sub(r"^\.", "_", safe) or "_"
    if safe != name or len(safe.encode()) > max_length:
        digest = hashlib.sha1(name.encode("utf-8", "surrogatepass")).hexdigest()[:8]
        while len(safe.encode()) > max_length:  # bytes: a file name's limit is 255 of them
            safe = safe[:-1]
        safe = f"{safe}-{digest}"
    return safe


_OPEN_FOLDER = os.O_RDONLY | os.O_DIRECTORY | getattr(os, "O_CLOEXEC", 0)


def _open_folder(root: Path, names: Sequence[str]) -> int:
    """A descriptor of the folder ``root/names...``, each of ``names`` created when missing and opened without
    following a symbolic link (:class:`UnsafePath` for a link or a file on the way)."""
    fd = os.open(root, _OPEN_FOLDER)
    try:
        here = root
        for name in names:
            here = here / name
            try:
                os.mkdir(name, 0o777, dir_fd=fd)
            except FileExistsError:
                pass
            try:
                inner = os.open(name, _OPEN_FOLDER | os.O_NOFOLLOW, dir_fd=fd)
            except OSError as error:
                if error.errno in (errno.ELOOP, errno.ENOTDIR):
                    raise _not_a_folder(here) from None
                raise
            os.close(fd)
            fd = inner
        return fd
    except BaseException:
        os.close(fd)
        raise


def _write_atomically(root: Path, names: Sequence[str], write: Callable[[BinaryIO], None]) -> None:
    """``write`` the file ``root/names...`` whole: into a temporary file ``.<name>.<random>.tmp`` beside it,
    then renamed over it. The folders below ``root`` are opened without following a link (refused), so the
    file never lands outside ``root``; a link in the file's place is replaced, never written through. The
    file gets the umask's permissions (``os.open``'s mode)."""
    fd = _open_folder(root, names[:-1])
    name = names[-1]
    try:
        try:
            if stat.S_ISDIR(os.stat(name, dir_fd=fd, follow_symlinks=False).st_mode):
                raise UnsafePath(f"{_one_line(str(root.joinpath(*names)))} is a folder, not a file; move it away, "
                                 "or write elsewhere")
        except FileNotFoundError:
            pass
        tmp = f".{name}.{secrets.token_hex(4)}.tmp"
        handle_fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0),
                            0o666, dir_fd=fd)
        try:
            with os.fdopen(handle_fd, "wb") as handle:
                write(handle)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, name, src_dir_fd=fd, dst_dir_fd=fd)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp, dir_fd=fd)
            raise
    finally:
        os.close(fd)


def _place(path: Path, root: str | Path | None) -> tuple[Path, tuple[str, ...]]:
    """Where a writer writes ``path``: its folder (created) and name, or with ``root`` ``root`` and the names
    below it (see :func:`_write_atomically`)."""
    if root is None:
        path.parent.mkdir(parents=True, exist_ok=True)
        return path.parent, (path.name,)
    return Path(root), _relative_to(root, path)


def atomic_write_text(path: Path, text: str, *, root: str | Path | None = None) -> None:
    """Write ``text`` to ``path`` via a temporary file and an atomic rename, with the umask's permissions.

    ``root``: a folder ``path`` must stay inside, whoever made what is in it: no folder below ``root`` is
    followed if it is a symbolic link (:class:`UnsafePath`), ``..`` is refused, and a link at ``path`` is
    replaced by the file, never written through. Without it, ``path``'s folder is created and taken as it is.
    """
    _write_atomically(*_place(Path(path), root), lambda handle: handle.write(text.encode("utf-8")))


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


def atomic_write_json(path: Path, data: Any, *, root: str | Path | None = None) -> None:
    """Strict JSON (non-finite floats as strings, see :func:`json_safe`), atomically (``root``: as
    :func:`atomic_write_text`'s)."""
    atomic_write_text(path, json.dumps(json_safe(data), indent=2, allow_nan=False) + "\n", root=root)


def atomic_write_csv(path: Path, frame: pd.DataFrame, *, root: str | Path | None = None) -> None:
    atomic_write_text(path, frame.to_csv(index=False), root=root)


def atomic_savefig(fig, path: Path, *, root: str | Path | None = None, **savefig_kwargs) -> None:
    """A matplotlib figure saved to ``path`` (format from its suffix) as :func:`atomic_write_text` writes a file:
    whole or not at all, never through a symbolic link (``savefig`` on a path would follow one)."""
    path = Path(path)
    _write_atomically(*_place(path, root), lambda handle: fig.savefig(handle, format=path.suffix.lstrip(".") or "png",
                                                                       **savefig_kwargs))


def _old(path: Path) -> Path:
    return path.with_name(f".{path.name}.old")


def _remove(path: Path) -> None:
    """Remove the folder ``path`` (a symbolic link: the link itself, never what it points to; a file: left)."""
    if path.is_symlink():
        path.unlink(missing_ok=True)
    elif path.is_dir():
        shutil.rmtree(path, ignore_errors=True)  # rmtree follows no link inside the folder either


def _real_dir(path: Path) -> bool:
    return path.is_dir() and not path.is_symlink()


def atomic_replace_dir(path: Path, fill: Callable[[Path], None]) -> None:
    """Create a folder by calling ``fill(tmp_dir)``, then swap it in for ``path``.

    The previous folder is kept (as ``.<name>.old``) until the new one is in place, and the new one is
    marked complete before the swap starts, so a kill at any point leaves either ``path`` or a
    complete folder :func:`recover_dir` puts back. A symbolic link at ``path`` is replaced (the link goes, what
    it points to is left as it is).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    os.chmod(tmp, 0o777 & ~_umask())
    old = _old(path)
    try:
        fill(tmp)
        (tmp / COMPLETE_MARKER).write_text(time.strftime("%Y-%m-%dT%H:%M:%S%z"))
        if os.path.lexists(path):
            _remove(old)
            os.replace(path, old)
        os.replace(tmp, path)
        _remove(old)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if not os.path.lexists(path) and os.path.lexists(old):
            os.replace(old, path)
        raise


def _built_aside(path: Path, links: bool = False) -> list[Path]:
    """Folders :func:`atomic_replace_dir` was building for ``path`` (complete or not; named as ``mkdtemp``
    names them, ``.<name>.<random>``), newest first; with ``links``, symbolic links of such names too (removed,
    never taken for a checkpoint)."""
    pattern = re.compile(rf"\.{re.escape(path.name)}\.[a-z0-9_]+")
    found = [p for p in path.parent.glob(f".{path.name}.*") if pattern.fullmatch(p.name) and p != _old(path)
             and (_real_dir(p) or (links and p.is_symlink()))]
    return sorted(found, key=lambda p: p.lstat().st_mtime, reverse=True)


def recover_dir(path: Path) -> str | None:
    """Finish a swap of :func:`atomic_replace_dir` that a kill interrupted; say what was done (or None).

    Without ``path``: the newest complete folder built aside takes its place, else the previous one
    (``.<name>.old``). Folders left aside are then removed. A symbolic link is never taken for a folder.
    """
    action = None
    if not os.path.lexists(path):
        complete = [p for p in _built_aside(path) if (p / COMPLETE_MARKER).is_file()]
        if complete:
            os.replace(complete[0], path)
            action = f"recovered {path.name}/ from a complete copy a kill left aside"
        elif _real_dir(_old(path)):
            os.replace(_old(path), path)
            action = f"recovered {path.name}/ from its previous version (the newer one was not finished)"
    if os.path.lexists(path):
        for leftover in [*_built_aside(path, links=True), _old(path)]:
            _remove(leftover)
    return action


def remove_dir(path: Path) -> None:
    """Remove ``path`` and every copy of it :func:`atomic_replace_dir` left aside. A symbolic link among them is
    removed itself: nothing is deleted through it."""
    for folder in [path, *_built_aside(path, links=True), _old(path)]:
        _remove(folder)


def clean_leftovers(directory: Path, names: Sequence[str] = RUN_FILES) -> list[str]:
    """Remove the temporary files of writes a kill interrupted, and their names: only those the suite's own
    writers make, ``.<name>.<random>.tmp`` for each of ``names`` (default: a run folder's :data:`RUN_FILES`) and
    the lock's (``.lock.<random>.tmp``); a file of the user's, whatever its name, stays. A link of such a name
    is removed itself, never what it points to."""
    prefixes = "|".join(re.escape(prefix) for prefix in [*(f".{name}." for name in names), f"{LOCK_FILE}."])
    pattern = re.compile(rf"(?:{prefixes})[a-z0-9_]{{8}}\.tmp")  # token_hex(4) or mkstemp: 8 characters
    removed = []
    for entry in os.scandir(directory):
        if pattern.fullmatch(entry.name) and (entry.is_symlink() or entry.is_file(follow_symlinks=False)):
            Path(entry.path).unlink(missing_ok=True)
            removed.append(entry.name)
    return sorted(removed)


class FolderLocked(Exception):
    """Another writer holds the run folder. The message is one line for the user."""


def process_alive(pid: int) -> bool:
    """Whether a process of this host with id ``pid`` exists (one of another user counts)."""
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
        return isinstance(holder.get("pid"), int) and not process_alive(holder["pid"])
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
            try:
                fd = os.open(path, os.O_CREAT | os.O_RDWR | os.O_NOFOLLOW, 0o666 & ~_umask())
            except PermissionError:  # another user's file: a read-only descriptor locks as well
                fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        except OSError as error:
            if error.errno != errno.ELOOP:
                raise
            path.unlink(missing_ok=True)  # a symbolic link (a received folder's) is never this file: only it goes
            continue
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

    def refuse_if_held(self) -> None:
        """Raise :class:`FolderLocked` now if a live writer holds the folder: a cheap look before costly work
        (building an algo takes seconds), not a lock; :meth:`acquire` still decides."""
        self._refuse_live(_read_lock(self.path), socket.gethostname())

    def _refuse_live(self, holder: dict[str, Any] | None, host: str) -> None:
        """Raise :class:`FolderLocked` naming ``holder`` if it is a live writer (not None, damaged or stale)."""
        if holder and not _is_stale(self.path, holder, host):
            raise self._refusal(holder) from None

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
            self._refuse_live(holder, host)
            with _takeover_lock(directory):  # its writer is gone: one taker at a time
                holder = _read_lock(self.path)  # again, alone now: another taker may have been first
                self._refuse_live(holder, host)
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
