"""``python -m suite.tuning RESULTS --name NAME``: choose each method's settings per task from a tuning study's
runs, and write them as a tuned settings file (:mod:`baselines.tuned_settings`).

A tuning study is a study (:mod:`suite.study`) whose groups have ``search = { trials = N, seed = S }``: each
(env, algo) of such a group runs ``N`` configs drawn from the method's search space
(:mod:`baselines.search_spaces`, :func:`trial_configs`) on the study's tuning seeds, evaluated on episodes of
its own (``eval_seed_base``), so that a reference set run on other seeds and the default evaluation episodes
is scored on nothing the choice saw. Every (method, task) gets the same trials and env steps per trial.

This command reads the study's complete runs and, per task (env and env config) and method, scores each trial
config by the mean over its seeds of the headline policy's mean evaluation return, and chooses the best. A run
stopped because its training diverged (non-finite losses: :data:`suite.results.DIVERGED`) is an outcome of its
setting, not a missing run: its trial counts, is marked diverged and ranks below every trial whose seeds all
finished, so a method whose search meets unstable settings keeps its number of trials. A run that failed in any
other way (or is unfinished) is missing: finish it. It
refuses (one line) a study whose (method, task) pairs had different numbers of complete trials, seeds or budgets
unless ``--partial``, which writes what there is and says so in the file; and, always, trials evaluated on the
default evaluation episodes (the reported runs') and a method tuned on one env under two env configs (a file has
one entry per method and env). It writes:

- the settings file (``--out``, default ``baselines/tuned/NAME.toml``): per (method, env) the searched keys of
  the chosen config, the settings it was tuned with (``tuned_with``: network, backend), the trials, steps per
  trial, tuning seeds and the chosen score, under the study's name,
  the commit(s) its runs were made at and the time;
- ``trials.csv`` and ``tuning.md`` in the results folder: every trial's settings, per-seed returns and rank.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

import envs
from baselines import EVAL_SEED_BASE, load_algo, tuned_settings
from baselines.method import Method
from baselines.search_spaces import at_edge, sample_trials, search_space, searched_keys
from baselines.tuned_settings import NAME_PATTERN, TRAINING_TASK_KEYS, tuned_toml
from envs.config import ConfigError
from suite import files, report, results
from suite.cli import Parser, UsageError, folder, markdown_table, markdown_text, run_cli

__all__ = ["trial_configs", "trial_table", "chosen_settings", "main"]

#: Settings a study group fixes that change what the tuned values mean (a width tuned for the per-entry network
#: is not one for the MLP): recorded per entry, and a run using the entry must have the same.
TUNED_WITH = ("network", "backend")


def trial_configs(env: str, algo: str, algo_config: Mapping[str, Any], env_config: Mapping[str, Any],
                  trials: int, seed: int) -> list[dict[str, Any]]:
    """The ``trials`` algo configs a tuning group runs for ``algo`` on ``env``: each the group's ``algo_config``
    with the searched keys drawn around the config the run would otherwise have. One-line ``ConfigError`` for
    an algo that is not a learning method (a reference has nothing to tune)."""
    entry = load_algo(algo)
    if not isinstance(entry, Method):
        raise ConfigError(f"search: {algo} is a reference policy, not a learning method; it has no settings to tune")
    base = dataclasses.asdict(entry.make_config(env, dict(algo_config), owner=f"algo {algo!r}"))
    space = _space(env, entry, base, env_config)
    return [{**dict(algo_config), **drawn} for drawn in sample_trials(algo, space, trials, seed)]


def _space(env: str, method: Method, base: Mapping[str, Any], env_config: Mapping[str, Any]) -> dict[str, Any]:
    """``method``'s search space on ``env`` around ``base`` (a config dict)."""
    discrete = _discrete(env, env_config)
    return search_space(method.name, base, discrete=discrete,
                        gaussian=not discrete and method.distribution == "gaussian")


