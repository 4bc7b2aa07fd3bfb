"""``python -m suite.check --env NAME``: prove an env keeps the masking contract.

Works for any registered env, built-in or the user's. It rolls out random actions (admissible or
not) and random admissible actions on the batched core, adds the core's ``sample_states`` when it
has them, and verifies:

(a) mask soundness (nothing admitted is forbidden by a constraint, per constraint) and
    completeness (nothing every constraint admits is masked), against the named predicates;
    for continuous envs, the admissible set instead: what ``sample`` and ``project`` return is
    admitted by every constraint, ``contains`` agrees with the predicates (on random, sampled,
    projected and near-boundary actions), and ``project`` is the Euclidean projection
    (idempotent, and ``<y - p, s - p> <= 0`` for sampled admissible ``s``: the variational
    inequality that characterises the nearest point of a convex set);
(b) the mask is never empty (every sub-action keeps an admissible value; for continuous envs,
    ``sample`` returns admissible actions in every state);
(c) shapes and dtypes of observations, masks and infos, and that an inadmissible action is
    reported (``invalid_actions``, ``violated``) and, in strict mode, raised (an inadmissible action
    is searched for over rollout states; a row that found none says "not exercised", never PASS);
(d) Gymnasium's ``check_env`` and PettingZoo's ``parallel_api_test`` / ``parallel_seed_test``, whose
    warnings fail the row as their errors do;
(e) seed determinism of the Gymnasium view;
(f) the vector view matches single envs step for step under the same seeds, autoreset included.

Prints one row per check and per constraint (PASS, FAIL or NOT EXERCISED); exits 1 on any failure,
naming the constraint and an example state.
"""

from __future__ import annotations

import contextlib
import io
import re
import sys
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

import envs
from envs import masking
from envs.config import ConfigError, available_memory, parse_assignments
from envs.core import EnvCore
from envs.registry import ENTRY_BYTES
from suite.cli import Parser, add_import_flag, import_user_modules, non_negative_int, positive_int, run_cli

__all__ = ["CheckResult", "MaskAudit", "SetAudit", "audit_mask", "audit_set", "run_checks", "check_steps_fit",
           "main"]


@dataclass
class CheckResult:
    """One row of the check. ``exercised`` False: the check found nothing to test (neither PASS nor FAIL)."""

    check: str
    constraint: str
    passed: bool
    detail: str
    exercised: bool = True

    @property
    def result(self) -> str:
        return "FAIL" if not self.passed else "PASS" if self.exercised else "NOT EXERCISED"

    def row(self) -> dict[str, str]:
        return {"check": self.check, "constraint": self.constraint, "result": self.result, "detail": self.detail}


@dataclass
class MaskAudit:
    """Mask vs predicates over a batch of states: counts of disagreements and first examples.

    Attributes:
        states: states (batch entry x agent) audited.
        unsound: constraint name -> number of (state, sub-action, value) the mask admits but the
            constraint forbids.
        incomplete: number of (state, sub-action, value) every constraint admits but the mask masks.
        empty: number of (state, sub-action) blocks with no admissible value.
        examples: check name -> one-line description of a first failing state.
    """

    states: int
    unsound: dict[str, int]
    incomplete: int
    empty: int
    examples: dict[str, str]

    def merge(self, other: MaskAudit) -> MaskAudit:
        examples = {**other.examples, **self.examples}
        return MaskAudit(self.states + other.states,
                         {k: self.unsound[k] + other.unsound[k] for k in self.unsound},
                         self.incomplete + other.incomplete, self.empty + other.empty, examples)


def _sub_action_value(nvec: np.ndarray, column: int) -> tuple[int, int]:
    """Which sub-action and value a flat mask column stands for."""
    sub = int(np.searchsorted(np.cumsum(nvec), column, side="right"))
    return sub, int(column - (np.cumsum(nvec)[sub] - nvec[sub]))


