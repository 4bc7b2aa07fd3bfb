"""The PPO settings every learning method shares, and every per-env default: one place to read them.

:class:`PPOSettings` is the typed training config (CleanRL style: every field documented); each
method's config (:mod:`baselines.methods`) extends it with the method's own fields and the
backend. ``--algo-config KEY=VALUE`` sets any field.

:data:`ENV_DEFAULTS` holds what is tuned per env, for every method at once: a method's config takes
the entries of its env that name one of its fields (``penalty`` only reaches penalty PPO), over the
dataclass defaults and under the user's overrides. A level of an env (``portfolio-l``) takes its
family's entries, then its own (:func:`env_defaults`). The measurements behind each choice are noted
beside it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

import envs
from baselines.training_env import OBS_TRANSFORMS
from baselines.tuned_settings import NAME_PATTERN
from envs.config import ConfigError, check_fits, setting

__all__ = ["PPOSettings", "RLlibSettings", "ENV_DEFAULTS", "env_defaults", "backend_setting", "check_settings",
           "check_network_fits", "learning_rate"]

ACTIVATIONS = ("tanh", "relu", "silu")

def backend_setting(*choices: str):
    """The ``backend`` field of a method's config: the first of ``choices`` (backends of
    :mod:`baselines.registry`) is the default."""
    from baselines.registry import backend_summary

    return setting(choices[0], "where PPO trains: " + "; ".join(f"{name} ({backend_summary(name)})"
                                                                for name in choices), choices=choices)


def _positive(value) -> bool:
    return value > 0


def _unit(value) -> bool:
    return 0 <= value <= 1


def _positive_ints(values) -> bool:
    return len(values) > 0 and all(v > 0 for v in values)


@dataclass(frozen=True)
class PPOSettings:
    """PPO hyperparameters and how sampling is laid out; ``--algo-config KEY=VALUE`` sets any field."""

    # --- optimisation
    lr: float = setting(3e-4, "Adam learning rate", check=_positive, accepts="a positive number")
    lr_schedule: str = setting("constant", "learning rate over the run: constant, or linear from lr down to 0 "
                               "at the run's budget (CleanRL's anneal_lr)", choices=("constant", "linear"))
    gamma: float = setting(0.99, "discount factor", check=_unit, accepts="a number in [0, 1]")
    gae_lambda: float = setting(0.95, "GAE lambda", check=_unit, accepts="a number in [0, 1]")
    clip_param: float = setting(0.2, "PPO ratio clip", check=_positive, accepts="a positive number")
    vf_clip_param: float = setting(float("inf"), "clip of the value loss (inf: none)", check=_positive,
                                   accepts="a positive number or inf", finite=False)
    entropy_coeff: float = setting(0.01, "entropy bonus coefficient", check=lambda v: v >= 0,
                                   accepts="a non-negative number")
    vf_loss_coeff: float = setting(0.5, "value loss coefficient", check=lambda v: v >= 0,
                                   accepts="a non-negative number")
    grad_clip: float = setting(0.5, "global gradient-norm clip", check=_positive, accepts="a positive number")
    train_batch_size: int = setting(8192, "env steps per training iteration", check=_positive,
                                    accepts="a positive integer")
    minibatch_size: int = setting(1024, "SGD minibatch size", check=_positive, accepts="a positive integer")
    num_epochs: int = setting(10, "SGD passes over each training batch", check=_positive,
                              accepts="a positive integer")
    # --- network
    hidden: tuple[int, ...] = setting((256, 256), "hidden layer sizes of the policy and value networks",
                                      check=_positive_ints, accepts="positive integers")
    activation: str = setting("tanh", "hidden layer activation", choices=ACTIVATIONS)
    network: str = setting("mlp", "policy and value networks: mlp (over all features), or per_entry (one network "
                           "shared by the action's entries, for envs whose entries are exchangeable: sum_to_zero's "
                           "targets, job_shop's jobs; torch backend)", choices=("mlp", "per_entry"))
    log_std_init: float = setting(0.0, "continuous actions: initial log standard deviation of the Gaussian policy",
                                  check=lambda v: abs(v) <= 20, accepts="a number in [-20, 20]")
    obs_transform: str = setting("symlog", "elementwise transform of the observation features "
                                 "(symlog: sign(x) log(1 + |x|))", choices=OBS_TRANSFORMS)
    reward_scale: float = setting(1.0, "factor on the reward the agent learns from", check=_positive,
                                  accepts="a positive number")
    train_env_config: tuple[str, ...] = setting(
        (), "env config overrides for the training env only, KEY=VALUE,... (e.g. a denser reward); "
        "evaluation always uses the run's env config", check=lambda items: all("=" in i for i in items),
        accepts="comma-separated KEY=VALUE pairs")
    # --- which tuned settings (baselines.tuned_settings)
    settings: str = setting("", "a tuned settings file's name (baselines/tuned/NAME.toml): its entry for this method "
                            "and env goes over the per-env defaults, under the other --algo-config keys; empty: the "
                            "defaults", check=lambda v: v == "" or bool(NAME_PATTERN.fullmatch(v)),
                            accepts="a settings name (letters, digits, '.', '_', '-') or empty")
    # --- sampling layout
    num_envs_per_env_runner: int = setting(64, "vector env entries per EnvRunner", check=_positive,
                                           accepts="a positive integer")
    # --- several agents (an env with n_agents > 1)
    policies: str = setting("shared", "several agents: one policy all agents share (parameter sharing) or "
                            "one per agent", choices=("shared", "per_agent"))


@dataclass(frozen=True)
class RLlibSettings:
    """The RLlib backend's own settings, in the config of the methods that may train on RLlib (a method's
    config lists them after :class:`PPOSettings`'s: ``class Config(RLlibSettings, PPOSettings)``); the
    methods that never do (their ``backend`` choices lack ``rllib``) have none."""

    num_env_runners: int = setting(0, "RLlib backend: remote EnvRunner actors (0: sample in the driver process; "
                                   "the other backends sample in one process)",
                                   check=lambda v: v >= 0, accepts="a non-negative integer")
    rllib_learner: str = setting("fast", "RLlib backend's learner: fast (RLlib's PPO learner with the suite's "
                                 "kernels, the batch in bulk from the runner's episodes, the module's own draws "
                                 "with the suite's masked categorical) or exact (RLlib's own PPO learner, "
                                 "pipeline and draws, bit for bit)", choices=("fast", "exact"))


#: Per-env defaults of every method's settings (a method takes the keys that are fields of its config).
#:
#: portfolio: 20-step episodes, so no discount (gamma 1). The agent learns from the env's dense
#: ``value_change`` reward (the per-step change in portfolio value / start cash): with gamma 1 it is
#: potential-based shaping of the final value (same optimal policies, Ng et al. 1999) and it learns
#: faster (training mean $2,850 vs $2,690 at 490k steps from the final value scaled by 1/1000);
#: lr 1e-3 rather than 3e-4 reaches a training mean of $2,740 instead of $2,450 at 246k steps.
#: Penalty PPO: 0.01 of the start cash ($10) per inadmissible sub-action, in value_change units.
#:
#: speed_limit: per-step rewards of a few units, scaled by 0.1 so that the value loss does not swamp
#: the policy gradient under the global gradient clip. With a constant lr, a nearly deterministic
#: masked policy (entropy 0.02) collapsed from 60 to 50 at 800k steps; lr decays linearly instead.
#: Penalty PPO: 1, the time cost of one step.
#:
#: sum_to_zero: weights in [0, 1] need no transform; a Gaussian starting at standard deviation
#: exp(-2.5) = 0.08, the scale of one of 13 weights (at 1, masked PPO's training return was still
#: below random-valid's after 150k steps); no entropy bonus (CleanRL's continuous default); gamma 0.5,
#: since an allocation's reward comes within a few steps and demand is noisy (greedy return 31.8 vs
#: 26.5 with gamma 0.9 at 123k steps); lr 5e-4 decaying linearly (constant, greedy return peaked at
#: 42.1 at 490k steps, fell to 35.3 at 570k and was back to 40.7 at 1M; linear: 42.4 at 1M).
#: Penalty PPO: 1 per unit of distance to the admissible set (a step's reward is at most 1).
#: Its levels: the Gaussian starts at the scale of one weight, 1 / n_targets (exp(-2.5) is about 1/13):
#: at n = 100 the seed's 0.08 moved every weight by several times its size each step and masked PPO
#: ended below random-valid (greedy return 2.3 against random-valid's 17.9 and clairvoyant_demand's 47.4, 3
#: seeds, 100k steps, torch backend); at exp(-4.6) = 0.01 it reached 27.2 (seed 0, same budget). At
#: n = 1,000 no value tried works yet, so the level keeps the seed's: -2.5 trains but ends below
#: random-valid (greedy 1.3 against 17.8), -4.6 and -6.9 diverge (NaN losses at iterations 1 and 13):
#: the float32 log-probability of 1,000 narrow Gaussians loses the PPO ratio.
#:
#: Network width and epochs: every env keeps two 256x256 networks and 10 epochs, chosen on wall time to a
#: score on the default backend (suite/studies/defaults.toml, docs/benchmarks.md): 64x64 networks step
#: 1.5-1.7x faster on RLlib but did not reach $3,000 on portfolio within 410k steps (0/3 seeds; 256x256
#: 3/3 at a median 246k) nor score 80 on sum_to_zero within 1M (1/3; 256x256 3/3 at 672k), and needed
#: twice the steps to score 80 on speed_limit. 64x64 with 5 epochs got masked PPO to score 80 on
#: speed_limit in a fifth of the time, but cost penalty PPO its score at the 1M budget (93.2 against 98.8):
#: these defaults are every method's, so one chosen on a single method must not rank the methods.
ENV_DEFAULTS: dict[str, dict[str, Any]] = {
    "portfolio": {"gamma": 1.0, "lr": 1e-3, "train_env_config": ("reward=value_change",), "penalty": 0.01},
    "speed_limit": {"reward_scale": 0.1, "lr_schedule": "linear", "penalty": 1.0},
    "sum_to_zero": {"obs_transform": "none", "log_std_init": -2.5, "entropy_coeff": 0.0, "gamma": 0.5, "lr": 5e-4,
                    "lr_schedule": "linear", "penalty": 1.0},
    "sum_to_zero-m": {"log_std_init": -4.6},
    # Not tuned yet: the objective is the undiscounted makespan (L2D trains with gamma 1); returns are hundreds of
    # time units, scaled to order 1; a penalty about one random step's reward on the 6x6 level (-12).
    "job_shop": {"gamma": 1.0, "reward_scale": 0.01, "penalty": 10.0},
}


def env_defaults(env_name: str) -> dict[str, Any]:
    """The per-env defaults of ``env_name``: its family's (a level's env), then its own."""
    try:
        family = envs.spec(env_name).family
    except ConfigError:  # an env registered later (a user's, imported in a worker): no defaults
        family = env_name
    return {**ENV_DEFAULTS.get(family, {}), **(ENV_DEFAULTS.get(env_name, {}) if env_name != family else {})}


def check_settings(config: PPOSettings, budget: int | None) -> None:
    """The checks every backend makes on the PPO settings, as one-line ``ConfigError``\\ s."""
    if config.minibatch_size > config.train_batch_size:
        raise ConfigError(f"algo config: minibatch_size ({config.minibatch_size}) must not exceed "
                          f"train_batch_size ({config.train_batch_size})")
    if config.lr_schedule == "linear" and not budget:
        raise ConfigError("algo config: lr_schedule=linear needs the run's budget (suite.run --steps)")


def learning_rate(config: PPOSettings, env_steps: int, budget: int | None) -> float:
    """The learning rate after ``env_steps`` of ``budget``: ``lr``, or linear from ``lr`` to 0 at the budget."""
    if config.lr_schedule == "constant":
        return config.lr
    return config.lr * max(0.0, 1.0 - env_steps / budget)


def check_network_fits(config: PPOSettings, core: Any, *, networks: tuple[str, ...] = ("mlp",)) -> None:
    """Refuse up front (one-line ``ConfigError``) a ``network`` the calling backend does not build (``networks``)
    or ``core`` cannot have, and policy and value networks for ``core``'s spaces that cannot fit in memory:
    their float32 weights, gradients and Adam's two moments, and a minibatch's activations."""
    if config.network not in networks:
        raise ConfigError(f"algo config: network={config.network} is not built by this backend; it builds "
                          f"{', '.join(networks)} (per_entry: --backend torch)")
    n_features = int(np.prod(core.feature_space.shape))
    n_outputs = int(core.nvec.sum()) if core.discrete else 2 * int(np.prod(core.action_space.shape))
    if config.network == "per_entry":
        if not type(core).provides("entry_features"):
            raise ConfigError(f"algo config: network=per_entry needs an env whose action entries are exchangeable "
                              f"(one that offers entry_features(): sum_to_zero, job_shop); {core.name!r} does not")
        n_entries, k = core.entry_features().shape
        sizes = [2 * config.hidden[0], *config.hidden[1:]]
        params = 3 * (k + 1) * config.hidden[0] + sum((a + 1) * b for a, b in zip(sizes, sizes[1:])) \
            + (sizes[-1] + 1) * (n_outputs // n_entries + 1)
        activations = config.minibatch_size * n_entries * sum(config.hidden) * 3 * 3
    else:
        sizes = [n_features, *config.hidden]
        trunk = sum((a + 1) * b for a, b in zip(sizes, sizes[1:]))
        params = 2 * trunk + (sizes[-1] + 1) * (n_outputs + 1)
        activations = config.minibatch_size * sum(config.hidden) * 2 * 3
    check_fits(4 * (4 * params + activations), f"{config.network} networks of hidden sizes "
               f"{','.join(map(str, config.hidden))}")
