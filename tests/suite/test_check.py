"""suite.check must catch wrong masks and name the constraint, via the API and the CLI."""

import numpy as np
import pytest
from gymnasium import spaces as gym_spaces

import envs
import envs.registry
from envs.masking import BoundedSumSet
from envs.portfolio import C2_ASSET, C3_ASSET, HOLD, PortfolioCore, portfolio_value
from envs.sum_to_zero import SumToZeroCore
from suite import check


class PostBugMaskCore(PortfolioCore):
    """The post's update_mask, transcribed with its C4 bug: the C2/C3 lines re-admit buys of assets 2 and 3."""

    def action_mask(self):
        mask = super().action_mask().reshape(self.num_envs, self.n_agents, 3, 11)
        s = self.state
        share = s.holdings * s.prices[:, None, :] / portfolio_value(s)[..., None]
        mask[..., C2_ASSET, HOLD + 1:] = (share[..., C2_ASSET] <= 1 / 3)[..., None]  # overwrites C4
        mask[..., C3_ASSET, HOLD + 1:] = (share[..., C3_ASSET] <= 2 / 3)[..., None]
        return mask.reshape(self.num_envs, self.n_agents, 33)


class OverCautiousMaskCore(PortfolioCore):
    """Forbids selling everything that is held (a C1 mask that is too strict): incomplete, not unsound."""

    def action_mask(self):
        mask = super().action_mask().reshape(self.num_envs, self.n_agents, 3, 11)
        mask[..., :HOLD] &= (self.state.holdings[..., None] > -np.array([-50, -40, -30, -20, -10])).astype(np.int8)
        return mask.reshape(self.num_envs, self.n_agents, 33)


@pytest.fixture
def registered():
    names = []

    def register(name, core):
        envs.register(name, core, overwrite=True)
        names.append(name)
        return name

    yield register
    for name in names:
        envs.unregister(name)


def failures(name, **kwargs):
    return [r for r in check.run_checks(name, steps=4000, **kwargs) if not r.passed]


def test_post_mask_bug_fails_soundness_naming_c4(registered):
    name = registered("portfolio_post_bug", PostBugMaskCore)
    failed = failures(name)
    assert [(r.check, r.constraint) for r in failed] == [("mask sound", "C4")]
    assert "mask admits sub-action" in failed[0].detail and "C4 (no buying with less than $1 cash)" in failed[0].detail
    assert "observation [" in failed[0].detail  # an example state


def test_over_cautious_mask_fails_completeness(registered):
    name = registered("portfolio_over_cautious", OverCautiousMaskCore)
    failed = failures(name)
    assert [(r.check, r.constraint) for r in failed] == [("mask complete", "all")]
    assert "though every constraint admits it" in failed[0].detail


def test_cli_exit_status_and_message_name_the_constraint(registered, capsys):
    name = registered("portfolio_post_bug", PostBugMaskCore)
    status = check.run_cli(check.main, "python -m suite.check", ["--env", name, "--steps", "2000"])
    out, err = capsys.readouterr()
    assert status == 1
    assert "FAIL" in out and "C4" in err
    assert check.run_cli(check.main, "python -m suite.check", ["--env", "portfolio", "--steps", "2000"]) == 0
    assert "14 checks passed on env 'portfolio'" in capsys.readouterr().out


def test_empty_mask_is_reported(registered):
    class NoHoldCore(PortfolioCore):
        def action_mask(self):
            mask = super().action_mask()
            mask[..., 22:33] = 0  # asset 3 has nothing admissible, not even hold
            return mask

    name = registered("portfolio_empty", NoHoldCore)
    failed = {(r.check, r.constraint) for r in failures(name)}
    assert ("mask never empty", "all") in failed and ("mask complete", "all") in failed


def test_wrong_reporting_is_caught(registered):
    class SilentCore(PortfolioCore):
        def step(self, actions, active=None):
            result = super().step(actions, active)
            result.info["invalid_actions"] = np.zeros_like(result.info["invalid_actions"])
            return result

    name = registered("portfolio_silent", SilentCore)
    failed = {(r.check, r.constraint) for r in failures(name)}
    assert ("invalid actions reported", "all") in failed


def test_nondeterministic_env_fails_the_seed_check(registered):
    class GlobalRandomCore(PortfolioCore):
        def reset_envs(self, env_ids, rngs):
            super().reset_envs(env_ids, [np.random.default_rng() for _ in env_ids])  # ignores the seed

    name = registered("portfolio_unseeded", GlobalRandomCore)
    failed = {(r.check, r.constraint) for r in failures(name)}
    assert ("seed determinism", "-") in failed


def test_a_warning_of_gymnasiums_checker_fails_its_row(registered):
    """check_env only warns about a Box action space that is not symmetric and normalised: still a finding."""
    class WideActionsCore(SumToZeroCore):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.action_space = gym_spaces.Box(-3.0, 2.0, self.action_space.shape, np.float32)

    name = registered("sum_to_zero_wide", WideActionsCore)
    rows = {r.check: r for r in check.run_checks(name, steps=2000)}
    gym_row = rows["gymnasium check_env"]
    assert not gym_row.passed and gym_row.detail.startswith("warned: ") and "normalized" in gym_row.detail
    assert "\x1b" not in gym_row.detail  # Gymnasium's colour codes are stripped
    assert rows["pettingzoo parallel_api_test"].passed  # the other rows are unaffected


