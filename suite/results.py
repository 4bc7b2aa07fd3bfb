"""The results files of a run: where they are, what they hold, and loading them back.

One run = (env, algo, config, seed), in its own folder: ``<out>/<env>/<algo>/seed<k>/`` when the
env and algo configs are their defaults, else ``<out>/<env>/<algo>/<variant>/seed<k>/`` where
``<variant>`` names what differs from the defaults (:func:`variant_label`, e.g. ``backend=torch`` or
``n_agents=3,penalty=0.5``), so runs that differ in backend or config never share a folder:

- ``config.json``: everything needed to repeat the run (names, configs, seed, budgets, library
  versions, command line).
- ``progress.csv``: one row per training iteration (:data:`PROGRESS_COLUMNS` first, then
  algo-specific columns).
- ``eval.csv``: one row per evaluation episode and evaluated policy (:data:`EVAL_COLUMNS` first,
  then the env's episode metrics). Written last: a run is complete when it exists.
- ``checkpoint/``: what ``--resume`` continues from.
- ``error.txt``: written when the run failed with an error (the traceback); removed when it is
  started again.
- ``.lock``: while a run writes the folder (:class:`suite.files.RunLock`).

:func:`load` reads a whole results folder back as tidy pandas frames, flagging unfinished,
failed and corrupt runs instead of mixing them in (loading is separate from logging, as in bsuite).

Every file is written atomically (:mod:`suite.files`), so a crash never leaves a half-written file
and never destroys the previous version.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

import envs
from baselines.algorithm import EVAL_SEED_BASE
from envs.config import ConfigError
from suite.files import lock_state

__all__ = ["PROGRESS_COLUMNS", "EVAL_COLUMNS", "RUN_COLUMNS", "RUN_STATUSES", "Results", "load", "run_dir",
           "variant_label", "ordered", "is_complete", "config_id",
           "eval_seed_base", "with_added_settings", "clean_evals", "MASK_NOISE",
           "MASK_NOISE_P"]

PROGRESS_COLUMNS = ["iteration", "env_steps", "episodes", "wall_seconds", "episode_return_mean",
                    "episode_return_min", "episode_return_max", "invalid_action_rate"]
#: With several agents, eval.csv has one row per episode and agent, with ``agent`` after ``mask``.
EVAL_COLUMNS = ["episode", "env_seed", "policy", "mask", "agent", "return", "length", "invalid_steps",
                "invalid_actions"]

CONFIG_FILE, PROGRESS_FILE, EVAL_FILE, CHECKPOINT_DIR = "config.json", "progress.csv", "eval.csv", "checkpoint"
#: eval.csv columns of the corrupted-mask evaluations (``--eval-mask-noise``): the corruption and its probability.
MASK_NOISE, MASK_NOISE_P = "mask_noise", "mask_noise_p"


def clean_evals(evals: pd.DataFrame) -> pd.DataFrame:
    """The evaluation rows with the true mask: all of them, but the corrupted-mask evaluations'."""
    if MASK_NOISE not in evals:
        return evals
    return evals[evals[MASK_NOISE].isna() | (evals[MASK_NOISE] == "none")]
ERROR_FILE = "error.txt"
#: Columns identifying a run in every frame :func:`load` returns.
RUN_COLUMNS = ["env", "algo", "seed", "status", "config_id", "run"]
#: ``complete``: eval.csv written; ``unfinished``: interrupted or still running (resumable);
#: ``failed``: stopped by an error (error.txt); ``corrupt``: a file is missing, unreadable or truncated.
RUN_STATUSES = ("complete", "unfinished", "failed", "corrupt")
#: What the error line of a run stopped for non-finite losses says (:mod:`suite.runner` writes it): an outcome of
#: the method and its setting, not of the machine. :mod:`suite.tuning` ranks such a trial last; :mod:`suite.report`
#: counts such a run beside its method's finished seeds. A run that failed any other way is neither.
DIVERGED = "training diverged"


