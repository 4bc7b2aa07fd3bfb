"""Project-wide pytest setup.

``pytest --benchmark`` runs only the speed benchmarks (``tests/benchmarks/``, pytest-benchmark);
a plain ``pytest`` skips them, so the default run stays a correctness run.
"""

from __future__ import annotations

from pathlib import Path

import pytest

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


def write_synthetic_run(root, env="portfolio", algo="masked_ppo", seed=0, *, steps=200, iterations=2,
                        evaluated=True, algo_config=None, returns=None, evals=None, progress=None):
    """A run folder as ``suite.run`` writes it, with chosen numbers.

    ``returns``: the headline policy's (greedy, mask on) episode returns (default 10, 11, 12 + seed);
    ``evals``: extra eval rows (dicts) after the headline ones; ``progress``: progress columns to
    set or add (lists of ``iterations`` values).
    """
    import json

    import pandas as pd

    from suite import results

    directory = results.run_dir(root, env, algo, seed)
    directory.mkdir(parents=True)
    record = {"env": env, "env_config": {"periods": 20}, "algo": algo,
              "algo_config": algo_config or {"lr": 0.001, "hidden": [16, 16]}, "seed": seed, "steps": steps,
              "episodes": 3, "started": "2026-11-23T00:00:00"}
    (directory / "config.json").write_text(json.dumps(record))
    table = {"iteration": list(range(1, iterations + 1)), "env_steps": [100 * (i + 1) for i in range(iterations)],
             "episodes": list(range(iterations)), "wall_seconds": [1.5 * (i + 1) for i in range(iterations)],
             "episode_return_mean": [float(seed + i) for i in range(iterations)],
             "episode_return_min": [0.0] * iterations, "episode_return_max": [9.0] * iterations,
             "invalid_action_rate": [0.0] * iterations}
    table.update(progress or {})
    pd.DataFrame(table).to_csv(directory / "progress.csv", index=False)
    if evaluated:
        returns = returns if returns is not None else [10.0 + seed, 11.0 + seed, 12.0 + seed]
        rows = [{"episode": i, "env_seed": 1_000_000 + i, "policy": "greedy", "mask": "on", "return": r, "length": 20,
                 "invalid_steps": 0, "invalid_actions": 0} for i, r in enumerate(returns)]
        rows += [{"length": 20, "invalid_steps": 0, "invalid_actions": 0, "env_seed": 0, **row} for row in evals or []]
        pd.DataFrame(rows).to_csv(directory / "eval.csv", index=False)
    return directory


@pytest.fixture
def make_run():
    """``make_run(root, env, algo, seed, **numbers)``: see :func:`write_synthetic_run`."""
    return write_synthetic_run
