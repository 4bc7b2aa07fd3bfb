"""How an agent handles the constraint: the algorithms ``suite.run --algo NAME`` runs.

- :mod:`baselines.algorithm`: the interface between an algorithm and the runner;
- :mod:`baselines.method` and :mod:`baselines.methods`: the ways of handling the constraint, one
  small module each (masked, penalty, normalisation, ...), declared as data;
- :mod:`baselines.backends`: RLlib, the single-process torch loop and sb3-contrib, each training
  PPO with any method it supports; peers, none inherits from another;
- :mod:`baselines.settings` (the PPO settings and every per-env default), :mod:`baselines.training_env`
  (what the learner trains on), :mod:`baselines.evaluation` (evaluation episodes and policies),
  :mod:`baselines.episodes` (episode statistics and progress rows);
- the references (:mod:`baselines.references`): ``random_valid`` (the score's 0), the simple policies, the
  heuristics (the best non-clairvoyant one is a task's 100) and the clairvoyant bounds; :mod:`baselines.oracle`
  plays a user env's own ``oracle_actions``.

Names resolve through :mod:`baselines.registry`, imported on first use, so listing them (or running
``random_valid``) never imports Ray or torch.
"""

from __future__ import annotations

from baselines.algorithm import EVAL_SEED_BASE, AlgoEntry, Algorithm
from baselines.registry import algo_names, backend_names, load_algo, load_backend, register_algo

__all__ = ["Algorithm", "AlgoEntry", "EVAL_SEED_BASE", "algo_names", "backend_names", "load_algo", "load_backend",
           "register_algo"]