def _describe_entry(core: EnvCore, env_id: int, agent: int, nvec: np.ndarray, column: int | None = None) -> str:
    features = core.features()[env_id, agent]
    text = f"observation {np.array2string(features, precision=4, separator=', ', max_line_width=10_000)}"
    if column is not None:
        sub, value = _sub_action_value(nvec, column)
        text = f"sub-action {sub} value {value} at {text}"
    return text


def audit_mask(core: EnvCore) -> MaskAudit:
    """Compare ``core.action_mask()`` with the mask the constraint predicates imply, on the current state."""
    nvec = core.nvec
    batch = (core.num_envs, core.n_agents)
    mask = core.action_mask().astype(bool)
    implied = masking.constraint_masks(core.constraints, core.state, nvec, batch)  # (C, B, A, M)
    examples: dict[str, str] = {}
    unsound = {}
    for c, constraint in enumerate(core.constraints):
        bad = mask & ~implied[c]
        unsound[constraint.name] = int(bad.sum())
        if bad.any():
            b, a, m = np.argwhere(bad)[0]
            examples[constraint.name] = "mask admits " + _describe_entry(core, b, a, nvec, m) + \
                f" but {constraint.name} ({constraint.description}) forbids it"
    incomplete = ~mask & implied.all(axis=0)
    if incomplete.any():
        b, a, m = np.argwhere(incomplete)[0]
        examples["completeness"] = "mask forbids " + _describe_entry(core, b, a, nvec, m) + \
            " though every constraint admits it"
    blocks_admit = np.stack([part.any(axis=-1) for part in masking.split_mask(mask, nvec)], axis=-1)
    empty = ~blocks_admit
    if empty.any():
        b, a, sub = np.argwhere(empty)[0]
        examples["never empty"] = f"no admissible value for sub-action {sub} at " + _describe_entry(core, b, a, nvec)
    return MaskAudit(int(np.prod(batch)), unsound, int(incomplete.sum()), int(empty.sum()), examples)


@dataclass
class SetAudit:
    """The admissible set of a continuous env vs its predicates over a batch of states.

    Attributes:
        states: states (batch entry x agent) audited.
        failures: check -> number of failing cases. Checks: ``"sample <name>"`` / ``"project
            <name>"`` (a sampled / projected action violates constraint ``name``), ``"contains"``
            (``contains`` disagrees with the predicates), ``"nearest"`` (a projection is not the
            nearest admissible point or not idempotent), ``"never empty"`` (``sample`` returned
            an action ``contains`` rejects).
        examples: check -> one-line description of a first failing case.
    """

    states: int
    failures: dict[str, int]
    examples: dict[str, str]

    def merge(self, other: SetAudit) -> SetAudit:
        keys = self.failures.keys() | other.failures.keys()
        return SetAudit(self.states + other.states,
                        {k: self.failures.get(k, 0) + other.failures.get(k, 0) for k in keys},
                        {**other.examples, **self.examples})


def _admitted_by_all(core: EnvCore, actions: np.ndarray) -> np.ndarray:
    """``(n_constraints, *batch)`` bool: which constraint admits each (whole) action."""
    return np.stack([np.asarray(c.admits(core.state, actions), dtype=bool).all(axis=-1) for c in core.constraints])