def _discrete(env: str, env_config: Mapping[str, Any]) -> bool:
    return envs.make_core(env, 1, **dict(env_config)).discrete


def _record(root: Path, run: str) -> dict[str, Any]:
    """A run's config.json (the run folder relative to ``root``); {} when unreadable."""
    try:
        return json.loads((root / run / results.CONFIG_FILE).read_text())
    except (OSError, ValueError):
        return {}


def trial_table(loaded: results.Results, root: Path) -> pd.DataFrame:
    """One row per trial (task, algo, config) of a learning method: its searched settings (``settings``, JSON,
    read from its runs' config.json under ``root``), seeds, per-seed headline returns, their mean, the budget,
    the commits its runs were made at, and its rank within its (task, algo), 1 = chosen."""
    frames = [frame for frame in (report.run_scores(loaded), report.diverged_runs(loaded)) if len(frame)]
    if not frames:
        return pd.DataFrame()
    scores = pd.concat(frames)
    rows = []
    for (env, env_config, algo, cid), group in scores.groupby(["env", "env_config", "algo", "config_id"]):
        if not isinstance(load_algo(algo), Method):
            continue
        records = [_record(root, run) for run in group["run"]]
        config = records[0].get("algo_config", {})
        method = load_algo(algo)
        gaussian = not _discrete(env, records[0].get("env_config", {})) and method.distribution == "gaussian"
        searched = searched_keys({f.name for f in dataclasses.fields(method.Config)}, gaussian=gaussian)
        group = group.assign(seed=[int(r.get("seed", -1)) for r in records]).sort_values("seed")
        settings = {key: config[key] for key in searched if key in config}
        rows.append({"env": env, "env_config": env_config, "algo": algo, "config_id": cid,
                     "settings": json.dumps(settings, sort_keys=True),
                     "at_edge": "; ".join(_edges(env, method, config, records[0].get("env_config", {}), settings)),
                     "seeds": len(group), "seed_list": ",".join(str(s) for s in group["seed"]),
                     "returns": ",".join("diverged" if pd.isna(r) else f"{r:.6g}" for r in group["return"]),
                     "diverged": int(group["return"].isna().sum()),
                     "return_mean": float(group["return"].mean(skipna=False)),  # NaN: some seed diverged
                     "steps": int(min(int(r.get("steps", 0)) for r in records)),
                     "eval_seed_base": min(results.eval_seed_base(r) for r in records),
                     "tuned_with": json.dumps(_tuned_with(env, method, config), sort_keys=True),
                     "env_overrides": json.dumps(_env_overrides(env, records[0].get("env_config", {})),
                                                 sort_keys=True),
                     "env_version": ",".join(sorted({str(r.get("env_version")) for r in records})),
                     "commits": ",".join(sorted({str(r.get("git_commit")) for r in records}))})
    if not rows:
        return pd.DataFrame()
    table = pd.DataFrame(rows)
    table["rank"] = table.groupby(["env", "env_config", "algo"])["return_mean"].rank(
        ascending=False, method="first", na_option="bottom")
    return table.sort_values(["env", "env_config", "algo", "rank"]).reset_index(drop=True)


def _tuned_with(env: str, method: Method, config: Mapping[str, Any]) -> dict[str, Any]:
    """What a trial's choice holds only with: its :data:`TUNED_WITH` settings, and its training task's keys
    (:data:`baselines.tuned_settings.TRAINING_TASK_KEYS`) where they differ from the method's per-env default (a
    run using the entry is held to that default otherwise, so files and folder names stay as they were)."""
    fixed = {key: config[key] for key in TUNED_WITH if key in config}
    defaults = json.loads(json.dumps(dataclasses.asdict(method.make_config(env, {}, owner=f"algo {method.name!r}"))))
    return fixed | {key: config[key] for key in TRAINING_TASK_KEYS if key in config and config[key] != defaults[key]}


