"""The four thin views of one :class:`envs.core.EnvCore`.

- :class:`SingleAgentView`: a ``gymnasium.Env``, batch 1, one agent (``envs.make``).
- :class:`ParallelView`: a ``pettingzoo.ParallelEnv``, batch 1, all agents (``envs.make_parallel``).
- :class:`VectorView`: a ``gymnasium.vector.VectorEnv``, batch N, one agent, natively batched with
  next-step autoreset (``envs.make_vector``), the form RLlib consumes through
  ``gym_env_vectorize_mode="vector_entry_point"``.
- :class:`MultiAgentVectorView`: batch N, all agents, ``(N, agents, ...)`` arrays with the same
  autoreset (``envs.make_multi_agent_vector``), what multi-agent evaluation, ``random_valid`` and the
  torch backend play.

Seeding follows Gymnasium: ``reset(seed=s)`` seeds the env's generator with ``s``; the vector env
seeds entry i with ``s + i``, exactly as ``SyncVectorEnv`` seeds its sub-envs, so entry i of a
vector env and a single env seeded ``s + i`` produce the same episode.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
import pettingzoo
from gymnasium.utils import seeding
from gymnasium.vector.utils import batch_space

from . import masking
from .config import ConfigError
from .core import EnvCore

__all__ = ["SingleAgentView", "ParallelView", "VectorView", "MultiAgentVectorView", "ViolatedNames",
           "VIOLATED_FLAGS"]


def _agent_info(core: EnvCore, info: dict[str, np.ndarray], env_id: int, agent: int) -> dict[str, Any]:
    """Info dict of one agent in one batch entry, with Python scalars and constraint names."""
    out: dict[str, Any] = {}
    for key, value in info.items():
        if key == "violated":
            out[key] = core.violated_names(value[env_id, agent])
        else:
            out[key] = value[env_id, agent].item()
    return out


#: The vector view's info key of the violated constraints as a ``(num_envs, n_constraints)`` bool array.
VIOLATED_FLAGS = "violated_flags"


class ViolatedNames:
    """``(n, n_constraints)`` bool rows -> an ``(n,)`` object array of lists of constraint names, without a
    Python call per row: each flagged row's pattern is a number, each distinct pattern is named once (and
    remembered), and each flagged entry gets a list of its own. Entries that violated nothing share the empty
    lists of one array made once (as the vector view always gave them): read them, do not append to them."""

    _new_list = np.frompyfunc(list, 1, 1)

    def __init__(self, names: Sequence[str]):
        """``names``: the constraints' names, in the order of the rows' columns."""
        self.names = tuple(names)
        self._weights = 1 << np.arange(len(self.names), dtype=np.int64) if len(self.names) < 63 else None
        self._known: dict[Any, tuple[str, ...]] = {}
        self._empty = np.empty(0, dtype=object)

    def __call__(self, rows: np.ndarray) -> np.ndarray:
        rows = np.asarray(rows, dtype=bool)
        if len(self._empty) != len(rows):
            self._empty = np.empty(len(rows), dtype=object)
            self._empty[:] = [[] for _ in range(len(rows))]
        out = self._empty.copy()
        flagged = np.flatnonzero(rows.any(axis=-1))
        if not len(flagged):
            return out
        rows = rows[flagged]
        if self._weights is not None:
            patterns, first, inverse = np.unique(rows @ self._weights, return_index=True, return_inverse=True)
            keys = patterns.tolist()
        else:  # too many constraints for one int64 pattern: the rows themselves
            patterns, first, inverse = np.unique(rows, axis=0, return_index=True, return_inverse=True)
            keys = [row.tobytes() for row in patterns]
        table = np.empty(len(keys), dtype=object)
        for j, (key, i) in enumerate(zip(keys, first.tolist())):  # one element at a time: numpy would unpack tuples
            table[j] = self._named(key, rows[i])
        out[flagged] = self._new_list(table[inverse.reshape(-1)])
        return out

    def _named(self, key: Any, row: np.ndarray) -> tuple[str, ...]:
        named = self._known.get(key)
        if named is None:
            named = self._known[key] = tuple(name for name, hit in zip(self.names, row) if hit)
        return named


def _entry_seeds(seed: int | list[int | None] | None, num_envs: int) -> list[int | None]:
    """One seed per batch entry, as ``SyncVectorEnv`` seeds its sub-envs: ``seed + i`` for an int."""
    if isinstance(seed, int):
        return [seed + i for i in range(num_envs)]
    if seed is None:
        return [None] * num_envs
    if len(seed) != num_envs:
        raise ValueError(f"reset() got {len(seed)} seeds for {num_envs} envs")
    return list(seed)


def _reset_info(core: EnvCore) -> dict[str, np.ndarray]:
    """The info of a fresh episode: nothing invalid yet, episode metrics at their start values."""
    shape = (core.num_envs, core.n_agents)
    info = {"invalid_actions": np.zeros(shape, dtype=np.int64),
            "violated": np.zeros((*shape, len(core.constraints)), dtype=bool)}
    if not core.discrete:
        info["violation_distance"] = np.zeros(shape)
    info.update(core.metrics())
    return info


#: Frames per second for a viewer of successive renders (steps have no duration of their own).
RENDER_FPS = 4


def render_modes(core: EnvCore) -> list[str]:
    """The render modes of ``core``'s env: text always (``"ansi"`` returns it, ``"human"`` prints it to the terminal),
    a picture when the env draws one."""
    return ["ansi", "human", "rgb_array"] if type(core).provides("render_rgb") else ["ansi", "human"]


def check_render_mode(core: EnvCore, render_mode: str | None) -> str | None:
    """``render_mode`` if ``core``'s env renders so (None: no rendering); a one-line ``ConfigError`` otherwise."""
    if render_mode is not None and render_mode not in render_modes(core):
        raise ConfigError(f"env {core.name!r}: render_mode {render_mode!r} is not offered; accepted: "
                         f"{', '.join(render_modes(core))} (or None)")
    return render_mode


