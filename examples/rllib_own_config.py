"""A maskbench env in your own RLlib PPOConfig, masked by the suite's module or by RLlib's own example module.

    python examples/rllib_own_config.py                 # the suite's masking module
    python examples/rllib_own_config.py --rllib-example # RLlib's ActionMaskingTorchRLModule, keys renamed

Every maskbench env is a Gymnasium id (``maskbench/SpeedLimit-v0``); RLlib makes it with
``gymnasium.make_vec``, and ``vector_entry_point`` gives it the natively batched env. The prefix
``maskbench:`` makes Gymnasium import the suite's envs first, in every process that builds the env
(remote EnvRunners too). The callback counts the inadmissible actions the env saw: with a masking module, 0.
"""

import argparse

import ray
from ray.rllib.algorithms.ppo import PPOConfig
from ray.rllib.core.rl_module.rl_module import RLModuleSpec
from ray.tune.registry import register_env

import envs
from baselines.backends.rllib_masking_module import MaskedPPOTorchRLModule
from envs.observation_keys import RenameObservationKeys


def count_inadmissible(episode, metrics_logger, **kwargs):
    """RLlib's on_episode_step callback: the env's own count of inadmissible sub-actions this step."""
    metrics_logger.log_value("inadmissible_actions", int(episode.get_infos(-1)["invalid_actions"]), reduce="sum")


def ppo_config(rllib_example: bool, env_name: str = "speed_limit") -> PPOConfig:
    config = PPOConfig().training(train_batch_size_per_learner=2048, minibatch_size=256, num_epochs=4, lr=3e-4)
    config = config.callbacks(on_episode_step=count_inadmissible).env_runners(num_env_runners=0,
                                                                              num_envs_per_env_runner=16)
    if rllib_example:  # RLlib's example module reads "observations": rename the suite's "observation" key
        from ray.rllib.examples.rl_modules.classes.action_masking_rlm import ActionMaskingTorchRLModule

        register_env("maskbench-renamed", lambda env_config: RenameObservationKeys(envs.make(env_name, **env_config)))
        return config.environment("maskbench-renamed").rl_module(
            rl_module_spec=RLModuleSpec(module_class=ActionMaskingTorchRLModule,
                                        model_config={"fcnet_hiddens": [64, 64]}))
    return (config.environment(f"maskbench:{envs.gymnasium_id(env_name)}")
            .env_runners(gym_env_vectorize_mode="vector_entry_point")
            .rl_module(rl_module_spec=RLModuleSpec(module_class=MaskedPPOTorchRLModule,
                                                   model_config={"fcnet_hiddens": [64, 64], "env_name": env_name})))


def main(argv=None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rllib-example", action="store_true", help="RLlib's ActionMaskingTorchRLModule")
    parser.add_argument("--iterations", type=int, default=10)
    args = parser.parse_args(argv)
    ray.init(num_cpus=2, include_dashboard=False)
    try:
        algo = ppo_config(args.rllib_example).build_algo()
        results = []
        for _ in range(args.iterations):
            result = algo.train()
            runners = result["env_runners"]
            results.append(runners)
            print(f"return {runners.get('episode_return_mean', float('nan')):8.2f}   "
                  f"inadmissible actions {runners.get('inadmissible_actions', 0)}")
        algo.stop()
        return results
    finally:
        ray.shutdown()


if __name__ == "__main__":
    main()
