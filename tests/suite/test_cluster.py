"""A sweep on a real two-node Ray cluster (a head and a worker node on this machine): trials spread over
both nodes; when the worker node dies mid-sweep, the sweep says what is unfinished and exits non-zero,
and rerunning the same command skips the finished trials and completes the rest. No process of the
cluster outlives the test."""

import json
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from suite import results

ROOT = Path(__file__).resolve().parents[2]


def started_runs(out):
    """(record, folder) of every run the sweep has started."""
    found = []
    for config in Path(out).rglob("config.json"):
        try:
            found.append((json.loads(config.read_text()), config.parent))
        except (OSError, ValueError):  # being written
            pass
    return found


@pytest.mark.slow
def test_a_sweep_spreads_over_two_nodes_survives_losing_one_and_its_rerun_finishes(tmp_path):
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    try:
        worker = cluster.add_node(num_cpus=1)
        out = tmp_path / "out"
        argv = [sys.executable, "-m", "suite.run", "--env", "portfolio", "--algo", "random_valid", "--seeds", "6",
                "--steps", "400000", "--episodes", "5", "--max-concurrent", "2", "--address", cluster.address,
                "--out", str(out)]
        sweep = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline, killed = time.time() + 240, False
        while time.time() < deadline and sweep.poll() is None and not killed:
            running_on_worker = [folder for record, folder in started_runs(out)
                                 if record.get("ray_node_id") == worker.node_id
                                 and (folder / "progress.csv").is_file() and not results.is_complete(folder)]
            if running_on_worker:
                cluster.remove_node(worker, allow_graceful=False)  # the worker node dies mid-trial
                killed = True
            time.sleep(0.2)
        stdout, stderr = sweep.communicate(timeout=600)
        assert killed, (stdout, stderr)
        assert sweep.returncode != 0, (stdout, stderr)
        assert "unfinished: " in stderr or "failed: " in stderr, stderr
        nodes = {record["ray_node_id"] for record, _ in started_runs(out)}
        assert nodes == {cluster.head_node.node_id, worker.node_id}  # trials ran on both nodes
        done_before = {folder: record["started"] for record, folder in started_runs(out)
                       if results.is_complete(folder)}

        rerun = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=600)
        assert rerun.returncode == 0, (rerun.stdout, rerun.stderr)
        assert rerun.stderr.count("already complete") == len(done_before)
        loaded = results.load(out)
        assert len(loaded.runs) == 6 and set(loaded.runs["status"]) == {"complete"}, loaded.problems
        for folder, started in done_before.items():  # finished trials were skipped, not run again
            assert json.loads((folder / "config.json").read_text())["started"] == started
        # the runs the dead node had started were finished on the head node, and their records say so
        assert {record["ray_node_id"] for record, _ in started_runs(out)} == {cluster.head_node.node_id}
        # the driver said why each trial failed in one line, not with the raylet's state
        failed_lines = [line for line in stderr.splitlines() if line.startswith(("failed: ", "unfinished: "))]
        assert failed_lines and all("raylet" not in line.lower() for line in failed_lines), stderr
    finally:
        cluster.shutdown()
    _, alive = psutil.wait_procs(psutil.Process().children(recursive=True), timeout=30)
    assert not alive, f"processes of the cluster left behind: {[p.name() for p in alive]}"


@pytest.mark.slow
def test_ray_address_in_the_environment_is_the_cluster_runs_join(tmp_path):
    """As inside `ray job submit`: RAY_ADDRESS set, no --address."""
    import os

    from ray.cluster_utils import Cluster

    from tests.helpers import TINY

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 2, "include_dashboard": False})
    try:
        run = subprocess.run([sys.executable, "-m", "suite.run", "--env", "portfolio", "--algo", "masked_ppo",
                              "--steps", "512", "--episodes", "2", "--out", str(tmp_path), "--quiet", *TINY],
                             cwd=ROOT, capture_output=True, text=True, timeout=300,
                             env={**os.environ, "RAY_ADDRESS": cluster.address})
        assert run.returncode == 0, run.stderr
        (record, _), = started_runs(tmp_path)
        assert record["ray_address"] == cluster.address and record["ray_node_id"] == cluster.head_node.node_id
    finally:
        cluster.shutdown()
    _, alive = psutil.wait_procs(psutil.Process().children(recursive=True), timeout=30)
    assert not alive, f"processes of the cluster left behind: {[p.name() for p in alive]}"
