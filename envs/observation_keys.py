"""The suite's observation under another library's key names (RLlib's own masking example module).

The suite's observation is ``Dict(observation=Box, action_mask=Box)`` (:mod:`envs.masking`). RLlib's
example module shipped with Ray, ``ray.rllib.examples.rl_modules.classes.action_masking_rlm.
ActionMaskingTorchRLModule``, reads ``"observations"`` and ``"action_mask"``; wrapped in
:class:`RenameObservationKeys` with :data:`RLLIB_EXAMPLE_KEYS`, every discrete maskbench env is the
env that module expects::

    register_env("portfolio", lambda config: RenameObservationKeys(envs.make("portfolio", **config)))

The mask's values and dtype (int8) are unchanged; only the keys move.
"""

from __future__ import annotations

from typing import Any

import gymnasium

from .masking import OBSERVATION_KEY

__all__ = ["RLLIB_EXAMPLE_KEYS", "RenameObservationKeys"]

#: The renaming RLlib's ``ActionMaskingTorchRLModule`` needs.
RLLIB_EXAMPLE_KEYS = {OBSERVATION_KEY: "observations"}


class RenameObservationKeys(gymnasium.ObservationWrapper):
    """A single-agent env whose Dict observation's keys are renamed by ``renames`` (old -> new)."""

    def __init__(self, env: gymnasium.Env, renames: dict[str, str] | None = None):
        super().__init__(env)
        self.renames = dict(RLLIB_EXAMPLE_KEYS if renames is None else renames)
        spaces = env.observation_space.spaces
        unknown = [key for key in self.renames if key not in spaces]
        if unknown:
            raise ValueError(f"cannot rename {unknown[0]!r}: the observation's keys are {', '.join(spaces)}")
        self.observation_space = gymnasium.spaces.Dict(
            {self.renames.get(key, key): space for key, space in spaces.items()})

    def observation(self, observation: dict[str, Any]) -> dict[str, Any]:
        return {self.renames.get(key, key): value for key, value in observation.items()}