def require_reset(core: EnvCore, what: str = "step()") -> None:
    """``gymnasium.error.ResetNeeded`` (as Gymnasium's ``OrderEnforcing`` raises it) while ``core`` has no state."""
    if core.state is None:
        raise gym.error.ResetNeeded(f"Cannot call env.{what} before calling env.reset() (env {core.name!r})")


def check_reset_mask(reset_mask: Any, num_envs: int, name: str) -> np.ndarray:
    """``options["reset_mask"]`` of a vector view as a ``(num_envs,)`` bool array; a one-line ``ValueError`` for
    anything else (Gymnasium's vector envs take a bool array of that shape only)."""
    try:
        mask = np.asarray(reset_mask)
    except (ValueError, TypeError):  # ragged
        mask = None
    if mask is None or mask.dtype != np.bool_ or mask.shape != (num_envs,):
        got = f"{type(reset_mask).__name__} of dtype {mask.dtype} and shape {mask.shape}" if mask is not None else \
            f"{type(reset_mask).__name__} {str(reset_mask)[:60]}"
        raise ValueError(f"env {name!r}: options['reset_mask'] must be {num_envs} bools, shape ({num_envs},) "
                         f"(True: reset that entry); got a {got}")
    return mask


def render(core: EnvCore, render_mode: str | None, entry: int = 0):
    """What ``render()`` returns in ``render_mode``: the text, the image, or None without a mode and in ``"human"``
    mode, which prints the text to the terminal instead (Gymnasium's and PettingZoo's ``"human"``: the views also
    render so after every reset and step, unasked)."""
    if render_mode is not None and core.state is None:
        raise gym.error.ResetNeeded(f"env {core.name!r}: call reset() before render(), there is no state to draw yet")
    if render_mode == "ansi":
        return core.render_text(entry)
    if render_mode == "human":
        print(core.render_text(entry), flush=True)
        return None
    if render_mode == "rgb_array":
        return core.render_rgb(entry)
    return None


