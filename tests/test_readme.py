"""The README's and the docs' promises: the set-up commands are what CI runs, the examples run, the methods
table is the registry's, the README stays short (CI builds the docs with mkdocs build --strict)."""

import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

import envs
from suite.check import run_checks

ROOT = Path(__file__).resolve().parents[1]


README = (ROOT / "README.md").read_text()
#: The documentation pages (docs/), which hold what the README used to.
DOCS = {path.relative_to(ROOT).as_posix(): path.read_text() for path in sorted((ROOT / "docs").rglob("*.md"))}


def setup_commands() -> list[str]:
    section = README.split("## Set up", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```bash\n(.+?)\n```", section)


def test_ci_runs_the_readme_setup_commands_verbatim():
    commands = setup_commands()
    assert len(commands) == 2
    assert "suite.run --env portfolio --algo masked_ppo" in commands[0]
    assert "pytest" in commands[1]
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    for command in commands:
        assert command in ci, f".ci/run does not run the README command: {command}"


def register_example_source() -> str:
    after = DOCS["docs/register-env.md"].split("<!-- register-example -->", 1)[1]
    return after.split("```python\n", 1)[1].split("\n```", 1)[0]


@pytest.fixture
def shelf_module(tmp_path, monkeypatch):
    """The README example saved as shelf.py on the path, as the README tells a user to do."""
    (tmp_path / "shelf.py").write_text(register_example_source())
    monkeypatch.syspath_prepend(str(tmp_path))
    envs.unregister("shelf")
    yield tmp_path
    envs.unregister("shelf")
    sys.modules.pop("shelf", None)


def test_register_example_passes_suite_check(shelf_module):
    import shelf  # noqa: F401  (registers the env)
    assert "shelf" in envs.names()
    failed = [r for r in run_checks("shelf", steps=3000) if not r.passed]
    assert not failed, failed
    vec = envs.make_vector("shelf", 16, capacity=3)
    obs, _ = vec.reset(seed=0)
    assert obs["action_mask"].shape == (16, 5) and obs["action_mask"][:, 4].sum() == 0  # 0 + 4 > 3


def test_register_example_runs_from_the_command_line(shelf_module, tmp_path):
    env = {"PYTHONPATH": str(shelf_module)}
    check = subprocess.run([sys.executable, "-m", "suite.check", "--import", "shelf", "--env", "shelf",
                            "--steps", "2000"], cwd=ROOT, capture_output=True, text=True, env={**_base_env(), **env})
    assert check.returncode == 0, check.stdout + check.stderr
    run = subprocess.run([sys.executable, "-m", "suite.run", "--import", "shelf", "--env", "shelf",
                          "--algo", "random_valid", "--steps", "3000", "--episodes", "5",
                          "--out", str(tmp_path / "out")],
                         cwd=ROOT, capture_output=True, text=True, env={**_base_env(), **env})
    assert run.returncode == 0, run.stderr
    assert (tmp_path / "out" / "shelf" / "random_valid" / "seed0" / "eval.csv").is_file()


def test_register_example_trains_masked_ppo_on_the_torch_backend(shelf_module, tmp_path):
    """The shelf ends all agents together and so has no idle action: autoreset must not ask for one."""
    import shelf  # noqa: F401  (registers the env)

    from suite import run
    from tests.helpers import TINY, run_folder

    assert run.run_cli(run.main, "python -m suite.run", [
        "--env", "shelf", "--algo", "masked_ppo", "--backend", "torch", "--steps", "1024", "--episodes", "4",
        "--out", str(tmp_path), "--quiet", *TINY]) == 0
    progress = pd.read_csv(run_folder(tmp_path, "shelf", "masked_ppo") / "progress.csv")
    assert progress["episodes"].iloc[-1] >= 16 and (progress["invalid_action_rate"] == 0).all()


def _base_env():
    import os
    return {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}


def python_blocks_using(marker: str) -> list[tuple[str, str]]:
    """``(page, source)`` of every Python block of the README and the docs that uses ``marker``."""
    found = []
    for page, text in {"README.md": README, **DOCS}.items():
        blocks = [block.split("\n```", 1)[0] for block in text.split("```python\n")[1:]]
        found += [(page, block) for block in blocks if marker in block]
    return found


@pytest.mark.parametrize("marker", ['envs.make("portfolio")', 'envs.make("sum_to_zero")'])
def test_the_env_examples_of_the_readme_and_docs_run(marker):
    found = python_blocks_using(marker)
    assert found, f"no example uses {marker}"
    for page, source in found:
        exec(compile(source, f"{page} example using {marker}", "exec"), {})


def test_the_readme_is_short_and_links_to_pages_that_exist():
    assert len(README.encode()) <= 10_000
    for link in re.findall(r"\]\(((?:docs|results|examples)/[^)#]+)\)", README):
        assert (ROOT / link).exists(), f"README links to {link}, which does not exist"


def test_the_methods_table_lists_every_algo_with_its_backends():
    """The README's table of methods says which backends run each one: the registry's own answer."""
    from baselines import algo_names, load_algo
    from baselines.method import Method
    from baselines.references import CATALOG

    lines = DOCS["docs/methods.md"].splitlines()
    start = lines.index("| algo | what the agent sees | an inadmissible action | action spaces | backends | "
                        "evaluated policies (`eval.csv`) |")
    table = [line for line in lines[start + 2:start + 40] if line.startswith("| `")]
    references = [line for line in DOCS["docs/references.md"].splitlines() if line.startswith("| `")]
    for name in algo_names():
        where = (references, "docs/references.md") if name in CATALOG else (table, "docs/methods.md")
        row = next((line for line in where[0] if line.startswith(f"| `{name}` |")), None)
        assert row is not None, f"{name} is missing from the table of {where[1]}"
        entry = load_algo(name)
        if isinstance(entry, Method):
            assert row.split(" | ")[4] == ", ".join(entry.backends), (name, row.split(" | ")[4])


def test_the_readmes_budgets_are_the_defaults():
    """The set-up run (portfolio) and the quickstart's one run (speed_limit) state masked PPO's default budget."""
    from baselines import load_algo

    steps = load_algo("masked_ppo").default_steps
    assert steps == 1_000_000
    assert "masked PPO on the portfolio problem for 1,000,000 env steps" in README.replace("\n", " ")
    quickstart = next(line for line in README.splitlines() if line.startswith("python -m suite.run --env speed_limit"))
    assert "1M steps (default)" in quickstart and "--steps" not in quickstart
