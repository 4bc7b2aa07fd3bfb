"""``lookahead_dp`` (speed_limit): re-plan every step by dynamic programming over the road the car sees.

What it observes: only what the agent does, per batch entry: the observation vector (the last speed
level ``v``, the cells left to the end ``R``, the limits of the ``lookahead`` cells from the car's cell
on, which read as the top level past the end of the road) and the action mask. It never reads the
env's state (the road's layout or safe speeds): from the env it takes only the config, the published
model (the rules S1-S3, the reward), through the core's own ``safe_speeds`` / ``admissible_table`` /
``optimal_values``.

What it assumes beyond the window: every cell it has not seen has the top limit (``n_levels - 1``): the
most permissive road consistent with the observation (optimistic). The road still ends where the
observation says (``R`` cells ahead), so the synthetic road is: the observed window, then top-limit
cells up to the real end.

The plan, every step: the exact optimal value of every (cell, level) state of that synthetic road, in
two parts. Past the window the synthetic road is a permissive road of ``R - j`` cells, whose values
depend only on the cells left: they are :meth:`SpeedLimitCore.optimal_values` of one all-top road of
``road_length`` cells, computed once (when the planner is built), and read at the car's position.
Within the window, one backward pass over its cells, the same recurrence as ``optimal_values``
(stop first, then every moving level), on the mask of every state of the window (the core's
``admissible_table`` on a core of ``road_length = lookahead`` whose cells past its end are the
permissive tail; its safe speeds come from the core's ``safe_speeds``), with the tail's values as the
boundary. Then it drives, among the levels the **real** mask admits, the one with the best one-step
value ``progress - time_cost - comfort_cost * |a - v| + V[landing, a]`` (never staying at rest).

Why it is not optimal: the plan is exact for the optimistic road, not for the real one. A slow zone
just beyond the window is unknown until the window reaches it, so the car keeps a speed it must then
brake from (the real mask, whose can-stop rule sees the whole road, keeps that safe), paying comfort
for changes of speed it could have spread or avoided, and it cannot time its approach to a zone it has
not seen. It ignores the safe speed of the observation (index 3) and what the mask reveals about the
road beyond the window, except that it only drives levels the mask admits; and it ignores the step
limit (``max_steps``), as the clairvoyant dynamic program does. With ``lookahead >= road_length`` it
sees the whole road and is the exact optimum (the tests check its returns equal the clairvoyant DP's).

Cost per step: the window's safe speeds and its mask (``admissible_table``: ``(batch, lookahead, levels,
levels)``), then a backward pass of ``lookahead`` vectorised steps over the batch, each on the comfort
band of the mask only (``max_brake + max_accel + 1`` levels per speed): O(batch * lookahead * levels^2)
for the mask, O(batch * lookahead * levels * band) for the pass; no loop over the batch. Once per config,
the all-top road's values (``optimal_values`` over ``road_length`` cells). Measured on this machine (2
cores, both busy with another job), batch of 50: 2 ms per step on ``speed_limit``, 9 ms on
``speed_limit-m``, 44 ms on ``speed_limit-l`` (the all-top values: 3, 10 and 45 ms, once).

Measured with :func:`measure` (``python -m baselines.references.lookahead_dp``): mean episode return over
200 episodes, env seeds 1,000,000 + i (the suite's evaluation seeds), each policy played by
``baselines.evaluation.evaluate`` as the suite evaluates it (one batch of 200). The normalised score puts
``random_valid`` (random admissible levels, generator seeded 0) at 0 and the clairvoyant DP
(``clairvoyant_dp``) at 100; ``highest`` is ``max_admissible_speed`` (the highest admissible level).
The last column is one evaluation run of ``lookahead_dp`` as the suite does it (50 episodes, one batch).

| level | random | highest | lookahead_dp | clairvoyant | highest, score | lookahead_dp, score | eval run |
| --- | --- | --- | --- | --- | --- | --- | --- |
| ``speed_limit`` | -92.3 | 43.2 | 58.4 | 61.9 | 87.9 | 97.7 | 0.1 s |
| ``speed_limit-m`` | -105.1 | 201.7 | 239.7 | 245.2 | 87.6 | 98.4 | 0.4 s |
| ``speed_limit-l`` | -175.2 | 800.0 | 889.2 | 902.0 | 90.5 | 98.8 | 3.2 s |

A whole suite run on ``speed_limit-l`` with the defaults (10,000 env steps in batches of 64, then the 50
evaluation episodes) took 30 s.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import numpy as np

import envs
from baselines.references.player import ReferencePolicy
from envs.masking import MASK_KEY, OBSERVATION_KEY, admit_all_unless

__all__ = ["LookaheadDP", "LookaheadPlanner"]


class LookaheadPlanner:
    """The receding-horizon planner of one speed_limit config (batch of any size, one car per entry).

    ``core`` is any speed_limit core of the config; only its class and config are used.
    """

    def __init__(self, core: Any):
        config = core.config
        if config.n_agents != 1:
            raise ValueError(f"the lookahead planner drives one car; got n_agents={config.n_agents}")
        self.config = config
        self.top, self.n_levels = config.n_levels - 1, config.n_levels
        self.levels = np.arange(self.n_levels)
        self.road_length, self.window = config.road_length, config.lookahead
        core_class = type(core)
        # The window as a road of its own: the same rules (max_accel, max_brake, n_levels); only the road's
        # length and layout differ, which the mask takes from the limits it is given. Its cells past its end
        # read as top-limit cells and are safe, as the permissive tail is.
        self.span = max(self.window, 2)  # a core's road has at least 2 cells; the extra one is permissive
        self.synthetic = core_class(dataclasses.replace(config, road_length=self.span, layout=""), num_envs=1)
        self.cells = self.span + self.top + 1  # a road's limits as the core reads them: a top-speed step past its end
        # The permissive tail: values of an all-top road of the real length, by cell (0 from the end on).
        full = core_class(dataclasses.replace(config, layout=""), num_envs=1)
        limits = np.full((1, self.road_length + self.top + 1), self.top, dtype=np.int64)
        self.open_values = full.optimal_values(limits, full.safe_speeds(limits))[0]     # (L + top + 1, levels)
        self.change_cost = config.comfort_cost * np.abs(self.levels[:, None] - self.levels[None, :])  # (v, a)
        # S2 admits from level v only the levels v - max_brake .. v + max_accel: the backward pass looks at
        # that band of each row of the mask, not the whole row (6 levels instead of n_levels by default).
        band = self.levels[:, None] + np.arange(-config.max_brake, config.max_accel + 1)  # (v, k): level a
        self.in_band = (band >= 0) & (band < self.n_levels)
        self.band = np.clip(band, 0, self.top)
        self.band_change = config.comfort_cost * np.abs(self.levels[:, None] - self.band)  # (v, k)

    def values(self, observation: np.ndarray) -> np.ndarray:
        """Optimal values of the synthetic roads: ``(span + top + 1, levels, N)`` over the cells ahead.

        Cell ``j`` is ``j`` cells ahead of the car (0: its cell); 0 from the road's end on. The batch is the
        last axis so that the maxima over the band are elementwise over contiguous rows.
        """
        c, L, W, S, top = self.config, self.road_length, self.window, self.span, self.top
        n = len(observation)
        position = np.rint(observation[:, 1]).astype(np.int64)
        left = np.rint(observation[:, 2]).astype(np.int64)
        limits = np.full((n, self.cells), top, dtype=np.int64)
        limits[:, :W] = np.rint(observation[:, 4:4 + W])
        admissible = self.synthetic.admissible_table(limits, self.synthetic.safe_speeds(limits))  # (n, S, v, a)
        admissible = admissible[:, :, self.levels[:, None], self.band] & self.in_band      # (n, S, v, k)
        # 0 where admissible, -inf where not, as (S, k, v, n); a stop (level 0) must move on next.
        penalty = np.where(admissible.transpose(1, 3, 2, 0), 0.0, -np.inf)
        stop_penalty = penalty[:, :, 0] + np.where(self.band[0] > 0, 0.0, -np.inf)[:, None]  # (S, k, n)
        stays = (self.band == 0).T[:, :, None]                                             # (k, v, 1)
        values = np.empty((S + top + 1, self.n_levels, n))
        tail = np.minimum(position + np.arange(S, S + top + 1)[:, None], L)              # 0 at L, the end
        values[S:] = self.open_values[tail].transpose(0, 2, 1)
        band, band_change, stay_change = self.band.T, self.band_change.T[:, :, None], self.change_cost[:, 0, None]
        for j in range(S - 1, -1, -1):  # the recurrence of SpeedLimitCore.optimal_values, on the band
            progress = np.minimum(j + self.levels[:, None], left) - j                     # (a, n)
            ahead = values[j + self.levels, self.levels]                                  # (a, n): V[j + a, a]
            # a = 0 reads V[j, 0], which this step has not computed yet (``values`` is uninitialised memory,
            # possibly NaN): its gains are masked out of the stop and replaced for the stay, so any finite
            # number does; 0, never what the allocator left there (that read made the plan process-dependent).
            ahead[0] = 0.0
            gain = (progress - c.time_cost + ahead)[band] - band_change                   # (k, v, n)
            stop = (gain[:, 0] + stop_penalty[j]).max(axis=0)                              # V[j, 0]: move on
            gain = np.where(stays, -c.time_cost - stay_change + stop, gain)                # stop, then V[j, 0]
            values[j, 1:] = (gain[:, 1:] + penalty[j, :, 1:]).max(axis=0)
            values[j, 0] = stop
            values[j, :, j >= left] = 0.0                                                  # past the road's end
        return values

    def actions(self, observation: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """The level of every entry: the best one-step value among the levels ``mask`` admits."""
        c = self.config
        values = self.values(observation)
        speed = np.rint(observation[:, 0]).astype(np.int64)
        left = np.rint(observation[:, 2]).astype(np.int64)
        progress = np.minimum(self.levels, left[:, None])                                  # (n, a)
        ahead = values[self.levels, self.levels].T                                         # V[a, a]; a = 0: V[0, 0]
        gain = progress - c.time_cost - self.change_cost[speed] + ahead
        gain = np.where(mask, gain, -np.inf)
        gain[:, 0] = np.where(speed == 0, -np.inf, gain[:, 0])  # never stay at rest: that only costs time
        best = gain.argmax(axis=-1)
        fallback = np.where(mask.any(axis=-1), self.n_levels - 1 - np.argmax(mask[:, ::-1], axis=-1), 0)
        return np.where(np.isfinite(gain.max(axis=-1)), best, fallback)  # nothing but a stop admitted: take it


class LookaheadDP(ReferencePolicy):
    """Receding-horizon dynamic programming over the observed window, the unseen road assumed permissive."""

    families = ("speed_limit",)
    several_agents = False  # one car: the observation has no other car in it, and the plan none either

    _planner: LookaheadPlanner | None = None

    def act(self, obs: dict[str, np.ndarray], env: envs.views.VectorView) -> np.ndarray:
        if self._planner is None or (self._planner.config is not env.core.config
                                     and self._planner.config != env.core.config):
            self._planner = LookaheadPlanner(env.core)
        mask = admit_all_unless(env.acting, obs[MASK_KEY]).astype(bool)  # an ended entry acts no more
        return self._planner.actions(np.asarray(obs[OBSERVATION_KEY]), mask)


def measure(levels: tuple[str, ...] = ("speed_limit", "speed_limit-m", "speed_limit-l"), episodes: int = 200,
            timed_episodes: int = 50) -> list[dict[str, Any]]:
    """The numbers of the module docstring: each policy's mean return over ``episodes`` episodes (env seeds
    ``EVAL_SEED_BASE + i``, played by :func:`baselines.evaluation.evaluate` as the suite evaluates), the
    normalised scores, and the seconds of one evaluation run of ``lookahead_dp`` (``timed_episodes``)."""
    from baselines.algorithm import EVAL_SEED_BASE
    from baselines.evaluation import evaluate
    from baselines.random_valid import RandomValid, RandomValidConfig
    from baselines.references.clairvoyant_dp import ClairvoyantDP
    from baselines.references.max_admissible_speed import MaxAdmissibleSpeed

    rows = []
    for level in levels:
        means = {}
        for label, algo_class in (("random", RandomValid), ("highest", MaxAdmissibleSpeed),
                                  ("lookahead_dp", LookaheadDP), ("clairvoyant", ClairvoyantDP)):
            algo = algo_class(level, {}, RandomValidConfig(num_envs=1), seed=0)
            (policy,) = algo.eval_policies().values()
            records = evaluate(level, {}, policy, episodes=episodes, seed_base=EVAL_SEED_BASE,
                               rng=np.random.default_rng(0))
            means[label] = float(np.mean([r["return"] for r in records]))
            if label == "lookahead_dp":
                started = time.perf_counter()
                evaluate(level, {}, policy, episodes=timed_episodes, seed_base=EVAL_SEED_BASE,
                         rng=np.random.default_rng(0))
                means["seconds"] = time.perf_counter() - started
            algo.close()
        span = means["clairvoyant"] - means["random"]
        rows.append({"level": level, **means,
                     "highest_score": 100 * (means["highest"] - means["random"]) / span,
                     "lookahead_dp_score": 100 * (means["lookahead_dp"] - means["random"]) / span})
    return rows


if __name__ == "__main__":
    for row in measure():
        print(f"| ``{row['level']}`` | {row['random']:.1f} | {row['highest']:.1f} | {row['lookahead_dp']:.1f} | "
              f"{row['clairvoyant']:.1f} | {row['highest_score']:.1f} | {row['lookahead_dp_score']:.1f} | "
              f"{row['seconds']:.1f} s |")
