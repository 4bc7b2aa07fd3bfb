"""A user env whose finished episodes admit nothing (a full knapsack) is a valid env: it passes
suite.check and trains and evaluates with every algo on every backend. An env that leaves an agent
nothing admissible where it must act is reported as that env failing, naming it and the state."""

from dataclasses import dataclass

import numpy as np
import pytest
from gymnasium import spaces

import envs
from envs.config import setting
from suite import check
from tests.helpers import TINY, assert_ray_is_gone, read_run, run_main

WEIGHTS = np.array([1, 2, 3])


@dataclass(frozen=True)
class KnapsackConfig:
    capacity: int = setting(6, "room in the knapsack", check=lambda v: v > 0, accepts="a positive integer")


class KnapsackCore(envs.EnvCore):
    """Put an item of weight 1, 2 or 3 in the knapsack each step; never beyond its capacity. The episode
    ends when it is full, where no item fits: the finished episode's mask is all zero."""

    Config = KnapsackConfig
    agent_prefix = "packer"

    def __init__(self, config, num_envs=1, strict=False):
        super().__init__(config, num_envs, strict)
        self.action_space = spaces.Discrete(3)
        self.feature_space = spaces.Box(0, config.capacity, (1,), np.float32)

    @property
    def constraints(self):
        return [envs.Constraint("fits", "no item heavier than the room left",
                                lambda state, actions: state[..., None] + WEIGHTS[actions] <= self.config.capacity)]

    def reset_envs(self, env_ids, rngs):
        if self.state is None:
            self.state = np.zeros((self.num_envs, 1), dtype=np.int64)
        self.state[env_ids] = 0

    def features(self):
        return self.state[..., None].astype(np.float32)

    def action_mask(self):
        return (self.state[..., None] + WEIGHTS <= self.config.capacity).astype(np.int8)

    def fallback(self, actions, inadmissible):
        return np.where(inadmissible, 0, actions)  # the lightest item

    def transition(self, actions):
        self.state = np.minimum(self.state + WEIGHTS[actions[..., 0]], self.config.capacity)
        full = self.state >= self.config.capacity
        return envs.StepResult(WEIGHTS[actions[..., 0]].astype(float) - 0.5 * full, full, np.zeros_like(full))


class StuckKnapsackCore(KnapsackCore):
    """The same knapsack, but a full one does not end the episode: its packer must act with nothing admissible."""

    def transition(self, actions):
        result = super().transition(actions)
        result.terminated = np.zeros_like(result.terminated)
        return result


@pytest.fixture
def knapsack():
    envs.register("knapsack", KnapsackCore, overwrite=True)
    envs.register("stuck_knapsack", StuckKnapsackCore, overwrite=True)
    yield "knapsack"
    envs.unregister("knapsack")
    envs.unregister("stuck_knapsack")


def test_the_finished_episodes_really_admit_nothing_and_the_checker_passes(knapsack):
    vec = envs.make_vector(knapsack, 4)
    obs, _ = vec.reset(seed=0)
    ended = None
    for _ in range(10):
        obs, _, terminated, _, _ = vec.step(np.zeros(4, dtype=np.int64))  # weight 1 each step
        if terminated.any():
            ended = obs["action_mask"][terminated]
            break
    assert ended is not None and (ended == 0).all()  # what a finished episode hands out
    rows = check.run_checks(knapsack, steps=2000)
    assert all(r.passed for r in rows), [(r.check, r.detail) for r in rows if not r.passed]
    assert next(r for r in rows if r.check == "mask never empty").exercised


@pytest.mark.parametrize("algo, extra", [
    ("random_valid", []),
    ("masked_ppo", TINY), ("masked_ppo", [*TINY, "--backend", "torch"]),
    ("penalty_ppo", TINY), ("penalty_ppo", [*TINY, "--backend", "torch"]),
    ("sb3_maskable_ppo", TINY), ("sb3_maskable_ppo", [*TINY, "--algo-config", "vec_env=batched"]),
])
def test_every_algo_trains_and_evaluates_on_an_env_whose_finished_episodes_admit_nothing(knapsack, tmp_path,
                                                                                           algo, extra):
    if algo.startswith("sb3"):
        pytest.importorskip("sb3_contrib", reason='the compare extra: pip install -e ".[compare]"')
    assert run_main("--env", knapsack, "--algo", algo, "--steps", "1024", "--episodes", "6", "--out", tmp_path,
                    "--quiet", "--eval-every", "1", *extra) == 0
    assert_ray_is_gone()
    _, progress, evaluation = read_run(tmp_path, knapsack, algo)
    assert progress["episodes"].iloc[-1] > 100  # about 3 steps an episode: many finished episodes
    assert (evaluation["length"] > 0).all() and evaluation["return"].notna().all()
    if algo != "penalty_ppo":
        assert (progress["invalid_action_rate"] == 0).all()
        assert (evaluation.loc[evaluation["mask"] == "on", "invalid_actions"] == 0).all()


def test_an_agent_left_with_nothing_admissible_where_it_must_act_is_the_env_failing(knapsack, tmp_path, capsys):
    assert run_main("--env", "stuck_knapsack", "--algo", "random_valid", "--steps", "1000", "--out", tmp_path) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0, err  # one line, no traceback
    assert "env 'stuck_knapsack' left agent packer_0 of entry" in err and "where it must act" in err
    assert "observation of entry" in err and "[6.]" in err  # the state: a full knapsack
    error = next(tmp_path.rglob("error.txt")).read_text()
    assert "EnvFailure" in error  # the traceback is kept with the run
