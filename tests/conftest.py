"""Project-wide pytest setup.

``pytest --benchmark`` runs only the speed benchmarks (``tests/benchmarks/``, pytest-benchmark);
a plain ``pytest`` skips them, so the default run stays a correctness run. ``pytest --slow`` runs only
the tests marked ``slow`` (a real Ray cluster losing a node, processes killed and resumed); a plain
``pytest`` skips them too, and ``.ci/run`` runs them after it.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

from tests.helpers import write_synthetic_run

BENCHMARK_DIR = Path(__file__).parent / "benchmarks"


def pytest_addoption(parser):
    parser.addoption("--benchmark", action="store_true", default=False,
                     help="run the speed benchmarks under tests/benchmarks/ (and only them)")
    parser.addoption("--slow", action="store_true", default=False,
                     help="run the tests marked slow (and only them): clusters, killed and resumed processes")
    parser.addoption("--survey", action="store_true", default=False,
                     help="run every slow test and every test the robustness survey counts (python -m "
                          "tests.robustness.survey passes it and prints the counts per area)")


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: a test of minutes (a Ray cluster, processes killed): pytest --slow")
    # checkpoints are signed with a key of the user's (suite.trust): the tests' own, never the home folder's;
    # set before any Ray starts, so its workers sign with it too
    os.environ["MASKBENCH_KEY"] = str(Path(tempfile.mkdtemp(prefix="maskbench-test-key-")) / "checkpoint.key")
    # the job-shop solver's cache (baselines.job_shop_solver): the tests' own, never the home folder's
    os.environ["MASKBENCH_JOB_SHOP_CACHE"] = tempfile.mkdtemp(prefix="maskbench-test-job-shop-")


def _is_benchmark(item) -> bool:
    return BENCHMARK_DIR in Path(item.fspath).parents or "benchmark" in getattr(item, "fixturenames", ())


def pytest_collection_modifyitems(config, items):
    run_benchmarks, run_slow = config.getoption("--benchmark"), config.getoption("--slow")
    skip_bench = pytest.mark.skip(reason="speed benchmark: run with pytest --benchmark")
    skip_test = pytest.mark.skip(reason="correctness test: pytest --benchmark runs benchmarks only")
    skip_slow = pytest.mark.skip(reason="slow test: run with pytest --slow (.ci/run does)")
    skip_fast = pytest.mark.skip(reason="pytest --slow runs the slow tests only")
    if config.getoption("--survey"):
        from tests.robustness.survey import NOT_A_CASE, area_of

        skip_other = pytest.mark.skip(reason=NOT_A_CASE)
        for item in items:
            if _is_benchmark(item) or not ("slow" in item.keywords or area_of(item.nodeid)):
                item.add_marker(skip_other)
        return
    for item in items:
        if _is_benchmark(item) != run_benchmarks:
            item.add_marker(skip_test if run_benchmarks else skip_bench)
        elif not run_benchmarks and ("slow" in item.keywords) != run_slow:
            item.add_marker(skip_fast if run_slow else skip_slow)


@pytest.fixture(scope="module")
def ray_local():
    """A local Ray instance with 2 CPUs for a module's tests, shut down after them (unless one was running)."""
    import ray

    from baselines.ray_session import connect_ray

    owned = connect_ray(None, num_cpus=2)
    yield
    if owned:
        ray.shutdown()


@pytest.fixture
def make_run():
    """``make_run(root, env, algo, seed, **numbers)``: see :func:`write_synthetic_run`."""
    return write_synthetic_run