def diverged(runs: pd.DataFrame) -> pd.Series:
    """Which of :attr:`Results.runs` stopped because their training diverged (:data:`DIVERGED`)."""
    return (runs["status"] == "failed") & runs["problem"].str.contains(DIVERGED, regex=False)


#: The longest readable variant folder name; longer ones are a hash of what differs.
_MAX_LABEL = 100


def _label_value(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return "-".join(_label_value(item) for item in value)
    return re.sub(r"[^A-Za-z0-9_.+-]", "_", str(value))


def variant_label(differences: dict[str, Any]) -> str:
    """The folder name of a run whose configs differ from the defaults by ``differences`` (key -> value):
    ``key=value`` pairs in key order, or ``config-<hash>`` when that would be long; ``""`` for none."""
    if not differences:
        return ""
    label = ",".join(f"{key}={_label_value(value)}" for key, value in sorted(differences.items()))
    if len(label) <= _MAX_LABEL:
        return label
    digest = hashlib.sha1(json.dumps(differences, sort_keys=True, default=str).encode()).hexdigest()[:10]
    return f"config-{digest}"


def _is_variant(name: str) -> bool:
    return "=" in name or name.startswith("config-")


def run_dir(out: str | Path, env: str, algo: str, seed: int, variant: str = "") -> Path:
    """The folder of one run (``variant``: :func:`variant_label` of its non-default config)."""
    base = Path(out) / env / algo
    return (base / variant if variant else base) / f"seed{seed}"


def is_complete(directory: Path) -> bool:
    return (directory / EVAL_FILE).is_file()


def ordered(rows: list[dict[str, Any]], leading: list[str]) -> pd.DataFrame:
    """Rows as a frame with the ``leading`` columns first (in order), the rest after in first-seen order."""
    frame = pd.DataFrame(rows)
    rest = [c for c in frame.columns if c not in leading]
    return frame.reindex(columns=[c for c in leading if c in frame.columns] + rest)


# --------------------------------------------------------------------------------------------
# Loading


@dataclass(frozen=True)
class Results:
    """A results folder as tidy frames (see :func:`load`).

    Attributes:
        runs: one row per run: :data:`RUN_COLUMNS`, ``problem`` (why it is not complete, or ""),
            ``steps`` (budget), ``env_steps`` (done), ``iterations``, ``wall_seconds``,
            ``episodes`` (evaluation episodes asked for), ``env_version``, ``started``, then the run's config as
            ``env.<key>`` and ``algo.<key>`` columns.
        progress: every ``progress.csv`` row of every run, :data:`RUN_COLUMNS` first.
        evals: every ``eval.csv`` row of the complete runs, :data:`RUN_COLUMNS` first.
        problems: one line per run that is not complete or not clean, saying what is wrong.
    """

    runs: pd.DataFrame
    progress: pd.DataFrame
    evals: pd.DataFrame
    problems: tuple[str, ...]

    def complete(self) -> Results:
        """Only the complete runs (what summaries should average)."""
        keep = set(self.runs.loc[self.runs["status"] == "complete", "run"])
        return Results(self.runs[self.runs["run"].isin(keep)], self.progress[self.progress["run"].isin(keep)],
                       self.evals[self.evals["run"].isin(keep)], self.problems)


#: What makes runs comparable (their seeds aside): two runs that differ in any of these are never averaged.
COMPARABLE_KEYS = ("env", "env_version", "env_config", "algo", "algo_config", "steps", "episodes")


#: Settings of the learning methods' configs added after runs had been recorded without them, and what such a
#: run did: a config.json from before one existed reads as if it named it (:func:`with_added_settings`), so
#: that a run's identity (resume, :func:`config_id`) says what it ran. ``rllib_learner`` (issue 20): RLlib runs
#: made RLlib's PPO updates bit for bit, the ``exact`` learner; on other backends it has no effect. ``network``
#: (issue 35): every run before it had the MLP. ``settings`` (issue 36): no tuned settings file.
ADDED_SETTINGS = {"rllib_learner": lambda config: "exact" if config.get("backend") == "rllib" else "fast",
                  "network": lambda config: "mlp", "settings": lambda config: ""}
#: Settings that left the configs of some methods (issue 33): the RLlib backend's own
#: (:class:`baselines.settings.RLlibSettings`), now only in the configs of methods that may train on RLlib. In a
#: method that never did they had no effect (its backends refused remote runners and ignored the learner), so
#: a config.json that names them reads without them: the same run, resumable, with the same identity as a rerun.
MOVED_SETTINGS = ("num_env_runners", "rllib_learner")


def _config_fields(algo: Any) -> set[str] | None:
    """The fields of ``algo``'s config today, for a learning method (None: an algo the registry does not know)."""
    import dataclasses

    from baselines.registry import load_algo

    try:
        entry = load_algo(algo) if isinstance(algo, str) else None
    except ConfigError:
        return None
    config = getattr(entry, "Config", None)
    return {f.name for f in dataclasses.fields(config)} if dataclasses.is_dataclass(config) else None


def _core_class(record: dict[str, Any]) -> Any:
    """The env core class of a recorded run, None where its env is not registered here."""
    try:
        return envs.spec(str(record.get("env"))).load()
    except (ConfigError, TypeError, ImportError):
        return None


def _invalid_action_then(record: dict[str, Any]) -> str | None:
    """What a run recorded before the env setting ``invalid_action`` existed (issue 35) executed for an inadmissible
    action: its env's default, which is the fallback every env had then (portfolio and sum_to_zero ``noop``,
    speed_limit and job_shop ``repair``). A default changed later must bump the env's version (it changes
    results) and be told apart here by ``env_version``. None where the env is not registered here."""
    core_cls = _core_class(record)
    return None if core_cls is None else core_cls.invalid_action_default


def _default_then(key: str):
    """What a run recorded before the env setting ``key`` existed did, for a setting added with the behaviour every
    earlier run had as its default: ``placement`` (issue 34: ``semi_active``, the only placement job_shop v0 had),
    ``observed_safe_speed`` (issue 35: ``road``, speed_limit v0's observation) and ``job_features`` (issue 35:
    off, job_shop v0's observation). None for every env without that setting (left out)."""
    def value_then(record: dict[str, Any]) -> Any:
        fields = getattr(getattr(_core_class(record), "Config", None), "__dataclass_fields__", {})
        return fields[key].default if key in fields else None
    return value_then


#: Env settings added after runs had been recorded without them, and what such a run did (as
#: :data:`ADDED_SETTINGS`, for ``env_config``; the value None: unknown or not a setting of that env, left out).
ADDED_ENV_SETTINGS = {"invalid_action": _invalid_action_then, "placement": _default_then("placement"),
                      "observed_safe_speed": _default_then("observed_safe_speed"),
                      "job_features": _default_then("job_features")}


def with_added_settings(record: dict[str, Any]) -> dict[str, Any]:
    """``record`` (a config.json) with its env config completed by :data:`ADDED_ENV_SETTINGS`, and its learning
    method's config as it reads today: completed by :data:`ADDED_SETTINGS`, without the :data:`MOVED_SETTINGS`
    its method no longer has."""
    env_config = record.get("env_config")
    if isinstance(env_config, dict) and "strict" in env_config:  # a config of the registry's common options
        missing = {key: value_then(record) for key, value_then in ADDED_ENV_SETTINGS.items() if key not in env_config}
        missing = {key: value for key, value in missing.items() if value is not None}
        if missing:
            record = {**record, "env_config": {**env_config, **missing}}
    config = record.get("algo_config")
    if not isinstance(config, dict) or "backend" not in config:
        return record
    fields = _config_fields(record.get("algo"))
    missing = {key: value_then(config) for key, value_then in ADDED_SETTINGS.items()
               if key not in config and (fields is None or key in fields)}
    moved = {key for key in MOVED_SETTINGS if key in config and fields is not None and key not in fields}
    if not missing and not moved:
        return record
    return {**record, "algo_config": {**{k: v for k, v in config.items() if k not in moved}, **missing}}


def eval_seed_base(record: dict[str, Any]) -> int:
    """The env seed of a run's first evaluation episode (its ``eval_seeds``; every run before the setting existed
    evaluated from ``baselines.EVAL_SEED_BASE``)."""
    seeds = record.get("eval_seeds")
    return int(seeds[0]) if isinstance(seeds, list) and seeds and isinstance(seeds[0], int) else EVAL_SEED_BASE


def config_id(record: dict[str, Any]) -> str:
    """A short hash of what makes runs comparable (:data:`COMPARABLE_KEYS`): env, its version and config,
    algo config, budget and evaluation episodes, and the evaluation seeds where they are not the default (a
    tuning study's: runs scored on other episodes are not averaged together; every other run's id is what it
    was before the setting existed)."""
    identity = {k: record.get(k) for k in COMPARABLE_KEYS}
    if eval_seed_base(record) != EVAL_SEED_BASE:
        identity["eval_seed_base"] = eval_seed_base(record)
    return hashlib.sha1(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()[:8]


#: Columns that must be numbers, per file (where present).
_NUMERIC = {PROGRESS_FILE: ("iteration", "env_steps", "episodes", "wall_seconds", "invalid_action_rate"),
            EVAL_FILE: ("episode", "return", "length", "invalid_steps", "invalid_actions")}


def _read_csv(path: Path, required: list[str], problems: list[str]) -> pd.DataFrame | None:
    """A results CSV, or None with a problem recorded. Rows cut short (NaN in a required column) are dropped
    and reported; a file that does not end its last row, or holds text where numbers belong, is reported."""
    try:
        raw = path.read_bytes()
        frame = pd.read_csv(path)
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError, OSError) as error:
        problems.append(f"{path.name} is unreadable ({type(error).__name__}: {str(error).splitlines()[0]})")
        return None
    missing = [c for c in required if c not in frame.columns]
    if missing:
        problems.append(f"{path.name} lacks column(s) {', '.join(missing)}")
        return None
    if raw and not raw.endswith(b"\n"):
        problems.append(f"{path.name} was cut mid-row (its last line is unfinished)")
    for column in _NUMERIC.get(path.name, ()):
        if column in frame and not pd.api.types.is_numeric_dtype(frame[column]):
            numbers = pd.to_numeric(frame[column], errors="coerce")
            text = int((numbers.isna() & frame[column].notna()).sum())
            if text:
                problems.append(f"{path.name} has text in its numeric column {column!r} ({text} row(s))")
            frame[column] = numbers
    cut = frame[required].isna().any(axis=1)
    if cut.any():
        problems.append(f"{path.name} has {int(cut.sum())} truncated row(s)")
        frame = frame[~cut]
    return frame


def _record_problem(record: Any) -> str | None:
    """What makes a config.json unusable, or None."""
    if not isinstance(record, dict) or not {"env", "algo", "seed"} <= record.keys():
        return "it lacks env, algo or seed"
    if not isinstance(record["env"], str) or not isinstance(record["algo"], str):
        return "its env and algo are not names"
    if isinstance(record["seed"], bool) or not isinstance(record["seed"], int):
        return f"its seed is not an integer ({record['seed']!r})"
    for key in ("steps", "episodes"):
        value = record.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            return f"its {key} is not a positive integer ({value!r})"
    return None


def _consistency(record: dict[str, Any], progress: pd.DataFrame | None, evals: pd.DataFrame) -> list[str]:
    """What a complete run's files say against each other (two writers mixed, a file cut short)."""
    problems = []
    if progress is None or progress.empty:
        return [f"{PROGRESS_FILE} has no rows though {EVAL_FILE} exists"]
    if progress["iteration"].tolist() != list(range(1, len(progress) + 1)):
        problems.append(f"{PROGRESS_FILE}'s iterations are not 1..{len(progress)}")
    steps = record.get("steps")
    if isinstance(steps, int) and progress["env_steps"].iloc[-1] < steps:
        problems.append(f"{PROGRESS_FILE} stops at {int(progress['env_steps'].iloc[-1]):,} of the "
                        f"{steps:,} env steps {CONFIG_FILE} asks for")
    episodes = record.get("episodes")
    keys = [c for c in ("policy", "mask", "agent", MASK_NOISE, MASK_NOISE_P) if c in evals and evals[c].notna().any()]
    per_policy = evals.groupby(keys, dropna=False).size() if keys else pd.Series([len(evals)])
    if isinstance(episodes, int) and not (per_policy == episodes).all():
        problems.append(f"the files disagree: {EVAL_FILE} has {sorted(set(per_policy.tolist()))} episode(s) per "
                        f"policy, {CONFIG_FILE} asks for {episodes}")
    return problems


def _seed_of(directory: Path) -> int:
    return int(directory.name[4:])


def _current_algo_name(algo: str, env: str) -> str:
    """The name the run's algo has today: runs recorded as ``oracle`` on a built-in env read as what that
    policy is there (``relaxed_heuristic``, ``clairvoyant_dp``, ``clairvoyant_demand``)."""
    from baselines.references import current_name

    try:
        family = envs.spec(env).family
    except ConfigError:  # a user's env not imported here keeps its names
        return algo
    return current_name(algo, family)


def _links_out(directory: Path, root: Path) -> list[str]:
    """The run files of ``directory`` that are symbolic links leading out of the results folder ``root``: never
    read (a received folder's ``error.txt -> ~/.git-credentials`` would copy the user's own file into the report)."""
    names = (CONFIG_FILE, PROGRESS_FILE, EVAL_FILE, ERROR_FILE)
    return [name for name in names if (directory / name).is_symlink()
            and not (directory / name).resolve().is_relative_to(root.resolve())]


def _load_run(directory: Path, root: Path) -> tuple[dict[str, Any], pd.DataFrame | None, pd.DataFrame | None]:
    """One run folder: its ``runs`` row, progress and evaluation frames. Only regular files inside ``root`` are
    read (:func:`_links_out`; a FIFO or a device would never end)."""
    problems: list[str] = []
    links_out = _links_out(directory, root)

    def readable(name: str) -> bool:
        return name not in links_out and (directory / name).is_file()

    try:
        if not readable(CONFIG_FILE):
            raise ValueError("a link out of the results folder" if CONFIG_FILE in links_out else "not a regular file")
        record = json.loads((directory / CONFIG_FILE).read_text())
        problem = _record_problem(record)
        if problem:
            raise ValueError(problem)
        record = with_added_settings(record)
        record = {**record, "algo": _current_algo_name(record["algo"], record["env"])}
    except (OSError, ValueError) as error:
        problems.append(f"{CONFIG_FILE} is unreadable ({str(error).splitlines()[0]})")
        algo_dir = directory.parent.parent if _is_variant(directory.parent.name) else directory.parent
        record = {"env": algo_dir.parent.name, "algo": algo_dir.name, "seed": _seed_of(directory)}
    problems += [f"{name} is a link out of the results folder (not read)" for name in links_out
                 if name != CONFIG_FILE]
    progress = _read_csv(directory / PROGRESS_FILE, ["iteration", "env_steps"], problems) \
        if readable(PROGRESS_FILE) else None
    evals = _read_csv(directory / EVAL_FILE, ["episode", "policy", "mask", "return"], problems) \
        if readable(EVAL_FILE) else None
    if evals is not None and not problems:
        problems += _consistency(record, progress, evals)
    if problems:
        status = "corrupt"
    elif readable(ERROR_FILE):
        lines = (directory / ERROR_FILE).read_text(errors="replace").strip().splitlines() or ["(empty error.txt)"]
        status, problems = "failed", [f"failed: {lines[-1]}"]
    elif evals is not None:
        status = "complete"
    else:
        status = "unfinished"
        done = int(progress["env_steps"].iloc[-1]) if progress is not None and len(progress) else 0
        writing = {"held": " (being written now)", "stale": " (interrupted)"}.get(lock_state(directory), "")
        problems = [f"unfinished{writing}: {done:,} of {int(record.get('steps') or 0):,} env steps, no {EVAL_FILE}"]
    has_rows = progress is not None and len(progress)
    run = {"env": record["env"], "algo": record["algo"], "seed": int(record["seed"]), "status": status,
           "config_id": config_id(record), "run": directory.relative_to(root).as_posix(),
           "problem": "; ".join(problems), "steps": record.get("steps"),
           "env_steps": int(progress["env_steps"].iloc[-1]) if has_rows else 0,
           "iterations": len(progress) if progress is not None else 0,
           "wall_seconds": float(progress["wall_seconds"].iloc[-1])
           if has_rows and "wall_seconds" in progress else float("nan"),
           "episodes": record.get("episodes"), "env_version": record.get("env_version"),
           "eval_seed_base": eval_seed_base(record),
           "started": record.get("started")}
    for prefix in ("env", "algo"):
        config = record.get(f"{prefix}_config")
        for key, value in (config if isinstance(config, dict) else {}).items():
            run[f"{prefix}.{key}"] = ",".join(map(str, value)) if isinstance(value, list) else value
    return run, progress, evals


def _with_run_columns(frame: pd.DataFrame, run: dict[str, Any]) -> pd.DataFrame:
    return pd.concat([pd.DataFrame({c: [run[c]] * len(frame) for c in RUN_COLUMNS}, index=frame.index), frame], axis=1)


def load(path: str | Path = "results") -> Results:
    """Every run under ``path`` (any depth: ``<out>/<env>/<algo>/seed<k>/``) as tidy frames.

    A run is a ``seed<k>`` folder with a ``config.json``, ``progress.csv`` or ``eval.csv``.
    Nothing is averaged here: each run carries its ``status`` (:data:`RUN_STATUSES`) and a
    ``problem`` line, evaluations come only from complete runs, and a damaged file never stops the
    other runs from loading. ``config_id`` tells runs of the same config apart from runs that only
    share env and algo names. In a notebook::

        from suite import results
        res = results.load("results")
        res.runs[["env", "algo", "seed", "status", "problem"]]
        res.evals.groupby(["env", "algo", "policy", "mask"])["return"].mean()
        res.progress.query("algo == 'masked_ppo'").plot(x="env_steps", y="episode_return_mean")

    Raises:
        FileNotFoundError: ``path`` does not exist or holds no run (one line saying which).
    """
    root = Path(path)
    if not root.is_dir():
        raise FileNotFoundError(f"results folder {str(root)!r} does not exist")
    folders = sorted({p.parent for name in (CONFIG_FILE, PROGRESS_FILE, EVAL_FILE) for p in root.rglob(name)
                      if re.fullmatch(r"seed\d+", p.parent.name) and CHECKPOINT_DIR not in p.parent.parts})
    if not folders:
        raise FileNotFoundError(f"no runs under {str(root)!r}: expected <env>/<algo>/seed<k>/ folders written by "
                                "python -m suite.run")
    runs, progress, evals, problems = [], [], [], []
    for directory in folders:
        run, run_progress, run_evals = _load_run(directory, root)
        runs.append(run)
        if run["problem"]:
            problems.append(f"{run['run']}: {run['problem']}")
        if run_progress is not None:
            progress.append(_with_run_columns(run_progress, run))
        if run_evals is not None and run["status"] == "complete":
            evals.append(_with_run_columns(run_evals, run))
    empty = pd.DataFrame(columns=RUN_COLUMNS)
    return Results(pd.DataFrame(runs), pd.concat(progress, ignore_index=True) if progress else empty,
                   pd.concat(evals, ignore_index=True) if evals else empty, tuple(problems))
