"""A maskbench env with sb3-contrib's MaskablePPO, the way sb3-contrib's docs wrap any env: ``ActionMasker``.

    python examples/sb3_action_masker.py [--steps N]

``ActionMasker`` asks a function for the current mask; the suite's envs hand it out as
``env.unwrapped.action_masks()`` (int8, the same flat mask as ``obs["action_mask"]``; MaskablePPO
would also find the method without the wrapper). Evaluation passes the mask to ``predict`` as
sb3-contrib's docs do, and the env's own count of inadmissible sub-actions stays at 0.
"""

import argparse

import gymnasium
import numpy as np
from sb3_contrib import MaskablePPO
from sb3_contrib.common.wrappers import ActionMasker

import envs


def mask_of(env: gymnasium.Env) -> np.ndarray:
    return env.unwrapped.action_masks()


def main(argv=None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20_000)
    parser.add_argument("--env", default="speed_limit")
    args = parser.parse_args(argv)
    env = ActionMasker(gymnasium.make(envs.gymnasium_id(args.env)), mask_of)
    model = MaskablePPO("MultiInputPolicy", env, n_steps=512, batch_size=128, seed=0, verbose=0)
    model.learn(total_timesteps=args.steps)

    returns, inadmissible = [], 0
    for episode in range(5):
        obs, _ = env.reset(seed=1000 + episode)
        done, total = False, 0.0
        while not done:
            action, _ = model.predict(obs, action_masks=mask_of(env), deterministic=True)
            obs, reward, terminated, truncated, info = env.step(action)
            total += float(reward)
            inadmissible += int(info["invalid_actions"])
            done = terminated or truncated
        returns.append(total)
    print(f"mean return {np.mean(returns):.2f} over {len(returns)} episodes, inadmissible actions {inadmissible}")
    return {"mean_return": float(np.mean(returns)), "inadmissible_actions": inadmissible}


if __name__ == "__main__":
    main()