def audit_set(core: EnvCore, rng: np.random.Generator, probes: int = 8) -> SetAudit:
    """Check ``core.admissible_set()`` against the constraint predicates on the current state.

    ``probes`` random actions per state (uniform on the action space and on twice its width), their
    projections, ``probes`` sampled admissible actions and small perturbations of those (which
    straddle the set's boundary) are each classified by ``contains`` and by the predicates.
    """
    batch = (core.num_envs, core.n_agents)
    shape = core.action_space.shape
    admissible = core.admissible_set()
    low, high = core.action_space.low.astype(np.float64), core.action_space.high.astype(np.float64)
    failures: dict[str, int] = {}
    examples: dict[str, str] = {}

    def flag(check: str, bad: np.ndarray, actions: np.ndarray, what: str) -> None:
        failures[check] = failures.get(check, 0) + int(bad.sum())
        if bad.any() and check not in examples:
            b, a = np.argwhere(bad)[0][:2]
            action = np.array2string(actions[b, a], precision=4, separator=", ", max_line_width=10_000)
            examples[check] = f"{what} {action} at " + _describe_entry(core, b, a, np.zeros(0))

    mid, half = (low + high) / 2, (high - low) / 2
    for k in range(probes):
        width = 1.0 if k % 2 == 0 else 2.0
        raw = mid + width * half * rng.uniform(-1, 1, size=(*batch, *shape))
        projected = admissible.project(raw)
        sampled = admissible.sample(rng)
        nudged = sampled + 10 * admissible.atol * rng.standard_normal(sampled.shape) if hasattr(admissible, "atol") \
            else sampled + 1e-4 * rng.standard_normal(sampled.shape)
        for actions, what in ((raw, "random action"), (projected, "projected action"), (sampled, "sampled action"),
                              (nudged, "perturbed sampled action")):
            by_predicates = _admitted_by_all(core, actions).all(axis=0)
            flag("contains", np.asarray(admissible.contains(actions), dtype=bool) != by_predicates, actions,
                 f"contains() and the predicates disagree on {what}")
        for actions, kind in ((sampled, "sample"), (projected, "project")):
            admitted = _admitted_by_all(core, actions)
            for c, constraint in enumerate(core.constraints):
                flag(f"{kind} {constraint.name}", ~admitted[c], actions,
                     f"{kind}() returned an action that {constraint.name} ({constraint.description}) forbids:")
        flag("never empty", ~np.asarray(admissible.contains(sampled), dtype=bool), sampled,
             "sample() returned an action contains() rejects:")
        # The nearest point p of a convex set to y: <y - p, s - p> <= 0 for every s in the set.
        scale = 1e-9 * (1 + np.abs(raw).sum(axis=-1))
        inner = ((raw - projected) * (sampled - projected)).reshape(*batch, -1).sum(axis=-1)
        again = admissible.project(projected)
        not_nearest = (inner > scale) | (np.abs(again - projected).reshape(*batch, -1).max(axis=-1) > 1e-9)
        flag("nearest", not_nearest, raw, "project() is not the Euclidean projection (or not idempotent) of")
    return SetAudit(int(np.prod(batch)), failures, examples)


def _sample_admissible(rng: np.random.Generator, mask: np.ndarray, nvec: np.ndarray) -> np.ndarray:
    """Random admissible actions; a block with nothing admissible (reported by the audit) samples any value."""
    parts = masking.split_mask(mask, nvec)
    filled = [np.where(part.any(axis=-1, keepdims=True), part, 1) for part in parts]
    return masking.sample_masked(rng, masking.join_mask(filled), nvec)


def _reset_all(core: EnvCore, seed: int) -> None:
    """Start an episode in every batch entry, entry i from its own generator seeded ``[seed, i]``."""
    core.reset(np.arange(core.num_envs), [np.random.default_rng([seed, i]) for i in range(core.num_envs)])


def check_mask(name: str, env_config: dict[str, Any], steps: int, seed: int) -> list[CheckResult]:
    """(a), (b) and the reporting half of (c) on rollouts and sampled states."""
    core = envs.make_core(name, num_envs=1, **env_config)
    if not core.discrete:
        return check_admissible_set(name, env_config, steps, seed)
    total, where, report_errors = _audit_states(name, env_config, steps, seed, lambda core, rng: audit_mask(core))
    out = []
    for constraint in core.constraints:
        n = total.unsound[constraint.name]
        out.append(CheckResult("mask sound", constraint.name, n == 0,
                               f"{where}: {n} admitted actions violate it" + (
                                   f"; e.g. {total.examples[constraint.name]}" if n else "")))
    out.append(CheckResult("mask complete", "all", total.incomplete == 0,
                           f"{where}: {total.incomplete} admissible actions masked" + (
                               f"; e.g. {total.examples['completeness']}" if total.incomplete else "")))
    out.append(CheckResult("mask never empty", "all", total.empty == 0,
                           f"{where}: {total.empty} empty sub-action blocks" + (
                               f"; e.g. {total.examples['never empty']}" if total.empty else "")))
    out.append(_reporting_row(report_errors))
    out.append(_check_strict(name, env_config, seed, steps))
    return out


