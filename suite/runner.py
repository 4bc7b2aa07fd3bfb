"""The runner library: one run of an algorithm on an env with a seed, from request to result files.

Every command that trains (``suite.run``, sweeps, ``suite.race``) builds a :class:`RunRequest` with
:meth:`RunRequest.build`, checks its folder with :func:`prepare_directory` and calls
:func:`execute`; no command drives another through argument strings. :func:`execute` trains,
checkpoints and evaluates, and writes ``config.json``, ``progress.csv`` and ``eval.csv`` (see
:mod:`suite.results`).
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import traceback
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm import tqdm

import envs
from baselines import EVAL_SEED_BASE, load_algo
from baselines.algorithm import Algorithm, Policy, derived_seed
from baselines.evaluation import evaluate
from baselines.mask_noise import KINDS as MASK_NOISE_KINDS
from baselines.mask_noise import MaskCorruption
from baselines.training_env import training_env_config
from baselines.tuned_settings import check_tuned_env, tuned_entry
from envs import masking
from envs.config import ConfigError, available_memory, build_config, config_to_dict
from envs.core import EnvFailure
from suite import files, results
from suite.cli import MAX_INT64, CommandFailed, UsageError
from suite.stats import mean_ci
from suite.trust import sign, untrusted_reason

__all__ = ["RunRequest", "IDENTITY_KEYS", "NEW", "RESUME", "COMPLETE", "RunFailed", "prepare_directory",
           "execute", "summary"]

#: Keys of config.json that must match for ``--resume`` to continue a run.
IDENTITY_KEYS = ("env", "env_version", "env_config", "algo", "algo_config", "seed")
#: The largest evaluation seed base: its episodes' env seeds stay well inside numpy's seed range.
MAX_EVAL_SEED_BASE = 2**62
_LIBRARIES = ("maskbench", "numpy", "gymnasium", "pettingzoo", "pandas", "scipy", "ray", "torch")


@dataclass
class RunRequest:
    """A validated run: what ``config.json`` records."""

    env: str
    env_config: dict[str, Any]
    algo: str
    algo_config: dict[str, Any]
    seed: int
    steps: int
    episodes: int
    directory: Path
    address: str | None = None
    command: str | None = None  # the command line that asked for the run (a sweep's, for its trials)
    #: Probabilities of the corrupted-mask evaluations (:mod:`baselines.mask_noise`); empty: none.
    eval_mask_noise: tuple[float, ...] = ()
    #: Evaluation episode i plays env seed ``eval_seed_base + i`` (a tuning study's runs evaluate on seeds of their
    #: own, so that no reported score is measured on episodes a tuning trial was chosen on).
    eval_seed_base: int = EVAL_SEED_BASE

    @classmethod
    def build(cls, env: str, algo: str, seed: int, *, out: str | Path, env_config: Mapping[str, Any] | None = None,
              algo_config: Mapping[str, Any] | None = None, steps: int | None = None, episodes: int = 100,
              address: str | None = None, command: str | None = None,
              eval_mask_noise: Sequence[float] = (), eval_seed_base: int = EVAL_SEED_BASE) -> RunRequest:
        """Validate names and configs (one-line ``ConfigError`` on a mistake) into a request.

        ``env_config`` / ``algo_config``: overrides, Python values or ``KEY=VALUE`` strings' values;
        ``steps``: the budget (default: the algo's own). Refused too, before anything runs: a budget, episode
        count or seed that is no integer in range (:func:`_check_counts`), an empty ``out`` (the current
        folder, unasked), what cannot fit this machine's memory (:func:`_check_fits_machine`) and env config
        overrides the env cannot compute with (:func:`_check_env_computes`).
        """
        _check_counts(steps, episodes, seed)
        if not _is_int(eval_seed_base) or not 0 <= eval_seed_base <= MAX_EVAL_SEED_BASE:
            raise ConfigError(f"eval_seed_base must be an integer in [0, {MAX_EVAL_SEED_BASE:,}], got "
                              f"{eval_seed_base!r}")
        if isinstance(out, str) and not out.strip():
            raise ConfigError(f"out (the results folder) is {out!r}, which would write into the current folder; "
                              "name a folder (. for the current one)")
        full_env_config = envs.config_dict(env, dict(env_config or {}))
        entry = load_algo(algo)
        full_algo_config = config_to_dict(entry.make_config(env, dict(algo_config or {}), owner=f"algo {algo!r}"))
        if full_algo_config.get("train_env_config"):  # the training env's overrides, checked now, not at iteration 1
            training_env_config(env, full_env_config, tuple(full_algo_config["train_env_config"]))
        env_overrides = envs.config_overrides(env, full_env_config)
        if full_algo_config.get("settings"):  # a tuned entry holds only under the env settings it was tuned under
            check_tuned_env(full_algo_config["settings"], algo, env, env_overrides, envs.spec(env).load().version)
        variant = results.variant_label(env_overrides | _algo_overrides(entry, algo, env, full_algo_config))
        directory = results.run_dir(Path(out).absolute(), env, algo, seed, variant)
        noise = tuple(sorted({float(p) for p in eval_mask_noise}))
        if any(not 0.0 <= p <= 1.0 for p in noise):
            raise ConfigError(f"eval_mask_noise takes probabilities in [0, 1], got {list(noise)}")
        _check_fits_machine(env, full_env_config, full_algo_config, episodes, noise, address)
        _check_env_computes(env, full_env_config, env_overrides, full_algo_config)
        return cls(env, full_env_config, algo, full_algo_config, seed, steps or entry.default_steps, episodes,
                   directory, address, command, noise, int(eval_seed_base))

    @property
    def label(self) -> str:
        """``masked_ppo on portfolio, seed 0``, and the config variant when it has one (``[penalty=0.1]``):
        runs of one sweep that differ only in config have distinct labels."""
        variant = self.directory.parent.name
        return f"{self.algo} on {self.env}, seed {self.seed}" + (f" [{variant}]" if variant != self.algo else "")

    def record(self) -> dict[str, Any]:
        return {"env": self.env, "env_config": self.env_config, "algo": self.algo, "algo_config": self.algo_config,
                "seed": self.seed, "steps": self.steps, "episodes": self.episodes,
                "eval_seeds": [self.eval_seed_base, self.eval_seed_base + self.episodes - 1],
                **({"eval_mask_noise": list(self.eval_mask_noise)} if self.eval_mask_noise else {}),
                "env_version": envs.spec(self.env).load().version, **_ray_placement(self.address),
                "command": self.command or " ".join([Path(sys.executable).name, "-m", "suite.run", *sys.argv[1:]]),
                "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                "python": platform.python_version(), "platform": platform.platform(),
                "libraries": _library_versions(), "torch_threads": _torch_threads(), "git_commit": _git_commit()}


def _differences(config: dict[str, Any], defaults: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in config.items() if defaults.get(key) != value}


def _algo_overrides(entry: Any, algo: str, env: str, config: dict[str, Any]) -> dict[str, Any]:
    """What a run's folder names of its algo config: the keys that differ from the algo's defaults on ``env``.
    A tuned settings file's values are named by the file (``settings=NAME``), not key by key; the settings its
    entry was tuned with (e.g. ``backend=torch``) stay named, since the run had to set them."""
    defaults = config_to_dict(entry.make_config(env, {}, owner=algo))
    name = config.get("settings")
    if not name:
        return _differences(config, defaults)
    _, tuned_with = tuned_entry(name, algo, env)
    required = {key: config[key] for key in tuned_with if key in config}
    tuned_defaults = config_to_dict(entry.make_config(env, {"settings": name, **required}, owner=algo))
    return _differences(config, tuned_defaults) | _differences(required, defaults) | {"settings": name}


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _check_counts(steps: Any, episodes: Any, seed: Any) -> None:
    """A budget (``None``: the algo's own), an episode count and a seed that are integers in range, else a
    one-line ``ConfigError``: every one of them is a 64-bit integer in the result files."""
    if steps is not None and (not _is_int(steps) or not 0 < steps <= MAX_INT64):
        raise ConfigError(f"steps (the training budget in env steps) must be a positive integer of at most "
                          f"{MAX_INT64:,}, got {steps!r}")
    if not _is_int(episodes) or not 0 < episodes <= MAX_INT64:
        raise ConfigError(f"episodes (evaluation episodes per policy) must be a positive integer, got {episodes!r}")
    if not _is_int(seed) or not 0 <= seed <= MAX_INT64:
        raise ConfigError(f"seed must be a non-negative integer of at most {MAX_INT64:,}, got {seed!r}")


#: Memory one evaluation episode's record holds until ``eval.csv`` is written (the record, its row of the
#: frame), bytes: measured at 0.5 to 1.2 KiB per record on the suite's envs, doubled for the frame.
EVAL_RECORD_BYTES = 2048
#: The most policies an algo evaluates on clean masks: greedy and stochastic, each with the mask on and off.
MAX_EVAL_POLICIES = 4
#: Memory of one RLlib EnvRunner actor, a Ray worker process of its own with torch and its envs (estimate).
ENV_RUNNER_BYTES = 512 * 2**20


def _size(n_bytes: float) -> str:
    units = ["bytes", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB", "YiB"]
    power = 0
    while n_bytes >= 1024 and power < len(units) - 1:
        n_bytes, power = n_bytes / 1024, power + 1
    return f"{n_bytes:,.1f} {units[power]}"


def _refuse_beyond_memory(what: str, count: int, unit_bytes: float, why: str, noun: str) -> None:
    """``count`` units of ``unit_bytes`` each that do not fit the memory available now: one line naming
    ``what``, ``why`` it takes memory, the estimate and how many ``noun`` fit."""
    available = available_memory()
    needed = count * unit_bytes
    if needed > available:
        raise ConfigError(f"{what}: {why}: about {_size(needed)} of memory needed (estimate), {_size(available)} "
                          f"available on this machine; at most about {int(available // unit_bytes):,} {noun} fit")


def _rollout_bytes_per_step(core: Any) -> int:
    """Memory one agent step of a training batch holds (estimate): its float32 features, its mask and action,
    and the scalars PPO keeps of it (log-probability, value, reward, advantage, return, flags), twice (the
    rollout and its flattened, filtered copy)."""
    features = int(np.prod(core.feature_space.shape))
    if core.discrete:
        action = masking.mask_size(core.action_space) + 8 * len(core.nvec)
    else:
        action = 4 * int(np.prod(core.action_space.shape))
    return 2 * (4 * features + action + 64)


def _check_fits_machine(env: str, env_config: dict[str, Any], algo_config: dict[str, Any], episodes: int,
                        noise: tuple[float, ...], address: str | None) -> None:
    """Refuse (one-line ``ConfigError``) a run whose evaluation records, training batch or local EnvRunner
    processes cannot fit the memory available, with the estimate and what fits, before anything starts."""
    agents = int(env_config.get("n_agents", 1))
    noisy = sum(1 for p in noise if p > 0)
    policies = MAX_EVAL_POLICIES + 2 * len(MASK_NOISE_KINDS) * noisy  # corrupted masks: the policies with it on
    _refuse_beyond_memory(f"episodes={episodes:,}", episodes, EVAL_RECORD_BYTES * policies * agents,
                          f"evaluation keeps a record of every episode of each evaluated policy (up to {policies}"
                          f"{f', {agents} agents' if agents > 1 else ''}) until eval.csv is written", "episodes")
    batch = algo_config.get("train_batch_size")
    if _is_int(batch):
        core = envs.make_core(env, 1, **env_config)
        _refuse_beyond_memory(f"train_batch_size={batch:,}", batch, _rollout_bytes_per_step(core) * agents,
                              "a training iteration holds its whole batch (features, masks, actions, advantages) "
                              "in memory", "env steps per batch")
    runners = algo_config.get("num_env_runners")
    if address is None and algo_config.get("backend") == "rllib" and _is_int(runners) and runners > 0:
        _refuse_beyond_memory(f"num_env_runners={runners:,}", runners, ENV_RUNNER_BYTES,
                              f"each EnvRunner is a Ray worker process of its own on this machine (about "
                              f"{_size(ENV_RUNNER_BYTES)} each; {os.cpu_count() or 1} CPUs here, which more "
                              "runners share; a cluster: --address)", "EnvRunners")


#: Env steps of the probe that checks an env config the user changed gives finite numbers.
_PROBE_STEPS = 4


def _check_env_computes(env: str, env_config: dict[str, Any], overrides: dict[str, Any],
                        algo_config: dict[str, Any]) -> None:
    """Env config overrides under which the env's observations or rewards are not finite (a value so large
    that the env's arithmetic overflows, e.g. ``start_cash=1e308``): one line naming them, before a run trains
    on infinities. A short probe (two entries, a few admissible steps); an env that fails in it for another
    reason is left to the run, which reports it."""
    if not overrides:
        return
    # first what cannot fit (one line with the estimate, nothing built): a probe of a config that fits two
    # entries but not the run's batch would otherwise reset a huge env for minutes before the run refused it
    batch = next((algo_config[key] for key in ("num_envs", "num_envs_per_env_runner") if _is_int(algo_config.get(key))),
                 1)
    envs.make_core(env, batch, **env_config)
    problem = None
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        try:
            problem = _non_finite_in_probe(env, env_config)
        except Exception:  # the env's own failures are the run's to report (one line, error.txt)
            problem = None
    if problem:
        settings = ", ".join(f"{key}={value}" for key, value in overrides.items())
        raise ConfigError(f"env {env!r} cannot compute with env config {settings}: {problem} (a number "
                          "overflowed); use smaller values")


def _non_finite_in_probe(env: str, env_config: dict[str, Any]) -> str | None:
    core = envs.make_core(env, 2, **env_config)
    rng = np.random.default_rng(0)
    core.reset(np.arange(core.num_envs), [np.random.default_rng([0, i]) for i in range(core.num_envs)])
    for step in range(_PROBE_STEPS + 1):
        features = np.asarray(core.observe()[masking.OBSERVATION_KEY], dtype=np.float64)
        if not np.isfinite(features).all():
            return "its observation is not finite " + ("after reset" if step == 0 else f"after {step} step(s)")
        if step == _PROBE_STEPS:
            return None
        actions = masking.sample_masked(rng, core.action_mask(), core.nvec) if core.discrete \
            else core.admissible_set().sample(rng)
        result = core.step(actions)
        if not np.isfinite(np.asarray(result.reward, dtype=np.float64)).all():
            return f"its reward is not finite at step {step + 1}"
        ended = (np.asarray(result.terminated) | np.asarray(result.truncated)).reshape(core.num_envs, -1).all(axis=-1)
        done = np.flatnonzero(ended)
        if done.size:
            core.reset(done, [np.random.default_rng([1, int(i)]) for i in done])
    return None


def _ray_placement(address: str | None) -> dict[str, str | None]:
    """Where the run executes: the Ray cluster's address and the node (None outside Ray). Ray is not
    imported for it: a run that never started Ray has neither."""
    ray = sys.modules.get("ray")
    if ray is None or not ray.is_initialized():
        return {"ray_address": address, "ray_node_id": None}
    context = ray.get_runtime_context()
    return {"ray_address": address or context.gcs_address, "ray_node_id": context.get_node_id()}


def _library_versions() -> dict[str, str | None]:
    versions = {}
    for name in _LIBRARIES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def _torch_threads() -> int:
    """torch's intra-op threads in this process. Its reductions split work by thread, so a seeded run repeats
    bit for bit only at the same count: a direct run has one per core, a sweep's trial the 1 CPU Ray gives it
    (``OMP_NUM_THREADS=1``)."""
    import torch

    return torch.get_num_threads()


def _git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True,
                             text=True, timeout=5)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


class RunFailed(CommandFailed):
    """A run that cannot go on (its losses diverged, the user's env failed). One line for the user; the
    run folder's ``error.txt`` has the traceback."""


def _run_layout(directory: Path) -> list[Path]:
    """The folders :func:`suite.results.run_dir` makes for the run folder ``directory``: itself (``seed<k>``), its
    config variant's if it has one (``key=value,...`` or ``config-<hash>``), its algo's and its env's; not the
    results folder above them, which the user named (it may well be a link to a bigger disk)."""
    variant = "=" in directory.parent.name or directory.parent.name.startswith("config-")
    return [directory, *list(directory.parents)[:3 if variant else 2]]


def _refuse_links(directory: Path) -> None:
    """A run folder (or its env, algo or variant folder) that is a symbolic link, in one line: the lock, the
    leftovers' clean-up and ``--overwrite`` act inside the run folder, and through a link they would act on
    whatever it points to (another run's folder in a received results folder)."""
    for folder in _run_layout(directory):
        if folder.is_symlink():
            try:
                target = f" (to {os.readlink(folder)!r})"
            except OSError:
                target = ""
            raise UsageError(f"{folder} is a symbolic link{target}; a run never writes or deletes through one, "
                             "as it could be another run's folder: replace it with a folder of its own, or pass "
                             "another --out (nothing was changed)")


def _check_writable(directory: Path) -> None:
    """Refuse a run folder reached through a symbolic link (:func:`_refuse_links`), then probe the nearest
    existing folder of ``directory`` without creating anything."""
    probe = directory
    try:
        _refuse_links(directory)
        while not probe.exists():
            probe = probe.parent
        if not probe.is_dir():
            raise UsageError(f"cannot write results under {str(directory)!r}: {probe} is not a folder")
        with tempfile.TemporaryFile(dir=probe):
            pass
    except OSError as error:
        raise UsageError(f"cannot write results under {str(directory)!r}: {error.strerror or error}") from None


#: What :func:`prepare_directory` finds: start a new run, resume one, or nothing to do (resume asked,
#: run complete).
NEW, RESUME, COMPLETE = "new", "resume", "complete"
_RUN_FILES = (results.CONFIG_FILE, results.PROGRESS_FILE, results.EVAL_FILE, results.CHECKPOINT_DIR,
              results.ERROR_FILE)


def _previous_record(directory: Path) -> dict[str, Any]:
    try:
        previous = json.loads((directory / results.CONFIG_FILE).read_text())
        if not isinstance(previous, dict):
            raise ValueError("not a JSON object")
        return results.with_added_settings(previous)
    except (OSError, ValueError) as error:
        raise UsageError(f"cannot --resume {directory}: its config.json is unreadable ({error}); pass --overwrite "
                         "to start over") from None


#: The checkpoint's own record of where it stands (written by :func:`_save_checkpoint`).
_META_FILE = "meta.json"


def _check_resumable(directory: Path) -> None:
    """Refuse (one-line ``UsageError`` naming the file, nothing written) a resume whose files cannot be read
    back: the checkpoint's ``meta.json`` missing or not what :func:`_save_checkpoint` writes, one of its pickles
    cut short (only its last byte is read: a pickle ends with STOP; none is loaded here), ``progress.csv``
    missing, unreadable or shorter than the checkpoint's iteration."""
    checkpoint = directory / results.CHECKPOINT_DIR

    def damaged(path: Path, what: str) -> UsageError:
        return UsageError(f"cannot resume {directory}: {path.relative_to(directory)} {what}; pass --overwrite to "
                          "start the run over (a sweep or study: move this run's folder away instead, as --overwrite "
                          "would rerun every run)")

    meta_path = checkpoint / _META_FILE
    try:
        meta = json.loads(meta_path.read_text())
    except FileNotFoundError:
        raise damaged(meta_path, "is missing") from None
    except (OSError, ValueError) as error:
        raise damaged(meta_path, f"is damaged ({str(error).splitlines()[0] if str(error) else error!r})") from None
    iteration = meta.get("iteration") if isinstance(meta, dict) else None
    wall = meta.get("wall_seconds") if isinstance(meta, dict) else None
    if not _is_int(iteration) or iteration < 0 or isinstance(wall, bool) or not isinstance(wall, (int, float)) \
            or not np.isfinite(wall) or wall < 0:
        shown = json.dumps(meta)
        raise damaged(meta_path, "is damaged (expected an iteration, a non-negative integer, and wall_seconds, a "
                                 f"non-negative number; got {shown if len(shown) <= 80 else shown[:77] + '...'})")
    for pickled in sorted(checkpoint.glob("*.pkl")):
        try:
            with pickled.open("rb") as handle:
                handle.seek(-1, os.SEEK_END)
                complete = handle.read(1) == b"."  # pickle's STOP opcode
        except OSError:  # empty (or unreadable)
            complete = False
        if not complete:
            raise damaged(pickled, "is cut short or empty (a pickle ends with its STOP opcode)")
    if iteration == 0:
        return
    progress_path = directory / results.PROGRESS_FILE
    try:
        progress = pd.read_csv(progress_path)
    except FileNotFoundError:
        raise damaged(progress_path, "is missing") from None
    except (OSError, ValueError) as error:  # pandas' parser and empty-data errors, undecodable bytes
        raise damaged(progress_path, f"cannot be read ({str(error).splitlines()[0] if str(error) else error!r})") \
            from None
    missing = [column for column in ("env_steps", "episodes") if column not in progress.columns]
    if missing:
        raise damaged(progress_path, f"is damaged (no {' or '.join(missing)} column)")
    head = progress.head(iteration)
    if len(head) < iteration:
        raise damaged(progress_path, f"is damaged ({len(progress)} row(s); the checkpoint is at iteration {iteration})")
    numbers = pd.to_numeric(head["env_steps"], errors="coerce"), pd.to_numeric(head["episodes"], errors="coerce")
    if any(not np.isfinite(column.to_numpy(dtype=np.float64)).all() for column in numbers):
        raise damaged(progress_path, "is damaged (env_steps or episodes is not a number in its first "
                                     f"{iteration} row(s))")


def prepare_directory(request: RunRequest, *, overwrite: bool, resume: bool, recover: bool = False,
                      trust: bool = False) -> str:
    """What to do with the run's folder: :data:`NEW`, :data:`RESUME` or :data:`COMPLETE`.

    Refuses (one-line ``UsageError``) a folder that holds any file of a run unless ``overwrite`` or
    ``resume``, a ``resume`` of a run with another identity (:data:`IDENTITY_KEYS`), a ``checkpoint``
    that is not a folder, a folder it cannot write, and a checkpoint this user did not write on this machine
    (:mod:`suite.trust`: resuming unpickles it) unless ``trust``, then a checkpoint or ``progress.csv`` that
    cannot be read back (:func:`_check_resumable`); outside the lock, a folder whose lock another writer holds is
    :data:`RESUME` unjudged (its checkpoint may be half written: the lock refuses the run). ``recover`` (only under
    the run's lock): finish a checkpoint swap a kill interrupted (:func:`suite.files.recover_dir`) before looking.
    """
    directory = request.directory
    _check_writable(directory)
    present = [name for name in _RUN_FILES if (directory / name).exists()]
    if present and not (overwrite or resume):
        state = "complete" if results.is_complete(directory) else "incomplete"
        raise UsageError(f"{directory} already holds {'an' if state == 'incomplete' else 'a'} {state} run "
                         f"({', '.join(present)}); pass --overwrite to replace it"
                         f"{' or --resume to continue it' if state == 'incomplete' else ''}")
    checkpoint = directory / results.CHECKPOINT_DIR
    if checkpoint.exists() and not checkpoint.is_dir():
        raise UsageError(f"{checkpoint} is a file, not a checkpoint folder; move it away (nothing was changed)")
    if not resume or not (directory / results.CONFIG_FILE).exists():
        return NEW
    previous, current = _previous_record(directory), json.loads(json.dumps(files.json_safe(request.record())))
    differing = [k for k in IDENTITY_KEYS if previous.get(k) != current[k]]
    if results.eval_seed_base(previous) != results.eval_seed_base(current):
        differing.append("eval_seeds")
    if differing:
        raise UsageError(f"cannot --resume {directory}: it was run with a different {', '.join(differing)} "
                         f"(pass --overwrite to start over)")
    if results.is_complete(directory):
        return COMPLETE
    if not recover and files.lock_state(directory) == "held":
        # Another writer holds the folder, so its checkpoint may be half written: judging it now would refuse
        # this run for the wrong reason. The run's lock refuses it when it starts, by the writer's name.
        return RESUME
    if recover:
        recovered = files.recover_dir(checkpoint)
        if recovered:
            print(f"{directory}: {recovered}", file=sys.stderr)
    if checkpoint.is_dir():
        reason = None if trust else untrusted_reason(checkpoint, ignore=(files.COMPLETE_MARKER,))
        if reason:
            raise UsageError(f"cannot resume {directory}: its checkpoint holds pickled state, which runs code when "
                             f"loaded, and {reason}; pass --trust if you trust who wrote it, or start the run over "
                             "(--overwrite; in a sweep, which would rerun every run, move this folder away)")
        _check_resumable(directory)
        return RESUME
    if (directory / results.PROGRESS_FILE).exists():
        print(f"{directory}: no checkpoint was written before the interruption; the run starts again from "
              "iteration 0", file=sys.stderr)
    return NEW


def _clear_previous_run(directory: Path) -> None:
    """A new run in a folder that held one (--overwrite): remove what would make the old run look complete,
    failed or resumable. Only the suite's own files, and never through a symbolic link: the run folder must not
    be one (checked again here, just before deleting), and a linked file or ``checkpoint`` loses the link, not
    what it points to."""
    _refuse_links(directory)
    for name in (results.EVAL_FILE, results.PROGRESS_FILE, results.ERROR_FILE):
        path = directory / name
        if path.is_symlink() or not path.is_dir():  # a folder of that name is no file of the suite's
            path.unlink(missing_ok=True)
    files.remove_dir(directory / results.CHECKPOINT_DIR)


def _save_checkpoint(algo: Algorithm, directory: Path, iteration: int, wall_seconds: float) -> None:
    def fill(tmp: Path) -> None:
        algo.save(tmp)
        files.atomic_write_json(tmp / "meta.json", {"iteration": iteration, "wall_seconds": wall_seconds})
        sign(tmp, ignore=(files.COMPLETE_MARKER,))  # last: every file the resume reads is covered
    files.atomic_replace_dir(directory / results.CHECKPOINT_DIR, fill)


#: Learner statistics that must stay finite: NaN or inf there means the weights are gone.
_LOSS_COLUMNS = ("policy_loss", "vf_loss", "entropy")


def _check_finite(row: dict[str, Any], episodes_before: int) -> None:
    """Stop a run whose training diverged or whose env produced non-finite returns."""
    bad = [c for c in _LOSS_COLUMNS if c in row and not np.isfinite(row[c])]
    if bad:
        raise RunFailed(f"{results.DIVERGED} at iteration {row['iteration']}: {', '.join(bad)} "
                        f"{'is' if len(bad) == 1 else 'are'} {row[bad[0]]}; lower the learning rate (lr) or the "
                        "reward scale")
    if row["episodes"] > episodes_before and not np.isfinite(row["episode_return_mean"]):
        raise RunFailed(f"the env returned non-finite rewards at iteration {row['iteration']} "
                        f"(mean episode return {row['episode_return_mean']}); check its config")


def _play(request: RunRequest, policy: Policy, corruption: MaskCorruption | None = None) -> list[dict[str, Any]]:
    """One record per evaluation episode of ``policy`` (episode i on env seed ``request.eval_seed_base + i``), the
    policy seeing its mask through ``corruption`` if given."""
    rng = np.random.default_rng(derived_seed(request.seed, "eval"))
    return evaluate(request.env, request.env_config, policy, episodes=request.episodes,
                    seed_base=request.eval_seed_base, rng=rng, corruption=corruption)


def _corrupted_mask_rows(request: RunRequest, algo: Algorithm) -> list[dict[str, Any]]:
    """The evaluations under corrupted masks (``request.eval_mask_noise``): every policy that reads the mask
    (mask ``on`` of an algo that observes it, discrete envs), each corruption kind at each probability above
    0; the clean rows (``mask_noise`` ``none``, ``mask_noise_p`` 0) are the usual ones."""
    core = envs.make_core(request.env, 1, **request.env_config)
    if not request.eval_mask_noise or not core.discrete or not getattr(load_algo(request.algo), "observes_mask",
                                                                         False):
        return []
    rows = []
    for (policy_name, mask), policy in algo.eval_policies().items():
        if mask != "on":
            continue
        for kind in MASK_NOISE_KINDS:
            for p in (p for p in request.eval_mask_noise if p > 0):
                rng = np.random.default_rng(derived_seed(request.seed, f"mask-noise-{kind}-{p}"))
                corruption = MaskCorruption(kind, p, [int(n) for n in core.nvec], rng)
                rows += [{"policy": policy_name, "mask": mask, "mask_noise": kind, "mask_noise_p": p, **record}
                         for record in _play(request, policy, corruption)]
    return rows


def _progress_evaluation(request: RunRequest, algo: Algorithm) -> dict[str, float]:
    """``eval_*`` columns of a progress row: the headline policy's means on the evaluation seeds."""
    policy = next(iter(algo.eval_policies().values()))
    frame = pd.DataFrame(_play(request, policy))
    metrics = [c for c in frame.columns if c not in ("episode", "env_seed", "agent", "length", "invalid_steps")]
    return {f"eval_{c}_mean": float(frame[c].mean()) for c in metrics}


def execute(request: RunRequest, *, overwrite: bool = False, resume: bool = False, checkpoint_every: int = 10,
            quiet: bool = False, eval_every: int = 0, trust: bool = False) -> pd.DataFrame:
    """Train, checkpoint and evaluate one run; write its files; return the evaluation frame.

    ``overwrite``: replace a run already in the folder; ``resume``: continue it from its last checkpoint
    (a complete run is left as it is; a checkpoint this user did not write is refused unless ``trust``,
    see :mod:`suite.trust`). The folder is locked while the run writes it (a second writer
    gets a one-line ``UsageError``). A run that diverges raises :class:`RunFailed`; every failure
    leaves ``error.txt`` and a resumable folder.
    """
    directory = request.directory
    prepare_directory(request, overwrite=overwrite, resume=resume, trust=trust)  # cheap checks before anything starts
    lock = files.RunLock(directory, request.command or "")
    try:
        lock.refuse_if_held()  # before the seconds an algo takes to build; the lock below decides
    except files.FolderLocked as error:
        raise UsageError(str(error)) from None
    entry = load_algo(request.algo)
    algo_config = build_config(entry.Config, request.algo_config, owner=f"algo {request.algo!r}")
    try:
        algo = entry.implementation(algo_config)(request.env, request.env_config, algo_config, request.seed,
                                                 address=request.address, budget=request.steps)  # before writing
    except EnvFailure as error:
        raise RunFailed(str(error)) from error
    try:
        with lock:
            state = prepare_directory(request, overwrite=overwrite, resume=resume, recover=True, trust=trust)  # alone
            if state == COMPLETE:
                return pd.read_csv(directory / results.EVAL_FILE)
            files.clean_leftovers(directory)
            return _train_and_evaluate(request, algo, lock, state == RESUME, checkpoint_every, quiet, eval_every)
    except files.FolderLocked as error:
        raise UsageError(str(error)) from None
    finally:
        algo.close()


def _train_and_evaluate(request: RunRequest, algo: Algorithm, lock: files.RunLock, resume: bool,
                        checkpoint_every: int, quiet: bool, eval_every: int) -> pd.DataFrame:
    directory = request.directory
    if not resume:
        _clear_previous_run(directory)
    record = request.record()
    if resume:  # keep the original record; a resumed run may only extend its budgets, and runs where it runs now
        previous = _previous_record(directory)
        record = {**previous, "steps": request.steps, "episodes": request.episodes,
                  "ray_address": record["ray_address"], "ray_node_id": record["ray_node_id"],
                  "eval_seeds": record["eval_seeds"], "resumed": [*previous.get("resumed", []), record["started"]]}
    try:
        files.atomic_write_json(directory / results.CONFIG_FILE, record)
        (directory / results.ERROR_FILE).unlink(missing_ok=True)  # a failed run started again is not failed
        rows: list[dict[str, Any]] = []
        wall_before = 0.0
        if resume:
            meta = json.loads((directory / results.CHECKPOINT_DIR / "meta.json").read_text())
            algo.restore(directory / results.CHECKPOINT_DIR)
            wall_before = meta["wall_seconds"]
            if meta["iteration"] > 0:
                rows = pd.read_csv(directory / results.PROGRESS_FILE).head(meta["iteration"]).to_dict("records")
        env_steps = int(rows[-1]["env_steps"]) if rows else 0
        started = time.perf_counter() - wall_before
        last_saved = len(rows)
        with tqdm(total=request.steps, initial=min(env_steps, request.steps), unit="step", unit_scale=True,
                  desc=f"{request.algo} on {request.env}", disable=True if quiet else None, leave=False) as bar:
            while env_steps < request.steps:
                episodes_before = int(rows[-1]["episodes"]) if rows else 0
                row = algo.train_iteration()
                row = {"iteration": len(rows) + 1, "wall_seconds": time.perf_counter() - started, **row}
                _check_finite(row, episodes_before)
                if eval_every and row["iteration"] % eval_every == 0:
                    paused = time.perf_counter()
                    row.update(_progress_evaluation(request, algo))
                    started += time.perf_counter() - paused  # wall_seconds counts training, not evaluation
                rows.append(row)
                files.atomic_write_csv(directory / results.PROGRESS_FILE,
                                       results.ordered(rows, results.PROGRESS_COLUMNS))
                lock.touch()
                bar.update(min(int(row["env_steps"]), request.steps) - min(env_steps, request.steps))
                bar.set_postfix(ret=f"{row['episode_return_mean']:.4g}")
                env_steps = int(row["env_steps"])
                if len(rows) - last_saved >= checkpoint_every or env_steps >= request.steps:
                    _save_checkpoint(algo, directory, len(rows), row["wall_seconds"])
                    last_saved = len(rows)
        if not rows:  # resumed a run whose training was already done: keep its progress file
            rows = pd.read_csv(directory / results.PROGRESS_FILE).to_dict("records")

        eval_rows = [{"policy": policy_name, "mask": mask, **record}
                     for (policy_name, mask), policy in algo.eval_policies().items()
                     for record in _play(request, policy)]
        corrupted = _corrupted_mask_rows(request, algo)
        if corrupted:
            eval_rows = [{**row, "mask_noise": "none", "mask_noise_p": 0.0} for row in eval_rows] + corrupted
        frame = results.ordered(eval_rows, results.EVAL_COLUMNS)
        files.atomic_write_csv(directory / results.EVAL_FILE, frame)
    except Exception as error:
        # The run stays resumable from its last checkpoint; results.load reports it as failed.
        files.atomic_write_text(directory / results.ERROR_FILE, traceback.format_exc())
        if isinstance(error, EnvFailure):
            raise RunFailed(str(error)) from error
        raise
    if not quiet:
        print(summary(request, pd.DataFrame(rows), frame))
    return frame


def summary(request: RunRequest, progress: pd.DataFrame, evaluation: pd.DataFrame) -> str:
    """What a person reads at the end of a run: a headline, one table row per evaluated policy and mask
    (mean return with its 95% CI, each env metric's final value, the share of episodes with an
    inadmissible action), the training's invalid-action rate and where the files are."""
    core_cls = envs.spec(request.env).load()
    agents = int(request.env_config.get("n_agents", 1))
    header = ["policy", "mask", f"return{' per agent' if agents > 1 else ''} (95% CI)",
              *[f"final {metric.replace('_', ' ')}" for metric in core_cls.episode_metrics],
              "episodes with inadmissible"]
    table = []
    for (policy, mask), group in results.clean_evals(evaluation).groupby(["policy", "mask"], sort=False):
        mean, low, high = mean_ci(group["return"])
        ci = f" ({low:,.4g} to {high:,.4g})" if np.isfinite(low) else ""
        table.append([policy, mask, f"{mean:,.4g}{ci}",
                      *[f"{group[metric].mean():,.2f}" for metric in core_cls.episode_metrics],
                      f"{100 * (group['invalid_steps'] > 0).mean():.1f}%"])
    widths = [max(len(str(row[i])) for row in [header, *table]) for i in range(len(header))]
    lines = ["  " + "  ".join(str(cell).ljust(width) for cell, width in zip(row, widths)).rstrip()
             for row in [header, *table]]
    weights = progress["env_steps"].diff().fillna(progress["env_steps"])
    train_invalid = float((progress["invalid_action_rate"] * weights).sum() / weights.sum())
    files = ", ".join([results.CONFIG_FILE, results.PROGRESS_FILE, results.EVAL_FILE])
    return "\n".join([
        f"{request.algo} on {request.env}{f' ({agents} agents)' if agents > 1 else ''}, seed {request.seed}: "
        f"{int(progress['env_steps'].iloc[-1]):,} training env steps, {request.episodes} evaluation episodes per "
        f"policy and mask",
        *lines,
        f"  inadmissible in training: {100 * train_invalid:.2f}% of {'agent' if agents > 1 else 'env'} steps",
        f"  files: {request.directory}/{{{files}}}"])
