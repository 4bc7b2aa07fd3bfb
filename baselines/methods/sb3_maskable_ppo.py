"""``sb3_maskable_ppo``: masked PPO as sb3-contrib's ``MaskablePPO`` trains it, the masked PPO most users
pick today.

The same method as ``masked_ppo`` (the agent sees the mask; inadmissible logits get zero
probability), on the sb3-contrib backend only (:mod:`baselines.backends.sb3_ppo`), with **the same
settings** mapped one to one onto MaskablePPO's arguments. It is here to be raced against the suite's
own backends (``python -m suite.race``). Needs ``pip install -e ".[compare]"``.
"""

from __future__ import annotations

from dataclasses import dataclass

from baselines.method import Method
from baselines.settings import PPOSettings, backend_setting
from envs.config import setting

__all__ = ["SB3MaskablePPOConfig", "METHOD", "VEC_ENVS"]

VEC_ENVS = ("dummy", "batched")


@dataclass(frozen=True)
class SB3MaskablePPOConfig(PPOSettings):
    """The PPO settings (matched with masked PPO's) and how the envs are batched."""

    vec_env: str = setting("dummy", "dummy: Stable-Baselines3's DummyVecEnv of single Gymnasium envs, the usual "
                           "set-up; batched: the suite's natively batched env through an adapter", choices=VEC_ENVS)
    backend: str = backend_setting("sb3")


METHOD = Method(
    name="sb3_maskable_ppo", Config=SB3MaskablePPOConfig,
    summary="masked PPO as sb3-contrib's MaskablePPO trains it, with the suite's settings",
    observes_mask=True, action_spaces=("discrete",))
