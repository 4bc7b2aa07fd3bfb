"""The batched env core: dynamics, reward and mask written once, over a leading batch axis.

An env is one subclass of :class:`EnvCore`. Its state is a struct of numpy arrays shaped
``(batch, agents, ...)`` (or ``(batch, ...)`` for what agents share), and every method works on
the whole batch at once. The four views in :mod:`envs.views` are thin: the Gymnasium env is batch
1 with one agent, the PettingZoo env batch 1 with its agents, the vector env batch N with one
agent and the multi-agent vector env batch N with all its agents. There is no second copy of the
dynamics and no per-env Python loop in the hot path.

:meth:`EnvCore.step` is the one place where the masking contract is enforced for every env:
actions are checked against the mask (or admissible set), inadmissible ones are counted, named by
the constraint predicates, raised in strict mode, and otherwise replaced by the env's documented
fallback (itself checked: in the action space and admissible) before the env's own
:meth:`EnvCore.transition` runs. The shapes, dtypes and values of the hooks' outputs are checked once
per class, on a probe batch, when the env is registered (:mod:`envs.contract`).
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
from gymnasium import spaces
from gymnasium.error import ResetNeeded

from . import masking
from .masking import Constraint, InadmissibleActionError, nearest_admitted

__all__ = ["EnvCore", "StepResult", "EnvFailure", "OPTIONAL_HOOKS", "INVALID_ACTION_SETTINGS"]

#: What an env may offer beyond the abstract methods (see "optional hooks" in :class:`EnvCore`).
OPTIONAL_HOOKS = ("metrics", "idle_action", "sample_states", "oracle_actions", "check_oracle_config",
                  "render_text", "render_rgb", "reallocation_to", "target_return", "return_bound", "state_bytes",
                  "noop", "repair", "entry_features")

#: How an inadmissible action can be executed: the values of the common config key ``invalid_action``
#: (:attr:`EnvCore.invalid_action`). ``noop``: the attempted action is not executed (Huang & Ontañón's setting;
#: each env's :meth:`EnvCore.noop` says what that means for it); ``repair``: the nearest admissible action is
#: executed in its place (:meth:`EnvCore.repair`).
INVALID_ACTION_SETTINGS = ("noop", "repair")


class EnvFailure(RuntimeError):
    """An env's own code failed (an exception in its dynamics, reset or observation), it left an agent
    that must act with nothing admissible, or its fallback returned an action outside the action space or
    still inadmissible. The message is one line naming the env, where it failed and the state it was in
    (or what the fallback returned); the original exception is chained."""


@dataclass
class StepResult:
    """What one batched transition returns.

    Attributes:
        reward: ``(batch, agents)`` float64.
        terminated: ``(batch, agents)`` bool: the episode ended by the env's own rules.
        truncated: ``(batch, agents)`` bool: the episode was cut short (time limit).
        info: name -> ``(batch, agents)`` array. :meth:`EnvCore.step` adds ``invalid_actions``
            (int), ``violated`` (``(batch, agents, n_constraints)`` bool: the constraints the
            attempted action violated, before the fallback) and, for Box actions,
            ``violation_distance`` (float: the attempted action's Euclidean distance to the
            admissible set, 0 where it was admissible).
    """

    reward: np.ndarray
    terminated: np.ndarray
    truncated: np.ndarray
    info: dict[str, np.ndarray] = field(default_factory=dict)


class EnvCore(ABC):
    """Base class of every maskbench env: one batched implementation behind four views.

    Subclasses set the class attributes, build ``action_space`` and ``feature_space`` (per agent)
    in ``__init__`` and implement the abstract methods. Discrete envs implement
    :meth:`action_mask`; continuous envs implement :meth:`admissible_set`.

    Everything else an env *may* offer is declared below under "optional hooks", each with who
    calls it; :meth:`provides` says whether a core class implements one. A hook left alone keeps
    the base class's behaviour (most raise ``NotImplementedError``, which callers treat as "not
    offered").

    Class attributes:
        Config: the frozen config dataclass (see :mod:`envs.config`). A field ``n_agents`` is
            understood by the base class when present (1 otherwise).
        agent_prefix: agents are named ``f"{agent_prefix}_{i}"`` in the PettingZoo view.
        version: bumped whenever dynamics, reward or mask change results.
        episode_metrics: info keys whose value at the end of an episode is a result in its own
            right (e.g. ``"portfolio_value"`` in dollars); runners record them per episode.
        invalid_action_default: the env's default ``invalid_action`` setting (``"noop"`` or
            ``"repair"``; see :attr:`invalid_action`), what its docstring calls its fallback.
    """

    Config: ClassVar[type]
    agent_prefix: ClassVar[str] = "agent"
    version: ClassVar[int] = 0
    episode_metrics: ClassVar[tuple[str, ...]] = ()
    invalid_action_default: ClassVar[str] = "repair"

    action_space: spaces.Space
    feature_space: spaces.Box

    def __init__(self, config: Any, num_envs: int = 1, strict: bool = False):
        """``strict``: raise :class:`InadmissibleActionError` instead of executing the fallback."""
        if num_envs < 1:
            raise ValueError(f"num_envs must be a positive integer, got {num_envs}")
        self.config = config
        #: The registry name (``envs.make_core`` sets it), for messages.
        self.name = type(self).__name__
        self.num_envs = int(num_envs)
        self.n_agents = int(getattr(config, "n_agents", 1))
        self.strict = bool(strict)
        self._invalid_action = type(self).invalid_action_default
        self.state: Any = None
        #: Seconds spent enforcing the constraints so far: masks, admissibility checks, and the
        #: projections of the suite's training envs (they add theirs). Training reports its share.
        self.enforcement_seconds = 0.0

    # ---------------------------------------------------------------- to implement per env

    @property
    @abstractmethod
    def constraints(self) -> Sequence[Constraint]:
        """The env's named constraints, written independently of :meth:`action_mask`."""

    @abstractmethod
    def reset_envs(self, env_ids: np.ndarray, rngs: Sequence[np.random.Generator]) -> None:
        """Start a new episode in the batch entries ``env_ids``, drawing randomness from ``rngs``.

        ``rngs[j]`` is the generator of entry ``env_ids[j]``; an entry's randomness comes from its
        own generator only, so batch entry i seeded s behaves exactly as a single env seeded s.
        Creates ``self.state`` on the first call.
        """

    @abstractmethod
    def features(self) -> np.ndarray:
        """``obs["observation"]`` for every entry and agent: ``(batch, agents, *feature_shape)`` float32."""

    def action_mask(self) -> np.ndarray:
        """Flat mask ``(batch, agents, mask_size)`` int8, 1 = admissible (discrete envs)."""
        self.require_action_kind(discrete=True)
        raise NotImplementedError(f"{type(self).__name__} has a discrete action space but no action_mask()")

    def admissible_set(self) -> masking.AdmissibleSet:
        """The admissible set of every entry and agent, batched ``(batch, agents)`` (continuous envs)."""
        self.require_action_kind(discrete=False)
        raise NotImplementedError(f"{type(self).__name__} has a continuous action space but no admissible_set()")

    @abstractmethod
    def transition(self, actions: np.ndarray) -> StepResult:
        """Advance every entry by one step with admissible ``actions``; return rewards and ends."""

    # ---------------------------------------------------------------- inadmissible actions

    @property
    def invalid_action(self) -> str:
        """How an inadmissible action is executed: ``"noop"`` (:meth:`noop`) or ``"repair"`` (:meth:`repair`).

        The common config key ``invalid_action`` (``envs.make(name, invalid_action="noop")``; ``envs.make_core``
        sets it), part of the env's identity: it is recorded in a run's ``config.json`` and names its variant
        folder and its task in reports when it is not the env's default (:attr:`invalid_action_default`).
        Either way the attempt is counted in ``info["invalid_actions"]`` and named in ``info["violated"]``.
        """
        return self._invalid_action

    @invalid_action.setter
    def invalid_action(self, value: str) -> None:
        offered = type(self).invalid_action_settings()
        if value not in offered:
            raise ValueError(f"env {self.name!r}: invalid_action must be one of {', '.join(offered)}; got {value!r}")
        self._invalid_action = value

    @classmethod
    def invalid_action_settings(cls) -> tuple[str, ...]:
        """The ``invalid_action`` settings this class offers: ``repair`` always (the base class's nearest
        admissible action, or the env's own :meth:`repair`), ``noop`` where it implements :meth:`noop`. A class
        that overrides :meth:`fallback` itself executes that whatever the setting, so it offers one, its
        :attr:`invalid_action_default` (what its docstring should say its fallback is)."""
        owner = next(klass for klass in cls.__mro__ if "fallback" in vars(klass))
        if owner is not EnvCore:
            return (cls.invalid_action_default,)
        return tuple(setting for setting in INVALID_ACTION_SETTINGS if setting == "repair" or cls.provides("noop"))

    def fallback(self, actions: np.ndarray, inadmissible: np.ndarray) -> np.ndarray:
        """The actions executed in place of inadmissible ones: :meth:`noop`'s or :meth:`repair`'s, as
        :attr:`invalid_action` says. ``inadmissible`` has the shape returned by :meth:`inadmissible`; the
        result is checked (in the action space, admissible where it replaced one) by :meth:`step`.

        An env may override this instead of implementing :meth:`noop` (a user's env written before the
        setting); it then offers one setting only (:meth:`invalid_action_settings`).
        """
        if self._invalid_action == "noop":
            return self.noop(actions, inadmissible)
        return self.repair(actions, inadmissible)

    def noop(self, actions: np.ndarray, inadmissible: np.ndarray) -> np.ndarray:
        """``invalid_action="noop"``: ``actions`` with the inadmissible (sub-)actions *not executed*: replaced by
        what the env does when its agent does nothing (hold an asset, move no resource), which must not
        depend on the attempted action. Each env says in its docstring what that is and, where doing nothing
        is not itself always admissible or does not exist, which admissible action stands for it. An env
        without it offers ``repair`` only."""
        raise NotImplementedError(f"{type(self).__name__} has no noop fallback; its invalid_action is 'repair'")

    def repair(self, actions: np.ndarray, inadmissible: np.ndarray) -> np.ndarray:
        """``invalid_action="repair"``: ``actions`` with the inadmissible (sub-)actions replaced by the nearest
        admissible ones (:meth:`nearest_admissible`). An env may override it with a nearer notion of its own."""
        nearest = self.nearest_admissible(actions)
        if self.discrete:
            return np.where(inadmissible, nearest, actions)
        flags = inadmissible[..., 0].reshape(*inadmissible.shape[:2], *([1] * (actions.ndim - 2)))
        return np.where(flags, nearest, actions)

    def nearest_admissible(self, actions: np.ndarray) -> np.ndarray:
        """The admissible action nearest each of ``actions`` (batched, as :meth:`as_batched_actions` returns
        them), whether or not it is admissible already (then it is itself).

        Discrete: per sub-action, the admissible value nearest in index (the lower one on a tie), so a
        sub-action whose admissible values form one interval is moved to the interval's end on its side; a
        sub-action whose mask block is empty is left as it is. Box: the admissible set's Euclidean projection.
        """
        if not self.discrete:
            return np.asarray(self.admissible_set().project(actions), dtype=np.float64)
        mask = self.action_mask().astype(bool)
        nvec = self.nvec
        if np.all(nvec == nvec[0]):
            blocks = [(slice(None), mask.reshape(*mask.shape[:2], len(nvec), int(nvec[0])))]
        else:
            offsets = np.concatenate([[0], np.cumsum(nvec)[:-1]])
            blocks = [(slice(sub, sub + 1), mask[..., offset:offset + n][..., None, :])
                      for sub, (offset, n) in enumerate(zip(offsets, nvec))]
        nearest = actions.copy()
        for subs, block in blocks:
            nearest[..., subs] = nearest_admitted(block, actions[..., subs])
        return nearest

    # ---------------------------------------------------------------- optional hooks

    def metrics(self) -> dict[str, np.ndarray]:
        """Current values of :attr:`episode_metrics`, each ``(batch, agents)``.

        Called by the views after every reset and step (they are part of the info), so the runners
        (training statistics, ``suite.run``'s evaluation) can record their end-of-episode values.
        """
        return {}

    def idle_action(self) -> np.ndarray:
        """The action of an agent that has left the episode while others play on (never counted as
        inadmissible). Called by the PettingZoo and multi-agent vector views; an env whose agents all
        end together never needs one."""
        raise NotImplementedError(f"{type(self).__name__} ends all agents together and has no idle action")

    def sample_states(self, rng: np.random.Generator, num_states: int) -> Any:
        """Arbitrary (not only reachable) states for checkers, batch ``num_states``.

        Called by ``suite.check``: it sets the returned object (of the same kind as ``self.state``)
        on a core built with ``num_envs=num_states`` and compares mask and predicates there. Without
        it the checker audits rollout states only.
        """
        raise NotImplementedError

    def oracle_actions(self) -> np.ndarray:
        """The env's upper reference action for every entry and agent in its current state:
        ``(batch, agents, n_sub)`` for discrete actions, ``(batch, agents, *shape)`` for Box.

        Called by the ``oracle`` algorithm (``suite.run --algo oracle``, users' envs), which ``suite.report``
        counts as a non-clairvoyant heuristic, a candidate for the score's 100; its docstring should say whether
        it is an exact optimum and what it knows. The built-in envs' hooks run under names that say what they
        are (``baselines.references``: ``relaxed_heuristic``, ``clairvoyant_dp``, ``clairvoyant_demand``).
        """
        raise NotImplementedError(f"{type(self).__name__} has no oracle")

    @classmethod
    def check_oracle_config(cls, config: Any) -> None:
        """Raise ``ConfigError`` (one line) when :meth:`oracle_actions` is not what it claims under
        ``config`` (e.g. not exact). Called by the ``oracle`` algorithm before it plays."""

    def reallocation_to(self, targets: np.ndarray) -> np.ndarray:
        """Allocation envs: the action that moves every entry and agent to ``targets / sum(targets)``.

        ``targets`` is ``(batch, agents, *shape)``. Called by ``normalize_ppo`` (the agent outputs
        target weights, the env side rescales them); envs without it cannot run that method.
        """
        raise NotImplementedError(f"{type(self).__name__} does not reallocate weights")

    def entry_features(self) -> np.ndarray:
        """Envs whose action entries are exchangeable (allocation targets; a ``Discrete(n)`` action's ``n``
        choices, e.g. job_shop's jobs): ``(n_entries, k)`` indices into an agent's feature vector, row ``i`` the
        ``k`` features that describe action entry ``i``.

        Called by the torch backend's ``network=per_entry`` (one small network shared by every entry, as
        Jiang et al. 2017's EIIE), which needs to know which features belong to which entry; envs without it
        run the default ``mlp`` only.
        """
        raise NotImplementedError(f"{type(self).__name__} does not describe its action entries")

    @classmethod
    def target_return(cls, config: Any) -> float | None:
        """A return with a meaning of its own under ``config`` (portfolio: the post's $3,000), or None.

        Called by ``suite.report`` (env steps and seconds to this return) and ``suite.race`` (time
        to target). Without one the report uses the return at score 80.
        """
        return None

    def render_text(self, entry: int) -> str:
        """Batch entry ``entry``'s current state as text, every agent of it (``render_mode="ansi"``).

        Called by the Gymnasium and PettingZoo views' ``render()``. The base class prints each agent's
        features; an env should say what a person needs to see (holdings and prices, the road, ...).
        """
        features = self.features()[entry]
        return "\n".join(f"agent {i}: " + np.array2string(row, precision=3, max_line_width=120)
                         for i, row in enumerate(features.reshape(len(features), -1)))

    def render_rgb(self, entry: int) -> np.ndarray:
        """Batch entry ``entry``'s current state as an image ``(height, width, 3)`` uint8
        (``render_mode="rgb_array"``), for envs where a picture helps (the road). Called by the views'
        ``render()``; envs without one do not list ``"rgb_array"`` in their render modes."""
        raise NotImplementedError(f"{type(self).__name__} has no picture; render_mode='ansi' prints it")

    @classmethod
    def state_bytes(cls, config: Any, num_envs: int) -> int:
        """An estimate of the memory a core of ``num_envs`` entries holds under ``config``, in bytes.

        Called by ``envs.make_core`` before building the core, so a size that cannot fit (a huge road,
        millions of entries) is refused up front with the estimate. 0: no estimate (never refused).
        """
        return 0

    @classmethod
    def return_bound(cls, config: Any) -> tuple[float, str] | None:
        """A proven upper bound on the mean return of any policy under ``config``, and what it is (one
        phrase), or None. Called by ``suite.report`` where no clairvoyant reference was run: scores are
        also given as a share of the bound, never with the bound as their 100."""
        return None

    @classmethod
    def provides(cls, hook: str) -> bool:
        """Whether this core class implements the optional hook ``hook`` (overrides the base's)."""
        if hook not in OPTIONAL_HOOKS:
            raise ValueError(f"{hook!r} is not an optional hook of EnvCore; hooks: {', '.join(OPTIONAL_HOOKS)}")
        owner = next(klass for klass in cls.__mro__ if hook in vars(klass))
        return owner is not EnvCore and vars(owner)[hook] is not None  # a subclass may opt out with None

    # ---------------------------------------------------------------- provided

    @property
    def discrete(self) -> bool:
        return masking.is_discrete(self.action_space)

    def require_action_kind(self, *, discrete: bool) -> None:
        """``NotImplementedError`` saying what the env offers instead when a caller asks a Box env for its action mask
        (``discrete=True``) or a discrete env for its admissible set (``discrete=False``)."""
        if discrete and not self.discrete:
            raise NotImplementedError(f"env {self.name!r} has a continuous action space ({self.action_space}): no "
                                      "action mask; its admissible set is admissible_set() (contains, project, "
                                      "sample)")
        if not discrete and self.discrete:
            raise NotImplementedError(f"env {self.name!r} has a discrete action space ({self.action_space}): no "
                                      "admissible set; its admissible actions are the action mask, action_mask()")

    @property
    def nvec(self) -> np.ndarray:
        """Values per sub-action (read-only; computed once per action space, the step path reads it often)."""
        cached = self.__dict__.get("_nvec")
        if cached is None or cached[0] is not self.action_space:
            nvec = np.array(masking.action_nvec(self.action_space))
            nvec.flags.writeable = False
            cached = self._nvec = (self.action_space, nvec)
        return cached[1]

    @property
    def observation_space(self) -> spaces.Dict:
        """Per-agent observation space: the Dict of the masking convention."""
        return masking.masked_observation_space(self.feature_space, self.action_space)

    @property
    def agent_ids(self) -> list[str]:
        return [f"{self.agent_prefix}_{i}" for i in range(self.n_agents)]

    def reset(self, env_ids: np.ndarray, rngs: Sequence[np.random.Generator]) -> None:
        """:meth:`reset_envs`, with a failure of the env's code reported as an :class:`EnvFailure`."""
        try:
            self.reset_envs(env_ids, rngs)
        except Exception as error:
            raise self._failure("reset", error) from error

    def observe(self, acting: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """The batched observation dict: arrays shaped ``(batch, agents, ...)``.

        ``acting`` (``(batch, agents)`` bool, default: nobody): the agents that must act next. A mask that
        leaves one of them nothing admissible in some sub-action is the env breaking the masking contract
        and raises :class:`EnvFailure`; an agent whose episode is over (a full knapsack, a finished game)
        may have an empty mask.
        """
        try:
            obs = {masking.OBSERVATION_KEY: self.features()}
            if self.discrete:
                started = time.perf_counter()
                obs[masking.MASK_KEY] = self.action_mask()
                self.enforcement_seconds += time.perf_counter() - started
        except Exception as error:
            raise self._failure("its observation", error) from error
        if acting is not None and self.discrete:
            empty = masking.empty_blocks(obs[masking.MASK_KEY], self.nvec).any(axis=-1) & acting
            if empty.any():
                env_id, agent = (int(i) for i in np.argwhere(empty)[0])
                raise EnvFailure(f"env {self.name!r} left agent {self.agent_ids[agent]} of entry {env_id} nothing "
                                 "admissible in some sub-action where it must act (every env must keep an action "
                                 f"admissible wherever an agent acts); {self._describe_state(env_id, agent)}")
        return obs

    def _describe_state(self, env_id: int = 0, agent: int = 0) -> str:
        try:
            features = np.array2string(self.features()[env_id, agent], precision=4, separator=", ", threshold=40,
                                       max_line_width=10_000)
        except Exception:  # the state may be what is broken
            return "its state could not be observed"
        where = f"entry {env_id}, agent {self.agent_ids[agent]}" if self.num_envs > 1 or self.n_agents > 1 else ""
        return f"observation{' of ' + where if where else ''}: {features}"

    def _failure(self, where: str, error: Exception) -> Exception:
        """``error`` from the env's own code in ``where``, as an :class:`EnvFailure` naming the env and its state
        (errors the contract defines, inadmissible actions in strict mode and failures already described,
        pass through)."""
        if isinstance(error, (EnvFailure, InadmissibleActionError)):
            return error
        message = f"{type(error).__name__}: {error}".splitlines()[0]
        return EnvFailure(f"env {self.name!r} failed in {where} ({message}); {self._describe_state()}")

    def as_batched_actions(self, actions: Any) -> np.ndarray:
        """Validate and reshape actions to ``(batch, agents, n_sub)`` (discrete) or ``(batch, agents, *shape)``.

        Raises ``ValueError`` for actions outside the action space (wrong shape, out of range):
        that is a caller bug, not an inadmissible action.
        """
        batch = (self.num_envs, self.n_agents)
        if self.discrete:
            nvec = self.nvec
            arr = np.asarray(actions)
            if not np.issubdtype(arr.dtype, np.integer):
                if not np.issubdtype(arr.dtype, np.floating) or not np.all(np.isfinite(arr)) \
                        or not np.all(arr == np.round(arr)):
                    raise ValueError(f"actions must be finite integers for {self.action_space}, got "
                                     f"{' '.join(np.array2string(arr, threshold=20).split())}")
            try:
                arr = arr.astype(np.int64).reshape(*batch, len(nvec))
            except ValueError:
                raise ValueError(f"expected actions of {batch[0]} env(s) x {batch[1]} agent(s) in "
                                 f"{self.action_space}, got shape {np.shape(actions)}") from None
            outside = np.any((arr < 0) | (arr >= nvec), axis=-1)
            if outside.any():
                raise ValueError(f"action {arr[outside][0].tolist()} is out of the action space {self.action_space}")
            return arr
        shape = self.action_space.shape
        arr = np.asarray(actions, dtype=np.float64)
        try:
            return arr.reshape(*batch, *shape)
        except ValueError:
            raise ValueError(f"expected actions of {batch[0]} env(s) x {batch[1]} agent(s) in "
                             f"{self.action_space}, got shape {arr.shape}") from None

    def inadmissible(self, actions: np.ndarray) -> np.ndarray:
        """Which (sub-)actions are inadmissible: ``(batch, agents, n_sub)`` bool (``n_sub = 1`` for Box)."""
        return self._inadmissible_under(self._admissible(), actions)

    def _admissible(self) -> np.ndarray | masking.AdmissibleSet:
        """The current mask (discrete) or admissible set (continuous)."""
        return self.action_mask() if self.discrete else self.admissible_set()

    def _inadmissible_under(self, admissible: np.ndarray | masking.AdmissibleSet, actions: np.ndarray) -> np.ndarray:
        if self.discrete:
            return ~masking.mask_admits(admissible, actions, self.nvec)
        return ~np.asarray(admissible.contains(actions), dtype=bool)[..., None]

    def _check_fallback(self, attempted: np.ndarray, replaced: Any, inadmissible: np.ndarray,
                        admissible: np.ndarray | masking.AdmissibleSet) -> np.ndarray:
        """``replaced`` (what :meth:`fallback` returned for ``attempted``) if it is of the action space and
        admissible wherever the fallback had to act; an :class:`EnvFailure` naming the fallback otherwise (a
        sub-action whose mask block admits nothing is the mask's fault, not the fallback's: ``observe`` and
        ``suite.check`` report it)."""
        if not isinstance(replaced, np.ndarray) or replaced.shape != attempted.shape \
                or replaced.dtype.kind not in "iuf":
            what = f"a {replaced.dtype} array of shape {replaced.shape}" if isinstance(replaced, np.ndarray) else \
                f"{type(replaced).__name__} {str(replaced)[:60]}"
            raise EnvFailure(f"env {self.name!r}: fallback() returned {what}; expected the actions it was given "
                             f"(numbers, shape {attempted.shape}) with the inadmissible ones replaced")
        discrete = self.discrete
        if discrete:
            nvec = self.nvec
            outside = (replaced < 0) | (replaced >= nvec)
            if replaced.dtype.kind == "f":
                outside |= ~(np.isfinite(replaced) & (replaced == np.round(replaced)))
        else:
            outside = ~np.isfinite(replaced).reshape(*replaced.shape[:2], -1).all(axis=-1, keepdims=True)
        if outside.any():
            problem = f"outside the action space {self.action_space}"
        else:
            touched = inadmissible.any(axis=-1, keepdims=True)  # the agents the fallback was asked to act for
            outside = self._inadmissible_under(admissible, replaced) & touched
            if discrete and outside.any():
                outside &= ~masking.empty_blocks(admissible, nvec)
            problem = f"still inadmissible under {'the action mask' if discrete else 'the admissible set'}"
        if not outside.any():
            return replaced
        env_id, agent = (int(i) for i in np.argwhere(outside.any(axis=-1))[0])

        def show(actions: np.ndarray) -> str:
            return np.array2string(np.asarray(actions[env_id, agent]), precision=4, separator=", ",
                                   threshold=20, max_line_width=10_000)

        where = f"agent {self.agent_ids[agent]} of entry {env_id}" if self.num_envs > 1 or self.n_agents > 1 else \
            f"agent {self.agent_ids[agent]}"
        raise EnvFailure(f"env {self.name!r}: fallback() returned {show(replaced)} for {where} in place of the "
                         f"inadmissible {show(attempted)}: {problem} (a fallback must return admissible actions)")

    def step(self, actions: Any, active: np.ndarray | None = None) -> StepResult:
        """Check actions against the mask, apply the fallback (or raise), and transition.

        Raises ``gymnasium.error.ResetNeeded`` before the first :meth:`reset`, ``ValueError`` for actions outside
        the action space, :class:`InadmissibleActionError` in strict mode and :class:`EnvFailure` when the env's
        own code fails (its fallback returning an action outside the space or still inadmissible included).

        Args:
            actions: anything :meth:`as_batched_actions` accepts.
            active: optional ``(batch,)`` bool; entries that are False are about to be reset by
                the caller, so their actions are neither counted nor raised on (their results are
                discarded).
        """
        if self.state is None:
            raise ResetNeeded(f"Cannot call step() before reset() on env {self.name!r}: it has no state yet")
        actions = self.as_batched_actions(actions)
        started = time.perf_counter()
        admissible = self._admissible()
        inadmissible = self._inadmissible_under(admissible, actions)
        if active is not None:
            inadmissible &= np.asarray(active, dtype=bool)[:, None, None]
        violated = np.zeros((self.num_envs, self.n_agents, len(self.constraints)), dtype=bool)
        distance = None if self.discrete else np.zeros((self.num_envs, self.n_agents))
        if inadmissible.any():
            violated = masking.violated_constraints(self.constraints, self.state, actions)
            if distance is not None:
                distance = np.where(inadmissible[..., 0], admissible.distance(actions), 0.0)
        self.enforcement_seconds += time.perf_counter() - started
        if inadmissible.any():
            if self.strict:
                raise InadmissibleActionError(self._describe_violation(actions, inadmissible, violated))
            try:
                replaced = self.fallback(actions, inadmissible)
            except Exception as error:
                raise self._failure("its fallback", error) from error
            started = time.perf_counter()
            actions = self._check_fallback(actions, replaced, inadmissible, admissible)
            self.enforcement_seconds += time.perf_counter() - started
        try:
            result = self.transition(actions)
        except Exception as error:
            raise self._failure("step", error) from error
        if not isinstance(result, StepResult):
            raise EnvFailure(f"env {self.name!r}: transition() returned {type(result).__name__}; expected an "
                             "envs.StepResult")
        result.info["invalid_actions"] = inadmissible.sum(axis=-1)
        result.info["violated"] = violated & inadmissible.any(axis=-1, keepdims=True)
        if distance is not None:
            result.info["violation_distance"] = distance
        return result

    def violated_names(self, violated_row: np.ndarray) -> list[str]:
        """Names of the constraints flagged in one ``(n_constraints,)`` bool row."""
        return [c.name for c, hit in zip(self.constraints, violated_row) if hit]

    def _describe_violation(self, actions: np.ndarray, inadmissible: np.ndarray, violated: np.ndarray) -> str:
        env_id, agent = (int(i) for i in np.argwhere(inadmissible.any(axis=-1))[0])
        names = [f"{c.name} ({c.description})" for c, hit in zip(self.constraints, violated[env_id, agent]) if hit]
        subs = np.flatnonzero(inadmissible[env_id, agent]).tolist()
        where = f"env {env_id}, " if self.num_envs > 1 else ""
        what = "; ".join(names) if names else "the action mask (no named constraint: mask and predicates disagree)"
        action = actions[env_id, agent].tolist() if self.discrete else \
            np.array2string(actions[env_id, agent], precision=4, separator=", ", max_line_width=10_000)
        return (f"inadmissible action {action} ({where}agent {self.agent_ids[agent]}, "
                f"sub-action(s) {subs}) violates {what}")