def _env_overrides(env: str, env_config: Mapping[str, Any]) -> dict[str, Any]:
    """The env settings a run changed from ``env``'s defaults (a setting added since it ran reads as its default)."""
    known = envs.config_dict(env, {})
    return envs.config_overrides(env, {key: value for key, value in env_config.items() if key in known})


def _edges(env: str, method: Method, config: Mapping[str, Any], env_config: Mapping[str, Any],
           settings: Mapping[str, Any]) -> list[str]:
    """The searched ``settings`` of a trial at an edge of its method's space on ``env``: the space drawn around
    the config the trial would otherwise have had (its :data:`TUNED_WITH` settings and the per-env defaults, as
    :func:`trial_configs` draws it). Empty where that space cannot be rebuilt (an env or method gone)."""
    try:
        fixed = {key: config[key] for key in TUNED_WITH if key in config}
        base = dataclasses.asdict(method.make_config(env, fixed, owner=f"algo {method.name!r}"))
        return at_edge(settings, _space(env, method, base, env_config))
    except (ConfigError, KeyError, TypeError, ValueError):
        return []


def _chosen_at_edge(table: pd.DataFrame) -> pd.DataFrame:
    """The chosen trials (rank 1) with a setting at an edge of the search space."""
    return table[(table["rank"] == 1) & (table["at_edge"] != "")]


def _refusals(table: pd.DataFrame) -> list[str]:
    """Why no settings file can be written from these trials, even a partial one."""
    problems = []
    tasks = table.drop_duplicates(["env", "env_config", "algo"]).groupby(["algo", "env"]).size()
    if (tasks > 1).any():
        algo, env = tasks[tasks > 1].index[0]
        problems.append(f"{algo} was tuned on {env} under {tasks[(algo, env)]} env configs; a settings file has one "
                        "entry per method and env: tune each env config in a study (and a file) of its own")
    for (algo, env), column in table.groupby(["algo", "env"])["env_version"]:
        versions = {version for joined in column for version in str(joined).split(",")}
        if not all(version.isdigit() for version in versions):
            problems.append(f"some trials of {algo} on {env} do not record their env's version (env_version in "
                            "config.json: runs made before it was recorded); an entry holds for one version of its "
                            "env: tune again")
            break
        if len(versions) > 1:
            problems.append(f"{algo} was tuned on {env} at env versions {', '.join(sorted(versions, key=int))}; an "
                            "entry holds for one version of its env: tune on one version (its runs' config.json say "
                            "which)")
            break
    for (env, _, algo), group in table.groupby(["env", "env_config", "algo"]):
        if group["return_mean"].isna().all():
            problems.append(f"every trial of {algo} on {env} diverged (a seed of each stopped with non-finite "
                            "losses): there is no setting to choose; widen or move its search space")
            break
    default = table[table["eval_seed_base"] == EVAL_SEED_BASE]
    if len(default):
        problems.append(f"{len(default)} trial(s) (e.g. {default['algo'].iloc[0]} on {default['env'].iloc[0]}) were "
                        f"evaluated on the default evaluation episodes (env seeds from {EVAL_SEED_BASE:,}), on which "
                        "reported runs are scored; a tuning study sets eval_seed_base (e.g. 2000000)")
    return problems


def _unequal(table: pd.DataFrame) -> list[str]:
    """Where the (method, task) pairs were not tuned alike: trials, seeds per trial or steps per trial."""
    shapes = table.groupby(["env", "env_config", "algo"]).agg(trials=("config_id", "size"), seeds=("seeds", "min"),
                                                               seeds_max=("seeds", "max"), steps=("steps", "min"))
    problems = []
    for column in ("trials", "seeds", "steps"):
        if shapes[column].nunique() > 1:
            low, high = shapes[column].idxmin(), shapes[column].idxmax()
            problems.append(f"{column} per (method, task) differ: {shapes.loc[low, column]} for {low[2]} on "
                            f"{low[0]}, {shapes.loc[high, column]} for {high[2]} on {high[0]}")
    if (shapes["seeds"] != shapes["seeds_max"]).any():
        pair = shapes.index[(shapes["seeds"] != shapes["seeds_max"]).argmax()]
        problems.append(f"some trials of {pair[2]} on {pair[0]} have fewer seeds (complete or diverged) than others")
    return problems


