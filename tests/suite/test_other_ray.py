"""Runs coexist with any other Ray on the machine (issue 32): without ``--address`` (and without ``RAY_ADDRESS``)
a run starts a private Ray instance with its CPUs, even beside a cluster ``ray start --head`` started (a bare
``ray.init()`` joined that one and failed: "When connecting to an existing cluster, num_cpus and num_gpus must
not be provided"); ``--address auto`` joins that cluster. The cluster runs in a Ray temp folder of its own
(``RAY_TMPDIR``), so the test never touches another Ray of the machine; none of its processes outlives it."""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
import pytest

from tests.helpers import TINY

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("address, ray_address_variable, expected", [
    (None, None, {"address": "local", "num_cpus": 3}),  # a private instance, whatever else runs
    (None, "", {"address": "local", "num_cpus": 3}),
    ("local", None, {"address": "local", "num_cpus": 3}),
    ("local", "auto", {"address": "local", "num_cpus": 3}),  # RAY_ADDRESS is for runs given no address
    (None, "auto", {"address": "auto"}),  # as inside `ray job submit`: the job's cluster decides the CPUs
    ("auto", None, {"address": "auto"}),  # the Ray already running here
])
def test_connect_ray_starts_a_private_instance_unless_told_to_join_one(monkeypatch, address, ray_address_variable,
                                                                        expected):
    import ray

    from baselines.ray_session import connect_ray

    calls = []
    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", lambda **kwargs: calls.append(kwargs))
    if ray_address_variable is None:
        monkeypatch.delenv("RAY_ADDRESS", raising=False)
    else:
        monkeypatch.setenv("RAY_ADDRESS", ray_address_variable)
    assert connect_ray(address, num_cpus=3) is True
    (kwargs,) = calls
    assert {key: kwargs.get(key) for key in ("address", "num_cpus") if key in kwargs} == expected


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def stop(head: subprocess.Popen) -> None:
    """End the `ray start --head --block` process and every process it started (its own process group)."""
    try:
        tree = [psutil.Process(head.pid), *psutil.Process(head.pid).children(recursive=True)]
    except psutil.NoSuchProcess:
        tree = []
    for sig, grace in ((signal.SIGTERM, 5), (signal.SIGKILL, 30)):
        try:
            os.killpg(head.pid, sig)  # the group start_new_session made: the cluster's processes only
        except ProcessLookupError:
            pass
        for process in tree:
            try:
                process.send_signal(sig)
            except psutil.NoSuchProcess:
                pass
        _, alive = psutil.wait_procs(tree, timeout=grace)
        if not alive:
            break
    head.wait(timeout=30)


@pytest.fixture
def ray_head():
    """A cluster from ``ray start --head`` (one CPU) that processes given ``env`` find as this machine's Ray
    (``RAY_TMPDIR``: its ``ray_current_cluster`` file); yields ``(env, address, temp folder, process)``."""
    root = Path(tempfile.mkdtemp(prefix="mbray-", dir="/tmp"))  # short: Ray's socket paths must fit in 107 chars
    env = {key: value for key, value in os.environ.items() if key != "RAY_ADDRESS"}
    env.update(RAY_TMPDIR=str(root), RAY_USAGE_STATS_ENABLED="0")
    with open(root / "head.log", "w") as log:
        head = subprocess.Popen([str(Path(sys.executable).parent / "ray"), "start", "--head", "--num-cpus=1",
                                 f"--port={free_port()}", "--include-dashboard=false", "--disable-usage-stats",
                                 "--block"], env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        address_file = root / "ray" / "ray_current_cluster"
        deadline = time.time() + 180
        while head.poll() is None and time.time() < deadline and not (
                address_file.is_file() and address_file.read_text().strip()):
            time.sleep(0.5)
        assert address_file.is_file() and head.poll() is None, (root / "head.log").read_text()
        yield env, address_file.read_text().strip(), root, head
    finally:
        stop(head)
        leftovers = [p for p in psutil.process_iter(["cmdline"]) if str(root) in " ".join(p.info["cmdline"] or [])]
        shutil.rmtree(root, ignore_errors=True)
        assert not leftovers, f"processes of the test's Ray left behind: {leftovers}"


def suite_run(env, out, *extra):
    return subprocess.run([sys.executable, "-m", "suite.run", "--env", "portfolio", "--algo", "masked_ppo", "--steps",
                           "512", "--episodes", "2", "--out", str(out), "--quiet", *TINY, *extra],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)


def record_of(out):
    (config,) = Path(out).rglob("config.json")
    return json.loads(config.read_text())


@pytest.mark.slow
def test_a_run_beside_a_ray_start_cluster_starts_its_own_ray_and_address_auto_joins_that_cluster(tmp_path,
                                                                                                  ray_head):
    """About a minute: a cluster and two RLlib runs. The private instance lives in the same Ray temp folder as the
    cluster, as it would in /tmp/ray."""
    env, address, root, head = ray_head
    sessions = lambda: sorted(p.name for p in (root / "ray").glob("session_2*"))  # noqa: E731
    (cluster_session,) = sessions()

    private = suite_run(env, tmp_path / "private")
    assert private.returncode == 0, private.stderr
    (started,) = set(sessions()) - {cluster_session}  # an instance of its own ...
    record = record_of(tmp_path / "private")
    assert record["ray_address"] != address and record["ray_address"].rsplit(":", 1)[1] != address.rsplit(":", 1)[1]
    deadline = time.time() + 30  # ... shut down with the run
    while time.time() < deadline and (left := [p for p in psutil.process_iter(["cmdline"])
                                               if started in " ".join(p.info["cmdline"] or [])]):
        time.sleep(0.5)
    assert not left, f"the run's Ray outlived it: {left}"
    assert head.poll() is None and (root / "ray" / "ray_current_cluster").read_text().strip() == address  # untouched

    joined = suite_run(env, tmp_path / "joined", "--address", "auto")
    assert joined.returncode == 0, joined.stderr
    assert sessions() == sorted([cluster_session, started])  # no instance of its own: it ran on the cluster
    node = record_of(tmp_path / "joined")["ray_node_id"]
    assert node != record["ray_node_id"] and any(node in p.name for p in (root / "ray" / cluster_session).iterdir())