def _actions_for(core: EnvCore, rng: np.random.Generator, *, admissible_only: bool) -> np.ndarray:
    """Random actions of every entry and agent: any point of the action space, or admissible ones."""
    batch = (core.num_envs, core.n_agents)
    if core.discrete:
        if admissible_only:
            return _sample_admissible(rng, core.action_mask(), core.nvec)
        return rng.integers(0, core.nvec, size=(*batch, len(core.nvec)))
    if admissible_only:
        return core.admissible_set().sample(rng)
    return rng.uniform(core.action_space.low, core.action_space.high, size=(*batch, *core.action_space.shape))


def _expected_invalid(core: EnvCore, actions: np.ndarray) -> np.ndarray:
    """What ``info["invalid_actions"]`` must say, from the mask or the admissible set directly."""
    if core.discrete:
        return (~masking.mask_admits(core.action_mask(), actions, core.nvec)).sum(axis=-1)
    return (~np.asarray(core.admissible_set().contains(actions), dtype=bool)).astype(np.int64)


def _rollout_states_checked(core: EnvCore, steps: int, seed: int, *, admissible_only: bool,
                            audit: Callable[[EnvCore, np.random.Generator], Any], audits: list,
                            report_errors: list[str]) -> None:
    """Roll out, auditing the mask or set in every state and the step's reporting against the pre-step state."""
    rng = np.random.default_rng(seed)
    _reset_all(core, seed)
    for _ in range(max(1, steps // (core.num_envs * core.n_agents))):
        audits.append(audit(core, rng))
        actions = _actions_for(core, rng, admissible_only=admissible_only)
        expected_invalid = _expected_invalid(core, actions)
        expected_violated = masking.violated_constraints(core.constraints, core.state, actions)
        result = core.step(actions)
        if not np.array_equal(result.info["invalid_actions"], expected_invalid):
            b, a = np.argwhere(result.info["invalid_actions"] != expected_invalid)[0]
            report_errors.append(f"info['invalid_actions'] is {result.info['invalid_actions'][b, a]} for action "
                                 f"{actions[b, a].tolist()} whose mask rejects {expected_invalid[b, a]} sub-action(s)")
        reported = result.info["violated"]
        expected = expected_violated & (expected_invalid > 0)[..., None]
        if not np.array_equal(reported, expected):
            b, a = np.argwhere((reported != expected).any(axis=-1))[0]
            report_errors.append(f"info['violated'] is {core.violated_names(reported[b, a])} for action "
                                 f"{actions[b, a].tolist()}, predicates say {core.violated_names(expected[b, a])}")
        done = np.flatnonzero((result.terminated | result.truncated).all(axis=-1))
        if done.size:
            core.reset(done, [np.random.default_rng([seed, int(i), int(rng.integers(1 << 30))]) for i in done])


def _audit_states(name: str, env_config: dict[str, Any], steps: int, seed: int,
                  audit: Callable[[EnvCore, np.random.Generator], Any]) -> tuple[Any, str, list[str]]:
    """Audit rollouts (random and admissible actions) and sampled states; merged audit, where, report errors."""
    core = envs.make_core(name, num_envs=64, **env_config)
    audits: list = []
    report_errors: list[str] = []
    for offset, admissible_only in ((0, False), (1, True)):
        _rollout_states_checked(core, steps // 2, seed + offset, admissible_only=admissible_only, audit=audit,
                                audits=audits, report_errors=report_errors)
    sampled = "no sample_states()"
    try:
        probe = envs.make_core(name, num_envs=max(64, steps // 4), **env_config)
        probe.state = probe.sample_states(np.random.default_rng(seed + 2), probe.num_envs)
        audits.append(audit(probe, np.random.default_rng(seed + 3)))
        sampled = f"{probe.num_envs * probe.n_agents} sampled states"
    except NotImplementedError:
        pass
    total = audits[0]
    for other in audits[1:]:
        total = total.merge(other)
    return total, f"{total.states:,} states ({sampled} + rollouts)", report_errors


def _reporting_row(report_errors: list[str]) -> CheckResult:
    return CheckResult("invalid actions reported", "all", not report_errors,
                       "info['invalid_actions'] and info['violated'] match the mask and predicates"
                       if not report_errors else report_errors[0])


def check_admissible_set(name: str, env_config: dict[str, Any], steps: int, seed: int) -> list[CheckResult]:
    """(a), (b) and the reporting half of (c) for a continuous env's admissible set."""
    total, where, report_errors = _audit_states(name, env_config, steps, seed, audit_set)
    core = envs.make_core(name, **env_config)

    def row(check: str, constraint: str, keys: list[str], what: str) -> CheckResult:
        n = sum(total.failures.get(k, 0) for k in keys)
        example = next((total.examples[k] for k in keys if k in total.examples), "")
        return CheckResult(check, constraint, n == 0, f"{where}: {n} {what}" + (f"; e.g. {example}" if n else ""))

    out = [row("set sound", c.name, [f"sample {c.name}", f"project {c.name}"],
               "sampled or projected actions violate it") for c in core.constraints]
    out.append(row("contains == predicates", "all", ["contains"],
                   "actions on which contains() and the constraints disagree"))
    out.append(row("projection nearest", "all", ["nearest"], "projections not the nearest admissible point"))
    out.append(row("set never empty", "all", ["never empty"], "states where sample() found no admissible action"))
    out.append(_reporting_row(report_errors))
    out.append(_check_strict(name, env_config, seed, steps))
    return out


def _check_strict(name: str, env_config: dict[str, Any], seed: int, steps: int = 20_000) -> CheckResult:
    """In strict mode an inadmissible action raises ValueError naming a constraint.

    Searches rollout states (random admissible actions, up to ``steps`` agent steps) for one where some
    action is inadmissible, then steps a strict core with it. A search that finds none says so.
    """
    core = envs.make_core(name, num_envs=64, **{**env_config, "strict": True})
    rng = np.random.default_rng(seed)
    _reset_all(core, seed)
    for _ in range(max(1, steps // (core.num_envs * core.n_agents))):
        actions = _actions_for(core, rng, admissible_only=True)
        if core.discrete:
            masked = np.argwhere(~core.action_mask().astype(bool))
            if masked.size:
                b, a, column = masked[rng.integers(len(masked))]
                sub, value = _sub_action_value(core.nvec, column)
                actions[b, a, sub] = value
                return _strict_outcome(core, actions)
        else:
            candidates = _actions_for(core, rng, admissible_only=False)
            outside = ~np.asarray(core.admissible_set().contains(candidates), dtype=bool)
            if outside.any():
                return _strict_outcome(core, np.where(outside[..., None], candidates, actions))
        result = core.step(actions)  # admissible: strict mode lets it through
        done = np.flatnonzero((result.terminated | result.truncated).all(axis=-1))
        if done.size:
            core.reset(done, [np.random.default_rng([seed, int(i), int(rng.integers(1 << 30))]) for i in done])
    return CheckResult("strict mode raises", "all", True, f"no inadmissible action exists in {steps:,} agent steps of "
                       "rollout states: nothing to raise on", exercised=False)


def _strict_outcome(core: EnvCore, actions: np.ndarray) -> CheckResult:
    """Step a strict core with actions of which some are inadmissible: it must raise naming a constraint."""
    try:
        core.step(actions)
    except ValueError as error:
        names = [c.name for c in core.constraints]
        named = any(n in str(error) for n in names)
        return CheckResult("strict mode raises", "all", named,
                           f"ValueError: {error}" if named else f"ValueError names no constraint: {error}")
    return CheckResult("strict mode raises", "all", False, "strict=True accepted an inadmissible action")


def check_spaces(name: str, env_config: dict[str, Any], seed: int) -> list[CheckResult]:
    """(c): observation layout, dtypes and info types on a short rollout of every view."""
    problems: list[str] = []
    core = envs.make_core(name, **env_config)
    space = core.observation_space
    if masking.OBSERVATION_KEY not in space.spaces:
        problems.append(f"observation space has no {masking.OBSERVATION_KEY!r} entry")
    elif space[masking.OBSERVATION_KEY].dtype != np.float32:
        problems.append(f"obs[{masking.OBSERVATION_KEY!r}] dtype is {space[masking.OBSERVATION_KEY].dtype}, "
                        "expected float32")
    if core.discrete:
        expected = masking.mask_size(core.action_space)
        mask_space = space.spaces.get(masking.MASK_KEY)
        if mask_space is None or mask_space.shape != (expected,) or mask_space.dtype != masking.MASK_DTYPE:
            problems.append(f"obs[{masking.MASK_KEY!r}] space is {mask_space}, expected Box(0, 1, ({expected},), int8)")
    par = envs.make_parallel(name, **env_config)
    obs, infos = par.reset(seed=seed)
    for agent in par.possible_agents:
        par.action_space(agent).seed(seed)
    for _ in range(50):
        for agent, agent_obs in obs.items():
            if not par.observation_space(agent).contains(agent_obs):
                problems.append(f"observation of {agent} is outside the observation space: {agent_obs}")
        for agent, info in infos.items():
            if not isinstance(info.get("invalid_actions"), int) or not isinstance(info.get("violated"), list):
                problems.append(f"info of {agent} lacks int 'invalid_actions' / list 'violated': {info}")
        if problems or not par.agents:
            break
        actions = {a: par.action_space(a).sample(mask=obs[a].get(masking.MASK_KEY)) if core.discrete
                   else par.action_space(a).sample() for a in par.agents}
        obs, _, _, _, infos = par.step(actions)
    return [CheckResult("spaces and dtypes", "-", not problems, problems[0] if problems else
                        f"Dict obs with float32 {masking.OBSERVATION_KEY!r}"
                        + (f" and int8 {masking.MASK_KEY!r} of {masking.mask_size(core.action_space)}"
                           if core.discrete else "")
                        + "; int invalid_actions and list violated in info")]


def _strip_colour(text: str) -> str:
    return re.sub(r"\x1b\[[0-9;]*m", "", text)


def _capture(check: str, fn: Callable[[], Any], ok: str) -> CheckResult:
    """Run a third-party checker: an exception fails the row, and so does a warning it emits (its findings
    short of errors), deprecations of the libraries themselves aside."""
    with warnings.catch_warnings(record=True) as caught, contextlib.redirect_stdout(io.StringIO()):  # "Passed"
        warnings.simplefilter("always")
        try:
            fn()
        except Exception as error:  # the third-party checkers raise AssertionError and others
            return CheckResult(check, "-", False, f"{type(error).__name__}: {error}".splitlines()[0])
    findings = [w for w in caught if not issubclass(w.category, (DeprecationWarning, PendingDeprecationWarning))]
    if findings:
        return CheckResult(check, "-", False, f"warned: {_strip_colour(str(findings[0].message)).splitlines()[0]}"
                           + (f" (and {len(findings) - 1} more)" if len(findings) > 1 else ""))
    return CheckResult(check, "-", True, ok)


def check_api(name: str, env_config: dict[str, Any], seed: int) -> list[CheckResult]:
    """(d): Gymnasium's and PettingZoo's own conformance checkers."""
    from gymnasium.utils.env_checker import check_env
    from pettingzoo.test import parallel_api_test, parallel_seed_test

    out = []
    n_agents = envs.make_core(name, **env_config).n_agents
    if n_agents == 1:
        out.append(_capture("gymnasium check_env",
                            lambda: check_env(envs.make(name, **env_config), skip_render_check=True),
                            "gymnasium.utils.env_checker.check_env passed"))
    out.append(_capture("pettingzoo parallel_api_test",
                        lambda: parallel_api_test(envs.make_parallel(name, **env_config), num_cycles=200),
                        f"pettingzoo.test.parallel_api_test passed ({n_agents} agent(s))"))
    out.append(_capture("pettingzoo parallel_seed_test",
                        lambda: parallel_seed_test(lambda: envs.make_parallel(name, **env_config), num_cycles=50),
                        "pettingzoo.test.parallel_seed_test passed"))
    return out


def _episode_trace(env, seed: int, actions: Sequence[Any]) -> list[tuple]:
    obs, _ = env.reset(seed=seed)
    trace = [(obs,)]
    for action in actions:
        obs, reward, terminated, truncated, info = env.step(action)
        trace.append((obs, reward, terminated, truncated, info))
        if terminated or truncated:
            obs, _ = env.reset()
            trace.append((obs,))
    return trace


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (tuple, list)):
        return isinstance(b, (tuple, list)) and len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return bool(np.array_equal(np.asarray(a), np.asarray(b)))


def check_determinism(name: str, env_config: dict[str, Any], steps: int, seed: int) -> list[CheckResult]:
    """(e) same seed, same actions -> same trajectory; (f) vector view == single views, autoreset included."""
    out = []
    core = envs.make_core(name, **env_config)
    if core.n_agents != 1:
        return [CheckResult("seed determinism", "-", True, "multi-agent: covered by parallel_seed_test")]
    horizon = max(1, min(steps, 200))
    probe = envs.make(name, **env_config)
    probe.action_space.seed(seed)
    actions = [probe.action_space.sample() for _ in range(horizon)]  # admissible or not: fallbacks count too
    first = _episode_trace(envs.make(name, **env_config), seed, actions)
    second = _episode_trace(envs.make(name, **env_config), seed, actions)
    out.append(CheckResult("seed determinism", "-", _same(first, second),
                           f"two envs seeded {seed} gave identical trajectories over {horizon} steps"
                           if _same(first, second) else f"two envs seeded {seed} diverged under the same actions"))

    n = 4
    singles = [envs.make(name, **env_config) for _ in range(n)]
    vector = envs.make_vector(name, n, **env_config)
    single_obs = [env.reset(seed=seed + i)[0] for i, env in enumerate(singles)]
    vec_obs, _ = vector.reset(seed=seed)
    mismatch = None
    pending_reset = [False] * n
    for i, env in enumerate(singles):
        env.action_space.seed(seed + i)
    for t in range(horizon):
        for i in range(n):
            if not _same({k: v[i] for k, v in vec_obs.items()}, single_obs[i]):
                mismatch = f"entry {i} differs from a single env seeded {seed + i} at step {t}"
                break
        if mismatch:
            break
        batch_actions = []
        for i, env in enumerate(singles):
            mask = single_obs[i].get(masking.MASK_KEY)
            batch_actions.append(env.action_space.sample(mask=mask) if mask is not None else env.action_space.sample())
        vec_obs, vec_reward, vec_term, vec_trunc, _ = vector.step(np.stack(batch_actions))
        for i, env in enumerate(singles):
            if pending_reset[i]:
                single_obs[i], _ = env.reset()
                pending_reset[i] = False
                reward, term, trunc = 0.0, False, False
            else:
                single_obs[i], reward, term, trunc, _ = env.step(batch_actions[i])
                pending_reset[i] = term or trunc
            if (vec_reward[i], vec_term[i], vec_trunc[i]) != (reward, term, trunc):
                mismatch = f"entry {i} reward/termination differs from a single env seeded {seed + i} at step {t}"
        if mismatch:
            break
    out.append(CheckResult("vector == single", "-", mismatch is None,
                           mismatch or f"make_vector({name!r}, {n}) matched {n} single envs step for step over "
                                       f"{horizon} steps, autoreset included"))
    return out


def run_checks(name: str, env_config: dict[str, Any] | None = None, *, steps: int = 20_000,
               seed: int = 0) -> list[CheckResult]:
    """Every check on one env; see the module docstring."""
    env_config = dict(env_config or {})
    results: list[CheckResult] = []
    groups = [("spaces and dtypes", lambda: check_spaces(name, env_config, seed)),
              ("mask vs constraints", lambda: check_mask(name, env_config, steps, seed)),
              ("api conformance", lambda: check_api(name, env_config, seed)),
              ("determinism", lambda: check_determinism(name, env_config, steps, seed))]
    for group, run in groups:
        try:
            results += run()
        except Exception as error:  # a broken env must give a failing row, not a crashed checker
            results.append(CheckResult(group, "-", False, f"crashed: {type(error).__name__}: {error}".splitlines()[0]))
    return results


def check_steps_fit(name: str, env_config: dict[str, Any], steps: int) -> None:
    """Refuse (one-line ``ConfigError``) a ``--steps`` whose sampled states cannot fit in memory: the check
    audits ``steps // 4`` of them at once (:func:`_audit_states`), each with the env's state
    (``EnvCore.state_bytes``) and its batch entry's bookkeeping, as ``envs.make_core`` estimates them."""
    config = envs.resolve_config(name, env_config)[0]
    core_cls = envs.spec(name).load()
    states = max(64, steps // 4)
    sample = 1024
    per_state = core_cls.state_bytes(config, sample) / sample + ENTRY_BYTES
    needed = core_cls.state_bytes(config, states) + ENTRY_BYTES * states
    available = available_memory()
    if needed > available:
        raise ConfigError(f"--steps {steps:,}: the check audits steps / 4 = {states:,} sampled states of env "
                          f"{name!r} at once, about {per_state:,.0f} bytes each: about {needed / 2**30:,.1f} GiB of "
                          f"memory needed (estimate), {available / 2**30:,.1f} GiB available on this machine; at most "
                          f"about {4 * int(available // per_state):,} steps fit")


def format_table(rows: list[dict[str, str]]) -> str:
    """Rows of equal keys as a left-aligned text table."""
    columns = list(rows[0])
    widths = {c: max(len(c), *(len(r[c]) for r in rows)) for c in columns}
    lines = ["  ".join(c.ljust(widths[c]) for c in columns).rstrip(),
             "  ".join("-" * widths[c] for c in columns)]
    lines += ["  ".join(r[c].ljust(widths[c]) for c in columns).rstrip() for r in rows]
    return "\n".join(lines)


def build_parser() -> Parser:
    parser = Parser(prog="python -m suite.check",
                    description="Check that a registered env keeps the masking contract (see the module doc).",
                    epilog=f"envs: {', '.join(envs.names())}")
    parser.add_argument("--env", required=True, help="registered env name")
    parser.add_argument("--steps", type=positive_int, default=20_000, help="env steps of random rollouts to check")
    parser.add_argument("--seed", type=non_negative_int, default=0, help="seed of the rollouts")
    parser.add_argument("--env-config", action="append", default=[], metavar="KEY=VALUE",
                        help="env config override, repeatable")
    parser.add_argument("--describe", action="store_true", help="print the env's config keys and exit")
    add_import_flag(parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    import_user_modules(args.imports)
    overrides = parse_assignments(args.env_config)
    envs.resolve_config(args.env, overrides)  # one-line error before any work
    check_steps_fit(args.env, overrides, args.steps)
    if args.describe:
        print(format_table(envs.describe(args.env)))
        return 0
    rows = run_checks(args.env, overrides, steps=args.steps, seed=args.seed)
    print(format_table([r.row() for r in rows]))
    failed = [r for r in rows if not r.passed]
    if failed:
        print(f"\n{len(failed)} check(s) failed on env {args.env!r}:", file=sys.stderr)
        for r in failed:
            print(f"- {r.check} [{r.constraint}]: {r.detail}", file=sys.stderr)
        return 1
    skipped = [r for r in rows if not r.exercised]
    print(f"\n{len(rows) - len(skipped)} checks passed on env {args.env!r}"
          + (f"; {len(skipped)} not exercised ({', '.join(r.check for r in skipped)})" if skipped else ""))
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main, "python -m suite.check"))