class SingleAgentView(gym.Env):
    """A maskbench env as a single-agent ``gymnasium.Env`` (batch 1)."""

    metadata = {"render_modes": []}

    def __init__(self, core: EnvCore, spec_name: str | None = None, render_mode: str | None = None):
        if core.num_envs != 1 or core.n_agents != 1:
            raise ValueError("the Gymnasium view is one env with one agent: use make_parallel or "
                             "make_multi_agent_vector for n_agents > 1 and make_vector for batches")
        self.core = core
        self.metadata = {**self.metadata, "render_modes": render_modes(core), "render_fps": RENDER_FPS}
        self.render_mode = check_render_mode(core, render_mode)
        self.observation_space = core.observation_space
        self.action_space = core.action_space
        self.name = spec_name or type(core).__name__
        #: Why :meth:`step` needs a :meth:`reset` first ("" once reset and while the episode runs).
        self._reset_needed = "before calling env.reset()"

    def _observation(self, acting: bool) -> dict[str, np.ndarray]:
        return {key: value[0, 0] for key, value in self.core.observe(np.array([[acting]])).items()}

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        self.core.reset(np.array([0]), [self.np_random])
        self._reset_needed = ""
        if self.render_mode == "human":
            self.render()
        return self._observation(acting=True), _agent_info(self.core, _reset_info(self.core), 0, 0)

    def step(self, action):
        """Gymnasium's five values. ``gymnasium.error.ResetNeeded`` before the first :meth:`reset` and after the
        episode ended (terminated or truncated) until the next one: that step's result would be undefined."""
        if self._reset_needed:
            raise gym.error.ResetNeeded(f"Cannot call env.step() {self._reset_needed} (env {self.name!r})")
        result = self.core.step(action)
        terminated, truncated = bool(result.terminated[0, 0]), bool(result.truncated[0, 0])
        if terminated or truncated:
            ended = "terminated" if terminated else "was truncated"
            self._reset_needed = f"after the episode {ended}: call env.reset() first"
        if self.render_mode == "human":
            self.render()
        return (self._observation(acting=not (terminated or truncated)), float(result.reward[0, 0]), terminated,
                truncated, _agent_info(self.core, result.info, 0, 0))

    def render(self):
        """The current state as text (``render_mode="ansi"``) or an image (``"rgb_array"``); None without a mode and in
        ``"human"`` mode, which prints the text (after every reset and step too)."""
        return render(self.core, self.render_mode)

    def action_masks(self) -> np.ndarray:
        """The current flat mask as int8, the observation's dtype and the one ``Discrete.sample(mask=...)`` and
        ``MultiDiscrete.sample`` accept (the accessor sb3-contrib's MaskablePPO looks for)."""
        self.core.require_action_kind(discrete=True)
        require_reset(self.core, "action_masks()")
        return self.core.action_mask()[0, 0].astype(np.int8)

    def admissible_set(self):
        """The current state's admissible set (continuous envs): ``contains`` / ``project`` / ``sample``."""
        self.core.require_action_kind(discrete=False)
        require_reset(self.core, "admissible_set()")
        return self.core.admissible_set()[0, 0]