class FreeCore(envs.EnvCore):
    """Three actions, every one admissible in every state: there is no inadmissible action to raise on."""

    Config = envs.registry.CommonConfig

    def __init__(self, config, num_envs=1, strict=False):
        super().__init__(config, num_envs, strict)
        self.action_space = gym_spaces.Discrete(3)
        self.feature_space = gym_spaces.Box(0.0, 10.0, (1,), np.float32)

    @property
    def constraints(self):
        return [envs.Constraint("any", "anything goes", lambda state, actions: np.ones(actions.shape, dtype=bool))]

    def reset_envs(self, env_ids, rngs):
        if self.state is None:
            self.state = np.zeros(self.num_envs)
        self.state[env_ids] = 0

    def features(self):
        return self.state[:, None, None].astype(np.float32)

    def action_mask(self):
        return np.ones((self.num_envs, 1, 3), dtype=np.int8)

    def fallback(self, actions, inadmissible):
        return actions

    def transition(self, actions):
        self.state += 1
        done = np.broadcast_to((self.state >= 10)[:, None], (self.num_envs, 1)).copy()
        return envs.StepResult(actions[..., 0].astype(float), done, np.zeros_like(done))


def test_strict_mode_with_nothing_inadmissible_is_not_exercised_rather_than_passed(registered, capsys):
    name = registered("free", FreeCore)
    strict = next(r for r in check.run_checks(name, steps=2000) if r.check == "strict mode raises")
    assert strict.passed and not strict.exercised and strict.result == "NOT EXERCISED"
    assert "no inadmissible action exists" in strict.detail
    assert check.run_cli(check.main, "python -m suite.check", ["--env", name, "--steps", "2000"]) == 0
    out = capsys.readouterr().out
    assert "NOT EXERCISED" in out and "1 not exercised (strict mode raises)" in out
    # where one exists only deep into an episode, the search finds it
    portfolio = next(r for r in check.run_checks("portfolio", steps=2000) if r.check == "strict mode raises")
    assert portfolio.exercised and portfolio.passed and "ValueError" in portfolio.detail


def test_cli_bad_input_is_one_line_and_status_2(capsys):
    assert check.run_cli(check.main, "python -m suite.check", ["--env", "nope"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unknown env 'nope'; known envs:" in err
    assert check.run_cli(check.main, "python -m suite.check", ["--env", "portfolio", "--env-config", "periods=-3"]) == 2
    assert "config key 'periods' must be a positive integer" in capsys.readouterr().err


class ClippingSet(BoundedSumSet):
    """A common shortcut: clip to the bounds and forget the sum (not a projection onto the set)."""

    def project(self, actions):
        return np.clip(actions, self.lower, self.upper)


class RescalingSet(BoundedSumSet):
    """Subtract the mean, then clip: admissible only sometimes, and never the nearest point in general."""

    def project(self, actions):
        centred = actions - actions.mean(axis=-1, keepdims=True)
        return np.clip(centred, self.lower, self.upper)


class SlackContainsSet(BoundedSumSet):
    """contains() with a tolerance 1000 times the env's: admits what Z1 forbids."""

    def contains(self, actions, atol=None):
        return super().contains(actions, 1000 * self.atol if atol is None else atol)


class CornerSampleSet(BoundedSumSet):
    """sample() that always moves half a unit from target 1 to target 0, ignoring the bounds: it
    overdraws target 1 whenever that holds less than 0.5 (Z2)."""

    def sample(self, rng, max_rounds=1000):
        out = np.zeros(self.lower.shape)
        out[..., 0] = 0.5
        out[..., 1] = -0.5
        return out


def core_with_set(set_cls):
    class Core(SumToZeroCore):
        def admissible_set(self):
            base = super().admissible_set()
            return set_cls(base.lower, base.upper, base.total, atol=base.atol)
    return Core


@pytest.mark.parametrize("set_cls, expected", [
    (ClippingSet, {("set sound", "Z1")}),
    (RescalingSet, {("set sound", "Z1"), ("projection nearest", "all")}),
    (SlackContainsSet, {("contains == predicates", "all")}),
    (CornerSampleSet, {("set sound", "Z2"), ("set never empty", "all")}),
])
def test_a_wrong_admissible_set_fails_the_check_naming_what(registered, set_cls, expected):
    name = registered(f"sum_to_zero_{set_cls.__name__.lower()}", core_with_set(set_cls))
    failed = failures(name)
    assert expected <= {(r.check, r.constraint) for r in failed}, [(r.check, r.constraint, r.detail) for r in failed]
    assert all("e.g." in r.detail or r.check in ("invalid actions reported", "strict mode raises") for r in failed)


def test_the_real_admissible_set_passes_every_check():
    assert failures("sum_to_zero") == []
