"""The backends: each trains PPO with any method (:mod:`baselines.method`) it supports.

- :mod:`~baselines.backends.rllib_ppo`: Ray RLlib's new API stack, the default, from a laptop to a
  cluster (with :mod:`~baselines.backends.rllib_masking_module`,
  :mod:`~baselines.backends.rllib_gaussian_module` and :mod:`~baselines.backends.rllib_multi_agent`; its
  EnvRunner :mod:`~baselines.backends.rllib_batched_runner`; its learner
  :mod:`~baselines.backends.rllib_fast_learner`, the default, or RLlib's own ``PPOTorchLearner``);
- :mod:`~baselines.backends.torch_ppo`: one process, batched, the fastest on one machine; the one that runs
  a method's own objective (:mod:`baselines.objective`, Lagrangian PPO's);
- :mod:`~baselines.backends.sb3_ppo`: sb3-contrib's MaskablePPO, the race's baseline.

Backends are peers: none inherits from another. What they share lives in :mod:`baselines`
(settings, training env, evaluation, episode statistics, masked logits). Each has a class method
``incompatibility_with(method, env_name, core)`` naming what it cannot train, and a method resolves
``config.backend`` to one of them through :mod:`baselines.registry`.
"""
