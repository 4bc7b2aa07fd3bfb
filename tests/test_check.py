"""suite.check must catch wrong masks and name the constraint, via the API and the CLI."""

import numpy as np
import pytest

import envs
from envs.portfolio import C2_ASSET, C3_ASSET, HOLD, PortfolioCore, portfolio_value
from envs.masking import BoundedSumSet
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
    assert "all 14 checks passed" in capsys.readouterr().out


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


def test_cli_bad_input_is_one_line_and_status_2(capsys):
    assert check.run_cli(check.main, "python -m suite.check", ["--env", "nope"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unknown env 'nope'; known envs:" in err
    assert check.run_cli(check.main, "python -m suite.check", ["--env", "portfolio", "--env-config", "periods=-3"]) == 2
    assert "config key 'periods' must be a positive integer" in capsys.readouterr().err


# ------------------------------------------------------------------ continuous admissible sets


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
