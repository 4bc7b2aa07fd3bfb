"""Checkpoints this user wrote on this machine, told apart from received ones: resuming runs no one else's code.

A checkpoint holds state that only pickle can carry today (the random_valid player's vector env, RLlib's
runner state, the training env chain): unpickling a crafted file runs its author's code. Results folders
are shared between people, so a checkpoint is only resumed when it carries a valid **signature**: an
HMAC-SHA256, under a key that lives in this user's home folder (created on first use, readable by the user
only), of every file of the checkpoint (names and SHA-256 of contents). A folder someone else wrote, or a
checkpoint changed after it was written, has no valid signature, and ``--resume`` (or a sweep into the
folder) refuses it in one line unless the user passes ``--trust``. Nothing but the signature file and the
key is read before that decision; the checkpoint's own files are hashed, never loaded.

The key's path is ``$MASKBENCH_KEY`` when set, else ``~/.config/maskbench/checkpoint.key``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
from pathlib import Path

__all__ = ["SIGNATURE_FILE", "key_path", "sign", "untrusted_reason"]

#: The signature, written last into a checkpoint folder.
SIGNATURE_FILE = "signature.json"


def key_path() -> Path:
    return Path(os.environ.get("MASKBENCH_KEY") or Path.home() / ".config" / "maskbench" / "checkpoint.key")


def _key(create: bool) -> bytes | None:
    path = key_path()
    try:
        return bytes.fromhex(path.read_text().strip())
    except FileNotFoundError:
        if not create:
            return None
    except ValueError:
        raise ValueError(f"{path} is not a maskbench checkpoint key (64 hex digits); move it away") from None
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = secrets.token_bytes(32)
    aside = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    descriptor = os.open(aside, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)  # never through a planted file
    with os.fdopen(descriptor, "w") as handle:
        handle.write(key.hex() + "\n")
    try:  # linked into place whole: two first runs at once (a sweep's trials) agree on one key
        os.link(aside, path)
    except FileExistsError:
        return _key(create=False)
    finally:
        aside.unlink()
    return key


def _digest(folder: Path, key: bytes, ignore: tuple[str, ...]) -> str:
    """The HMAC of every regular file under ``folder`` but the signature and ``ignore`` (names relative to the
    folder, of files that are never loaded): relative names and content hashes, in sorted order. A symbolic
    link anywhere makes the folder unsignable (it could point anywhere)."""
    mac = hmac.new(key, digestmod=hashlib.sha256)
    for path in sorted(folder.rglob("*")):
        if path.is_symlink():
            raise ValueError(f"{path} is a symbolic link")
        if not path.is_file() or path.relative_to(folder).as_posix() in (SIGNATURE_FILE, *ignore):
            continue
        content = hashlib.sha256(path.read_bytes()).hexdigest()
        mac.update(f"{path.relative_to(folder).as_posix()}\0{content}\n".encode())
    return mac.hexdigest()


def sign(folder: Path, ignore: tuple[str, ...] = ()) -> None:
    """Write ``folder``'s signature (once every file the resume reads is written; ``ignore``: files never
    loaded, e.g. a marker written after)."""
    digest = _digest(folder, _key(create=True), ignore)
    (folder / SIGNATURE_FILE).write_text(json.dumps({"hmac_sha256": digest}) + "\n")


def untrusted_reason(folder: Path, ignore: tuple[str, ...] = ()) -> str | None:
    """Why the checkpoint in ``folder`` is not known to be this user's own (one phrase), or None when its
    signature is valid under this user's key."""
    signature = folder / SIGNATURE_FILE
    if signature.is_symlink() or not signature.is_file():
        return "it has no signature of this user's (written elsewhere, by someone else, or by a version " \
               "of maskbench before checkpoints were signed)"
    key = _key(create=False)
    if key is None:
        return "this user has no checkpoint key yet, so no checkpoint here is known to be theirs"
    try:
        claimed = json.loads(signature.read_text())["hmac_sha256"]
        actual = _digest(folder, key, ignore)
    except (OSError, ValueError, KeyError, TypeError) as error:
        return f"its signature cannot be checked ({str(error).splitlines()[0] if str(error) else type(error).__name__})"
    if not isinstance(claimed, str) or not hmac.compare_digest(claimed, actual):
        return "its signature does not match its files (written by someone else, or changed since)"
    return None
