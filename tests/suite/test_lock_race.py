"""suite.files.RunLock taken over by many processes at once: a lock left by a killed writer is taken by exactly
one of the processes that find it stale at the same moment; the others are refused, naming the one that took it
(issue 32: two takers both acquired it in 14 of 100 rounds)."""

import json
import multiprocessing
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from suite import files

TAKERS, ROUNDS = 20, 50
REFUSED, BROKEN = 0, -1


def take_each_round(index, folders, barrier, outcomes):
    """In each round, with every other taker at once: try to take the folder's stale lock; record this process's
    pid when it did, :data:`REFUSED` when it was refused naming the writer."""
    for round_, folder in enumerate(folders):
        slot = round_ * TAKERS + index
        try:
            barrier.wait(timeout=60)
        except Exception:  # threading.BrokenBarrierError: a taker died or hung; the test reports it
            outcomes[slot] = BROKEN
            continue
        try:
            files.RunLock(Path(folder), "taker").acquire()
            outcomes[slot] = os.getpid()
        except files.FolderLocked as error:
            outcomes[slot] = REFUSED if "is being written by another run (pid " in str(error) else BROKEN
    try:  # the last round's winner stays alive until every taker has tried: a dead winner's lock is stale again
        barrier.wait(timeout=60)
    except Exception:  # threading.BrokenBarrierError
        pass


def stale_lock(folder: Path, dead_pid: int, kind: str) -> None:
    """A lock its writer left: a killed process of this host's, a write cut short (damaged, empty), or the lock of
    a node that died (another host's, not refreshed for longer than the suite waits)."""
    folder.mkdir()
    lock = folder / files.LOCK_FILE
    host = "a-node-that-died" if kind == "old-foreign" else socket.gethostname()
    lock.write_text({"damaged": "{", "empty": ""}.get(kind) or json.dumps(
        {"host": host, "pid": dead_pid, "started": "earlier", "command": "killed"}))
    if kind == "old-foreign":
        old = os.stat(lock).st_mtime - files.FOREIGN_LOCK_STALE_SECONDS - 60
        os.utime(lock, (old, old))


@pytest.mark.parametrize("kind", ["dead-pid", "damaged", "empty", "old-foreign"])
def test_of_many_processes_taking_over_one_stale_lock_exactly_one_gets_it(tmp_path, kind):
    dead = int(subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                              text=True, check=True).stdout)
    folders = [tmp_path / f"round{k}" for k in range(ROUNDS if kind == "dead-pid" else ROUNDS // 5)]
    for folder in folders:
        stale_lock(folder, dead, kind)
    context = multiprocessing.get_context("fork")  # the takers only touch files; forking keeps the test fast
    barrier, outcomes = context.Barrier(TAKERS), context.Array("l", [BROKEN] * (TAKERS * len(folders)))
    takers = [context.Process(target=take_each_round, args=(i, [str(f) for f in folders], barrier, outcomes))
              for i in range(TAKERS)]
    for taker in takers:
        taker.start()
    try:
        for taker in takers:
            taker.join(timeout=120)
    finally:
        for taker in takers:
            if taker.is_alive():
                taker.kill()
                taker.join()
    assert [taker.exitcode for taker in takers] == [0] * TAKERS
    pids = {taker.pid for taker in takers}
    for round_, folder in enumerate(folders):
        got = outcomes[round_ * TAKERS:(round_ + 1) * TAKERS]
        winners = [pid for pid in got if pid not in (REFUSED, BROKEN)]
        assert BROKEN not in got and len(winners) == 1, f"round {round_}: {len(winners)} took the lock ({got})"
        assert json.loads((folder / files.LOCK_FILE).read_text())["pid"] == winners[0] and winners[0] in pids
        assert sorted(p.name for p in folder.iterdir()) == [files.LOCK_FILE]  # no takeover or temporary file left