class ParallelView(pettingzoo.ParallelEnv):
    """A maskbench env as a ``pettingzoo.ParallelEnv`` (batch 1, all agents act at once).

    Agents leave ``agents`` when their episode ends, as PettingZoo requires; with ``black_death=True``
    they stay until the episode ends for all (what SuperSuit's ``pettingzoo_env_to_vec_env_v1`` needs:
    one vector entry per agent, every step): an agent whose own episode has ended gets features of zeros
    (clipped into the feature space, SuperSuit's ``black_death_v3`` convention), a mask admitting every
    action, reward 0 and no termination, and its actions are ignored (the env's idle action); when the
    last agent's episode ends, every agent is reported terminated or truncated, as its own episode ended,
    and leaves. (SuperSuit's own ``black_death_v3`` needs Box observations, and these are Dicts.)
    """

    metadata = {"render_modes": [], "is_parallelizable": True, "name": "maskbench"}

    def __init__(self, core: EnvCore, spec_name: str | None = None, render_mode: str | None = None,
                 black_death: bool = False):
        if core.num_envs != 1:
            raise ValueError("the PettingZoo view is one env (batch 1)")
        self.core = core
        self.black_death = bool(black_death)
        #: Black death: the agents whose own episode ended, with (terminated, truncated) as it ended.
        self._ended: dict[str, tuple[bool, bool]] = {}
        self.metadata = {**self.metadata, "name": spec_name or type(core).__name__, "render_modes": render_modes(core),
                         "render_fps": RENDER_FPS}
        self.render_mode = check_render_mode(core, render_mode)
        self.possible_agents = list(core.agent_ids)
        self.agents: list[str] = []
        self._observation_space = core.observation_space
        self._action_space = core.action_space
        features = core.feature_space
        #: The global state (centralised critics): every agent's features, agent after agent.
        self.state_space = gym.spaces.Box(np.tile(features.low.reshape(-1), len(self.possible_agents)),
                                      np.tile(features.high.reshape(-1), len(self.possible_agents)),
                                      dtype=features.dtype)
        self._np_random: np.random.Generator | None = None

    def observation_space(self, agent: str):
        return self._observation_space

    def action_space(self, agent: str):
        return self._action_space

    def _observations(self, agents: list[str], acting: list[str],
                      idle: frozenset[str] = frozenset()) -> dict[str, dict[str, np.ndarray]]:
        """``agents``' observations; ``acting`` must act next (non-empty masks), ``idle`` are out of the episode
        but still in it (black death)."""
        obs = self.core.observe(np.array([[a in acting for a in self.possible_agents]]))
        out = {a: {key: value[0, self.possible_agents.index(a)] for key, value in obs.items()} for a in agents}
        for agent in idle:
            out[agent] = dict(self._black_death_observation)
        return out

    @property
    def _black_death_observation(self) -> dict[str, np.ndarray]:
        features = self.core.feature_space
        out = {masking.OBSERVATION_KEY: np.clip(np.zeros(features.shape, features.dtype), features.low, features.high)}
        if self.core.discrete:
            out[masking.MASK_KEY] = np.ones(masking.mask_size(self._action_space), dtype=masking.MASK_DTYPE)
        return out

    def reset(self, seed: int | None = None, options: dict[str, Any] | None = None):
        if seed is not None or self._np_random is None:
            self._np_random, _ = seeding.np_random(seed)
        self.core.reset(np.array([0]), [self._np_random])
        self.agents = list(self.possible_agents)
        self._ended = {}
        if self.render_mode == "human":
            self.render()
        info = _reset_info(self.core)
        infos = {a: _agent_info(self.core, info, 0, i) for i, a in enumerate(self.agents)}
        return self._observations(self.agents, self.agents), infos

    def step(self, actions: dict[str, Any]):
        if self._np_random is None:
            raise gym.error.ResetNeeded(f"Cannot call env.step() before calling env.reset() (env {self.core.name!r})")
        if not self.agents:
            raise RuntimeError("step() called on an ended episode: call reset() first")
        missing = [a for a in self.agents if a not in actions]
        if missing:
            raise ValueError(f"no action for agent(s) {missing}")
        for agent in self.agents:
            if np.size(actions[agent]) != max(1, int(np.prod(self._action_space.shape))):
                raise ValueError(f"agent {agent!r}: an action of {self._action_space} has shape "
                                 f"{self._action_space.shape}; got {actions[agent]!r} (one index into the flat "
                                 f"mask is an action of a Discrete space only)")
        live = list(self.agents)
        idle = frozenset(self._ended)  # black death: out of the episode before this step
        playing = [a for a in live if a not in idle]
        batched = np.stack([np.reshape(actions[a] if a in playing else self.core.idle_action(), -1)
                            for a in self.possible_agents])  # a Discrete action may come as () or (1,)
        result = self.core.step(batched[None])
        index = {a: self.possible_agents.index(a) for a in live}
        rewards = {a: float(result.reward[0, index[a]]) if a in playing else 0.0 for a in live}
        terminations = {a: bool(result.terminated[0, index[a]]) for a in playing}
        truncations = {a: bool(result.truncated[0, index[a]]) for a in playing}
        infos = {a: _agent_info(self.core, result.info, 0, index[a]) for a in live}
        if self.black_death:
            self._ended.update({a: (terminations[a], truncations[a]) for a in playing
                                if terminations[a] or truncations[a]})
            everyone_ended = len(self._ended) == len(live)
            terminations = {a: everyone_ended and self._ended[a][0] for a in live}
            truncations = {a: everyone_ended and self._ended[a][1] for a in live}
        self.agents = [a for a in live if not (terminations[a] or truncations[a])]
        if self.render_mode == "human":
            self.render()
        acting = [a for a in self.agents if a not in self._ended]
        return self._observations(live, acting, idle), rewards, terminations, truncations, infos

    def state(self) -> np.ndarray:
        """The global state: every agent's features (``obs["observation"]``) in agent order (:attr:`state_space`)."""
        if self.core.state is None:
            raise gym.error.ResetNeeded(f"env {self.core.name!r}: call reset() before state()")
        return self.core.features()[0].reshape(-1)

    def action_mask(self, agent: str) -> np.ndarray:
        self.core.require_action_kind(discrete=True)
        require_reset(self.core, "action_mask()")
        return self.core.action_mask()[0, self.possible_agents.index(agent)]

    def admissible_set(self, agent: str):
        """``agent``'s admissible set in the current state (continuous envs)."""
        self.core.require_action_kind(discrete=False)
        require_reset(self.core, "admissible_set()")
        return self.core.admissible_set()[0, self.possible_agents.index(agent)]

    def render(self):
        """Every agent's state as text (``render_mode="ansi"``, printed in ``"human"`` mode, after every reset and step
        too) or the entry as an image (``"rgb_array"``)."""
        return render(self.core, self.render_mode)

    def close(self):
        pass