def chosen_settings(table: pd.DataFrame) -> list[dict[str, Any]]:
    """The settings file's entries: per (method, env) the rank-1 trial's searched settings and its record."""
    entries = []
    for (env, _, algo), group in table.groupby(["env", "env_config", "algo"], sort=True):
        best = group.sort_values("rank").iloc[0]
        entries.append({"algo": algo, "env": env, "settings": json.loads(best["settings"]),
                        "tuned_with": json.loads(best["tuned_with"]), "env_config": json.loads(best["env_overrides"]),
                        "env_version": int(best["env_version"]), "trials": len(group),
                        "steps_per_trial": int(best["steps"]),
                        "tuning_seeds": [int(s) for s in best["seed_list"].split(",")],
                        "score": round(float(best["return_mean"]), 6)})
    return entries


def _commits(table: pd.DataFrame) -> str:
    return ", ".join(sorted({c for commits in table["commits"] for c in commits.split(",")}))


def _task(env: str, env_overrides: str) -> str:
    """``job_shop [invalid_action=noop, job_features=True]``: the env and the settings its trials changed."""
    overrides = json.loads(env_overrides)
    return f"{env} [{', '.join(f'{k}={v}' for k, v in sorted(overrides.items()))}]" if overrides else env


def _mean_text(value: float) -> str:
    return "diverged" if pd.isna(value) else f"{value:.4g}"


def _markdown(table: pd.DataFrame, name: str, partial: list[str]) -> str:
    lines = [f"# Tuning: settings file {name}", ""]
    if partial:
        lines += ["**Partial**: " + "; ".join(partial), ""]
    diverged = table[table["diverged"] > 0]
    if len(diverged):
        lines += [f"**Diverged** (a seed stopped with non-finite losses; the trial counts and ranks last): "
                  f"{len(diverged)} of {len(table)} trials: "
                  + "; ".join(f"{r['algo']} on {r['env']}: {markdown_text(r['settings'])}"
                              for _, r in diverged.iterrows()), ""]
    edged = _chosen_at_edge(table)
    if len(edged):
        lines += [f"**At an edge of the search space** (the best may lie outside it): {len(edged)} of "
                  f"{int((table['rank'] == 1).sum())} chosen settings: "
                  + "; ".join(f"{r['algo']} on {r['env']}: {r['at_edge']}" for _, r in edged.iterrows()), ""]
    groups = list(table.groupby(["env", "env_config", "algo"], sort=True))
    chosen = []
    for (env, _, algo), group in groups:
        ranked = group.sort_values("rank")
        best = ranked.iloc[0]
        chosen.append([markdown_text(_task(env, best["env_overrides"])), markdown_text(algo),
                       markdown_text(best["settings"]), _mean_text(best["return_mean"]),
                       _mean_text(ranked.iloc[1]["return_mean"]) if len(ranked) > 1 else "–",
                       markdown_text(best["at_edge"]) or "–"])
    lines += ["## Chosen settings", "",
              "Per task and method, the trial with the best mean return over the tuning seeds' evaluation "
              "episodes (the runner-up's beside it: how close the choice was); each section below lists every "
              "trial.", "",
              *markdown_table(["task", "method", "chosen settings", "mean return", "runner-up", "at an edge"],
                              chosen), ""]
    for (env, _, algo), group in groups:
        best = group.sort_values("rank").iloc[0]
        lines += [f"## {markdown_text(algo)} on {markdown_text(_task(env, best['env_overrides']))}", "",
                  *([f"Chosen at an edge of the search space: {markdown_text(best['at_edge'])}.", ""]
                    if best["at_edge"] else []),
                  *markdown_table(["rank", "settings", "seeds", "returns", "mean return", "steps"],
                                  [[int(r["rank"]), markdown_text(r["settings"]), r["seed_list"], r["returns"],
                                    _mean_text(r["return_mean"]), f"{r['steps']:,}"] for _, r in group.iterrows()]),
                  ""]
    return "\n".join(lines)


