"""The residential speed-limit car, the action-masking post's motivating example (``speed_limit``).

## Description

A car drives down a road of ``road_length`` cells split into zones: residential, urban and
arterial, each with a maximum speed level (3, 6 and 9 by default). Each step the car picks a speed
level for the step and advances that many cells. It must respect the limit of every cell it passes
through, change speed smoothly, and always be able to brake in time for a slower zone ahead: in a
residential zone only the low levels are admissible, and before one the car must start braking.
The goal is to reach the end of the road quickly without needless changes of speed.

The zone layout is drawn per episode from the env's generator: zones of ``min_zone_length`` to
``max_zone_length`` cells, each residential, urban or arterial with probabilities ``zone_mix``; or
it is fixed by ``layout`` (one letter per cell: ``R``, ``U``, ``A``).

## Action Space

``Discrete(10)``: the speed level ``a`` for the next step; the car advances ``a`` cells.

## Constraints (the action mask)

With the car at cell ``p`` moving at level ``v`` (the level of its last step):

- ``S1 limit``: ``a`` may not exceed the limit of any cell in ``p .. p + a`` (where it is and every
  cell it passes through or lands on; cells past the end of the road have no limit).
- ``S2 comfort``: ``v - max_brake <= a <= v + max_accel`` (2 levels up, 3 down by default).
- ``S3 can-stop``: from the resulting state ``(p + a, a)`` there must remain a sequence of speeds
  respecting S1 and S2 until the car stops or leaves the road. Braking as hard as S2 allows is the
  best way to do that (a car that brakes harder is behind and slower at every later step, so every
  cell it crosses was crossed faster by the other), so the mask uses ``a <= safe_speed[p + a]``,
  the highest level from which full braking at cell ``p + a`` respects S1. ``safe_speed`` is
  computed once per episode by a backward pass over the layout; the S3 predicate simulates the
  braking forward instead, so the checker compares two independent computations.

With several cars (``n_agents = k > 1``, one lane, car 0 in front, no overtaking), a fourth
constraint keeps each car behind the one ahead of it (its *leader*, at ``p_l`` moving at ``v_l``):

- ``S4 headway``: ``a`` may not bring the car closer than ``min_gap`` cells to its leader, given
  the most the leader can brake in the same step, now or later: after this step
  ``p + a <= p_l + u_l - min_gap`` with ``u_l = max(v_l - max_brake, 0)`` (the leader's smallest
  advance), and braking fully from there the car must stop at least ``min_gap`` cells behind where
  the leader stops braking fully: ``p + a + D(a) <= p_l + D(v_l) - min_gap``, where ``D(v)`` is the
  distance covered while braking fully from level ``v`` (``max(v - b, 0) + max(v - 2b, 0) + ...``).
  While both brake fully their speeds fall by the same amount per step, so the distance between
  them is monotone and these two checks (now and at the end) cover every step in between; the S4
  predicate instead simulates both cars braking step by step. A car whose leader has left the road
  has no leader.

The car starts at rest at cell 0, and level 0 (stay) is admissible from rest, so every reachable
state keeps an admissible action: S3 holds in the start state and every admissible action leads to
a state where it holds again. With several cars, braking fully (``max(v - max_brake, 0)``) is
always admissible: it keeps S1 to S3 as above, and S4 holds for it whenever the previous step kept
S4, because the leader's stopping point ``p_l + D(v_l)`` never moves back (cars start at rest
``start_gap >= min_gap`` cells apart, where S4 holds). The tests check it on many layouts and
starts.

An inadmissible action is reported in ``info["invalid_actions"]`` / ``info["violated"]`` and executed
as the setting ``invalid_action`` says (with ``strict=True`` it raises ``ValueError`` naming the
constraint instead):

- ``repair`` (the default, the env's published behaviour): the **nearest admissible level** to the
  attempted one (the lower on a tie).
- ``noop``: the attempted level is **not executed**: the car keeps its speed ``v``. Keeping ``v`` is
  not always admissible (a slower zone ahead or a braking leader can require braking now), so where
  it is not, the car takes the admissible level nearest ``v`` (the lower on a tie: the gentlest
  admissible braking). It never depends on the attempted level, and it is always admissible: some
  level is admissible in every state where the car acts (full braking, above).

## Observation Space

``Dict(observation=Box(0, float32 max, (4 + lookahead,), float32), action_mask=Box(0, 1, (10,), int8))``
(with several cars, ``(6 + lookahead,)``: two more entries at the end). Entry 3 is computed, as
``observed_safe_speed`` says, from the whole road (``road``, the default: the safe speed the mask's S3 uses) or
from the ``lookahead`` cells the car sees, every cell beyond them at the top limit (``window``: the car then knows
no more of the road than it sees, while the mask, like a map of the limits, knows it all; a method that does not
see the mask must drive the road it cannot see):

| index | entry | unit |
| --- | --- | --- |
| 0 | speed level of the last step ``v`` | level |
| 1 | position ``p`` | cells |
| 2 | cells left to the end of the road | cells |
| 3 | safe speed of the current cell (the fastest level from which braking in time is possible here) | level |
| 4 .. 3 + lookahead | limits of cells ``p .. p + lookahead - 1`` (9 past the end) | level |
| 4 + lookahead | several cars only: cells to the leader, ``p_l - p`` (``road_length`` without one) | cells |
| 5 + lookahead | several cars only: the leader's speed level ``v_l`` (0 without one) | level |

## Rewards

Per step: cells advanced (up to the end of the road) ``- time_cost - comfort_cost * |a - v|``. An
episode that reaches the end earns ``road_length - time_cost * steps - comfort_cost * sum |a - v|``:
fast is good, jerky is not, and the slowest policy never pays. With several cars each car earns
its own reward; a car that has reached the end earns nothing more.

## Starting State

Cell 0 at rest (``v = 0``), a new layout. With several cars, car ``i`` starts at rest at cell
``(k - 1 - i) * start_gap`` (car 0 in front).

## Episode End

Terminated when the car reaches or passes the last cell; truncated after ``max_steps`` steps. With
several cars each car's episode ends on its own: a car that reaches the end **leaves the road**
and, in the PettingZoo view, the episode (PettingZoo's agent removal); it no longer constrains the
cars behind. The others drive on until they arrive or the step limit truncates them all.

## Arguments

See :class:`SpeedLimitConfig`. Every env also accepts ``strict`` and ``invalid_action`` (``noop`` or ``repair``;
here ``repair`` by default, see "Constraints"; ``envs.registry.CommonConfig``).

## Levels

The seed's car is ``speed_limit`` (level 1). Bigger ones keep the post's comfort rules in levels
(+2/-3 levels a step, 2 of reward per level of change) on a finer speed scale and a longer road,
with zone limits, zone lengths and the cells looked ahead scaled to the top speed
(:func:`scaled_level`):

| name | speed levels | road, cells | zone limits | inadmissible share | full-road DP (``clairvoyant_dp``) |
| --- | --- | --- | --- | --- | --- |
| ``speed_limit`` | 10 | 100 | 3, 6, 9 | 58% | exact |
| ``speed_limit-m`` | 25 | 300 | 8, 16, 24 | 81% | exact |
| ``speed_limit-l`` | 50 | 1,000 | 16, 33, 49 | 90% | exact, about 20 ms per road (once per episode) |

The inadmissible share is the mean fraction of levels masked where ``random_valid`` drives
(``python -m suite.levels``).

## Version History

- v0: first version. Several cars (``n_agents > 1``, S4, ``start_gap``, ``min_gap``) and ``n_levels``
  (the levels) were added later without changing the single-car env. ``invalid_action`` (issue 35) was
  added later too: its default, ``repair``, is the fallback v0 always had; ``noop`` is new. So was
  ``observed_safe_speed`` (issue 35): its default, ``road``, is the observation v0 always had.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from gymnasium import spaces

from .config import ConfigError, setting
from .core import EnvCore, StepResult
from .masking import MASK_DTYPE, Constraint
from .registry import register, register_level

__all__ = ["SpeedLimitConfig", "SpeedLimitCore", "SpeedLimitState", "ZONE_LETTERS", "N_LEVELS",
           "braking_respects_limits"]

N_LEVELS = 10
TOP = N_LEVELS - 1
#: Zone letters of ``layout``, in the order of ``zone_mix`` and ``zone_limits``.
ZONE_LETTERS = "RUA"


def _positive(value) -> bool:
    return value > 0


@dataclass(frozen=True)
class SpeedLimitConfig:
    """Configuration of the speed-limit env; every field can be set with ``--env-config KEY=VALUE``."""

    road_length: int = setting(100, "cells from the start to the end of the road", check=lambda v: v >= 2,
                               accepts="an integer of at least 2")
    zone_mix: tuple[float, ...] = setting((0.3, 0.4, 0.3), "probability of a residential, urban and arterial zone",
                                          check=lambda v: len(v) == 3 and min(v) >= 0 and sum(v) > 0,
                                          accepts="3 non-negative numbers, not all 0")
    zone_limits: tuple[int, ...] = setting((3, 6, 9), "speed limit of residential, urban and arterial zones, levels",
                                           check=lambda v: len(v) == 3 and all(x >= 1 for x in v),
                                           accepts="3 integers in 1..n_levels - 1")
    min_zone_length: int = setting(5, "shortest zone, cells", check=_positive, accepts="a positive integer")
    max_zone_length: int = setting(20, "longest zone, cells", check=_positive, accepts="a positive integer")
    layout: str = setting("", "fixed layout, one letter per cell (R, U, A); empty: drawn per episode",
                          check=lambda v: set(v) <= set(ZONE_LETTERS), accepts="letters R, U and A only")
    max_accel: int = setting(2, "most levels the speed may rise in one step", check=_positive,
                             accepts="a positive integer")
    max_brake: int = setting(3, "most levels the speed may drop in one step", check=_positive,
                             accepts="a positive integer")
    time_cost: float = setting(1.0, "reward lost per step", check=_positive, accepts="a positive number")
    comfort_cost: float = setting(2.0, "reward lost per level of speed change", check=lambda v: v >= 0,
                                  accepts="a non-negative number")
    lookahead: int = setting(24, "cells ahead whose limits are observed (24: over two steps at top speed)",
                             check=_positive,
                             accepts="a positive integer")
    max_steps: int = setting(200, "step limit of an episode (truncation)", check=_positive,
                             accepts="a positive integer")
    n_agents: int = setting(1, "cars on the one lane (car 0 in front)", check=_positive, accepts="a positive integer")
    start_gap: int = setting(5, "several cars: cells between consecutive cars at the start (all at rest)",
                             check=_positive, accepts="a positive integer")
    min_gap: int = setting(2, "several cars: S4, the fewest cells a car may be behind its leader",
                           check=_positive, accepts="a positive integer")
    n_levels: int = setting(N_LEVELS, "speed levels 0 .. n_levels - 1 (cells advanced per step)",
                            check=lambda v: 2 <= v <= 1000, accepts="an integer in 2..1000")
    observed_safe_speed: str = setting("road", "what observation entry 3, the safe speed of the car's cell, is "
                                       "computed from: road (the whole road, as the mask's S3) or window (the "
                                       "lookahead cells only, unseen cells at the top limit: the car knows no more "
                                       "of the road than it sees, and only the mask knows the zones beyond)",
                                       choices=("road", "window"))


@dataclass
class SpeedLimitState:
    """Batched state. ``B`` = batch entries, ``A`` = agents (cars), ``L`` = road length."""

    position: np.ndarray    # (B, A) cell, int64
    speed: np.ndarray       # (B, A) level of the last step, int64
    t: np.ndarray           # (B,) steps so far
    limits: np.ndarray      # (B, L + pad) limit per cell, TOP past the end, int64
    safe_speed: np.ndarray  # (B, L + pad) highest level from which full braking here respects S1
    cell_levels: np.ndarray  # (B, L + 1, levels) bool: levels S1 and S3 admit from each cell (of limits, safe_speed)

    def copy(self) -> SpeedLimitState:
        return SpeedLimitState(self.position.copy(), self.speed.copy(), self.t.copy(), self.limits.copy(),
                               self.safe_speed.copy(), self.cell_levels.copy())


def _window_min(limits: np.ndarray, start: np.ndarray, levels: np.ndarray) -> np.ndarray:
    """Min limit over cells ``start .. start + level`` for each level: ``(..., n_levels)``.

    ``limits`` is ``(B, cells)``, ``start`` ``(B, ...)`` and ``levels`` a 1-d array of levels.
    """
    offsets = np.arange(levels.max() + 1)
    cells = limits[np.arange(len(limits)).reshape(-1, *([1] * (start.ndim - 1)), 1),
                   start[..., None] + offsets]                       # (B, ..., max_level + 1)
    running = np.minimum.accumulate(cells, axis=-1)
    return running[..., levels]


def braking_respects_limits(limits: np.ndarray, position: np.ndarray, speed: np.ndarray, road_length: int,
                            max_brake: int, top: int = TOP) -> np.ndarray:
    """S3 by simulation: from ``(position, speed)``, does braking by ``max_brake`` per step respect S1?

    Forward, state by state, independent of the per-episode ``safe_speed`` table. ``limits`` is
    ``(B, cells)``; ``position`` and ``speed`` are ``(B, ...)``.
    """
    ok = np.ones(position.shape, dtype=bool)
    pos, level = position.copy(), speed.copy()
    rows = np.arange(len(limits)).reshape(-1, *([1] * (position.ndim - 1)))
    for _ in range(top // max_brake + 1):
        level = np.maximum(level - max_brake, 0)
        moving = (level > 0) & (pos < road_length)
        for k in range(top + 1):  # every cell of the window pos .. pos + level
            inside = moving & (k <= level)
            cell = np.minimum(pos + k, limits.shape[1] - 1)
            ok &= ~inside | (limits[rows, cell] >= level)
        pos = pos + np.where(moving, level, 0)
    return ok


class SpeedLimitCore(EnvCore):
    """Batched dynamics, reward and mask of the speed-limit env (see the module docstring)."""

    Config = SpeedLimitConfig
    agent_prefix = "car"
    version = 0
    invalid_action_default = "repair"
    episode_metrics = ("position",)

    def __init__(self, config: SpeedLimitConfig, num_envs: int = 1, strict: bool = False):
        if config.layout and len(config.layout) != config.road_length:
            raise ConfigError(f"layout has {len(config.layout)} cells but road_length is "
                              f"{config.road_length}; set road_length={len(config.layout)}")
        if config.min_zone_length > config.max_zone_length:
            raise ConfigError(f"min_zone_length ({config.min_zone_length}) exceeds "
                              f"max_zone_length ({config.max_zone_length})")
        if config.n_agents > 1:
            if config.start_gap < config.min_gap:
                raise ConfigError(f"start_gap ({config.start_gap}) must be at least min_gap "
                                  f"({config.min_gap}), or S4 would fail at the start")
            if (config.n_agents - 1) * config.start_gap >= config.road_length:
                raise ConfigError(f"{config.n_agents} cars {config.start_gap} cells apart do not "
                                  f"fit on a road of {config.road_length} cells")
        if max(config.zone_limits) > config.n_levels - 1:
            top = config.n_levels - 1
            raise ConfigError(f"zone_limits {list(config.zone_limits)} exceed the top level {top} "
                              f"of n_levels={config.n_levels}; give limits in 1..{top}")
        super().__init__(config, num_envs, strict)
        #: Speed levels 0 .. top (``n_levels``; 10 in the post's car).
        self.n_levels, self.top = config.n_levels, config.n_levels - 1
        self.action_space = spaces.Discrete(self.n_levels)
        n_features = 4 + config.lookahead + (2 if config.n_agents > 1 else 0)
        high = np.full(n_features, np.finfo(np.float32).max, dtype=np.float32)  # unbounded in practice
        self.feature_space = spaces.Box(np.zeros_like(high), high, dtype=np.float32)
        self._pad = max(self.top, config.lookahead) + 1
        self._levels = np.arange(self.n_levels)
        self._mix = np.asarray(config.zone_mix, dtype=np.float64) / sum(config.zone_mix)
        self._mix_cdf = self._mix.cumsum() / self._mix.cumsum()[-1]  # as Generator.choice computes it
        self._zone_limits = np.asarray(config.zone_limits, dtype=np.int64)
        # S2 as a (v, a) table: a is within the comfort bounds of v.
        v, a = np.meshgrid(self._levels, self._levels, indexing="ij")
        self._comfort = (a >= v - config.max_brake) & (a <= v + config.max_accel)
        # S4: the distance covered while braking fully from each level, and the level after one step of it.
        self._braked = np.maximum(self._levels - config.max_brake, 0)
        self._braking_distance = np.array([sum(max(v - k * config.max_brake, 0) for k in range(1, self.n_levels + 1))
                                           for v in self._levels])
        # For the window's safe speed: the highest level at which full braking from level v (at offset 0) crosses
        # each cell ahead, 0 where it never does: (levels, braking distance from the top + 1).
        self._braking_levels = np.zeros((self.n_levels, self._braking_distance[-1] + 1), dtype=np.int64)
        for start in self._levels:
            cell, level = 0, max(start - config.max_brake, 0)
            while level > 0:
                crossed = self._braking_levels[start, cell:cell + level + 1]
                np.maximum(crossed, level, out=crossed)
                cell, level = cell + level, max(level - config.max_brake, 0)
        # The oracle's dynamic-programming tables, computed lazily once per episode (see oracle_actions).
        self._episode = np.zeros(num_envs, dtype=np.int64)
        self._oracle_episode = np.full(num_envs, -1, dtype=np.int64)
        self._oracle_values = np.zeros((num_envs, config.road_length + self._pad, self.n_levels))

    @classmethod
    def state_bytes(cls, config: SpeedLimitConfig, num_envs: int) -> int:
        """Per entry: the road's limits and safe speeds, the levels each cell admits and the oracle's
        table of values (all ``road_length`` long); the oracle's admissible table is built a road at a time
        over ``(cells, levels, levels)``."""
        levels = config.n_levels
        cells = config.road_length + max(levels - 1, config.lookahead) + 1
        per_entry = cells * (8 + 8 + levels * 8) + (config.road_length + 1) * levels + 8 * 3 * config.n_agents
        return num_envs * per_entry + 8 * cells * levels * levels

    @property
    def constraints(self) -> Sequence[Constraint]:
        single_car = (
            Constraint("S1", "no speed above the limit of any cell passed through", self._admits_s1),
            Constraint("S2", f"no change of speed beyond +{self.config.max_accel}/-{self.config.max_brake} levels",
                       self._admits_s2),
            Constraint("S3", "no speed from which the car cannot brake in time for the limits ahead",
                       self._admits_s3),
        )
        if self.n_agents == 1:
            return single_car
        return (*single_car, Constraint("S4", f"no speed that could bring the car within {self.config.min_gap} "
                                              "cells of the car ahead, even if it brakes as hard as it can",
                                        self._admits_s4))

    # ------------------------------------------------------------------ layout

    def draw_layout(self, rng: np.random.Generator) -> np.ndarray:
        """Zone index (0 residential, 1 urban, 2 arterial) of every cell of one episode's road."""
        c = self.config
        if c.layout:
            return np.array([ZONE_LETTERS.index(ch) for ch in c.layout], dtype=np.int64)
        # A few zones per episode. Per zone: its length, then its kind, drawn as ``rng.choice(3,
        # p=zone_mix)`` draws it (one uniform against the cumulative mix) without that call's
        # overhead, which dominated stepping a batch with autoreset (the draws are unchanged).
        lengths, kinds, cells = [], [], 0
        while cells < c.road_length:
            lengths.append(int(rng.integers(c.min_zone_length, c.max_zone_length + 1)))
            kinds.append(self._mix_cdf.searchsorted(rng.random(), side="right"))
            cells += lengths[-1]
        return np.repeat(np.array(kinds, dtype=np.int64), lengths)[:c.road_length]

    def safe_speeds(self, limits: np.ndarray) -> np.ndarray:
        """The backward pass: ``safe[p]`` = highest level from which braking at cell ``p`` respects S1.

        ``limits`` is ``(n, L + pad)``. Braking from level ``v`` at ``p`` next moves at
        ``u = max(v - max_brake, 0)`` over cells ``p .. p + u``, then brakes again from ``p + u``; a
        stopped car (``u = 0``) is safe, and so is every cell past the end of the road.
        """
        L, brake = self.config.road_length, self.config.max_brake
        n, cells = limits.shape
        safe = np.full((n, cells), self.top, dtype=np.int64)
        u = np.maximum(self._levels - brake, 0)                          # next level of full braking
        # The lowest limit over cells p .. p + u of every cell p and level, all at once: (n, L, levels).
        windows = np.lib.stride_tricks.sliding_window_view(limits[:, :L + self.top], self.top + 1, axis=1)
        passable = np.minimum.accumulate(windows, axis=-1)[..., u] >= u
        for p in range(L - 1, -1, -1):  # sequential: safe[p] depends on safe[p + u]
            ok = (u == 0) | (passable[:, p] & (u <= safe[:, p + u]))
            # A lower level is never harder to brake from (the tests check it), so keep the highest safe one.
            safe[:, p] = np.where(ok, self._levels, -1).max(axis=-1)
        return safe

    def cell_levels(self, limits: np.ndarray, safe: np.ndarray) -> np.ndarray:
        """The levels S1 and S3 admit from every cell ``0 .. L`` of ``n`` roads: ``(n, L + 1, levels)`` bool.

        Both depend on the road and the cell, not on the car, so they are computed once per episode
        and :meth:`action_mask` only looks them up (with S2, which depends on the speed, and S4).
        """
        L, n = self.config.road_length, len(limits)
        cells = np.arange(L + 1)
        limit_ok = _window_min(limits, np.broadcast_to(cells, (n, L + 1)), self._levels) >= self._levels  # S1
        landing = np.minimum(cells[:, None] + self._levels, limits.shape[1] - 1)                       # (L + 1, levels)
        brake_ok = (self._levels <= safe[:, landing]) | (landing >= L)                                  # S3
        return limit_ok & brake_ok

    # ------------------------------------------------------------------ episode

    def reset_envs(self, env_ids: np.ndarray, rngs: Sequence[np.random.Generator]) -> None:
        c = self.config
        if self.state is None:
            B, A, cells = self.num_envs, self.n_agents, c.road_length + self._pad
            self.state = SpeedLimitState(np.zeros((B, A), dtype=np.int64), np.zeros((B, A), dtype=np.int64),
                                         np.zeros(B, dtype=np.int64), np.full((B, cells), self.top, dtype=np.int64),
                                         np.full((B, cells), self.top, dtype=np.int64),
                                         np.zeros((B, c.road_length + 1, self.n_levels), dtype=bool))
        s = self.state
        for env_id, rng in zip(env_ids, rngs):  # once per episode, not per step
            s.limits[env_id, :c.road_length] = self._zone_limits[self.draw_layout(rng)]
        s.safe_speed[env_ids] = self.safe_speeds(s.limits[env_ids])
        s.cell_levels[env_ids] = self.cell_levels(s.limits[env_ids], s.safe_speed[env_ids])
        self._episode[env_ids] += 1
        s.position[env_ids] = (self.n_agents - 1 - np.arange(self.n_agents)) * c.start_gap  # car 0 in front
        s.speed[env_ids] = 0
        s.t[env_ids] = 0

    # ------------------------------------------------------------------ views of the state

    def features(self) -> np.ndarray:
        s, L = self.state, self.config.road_length
        rows = np.arange(self.num_envs)[:, None, None]
        pos = np.minimum(s.position, L)
        ahead = s.limits[rows, pos[..., None] + np.arange(self.config.lookahead)]
        if self.config.observed_safe_speed == "window":
            safe_here = self.window_safe_speed(ahead)
        else:
            safe_here = s.safe_speed[np.arange(self.num_envs)[:, None], pos]
        head = np.stack([s.speed, pos, L - pos, safe_here], axis=-1)
        parts = [head, ahead]
        if self.n_agents > 1:
            has_leader, leader_pos, leader_speed = self._leaders(s)
            parts.append(np.stack([np.where(has_leader, leader_pos - pos, L), np.where(has_leader, leader_speed, 0)],
                                  axis=-1))
        return np.concatenate(parts, axis=-1).astype(np.float32)

    def window_safe_speed(self, ahead: np.ndarray) -> np.ndarray:
        """The safe speed of the car's cell as far as the car can see (``observed_safe_speed="window"``): the
        highest level from which braking fully respects S1 on the ``lookahead`` cells ``ahead`` (``(..., lookahead)``
        limits from the car's cell on), every cell beyond them at the top limit.

        One comparison with :attr:`_braking_levels` (the level at which full braking from each level crosses each
        cell ahead), not the backward pass of :meth:`safe_speeds`; the tests check it against braking simulated
        forward on the window's road (:func:`braking_respects_limits`). Never below the road's safe speed (the
        window road is the most permissive road consistent with what the car sees), equal to it when the window
        reaches past every cell braking crosses.
        """
        seen = min(ahead.shape[-1], self._braking_levels.shape[1])
        ok = (self._braking_levels[:, :seen] <= ahead[..., None, :seen]).all(axis=-1)  # (..., levels)
        return np.where(ok, self._levels, 0).max(axis=-1)

    def _leaders(self, s: SpeedLimitState) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Each car's leader (the car in front of it, while that one is on the road): ``(has, position,
        speed)``, each ``(B, A)``. Car 0 never has one; order on the lane never changes (S4)."""
        L = self.config.road_length
        leader_pos = np.concatenate([np.full_like(s.position[:, :1], L), s.position[:, :-1]], axis=1)
        leader_speed = np.concatenate([np.zeros_like(s.speed[:, :1]), s.speed[:, :-1]], axis=1)
        has_leader = np.arange(self.n_agents) > 0
        return has_leader & (leader_pos < L), leader_pos, leader_speed

    def _on_road(self, s: SpeedLimitState) -> np.ndarray:
        return s.position < self.config.road_length

    def action_mask(self) -> np.ndarray:
        s, L = self.state, self.config.road_length
        pos = np.minimum(s.position, L)
        mask = s.cell_levels[np.arange(self.num_envs)[:, None], pos] & self._comfort[s.speed]  # S1 and S3; S2
        if self.n_agents > 1:
            has_leader, leader_pos, leader_speed = self._leaders(s)
            gap = self.config.min_gap
            slack_now = (leader_pos + self._braked[leader_speed] - gap - pos)[..., None]          # S4, this step
            slack_stop = (leader_pos + self._braking_distance[leader_speed] - gap - pos)[..., None]  # S4, stopped
            headway_ok = (self._levels <= slack_now) & (self._levels + self._braking_distance <= slack_stop)
            mask &= headway_ok | ~has_leader[..., None]
            mask |= ~self._on_road(s)[..., None]  # a car that has left the road is free (and inert)
        return mask.astype(MASK_DTYPE)

    def idle_action(self) -> np.ndarray:
        """What a car that has left the road is given in the PettingZoo view: level 0 (it is inert)."""
        return np.zeros((), dtype=np.int64)  # Discrete: one scalar level

    def _zone_of_cells(self, entry: int) -> np.ndarray:
        """The zone (index into ``ZONE_LETTERS``) of every cell of entry ``entry``'s road, from its limits."""
        limits = self.state.limits[entry, :self.config.road_length]
        return np.argmax(limits[:, None] == self._zone_limits[None, :], axis=1)

    def render_text(self, entry: int) -> str:
        """The road, one character per cell (its zone's letter, a car's digit where it stands), then each
        car's cell, speed and the limit there."""
        s, c = self.state, self.config
        road = np.array(list(ZONE_LETTERS.lower()))[self._zone_of_cells(entry)]
        for agent in range(self.n_agents):
            cell = int(s.position[entry, agent])
            if cell < c.road_length:
                road[cell] = str(agent % 10)
        zones = ", ".join(f"{zone.lower()}: limit {limit}" for zone, limit in zip(ZONE_LETTERS, c.zone_limits))
        lines = [f"step {int(s.t[entry])}  road |{''.join(road)}|  ({zones})"]
        for agent in range(self.n_agents):
            cell = int(s.position[entry, agent])
            limit = f"limit {int(s.limits[entry, cell])}" if cell < c.road_length else "past the end"
            lines.append(f"{self.agent_prefix}_{agent}: cell {cell}/{c.road_length}  speed {int(s.speed[entry, agent])}"
                         f"  {limit}")
        return "\n".join(lines)

    def render_rgb(self, entry: int) -> np.ndarray:
        """The road seen from above: a band coloured by zone (green residential, amber urban, grey arterial),
        a lane per car with the car in red; about 800 pixels wide."""
        s, c = self.state, self.config
        px = max(1, 800 // c.road_length)
        colours = np.array([[120, 190, 120], [230, 190, 90], [170, 170, 170]], dtype=np.uint8)
        band = np.repeat(colours[self._zone_of_cells(entry)][None], 12, axis=0)    # (12, L, 3)
        lanes = np.full((8 * self.n_agents, c.road_length, 3), 245, dtype=np.uint8)
        for agent in range(self.n_agents):
            cell = int(s.position[entry, agent])
            if cell < c.road_length:
                lanes[8 * agent + 1:8 * agent + 7, cell] = (200, 30, 30)
        return np.repeat(np.concatenate([band, lanes], axis=0), px, axis=1)

    def metrics(self) -> dict[str, np.ndarray]:
        return {"position": np.minimum(self.state.position, self.config.road_length).astype(np.float64)}

    # ------------------------------------------------------------------ dynamics

    def noop(self, actions: np.ndarray, inadmissible: np.ndarray) -> np.ndarray:
        """``invalid_action="noop"``: the attempted level is not executed; the car keeps its speed ``v``, or, where
        that is inadmissible (a slower zone ahead, a leader braking), the admissible level nearest ``v`` (the lower
        on a tie: the gentlest admissible braking). Independent of the attempted level. (``repair``, the default,
        is the base class's: the admissible level nearest the attempted one.)"""
        keep = np.broadcast_to(self.state.speed[..., None], actions.shape)
        return np.where(inadmissible, self.nearest_admissible(keep), actions)

    def transition(self, actions: np.ndarray) -> StepResult:
        s, c = self.state, self.config
        on_road = self._on_road(s)
        level = np.where(on_road, actions[..., 0], 0)  # a car that has left the road stays where it is
        before = np.minimum(s.position, c.road_length)
        s.position = s.position + level
        progress = np.minimum(s.position, c.road_length) - before
        reward = np.where(on_road, progress - c.time_cost - c.comfort_cost * np.abs(level - s.speed), 0.0)
        s.speed = level
        s.t += 1
        terminated = s.position >= c.road_length
        truncated = (s.t >= c.max_steps)[:, None] & ~terminated
        return StepResult(reward=reward.astype(np.float64), terminated=terminated, truncated=truncated,
                          info={"position": np.minimum(s.position, c.road_length).astype(np.float64)})

    # ------------------------------------------------------------------ the exact optimum

    def admissible_table(self, limits: np.ndarray, safe: np.ndarray) -> np.ndarray:
        """The mask of every state of ``n`` roads: ``(n, road_length, levels v, levels a)`` bool.

        Evaluated by :meth:`action_mask` itself on a grid of (cell, level) states, so the optimum
        is computed over exactly the actions the env admits.
        """
        L, n = self.config.road_length, len(limits)
        cell, level = np.meshgrid(np.arange(L), self._levels, indexing="ij")
        grid = SpeedLimitState(np.broadcast_to(cell.ravel(), (n, L * self.n_levels)).copy(),
                               np.broadcast_to(level.ravel(), (n, L * self.n_levels)).copy(),
                               np.zeros(n, dtype=np.int64), limits, safe, self.cell_levels(limits, safe))
        saved, saved_envs = self.state, self.num_envs
        self.state, self.num_envs = grid, n
        try:
            return self.action_mask().astype(bool).reshape(n, L, self.n_levels, self.n_levels)
        finally:
            self.state, self.num_envs = saved, saved_envs

    def optimal_values(self, limits: np.ndarray, safe: np.ndarray) -> np.ndarray:
        """Exact optimal return-to-go ``V[cell, level]`` of ``n`` roads by dynamic programming.

        ``V`` is ``(n, road_length + pad, levels)``, 0 past the end. Positions never decrease, so one
        backward pass over cells is exact; at each cell the stop (level 0, which stays put) is solved
        first, excluding the stop-again self-loop that only costs time. Exact while ``max_steps`` allows
        every path without that self-loop, i.e. ``max_steps >= 2 * road_length``.
        """
        c, L = self.config, self.config.road_length
        n, cells = limits.shape
        admissible = self.admissible_table(limits, safe)                          # (n, L, v, a)
        values = np.zeros((n, cells, self.n_levels))
        change_cost = c.comfort_cost * np.abs(self._levels[:, None] - self._levels[None, :])  # (v, a)
        rows = np.arange(n)[:, None]
        for p in range(L - 1, -1, -1):
            progress = np.minimum(p + self._levels, L) - p                          # (a,)
            ahead = values[rows, p + self._levels, self._levels]                    # (n, a): V[p + a, a]
            gain = progress - c.time_cost - change_cost + ahead[:, None, :]         # (n, v, a)
            moving = np.where(admissible[:, p, 0, 1:], gain[:, 0, 1:], -np.inf).max(axis=-1)
            values[:, p, 0] = moving                                                # V[p, 0]: must move on
            gain[:, :, 0] = -c.time_cost - change_cost[:, 0] + values[:, p, 0][:, None]  # stop, then V[p, 0]
            values[:, p, 1:] = np.where(admissible[:, p, 1:], gain[:, 1:], -np.inf).max(axis=-1)
        return values

    def oracle_actions(self) -> np.ndarray:
        """The optimal level of every entry now, from its episode's dynamic-programming table."""
        s, c, L = self.state, self.config, self.config.road_length
        stale = np.flatnonzero(self._oracle_episode != self._episode)
        if len(stale):  # once per episode, when the oracle is first asked
            self._oracle_values[stale] = self.optimal_values(s.limits[stale], s.safe_speed[stale])
            self._oracle_episode[stale] = self._episode[stale]
        pos, v = np.minimum(s.position, L), s.speed
        rows = np.arange(self.num_envs)[:, None, None]
        landing = np.minimum(pos[..., None] + self._levels, L + self._pad - 1)
        progress = np.minimum(landing, L) - pos[..., None]
        ahead = np.where(self._levels == 0, self._oracle_values[rows, pos[..., None], 0],
                         self._oracle_values[rows, landing, self._levels])
        gain = progress - c.time_cost - c.comfort_cost * np.abs(self._levels - v[..., None]) + ahead
        gain = np.where(self.action_mask().astype(bool), gain, -np.inf)
        if c.time_cost > 0:  # never stay at rest: that self-loop only costs time
            gain = np.where((self._levels == 0) & (v[..., None] == 0), -np.inf, gain)
        return gain.argmax(axis=-1)[..., None]

    @classmethod
    def check_oracle_config(cls, config: SpeedLimitConfig) -> None:
        """The dynamic program is exact when no optimal path can be truncated."""
        if config.max_steps < 2 * config.road_length:
            raise ConfigError(f"the speed_limit full-road dynamic program (clairvoyant_dp) is exact only with "
                              f"max_steps >= 2 * road_length ({2 * config.road_length}); "
                              f"got max_steps={config.max_steps}")
        if config.n_agents > 1:
            raise ConfigError(f"the speed_limit full-road dynamic program (clairvoyant_dp) is the exact optimum of one "
                              f"car; got n_agents={config.n_agents}")

    def optimal_return(self) -> np.ndarray:
        """The optimal return of every entry's current episode from its start: ``(batch, agents)``."""
        self.oracle_actions()
        return np.broadcast_to(self._oracle_values[:, 0, 0][:, None], (self.num_envs, self.n_agents)).copy()

    # ------------------------------------------------------------------ constraint predicates

    def _admits_s1(self, state: SpeedLimitState, actions: np.ndarray) -> np.ndarray:
        level = actions[..., 0]
        ok = np.ones(level.shape, dtype=bool)
        rows = np.arange(len(state.limits))[:, None]
        for k in range(self.top + 1):  # each cell pos + k the car passes through at this level
            cell = np.minimum(state.position + k, state.limits.shape[1] - 1)
            ok &= (k > level) | (state.limits[rows, cell] >= level)
        return ok[..., None]

    def _admits_s2(self, state: SpeedLimitState, actions: np.ndarray) -> np.ndarray:
        change = actions[..., 0] - state.speed
        ok = (change <= self.config.max_accel) & (-change <= self.config.max_brake)
        if self.n_agents > 1:  # a car that has left the road is free
            ok |= state.position >= self.config.road_length
        return ok[..., None]

    def _admits_s4(self, state: SpeedLimitState, actions: np.ndarray) -> np.ndarray:
        """S4 by simulation: after this step (the leader braking hardest), both cars brake fully, step by
        step, until both stop; the distance must stay at least ``min_gap`` throughout."""
        c, L = self.config, self.config.road_length
        level = actions[..., 0]
        has_leader, leader_pos, leader_speed = self._leaders(state)
        follower_speed = level.copy()
        follower_pos = state.position + level
        leader_speed = np.maximum(leader_speed - c.max_brake, 0)
        leader_pos = leader_pos + leader_speed
        ok = leader_pos - follower_pos >= c.min_gap
        for _ in range(self.top // c.max_brake + 2):
            follower_speed = np.maximum(follower_speed - c.max_brake, 0)
            leader_speed = np.maximum(leader_speed - c.max_brake, 0)
            follower_pos = follower_pos + follower_speed
            leader_pos = leader_pos + leader_speed
            ok &= leader_pos - follower_pos >= c.min_gap
        return (ok | ~has_leader | (state.position >= L))[..., None]

    def _admits_s3(self, state: SpeedLimitState, actions: np.ndarray) -> np.ndarray:
        level = actions[..., 0]
        return braking_respects_limits(state.limits, state.position + level, level, self.config.road_length,
                                       self.config.max_brake, self.top)[..., None]

    # ------------------------------------------------------------------ checkers

    def sample_states(self, rng: np.random.Generator, num_states: int) -> SpeedLimitState:
        """Arbitrary states of the env's invariant: random layouts, any cell, any level up to the cell's
        safe speed (half of them exactly at it, the edge of S3).

        Every reachable state satisfies the invariant (that is what S3 keeps); a state above the
        safe speed is one the car can never be in, and its mask may be empty.
        """
        L = self.config.road_length
        cells = L + self._pad
        limits = np.full((num_states, cells), self.top, dtype=np.int64)
        for i in range(num_states):  # checker states only
            limits[i, :L] = self._zone_limits[self.draw_layout(rng)]
        safe = self.safe_speeds(limits)
        if self.n_agents > 1:
            position, speed = self._sample_lane(rng, safe)
        else:
            position = rng.integers(0, L, size=(num_states, self.n_agents))
            top = safe[np.arange(num_states)[:, None], position]
            speed = np.where(rng.random(position.shape) < 0.5, top, rng.integers(0, top + 1))
        return SpeedLimitState(position, speed, rng.integers(0, self.config.max_steps, num_states), limits, safe,
                               self.cell_levels(limits, safe))

    def _sample_lane(self, rng: np.random.Generator, safe: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Several cars in S4's invariant, front to back: each at least ``min_gap`` behind its leader and
        able to stop ``min_gap`` behind the leader's stopping point, often exactly at one of those
        edges; every speed at most its cell's safe speed; some leaders already past the end."""
        c, L = self.config, self.config.road_length
        n, rows = len(safe), np.arange(len(safe))
        position = np.zeros((n, self.n_agents), dtype=np.int64)
        speed = np.zeros((n, self.n_agents), dtype=np.int64)
        position[:, 0] = np.where(rng.random(n) < 0.1, L + rng.integers(0, self.top + 1, n), rng.integers(0, L, n))
        for i in range(self.n_agents):
            if i > 0:
                leader_pos, leader_speed = position[:, i - 1], speed[:, i - 1]
                wanted = rng.integers(0, self.n_levels, n)
                room = np.minimum(leader_pos + self._braked[leader_speed] - wanted,
                                  leader_pos + self._braking_distance[leader_speed] - self._braking_distance[wanted])
                room = np.minimum(room - c.min_gap, leader_pos - c.min_gap)
                slack = np.where(rng.random(n) < 0.5, 0, rng.integers(0, 12, n))
                position[:, i] = np.clip(room - slack, 0, L - 1)
                speed[:, i] = wanted
            on_road = position[:, i] < L
            top = safe[rows, np.minimum(position[:, i], L - 1)]
            drawn = speed[:, i] if i else rng.integers(0, self.n_levels, n)
            speed[:, i] = np.where(on_road, np.minimum(drawn, top), 0)
        # Where the lane was too short for the draws, the start layout at a random offset instead.
        leader_pos, leader_speed = position[:, :-1], speed[:, :-1]
        follower_pos, follower_speed = position[:, 1:], speed[:, 1:]
        fits = (((follower_pos <= leader_pos - c.min_gap)
                 & (follower_pos + self._braking_distance[follower_speed]
                    <= leader_pos + self._braking_distance[leader_speed] - c.min_gap))
                | (leader_pos >= L)).all(axis=1)
        offset = rng.integers(0, L - (self.n_agents - 1) * c.start_gap, n)[:, None]
        start = offset + (self.n_agents - 1 - np.arange(self.n_agents)) * c.start_gap
        position = np.where(fits[:, None], position, start)
        speed = np.where(fits[:, None], speed, 0)
        return position, speed


register("speed_limit", SpeedLimitCore,
         description="residential speed-limit car: Discrete(10) speed levels, constraints S1 limit, S2 comfort, "
                     "S3 can-stop")


def scaled_level(n_levels: int, road_length: int) -> dict[str, object]:
    """The post's car with ``n_levels`` speed levels on a road of ``road_length`` cells.

    Zone limits, zone lengths and the cells looked ahead scale with the top speed; the comfort rules
    stay the post's, in levels (at most +2/-3 levels a step, 2 of reward per level of change): a
    finer speed scale under the same rules makes more of the action space inadmissible in every state
    (58% of the levels at the seed's size, 81% and 90% at the next two, ``python -m suite.levels``).
    """
    scale = (n_levels - 1) / TOP
    return {"n_levels": n_levels, "road_length": road_length,
            "zone_limits": tuple(round(limit * scale) for limit in (3, 6, 9)),
            "min_zone_length": round(5 * scale), "max_zone_length": round(20 * scale),
            "lookahead": 2 * (n_levels - 1) + 6, "max_steps": 2 * road_length}


#: The levels (see "Levels" in the module docstring): more speed levels on a longer road.
LEVELS = {"speed_limit-m": (2, scaled_level(25, 300)), "speed_limit-l": (3, scaled_level(50, 1000))}
for _name, (_level, _overrides) in LEVELS.items():
    register_level(_name, "speed_limit", _level, _overrides,
                   description=f"speed_limit, level {_level}: Discrete({_overrides['n_levels']}) speed levels on a "
                               f"road of {_overrides['road_length']} cells")