class VectorView(gym.vector.VectorEnv):
    """A maskbench env as a natively batched ``gymnasium.vector.VectorEnv`` with next-step autoreset.

    With next-step autoreset (Gymnasium's default and what RLlib expects), the step after an
    episode ends resets that entry: it returns the first observation of the new episode, reward 0
    and no termination, and ignores the entry's action.

    Infos follow the vector convention (a dict of arrays with ``_key`` flags):
    ``invalid_actions`` (int), ``violated`` (object array: each entry's list of the names of the
    constraints its attempted action violated, ``[]`` where it was admissible), ``violated_flags``
    (``(num_envs, n_constraints)`` bool, column k for ``core.constraints[k]``: the same facts as
    arrays, what batched code should read), for Box envs ``violation_distance``, and the env's
    episode metrics.
    """

    metadata = {"render_modes": [], "autoreset_mode": gym.vector.AutoresetMode.NEXT_STEP}

    def __init__(self, core: EnvCore, spec_name: str | None = None):
        if core.n_agents != 1:
            raise ValueError("the vector view is single-agent: use make_multi_agent_vector for n_agents > 1")
        self.core = core
        self.num_envs = core.num_envs
        self.single_observation_space = core.observation_space
        self.single_action_space = core.action_space
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self.name = spec_name or type(core).__name__
        self._rngs: list[np.random.Generator] = []
        self._autoreset = np.zeros(self.num_envs, dtype=bool)
        self._all = np.ones(self.num_envs, dtype=bool)
        self._names = ViolatedNames([c.name for c in core.constraints])

    @property
    def acting(self) -> np.ndarray:
        """``(num_envs,)`` bool: the entries whose actions the next :meth:`step` executes (not those it resets)."""
        return ~self._autoreset

    def _observation(self) -> dict[str, np.ndarray]:
        return {key: value[:, 0] for key, value in self.core.observe(self.acting[:, None]).items()}

    def _vector_info(self, info: dict[str, np.ndarray]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in info.items():
            if key == "violated":
                out[VIOLATED_FLAGS] = value[:, 0]
                out[f"_{VIOLATED_FLAGS}"] = self._all
                value = self._names(value[:, 0])
            else:
                value = value[:, 0]
            out[key] = value
            out[f"_{key}"] = self._all
        return out

    def reset(self, *, seed: int | list[int | None] | None = None, options: dict[str, Any] | None = None):
        seed = _entry_seeds(seed, self.num_envs)
        reset_mask = np.ones(self.num_envs, dtype=bool)
        if options and "reset_mask" in options:
            reset_mask = check_reset_mask(options["reset_mask"], self.num_envs, self.name)
        if not self._rngs:
            self._rngs = [seeding.np_random(s)[0] for s in seed]
            reset_mask = np.ones(self.num_envs, dtype=bool)  # the core has no state yet
        else:
            for i, s in enumerate(seed):
                if s is not None and reset_mask[i]:  # as SyncVectorEnv: an entry not reset keeps its generator
                    self._rngs[i] = seeding.np_random(s)[0]
        env_ids = np.flatnonzero(reset_mask)
        self.core.reset(env_ids, [self._rngs[i] for i in env_ids])
        self._autoreset[env_ids] = False
        return self._observation(), self._vector_info(_reset_info(self.core))

    def step(self, actions):
        if not self._rngs:
            raise gym.error.ResetNeeded(f"Cannot call env.step() before calling env.reset() (env {self.name!r})")
        resetting = self._autoreset.copy()
        result = self.core.step(actions, active=None if not resetting.any() else ~resetting)
        reward = result.reward[:, 0].copy()
        terminated = result.terminated[:, 0].copy()
        truncated = result.truncated[:, 0].copy()
        info = result.info
        if resetting.any():
            env_ids = np.flatnonzero(resetting)
            self.core.reset(env_ids, [self._rngs[i] for i in env_ids])
            reward[env_ids] = 0.0
            terminated[env_ids] = False
            truncated[env_ids] = False
            fresh = _reset_info(self.core)
            for key in info:
                info[key][env_ids] = fresh[key][env_ids]
        self._autoreset = terminated | truncated
        return self._observation(), reward, terminated, truncated, self._vector_info(info)

    def action_masks(self) -> np.ndarray:
        """The current flat masks ``(num_envs, mask_size)`` as int8 (as in the observations)."""
        self.core.require_action_kind(discrete=True)
        require_reset(self.core, "action_masks()")
        return self.core.action_mask()[:, 0].astype(np.int8)

    def admissible_set(self):
        """The admissible sets of every entry (continuous envs), batched ``(num_envs,)``."""
        self.core.require_action_kind(discrete=False)
        require_reset(self.core, "admissible_set()")
        return self.core.admissible_set()[:, 0]


class MultiAgentVectorView:
    """``num_envs`` entries of a k-agent env stepped together, the batched form of the PettingZoo view.

    Observations are the core's own ``(num_envs, n_agents, ...)`` arrays; rewards, terminations and
    truncations are ``(num_envs, n_agents)``. An agent whose episode ended leaves it (as in the
    PettingZoo view): while the others play on, it is given :meth:`EnvCore.idle_action` whatever the
    caller sends, and its outputs are zeros/False. An entry whose agents have all left is reset on the
    next step (next-step autoreset, as in :class:`VectorView`: reward 0, the new episode's first
    observation, the caller's actions ignored; an env whose agents all end together so never needs an
    idle action). ``acted`` (``(num_envs, n_agents)`` bool, after each step) says which agents took
    part in it: the entries to count in statistics; ``acting`` says which will take part in the next
    step. Seeding is :class:`VectorView`'s (entry i seeded ``seed + i``).
    """

    metadata = {"render_modes": [], "autoreset_mode": gym.vector.AutoresetMode.NEXT_STEP}

    def __init__(self, core: EnvCore, spec_name: str | None = None):
        self.core = core
        self.num_envs, self.n_agents = core.num_envs, core.n_agents
        self.agent_ids = list(core.agent_ids)
        self.single_observation_space = core.observation_space
        self.single_action_space = core.action_space
        self.name = spec_name or type(core).__name__
        self._rngs: list[np.random.Generator] = []
        self._idle = None
        self.live = np.zeros((self.num_envs, self.n_agents), dtype=bool)
        self.acted = np.zeros((self.num_envs, self.n_agents), dtype=bool)
        self._autoreset = np.zeros(self.num_envs, dtype=bool)

    def reset(self, *, seed: int | list[int | None] | None = None, options: dict[str, Any] | None = None):
        """Reset every entry; returns ``(observations, info)`` with ``(num_envs, n_agents, ...)`` arrays."""
        seed = _entry_seeds(seed, self.num_envs)
        if not self._rngs:
            self._rngs = [seeding.np_random(s)[0] for s in seed]
        else:
            self._rngs = [seeding.np_random(s)[0] if s is not None else rng for s, rng in zip(seed, self._rngs)]
        self.core.reset(np.arange(self.num_envs), self._rngs)
        self.live[:] = True
        self.acted[:] = False
        self._autoreset[:] = False
        return self.core.observe(self.acting), _reset_info(self.core)

    @property
    def acting(self) -> np.ndarray:
        """``(num_envs, n_agents)`` bool: the agents whose actions the next :meth:`step` executes."""
        return self.live & ~self._autoreset[:, None]

    def step(self, actions):
        """``actions``: ``(num_envs, n_agents, ...)``; returns Gymnasium's five values, batched per agent."""
        if not self._rngs:
            raise gym.error.ResetNeeded(f"Cannot call env.step() before calling env.reset() (env {self.name!r})")
        actions = self.core.as_batched_actions(actions)
        resetting = self._autoreset.copy()
        self.acted = self.acting
        left = ~self.live & ~resetting[:, None]  # agents out of an episode the others still play
        if left.any():
            if self._idle is None:
                self._idle = self.core.as_batched_actions(
                    np.broadcast_to(self.core.idle_action(), (self.num_envs, self.n_agents, *np.shape(
                        self.core.idle_action()))))
            actions = np.where(left[..., None], self._idle, actions)
        result = self.core.step(actions, active=None if not resetting.any() else ~resetting)
        done = (result.terminated | result.truncated) & self.acted
        terminated, truncated = result.terminated & self.acted, result.truncated & self.acted
        reward = np.where(self.acted, result.reward, 0.0)
        info = result.info
        if resetting.any():
            env_ids = np.flatnonzero(resetting)
            self.core.reset(env_ids, [self._rngs[i] for i in env_ids])
            fresh = _reset_info(self.core)
            for key in info:
                info[key][env_ids] = fresh[key][env_ids]
            self.live[env_ids] = True
        self.live &= ~done
        self._autoreset = ~self.live.any(axis=1)
        return self.core.observe(self.acting), reward, terminated, truncated, info

    def close(self) -> None:
        pass
