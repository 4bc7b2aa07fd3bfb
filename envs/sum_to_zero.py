"""Sum-to-zero reallocation of a limited resource, the question's problem (``sum_to_zero``).

## Description

A fixed resource (total 1) is allocated among ``n_targets`` targets (13 by default): the current
allocation ``w`` has weights in ``[0, 1]`` that sum to 1. Each step the agent *reallocates*: it
picks ``a`` with ``sum(a) = 0`` and the env applies ``w + a``. Demand for the resource drifts
from step to step with noise; the agent is rewarded for the demand its allocation serves and pays
for every unit of resource it moves, so a good policy tracks the demand it expects without
thrashing.

Demand: each target has a latent log-demand ``z_i`` following a stationary AR(1) process,
``z' = demand_persistence * z + demand_volatility * N(0, 1)``, and the demand shares are
``d = softmax(z)`` (non-negative, summing to 1). The whole episode's demand path is drawn from the
env's generator at reset.

## Action Space

``Box(-1, 1, (n_targets,), float32)``: the reallocation ``a`` added to the weights.

## Constraints (the admissible set)

With current weights ``w``, ``a`` is admissible when

- ``Z1 sum-zero``: ``|sum(a)| <= tolerance`` (no resource created or destroyed), and
- ``Z2 bounds``: ``-tolerance <= w + a <= 1 + tolerance`` elementwise.

The admissible set ``{a : -w <= a <= 1 - w, sum(a) = 0}`` is a convex polytope that depends on the
state; :meth:`SumToZeroCore.admissible_set` returns it as an :class:`envs.masking.BoundedSumSet`
(``contains``, the exact Euclidean ``project``, and ``sample``, uniform over the polytope: ``w + a``
uniform on the probability simplex). It is never empty (``a = 0`` is always in it) and its
parameters, the weights, are the first entries of the observation. The predicates above are
written independently of the set's code, so ``suite.check`` compares the two.

An inadmissible action is reported in ``info["invalid_actions"]`` (1) / ``info["violated"]`` and
executed as the setting ``invalid_action`` says (with ``strict=True`` it raises ``ValueError``
naming the constraint instead):

- ``noop`` (the default, the env's published behaviour): **not executed**, no reallocation (the
  allocation stays, and nothing is paid for movement).
- ``repair``: the admissible set's **Euclidean projection** of the attempt is executed (and its
  movement paid for): what ``masked_ppo``'s projection does on the agent's side.

An admissible action is applied and the weights are
cleaned up to the simplex (negatives within the tolerance clipped to 0, renormalised), so rounding
never accumulates over an episode.

## Observation Space

``Dict(observation=Box(0, 1, (2 * n_targets,), float32))``: the weights ``w`` now in force
(entries ``0 .. n-1``, the admissible set's parameters) and the demand shares ``d`` of the step
just ended (entries ``n .. 2n-1``). The demand of the next step is not observed.

## Rewards

Per step, after applying ``a``: ``sum(min(w, d_next)) - movement_cost * |a|_1``, the share of the
next step's demand the new allocation serves (1 when ``w = d_next``) minus the cost of moving
resource (``|a|_1`` counts a unit moved from one target to another twice: once leaving, once
arriving).

Reference points (``baselines/references``): ``clairvoyant_demand`` knows the next demand and moves
to it exactly (``a = d_next - w``), so it is an upper bound, not the score's 100. For
``movement_cost <= 0.25`` that is the exact optimum of every episode: with ``x_t = |w_t - d_t|_1``,
serving pays ``1 - x_t / 2`` and the triangle inequality bounds the movement saved by any deviation
by ``2 * movement_cost * x_t``, so deviating never pays. Without knowing the next demand, moving to
the forecast ``softmax(demand_persistence * z)`` (``demand_forecast``) is a strong heuristic (see
:meth:`SumToZeroCore.forecast_actions`).

## Starting State

Weights drawn uniformly from the probability simplex (Dirichlet(1, ..., 1)); log-demand drawn
from the AR(1) process's stationary distribution.

## Episode End

Truncated after ``max_steps`` steps (the task itself never ends; there is no terminal state).

## Arguments

See :class:`SumToZeroConfig`. Every env also accepts ``strict`` and ``invalid_action`` (``noop`` or ``repair``;
here ``noop`` by default, see "Constraints"; ``envs.registry.CommonConfig``).

## Levels

``sum_to_zero`` (13 targets, the question's) is level 1; ``sum_to_zero-m`` has 100 targets and
``sum_to_zero-l`` 1,000. Every action drawn uniformly from the box misses the admissible set (it is
thinner than the box by a whole dimension), by a mean Euclidean distance of 1.75, 5.6 and 18.2
(``python -m suite.levels``); the clairvoyant optimum stays exact and the projection ``O(n log n)``.

## Version History

- v0: first version. The question's accepted answer normalises target weights with
  ``action / (c * np.sum(action))``, which only sums to ``c`` for ``c = 1`` (it should be
  ``c * action / np.sum(action)``) and divides by zero for an all-zero action; the suite's
  ``normalize_ppo`` baseline uses the corrected form and keeps the allocation for an all-zero
  target. ``invalid_action`` (issue 35) was added later: its default, ``noop``, is v0's fallback;
  ``repair`` (the projection) is new.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from gymnasium import spaces

from .config import ConfigError, setting
from .core import EnvCore, StepResult
from .masking import BoundedSumSet, Constraint
from .registry import register, register_level

__all__ = ["SumToZeroConfig", "SumToZeroCore", "SumToZeroState", "softmax"]


def _positive(value) -> bool:
    return value > 0


def softmax(z: np.ndarray) -> np.ndarray:
    """Demand shares from log-demand, over the last axis (float64)."""
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


@dataclass(frozen=True)
class SumToZeroConfig:
    """Configuration of the sum-to-zero env; every field can be set with ``--env-config KEY=VALUE``."""

    n_targets: int = setting(13, "targets the resource is allocated among", check=lambda v: v >= 2,
                             accepts="an integer of at least 2")
    demand_persistence: float = setting(0.9, "AR(1) coefficient of log-demand per step (0: fresh each step)",
                                        check=lambda v: 0 <= v < 1, accepts="a number in [0, 1)")
    demand_volatility: float = setting(0.3, "standard deviation of the log-demand shock per step",
                                       check=_positive, accepts="a positive number")
    movement_cost: float = setting(0.2, "reward lost per unit of |a|_1 moved", check=lambda v: v >= 0,
                                   accepts="a non-negative number")
    tolerance: float = setting(1e-5, "tolerance of Z1 (|sum(a)|) and Z2 (bounds on w + a)", check=_positive,
                               accepts="a positive number")
    max_steps: int = setting(50, "steps per episode (truncation)", check=_positive, accepts="a positive integer")
    n_agents: int = setting(1, "allocators (one; several come with the multi-agent work)", check=lambda v: v == 1,
                            accepts="1")


@dataclass
class SumToZeroState:
    """Batched state. ``B`` = batch entries, ``A`` = agents, ``N`` = targets, ``T`` = ``max_steps``."""

    weights: np.ndarray     # (B, A, N) allocation now in force, on the probability simplex
    log_demand: np.ndarray  # (B, T + 1, N) the episode's latent log-demand path; step t is served at t + 1
    t: np.ndarray           # (B,) steps so far
    served: np.ndarray      # (B, A) demand served so far this episode (sum over steps)

    def copy(self) -> SumToZeroState:
        return SumToZeroState(self.weights.copy(), self.log_demand.copy(), self.t.copy(), self.served.copy())


class SumToZeroCore(EnvCore):
    """Batched dynamics, reward and admissible set of the sum-to-zero env (see the module docstring)."""

    Config = SumToZeroConfig
    agent_prefix = "allocator"
    version = 0
    episode_metrics = ("demand_served",)
    invalid_action_default = "noop"

    def __init__(self, config: SumToZeroConfig, num_envs: int = 1, strict: bool = False):
        super().__init__(config, num_envs, strict)
        n = config.n_targets
        self.action_space = spaces.Box(-1.0, 1.0, (n,), np.float32)
        self.feature_space = spaces.Box(0.0, 1.0, (2 * n,), np.float32)
        # The AR(1) path as one linear map of i.i.d. normal shocks: z = paths @ shocks, with
        # z[t] = rho^t * stationary_std * e[0] + sum_{1 <= s <= t} rho^(t - s) * volatility * e[s].
        rho, T = config.demand_persistence, config.max_steps
        stationary_std = config.demand_volatility / np.sqrt(1.0 - rho ** 2)
        lags = np.subtract.outer(np.arange(T + 1), np.arange(T + 1))
        self._paths = np.where(lags >= 0, rho ** np.maximum(lags, 0), 0.0) * config.demand_volatility
        self._paths[:, 0] = rho ** np.arange(T + 1) * stationary_std

    @classmethod
    def state_bytes(cls, config: SumToZeroConfig, num_envs: int) -> int:
        """The AR(1) path map, ``(T + 1)^2``, and each entry's demand path ``(T + 1, n)`` (twice while it is
        drawn), weights and demand."""
        steps, n = config.max_steps + 1, config.n_targets
        return 8 * (steps * steps + num_envs * (2 * steps * n + 3 * n * config.n_agents + 2))

    @property
    def constraints(self) -> Sequence[Constraint]:
        tol = self.config.tolerance
        return (
            Constraint("Z1", f"the reallocation sums to zero (within {tol:g}): no resource created or destroyed",
                       self._admits_z1),
            Constraint("Z2", "every weight stays in [0, 1] after the reallocation", self._admits_z2),
        )

    @classmethod
    def check_oracle_config(cls, config: SumToZeroConfig) -> None:
        """The oracle (move to the next demand) is the exact optimum only for movement_cost <= 0.25."""
        if config.movement_cost > 0.25:
            raise ConfigError(f"env 'sum_to_zero': moving to the next demand (clairvoyant_demand) is optimal only for "
                              f"movement_cost <= 0.25, got "
                              f"{config.movement_cost:g}")

    # ------------------------------------------------------------------ episodes

    def reset_envs(self, env_ids: np.ndarray, rngs: Sequence[np.random.Generator]) -> None:
        c = self.config
        if self.state is None:
            B, A, N = self.num_envs, self.n_agents, c.n_targets
            self.state = SumToZeroState(np.full((B, A, N), 1.0 / N), np.zeros((B, c.max_steps + 1, N)),
                                        np.zeros(B, dtype=np.int64), np.zeros((B, A)))
        s = self.state
        shocks = np.empty((len(env_ids), c.max_steps + 1, c.n_targets))
        for j, (env_id, rng) in enumerate(zip(env_ids, rngs)):  # once per episode, not per step
            s.weights[env_id] = rng.dirichlet(np.ones(c.n_targets), size=self.n_agents)
            shocks[j] = rng.standard_normal((c.max_steps + 1, c.n_targets))
        s.log_demand[env_ids] = self._paths @ shocks
        s.t[env_ids] = 0
        s.served[env_ids] = 0.0

    def _demand_at(self, offset: int) -> np.ndarray:
        """Demand shares at step ``t + offset`` of every entry: ``(B, N)``."""
        s = self.state
        t = np.minimum(s.t + offset, self.config.max_steps)  # an ended entry stepped before its reset stays in range
        return softmax(s.log_demand[np.arange(self.num_envs), t])

    # ------------------------------------------------------------------ views of the state

    def features(self) -> np.ndarray:
        s = self.state
        demand = np.broadcast_to(self._demand_at(0)[:, None, :], s.weights.shape)
        return np.concatenate([s.weights, demand], axis=-1).astype(np.float32)

    def entry_features(self) -> np.ndarray:
        """Target ``i`` is described by its weight and its demand share: features ``i`` and ``n + i``."""
        n = self.config.n_targets
        return np.stack([np.arange(n), n + np.arange(n)], axis=1)

    def admissible_set(self) -> BoundedSumSet:
        w = self.state.weights
        return BoundedSumSet(-w, 1.0 - w, 0.0, atol=self.config.tolerance)

    def render_text(self, entry: int) -> str:
        """The step, the demand now per target, and each allocator's weights and the demand it served so far
        (at most 13 targets shown)."""
        s = self.state
        shown = min(s.weights.shape[-1], 13)
        more = f" (+{s.weights.shape[-1] - shown} more targets)" if s.weights.shape[-1] > shown else ""
        served = self.metrics()["demand_served"][entry]
        lines = [f"step {int(s.t[entry])}/{self.config.max_steps}  demand  "
                 + " ".join(f"{d:.2f}" for d in self._demand_at(0)[entry, :shown]) + more]
        for agent in range(self.n_agents):
            lines.append(f"{self.agent_prefix}_{agent}: weights "
                         + " ".join(f"{w:.2f}" for w in s.weights[entry, agent, :shown])
                         + f"{more}  served so far {served[agent]:.3f} per step")
        return "\n".join(lines)

    def metrics(self) -> dict[str, np.ndarray]:
        """``demand_served``: mean share of demand served per step so far this episode."""
        s = self.state
        return {"demand_served": s.served / np.maximum(s.t, 1)[:, None]}

    # ------------------------------------------------------------------ constraints (independent of the set)

    def _admits_z1(self, state: SumToZeroState, actions: np.ndarray) -> np.ndarray:
        with np.errstate(invalid="ignore"):
            return (np.abs(np.sum(actions, axis=-1, keepdims=True)) <= self.config.tolerance)

    def _admits_z2(self, state: SumToZeroState, actions: np.ndarray) -> np.ndarray:
        tol = self.config.tolerance
        after = state.weights + actions
        with np.errstate(invalid="ignore"):
            return (after >= -tol) & (after <= 1.0 + tol)

    # ------------------------------------------------------------------ dynamics

    def noop(self, actions: np.ndarray, inadmissible: np.ndarray) -> np.ndarray:
        """``invalid_action="noop"`` (the default): no reallocation, an inadmissible action is replaced by zeros (the
        allocation stays). (``repair`` is the base class's: the admissible set's Euclidean projection.)"""
        return np.where(inadmissible, 0.0, actions)

    def transition(self, actions: np.ndarray) -> StepResult:
        c, s = self.config, self.state
        weights = np.maximum(s.weights + actions, 0.0)
        s.weights = weights / weights.sum(axis=-1, keepdims=True)
        served = np.minimum(s.weights, self._demand_at(1)[:, None, :]).sum(axis=-1)
        reward = served - c.movement_cost * np.abs(actions).sum(axis=-1)
        s.served += served
        s.t += 1
        truncated = np.broadcast_to((s.t >= c.max_steps)[:, None], reward.shape).copy()
        return StepResult(reward, np.zeros_like(truncated), truncated, dict(self.metrics()))

    # ------------------------------------------------------------------ references

    def oracle_actions(self) -> np.ndarray:
        """Move to the next step's demand (knowing it): the exact optimum for movement_cost <= 0.25."""
        return self._demand_at(1)[:, None, :] - self.state.weights

    def forecast_actions(self) -> np.ndarray:
        """Move to the forecast of the next demand, ``softmax(demand_persistence * z)``: no clairvoyance."""
        s = self.state
        z = s.log_demand[np.arange(self.num_envs), np.minimum(s.t, self.config.max_steps)]
        return softmax(self.config.demand_persistence * z)[:, None, :] - s.weights

    def reallocation_to(self, targets: np.ndarray) -> np.ndarray:
        """The reallocation that moves to ``targets / sum(targets)`` (the question's normalisation).

        ``targets`` is ``(batch, agents, n)`` with entries clipped to ``[0, 1]``; an entry whose
        targets are all 0 keeps its allocation (reallocation 0) instead of dividing by zero.
        """
        targets = np.clip(np.asarray(targets, dtype=np.float64), 0.0, 1.0)
        total = targets.sum(axis=-1, keepdims=True)
        goal = np.where(total > 0, targets / np.where(total > 0, total, 1.0), self.state.weights)
        return goal - self.state.weights

    # ------------------------------------------------------------------ checker support

    def sample_states(self, rng: np.random.Generator, num_states: int) -> SumToZeroState:
        """Arbitrary states on the env's invariant (weights on the simplex), boundaries included.

        A quarter each: uniform on the simplex, a sparse Dirichlet (many weights near 0), exact
        zeros on random targets, and a vertex (one weight exactly 1).
        """
        c, A, N = self.config, self.n_agents, self.config.n_targets
        weights = rng.dirichlet(np.ones(N), size=(num_states, A))
        kind = rng.integers(0, 4, num_states)
        sparse = rng.dirichlet(np.full(N, 0.1), size=(num_states, A))
        weights[kind == 1] = sparse[kind == 1]
        zeroed = np.where(rng.random((num_states, A, N)) < 0.5, 0.0, weights)
        zeroed[..., 0] += 1e-12  # never all zero
        zeroed /= zeroed.sum(axis=-1, keepdims=True)
        weights[kind == 2] = zeroed[kind == 2]
        vertex = np.eye(N)[rng.integers(0, N, (num_states, A))]
        weights[kind == 3] = vertex[kind == 3]
        paths = self._paths @ rng.standard_normal((num_states, c.max_steps + 1, N))
        return SumToZeroState(weights, paths, rng.integers(0, c.max_steps, num_states), np.zeros((num_states, A)))


register("sum_to_zero", SumToZeroCore,
         description="sum-to-zero reallocation among 13 targets: Box(-1, 1, (13,)), admissible set Z1 sum-zero, "
                     "Z2 bounds, with an exact Euclidean projection")
#: The levels (see "Levels" in the module docstring): more targets.
LEVELS = {"sum_to_zero-m": (2, {"n_targets": 100}), "sum_to_zero-l": (3, {"n_targets": 1000})}
for _name, (_level, _overrides) in LEVELS.items():
    register_level(_name, "sum_to_zero", _level, _overrides,
                   description=f"sum_to_zero, level {_level}: reallocation among {_overrides['n_targets']} targets")