def _existing(out: Path) -> dict[str, Any]:
    try:
        return tuned_settings.read_tuned(out)
    except ConfigError as error:
        raise UsageError(f"--extend: {error}") from None


def build_parser() -> Parser:
    parser = Parser(prog="python -m suite.tuning", description=__doc__.split("\n\n")[0])
    parser.add_argument("results", type=folder, help="the tuning study's results folder")
    parser.add_argument("--name", required=True, help="the settings file's name (runs use --algo-config settings=NAME)")
    parser.add_argument("--out", default=None, help="the settings file to write (default: baselines/tuned/NAME.toml)")
    parser.add_argument("--study", default=None, help="the study's name, recorded in the file (default: the folder's)")
    parser.add_argument("--protocol", default="", help="one paragraph: search space, budget, seeds (recorded)")
    parser.add_argument("--partial", action="store_true",
                        help="write even where (method, task) pairs had unequal trials, seeds or budgets")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an existing settings file (runs that name it would change meaning)")
    parser.add_argument("--extend", action="store_true",
                        help="add the entries an existing settings file lacks (e.g. a task tuned later with the same "
                             "protocol), keeping every entry it has; refused where the study would choose otherwise "
                             "for one of them, so runs that name the file keep their meaning")
    return parser


#: What an entry means to a run that uses it: an extension may not change any of these.
_MEANING = ("settings", "tuned_with", "env_config", "env_version")
#: What makes two entries tuned alike.
_ALIKE = ("trials", "steps_per_trial", "tuning_seeds")


