"""Project-wide pytest setup.

``pytest --benchmark`` runs only the speed benchmarks (``tests/benchmarks/``, pytest-benchmark);
a plain ``pytest`` skips them, so the default run stays a correctness run.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import write_synthetic_run

BENCHMARK_DIR = Path(__file__).parent / "benchmarks"


def pytest_addoption(parser):
    parser.addoption("--benchmark", action="store_true", default=False,
                     help="run the speed benchmarks under tests/benchmarks/ (and only them)")


def _is_benchmark(item) -> bool:
    return BENCHMARK_DIR in Path(item.fspath).parents or "benchmark" in getattr(item, "fixturenames", ())


def pytest_collection_modifyitems(config, items):
    run_benchmarks = config.getoption("--benchmark")
    skip_bench = pytest.mark.skip(reason="speed benchmark: run with pytest --benchmark")
    skip_test = pytest.mark.skip(reason="correctness test: pytest --benchmark runs benchmarks only")
    for item in items:
        if _is_benchmark(item) != run_benchmarks:
            item.add_marker(skip_test if run_benchmarks else skip_bench)


@pytest.fixture
def make_run():
    """``make_run(root, env, algo, seed, **numbers)``: see :func:`write_synthetic_run`."""
    return write_synthetic_run