def _extended(existing: Mapping[str, Any], chosen: list[dict[str, Any]],
              partial: bool) -> tuple[list, list, list[str]]:
    """The existing file's entries, unchanged, then the chosen entries for pairs it lacks; those pairs; and what
    ``partial`` let through (one note per new entry not tuned like the file's, for the file's ``partial`` line).
    Refused (``UsageError``) where the study chooses otherwise for an entry the file has, or (without
    ``partial``) where a new entry was not tuned like the file's."""
    def canonical(entry: Mapping[str, Any], keys: Sequence[str]) -> str:
        return json.dumps({key: entry.get(key, {}) for key in keys}, sort_keys=True)

    kept = list(existing.get("entry", []))
    by_pair = {(entry["algo"], entry["env"]): entry for entry in kept}
    alike = {canonical(entry, _ALIKE) for entry in kept}
    added, unlike = [], []
    for entry in chosen:
        pair = (entry["algo"], entry["env"])
        if pair in by_pair:
            if canonical(by_pair[pair], _MEANING) != canonical(entry, _MEANING):
                raise UsageError(f"--extend would change the entry for {pair[0]} on {pair[1]} (the file has "
                                 f"{canonical(by_pair[pair], _MEANING)}, the study chooses "
                                 f"{canonical(entry, _MEANING)}); runs that name the file would change meaning: "
                                 "choose another --name")
            continue
        if alike and canonical(entry, _ALIKE) not in alike and not partial:
            raise UsageError(f"{pair[0]} on {pair[1]} was not tuned like the file's entries "
                             f"({canonical(entry, _ALIKE)} against {sorted(alike)[0]}); pass --partial to add it "
                             "anyway")
        if alike and canonical(entry, _ALIKE) not in alike:
            unlike.append(f"{pair[0]} on {pair[1]} added unlike the file's entries ({canonical(entry, _ALIKE)})")
        kept.append(entry)
        added.append(pair)
    return kept, added, unlike


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not NAME_PATTERN.fullmatch(args.name):
        raise UsageError(f"--name {args.name!r}: a settings name is letters, digits, '.', '_', '-' (no path)")
    path = Path(args.results)
    if not path.is_dir():
        raise UsageError(f"no results folder {str(path)!r}")
    out = Path(args.out) if args.out else tuned_settings.TUNED_FOLDER / f"{args.name}.toml"
    if args.extend and args.overwrite:
        raise UsageError("--extend keeps the file's entries and --overwrite replaces them: pass one")
    if args.extend and not out.exists():
        raise UsageError(f"--extend: no settings file {str(out)!r} to extend; drop --extend to make it")
    if out.exists() and not (args.overwrite or args.extend):
        raise UsageError(f"{str(out)!r} exists: runs that name settings={args.name} use it; choose another --name, "
                         "pass --extend to add entries it lacks, or --overwrite to replace it")
    existing = _existing(out) if args.extend else {}
    if args.extend and args.protocol and args.protocol != existing.get("protocol", ""):
        raise UsageError("--extend keeps the file's protocol (an extension is tuned the same way); drop --protocol "
                         "or make another file")
    loaded = results.load(path)
    table = trial_table(loaded, path)
    if table.empty:
        raise UsageError(f"no complete run of a learning method under {str(path)!r}: nothing to choose from")
    refusals = _refusals(table)
    if refusals:
        raise UsageError(f"no settings file from {str(path)!r}: {refusals[0]}")
    unequal = _unequal(table)
    if unequal and not args.partial:
        raise UsageError(f"the methods were not tuned alike ({unequal[0]}); finish the study, or pass --partial")
    chosen = chosen_settings(table)
    entries, added, unlike = _extended(existing, chosen, args.partial) if args.extend else (chosen, [], [])
    files.atomic_write_csv(path / "trials.csv", table, root=path)
    files.atomic_write_text(path / "tuning.md", _markdown(table, args.name, unequal), root=path)
    now = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    if args.extend:
        commits = sorted({c.strip() for c in f"{existing['commit']},{_commits(table)}".split(",") if c.strip()})
        note = f"{now}: added {', '.join(f'{a} on {e}' for a, e in added) or 'nothing'} from {args.study or path.name}"
        provenance = {key: value for key, value in existing.items() if key != "entry"}
        provenance.update({"commit": ", ".join(commits),
                           "extended": "; ".join(filter(None, [existing.get("extended", ""), note])),
                           **({"partial": "; ".join(filter(None, [existing.get("partial", ""), *unequal, *unlike]))}
                              if unequal or unlike or existing.get("partial") else {})})
    else:
        provenance = {"name": args.name, "study": args.study or path.name, "made": now, "commit": _commits(table),
                      "protocol": args.protocol, **({"partial": "; ".join(unequal)} if unequal else {})}
    try:
        files.atomic_write_text(out, tuned_toml(provenance, entries))
    except UnicodeError as error:
        raise UsageError(f"cannot write {str(out)!r}: a text option is not valid Unicode ({error.reason})") from None
    except OSError as error:
        raise UsageError(f"cannot write {str(out)!r}: {error.strerror or error}") from None
    if args.extend:
        print(f"{out}: extended by {len(added)} entries ({', '.join(f'{a} on {e}' for a, e in added) or 'none'}); "
              f"its other {len(entries) - len(added)} unchanged; trials under {path / 'trials.csv'}")
    else:
        counts = table.groupby(["env", "env_config", "algo"]).size()
        print(f"{out}: {len(counts)} (method, task) entries from {len(table)} trials"
              f"{' (partial: ' + unequal[0] + ')' if unequal else ''}; trials under {path / 'trials.csv'}")
    edged = _chosen_at_edge(table)
    if len(edged):
        print(f"{len(edged)} chosen setting(s) at an edge of the search space (e.g. {edged['algo'].iloc[0]} on "
              f"{edged['env'].iloc[0]}: {edged['at_edge'].iloc[0]}); tuning.md lists them")
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main, "python -m suite.tuning"))


