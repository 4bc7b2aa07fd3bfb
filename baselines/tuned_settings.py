"""Tuned settings per method and env: named files a tuning study writes and runs opt into.

Every method's settings are its config's defaults, then the per-env defaults (:mod:`baselines.settings`,
the same for every method), then the user's ``--algo-config``. A **tuned settings file** adds a layer for one
(method, env) at a time: ``--algo-config settings=NAME`` makes a run take ``baselines/tuned/NAME.toml``'s entry
for its algo and env over the per-env defaults and under the user's own keys. The file says which study made
it, when and at which commit, and per entry the trials that chose it (``python -m suite.tuning`` writes it from
a tuning study's runs; docs/tuning.md).

Why a name and not new defaults: a run's identity is its resolved config, and its folder is named by what
differs from the defaults. New defaults would silently give the folder of every existing default run a new
meaning (a study would then refuse or redo them); a name keeps the defaults' results unchanged, puts
``settings=NAME`` in the folder of the runs that use it, and records both the name and the values it resolved to
in ``config.json``, so a file regenerated under the same name is caught as another config, not mixed in.

A run that names a file without an entry for its algo and env is refused (one line, naming what the file has):
falling back to the defaults would report untuned numbers under a tuned name.

File format (TOML)::

    name = "v3"
    study = "tuning"                  # the study whose runs chose the entries
    made = "2026-12-06T10:00:00+0000"
    commit = "abc1234"                # the commit the trials ran at
    protocol = "..."                  # one paragraph: search space, budget, seeds

    [[entry]]
    algo = "penalty_ppo"
    env = "portfolio"
    settings = { lr = 0.0003, entropy_coeff = 0.01, hidden = [64, 64], penalty = 0.03 }
    tuned_with = { backend = "torch", network = "mlp" }   # a run using the entry must have these
    env_config = { invalid_action = "noop" }               # the env settings the trials changed from the
                                                           # env's defaults: a run using the entry has the same
    env_version = 0                   # the env's version the trials ran (EnvCore.version): the defaults above
                                      # are that version's, and a run of another version is refused
    trials = 8                        # configs tried
    steps_per_trial = 200000
    tuning_seeds = [100, 101]
    score = 61.2                      # the chosen config's mean return over its tuning seeds' evaluations
"""

from __future__ import annotations

import functools
import json
import re
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from envs.config import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

__all__ = ["TUNED_FOLDER", "NAME_PATTERN", "TRAINING_TASK_KEYS", "known_names", "load_tuned", "read_tuned",
           "tuned_entry", "check_tuned_env", "shown_value", "tuned_toml"]

#: Where the named files live (package data: an installed suite has them).
TUNED_FOLDER = Path(__file__).with_name("tuned")
#: A settings name: a file name without a path (letters, digits, ``.``, ``_``, ``-``).
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
#: Env settings that do not change the task (``strict`` raises on an inadmissible action instead of executing
#: the fallback: a debugging switch, as useful on a tuned run as on any other).
_DEBUGGING = ("strict",)
#: Config keys that change the task a method trains on (the training env's reward or dynamics): an entry holds
#: only for runs whose value is the one its trials had, which the entry records in ``tuned_with`` when the study
#: set it, and which is otherwise the method's per-env default.
TRAINING_TASK_KEYS = ("train_env_config",)
_PROVENANCE = ("name", "study", "made", "commit")
_ENTRY_KEYS = {"algo", "env", "settings", "trials", "steps_per_trial", "tuning_seeds", "score", "env_config",
               "env_version", "tuned_with"}


def known_names() -> list[str]:
    """The names of the tuned settings files the suite ships."""
    return sorted(path.stem for path in TUNED_FOLDER.glob("*.toml"))


def _path(name: str) -> Path:
    if not NAME_PATTERN.fullmatch(name):
        raise ConfigError(f"algo config: settings={name!r} is not a settings name (letters, digits, '.', '_', '-'; "
                          f"no path); known: {', '.join(known_names()) or 'none yet'}")
    path = TUNED_FOLDER / f"{name}.toml"
    if not path.is_file():
        raise ConfigError(f"algo config: settings={name} names no tuned settings file (baselines/tuned/{name}.toml); "
                          f"known: {', '.join(known_names()) or 'none yet'}")
    return path


@functools.lru_cache(maxsize=16)
def _load(path: Path, mtime_ns: int) -> dict[str, Any]:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
        raise ConfigError(f"tuned settings {path.name}: unreadable ({error})") from None
    problems = [f"lacks {key!r}" for key in _PROVENANCE if not isinstance(data.get(key), str)]
    entries = data.get("entry", [])
    if not isinstance(entries, list):
        problems.append("'entry' must be a list of tables ([[entry]])")
        entries = []
    seen = set()
    for number, entry in enumerate(entries, 1):
        if not isinstance(entry, dict) or not isinstance(entry.get("algo"), str) \
                or not isinstance(entry.get("env"), str) or not isinstance(entry.get("settings"), dict):
            problems.append(f"entry {number} needs algo, env (strings) and settings (a table)")
            continue
        unknown = sorted(set(entry) - _ENTRY_KEYS)
        if unknown:
            problems.append(f"entry {number} has unknown key {unknown[0]!r}")
        if (entry["algo"], entry["env"]) in seen:
            problems.append(f"entry {number}: a second entry for {entry['algo']} on {entry['env']}")
        seen.add((entry["algo"], entry["env"]))
        if "env_config" not in entry or isinstance(entry["env_config"], str):
            problems.append(f"entry {number}: {'env_config is a label' if 'env_config' in entry else 'no env_config'}"
                            ", as files made before the env settings its trials ran under were recorded have it; "
                            "make the file again (python -m suite.tuning ... --overwrite)")
        elif not isinstance(entry["env_config"], dict):
            problems.append(f"entry {number}: env_config must be a table of env settings")
        version = entry.get("env_version")
        if isinstance(version, bool) or not isinstance(version, int) or version < 0:
            problems.append(f"entry {number}: " + (
                "env_version must be a non-negative integer" if "env_version" in entry
                else "no env_version (the env's version its trials ran, which files made before it was recorded "
                     "lack); make the file again from its trials (python -m suite.tuning ... --overwrite), or add "
                     "env_version = N by hand where the trials' config.json say N, as v3.toml's amended line did"))
    if problems:
        raise ConfigError(f"tuned settings {path.name}: {problems[0]}")
    return data


def load_tuned(name: str) -> dict[str, Any]:
    """The parsed file ``name`` (its provenance keys and ``entry`` list); one-line ``ConfigError`` otherwise."""
    return read_tuned(_path(name))


def read_tuned(path: Path) -> dict[str, Any]:
    """The parsed settings file at ``path`` (anywhere); one-line ``ConfigError`` when unreadable or malformed."""
    try:
        mtime = path.stat().st_mtime_ns
    except OSError as error:
        raise ConfigError(f"tuned settings {path.name}: unreadable ({error.strerror or error})") from None
    return _load(path, mtime)


def _typed(table: Mapping[str, Any]) -> dict[str, Any]:
    return {key: tuple(value) if isinstance(value, list) else value for key, value in table.items()}


def _entry(name: str, algo: str, env: str) -> dict[str, Any]:
    data = load_tuned(name)
    for entry in data.get("entry", []):
        if entry["algo"] == algo and entry["env"] == env:
            return entry
    pairs = sorted({f"{e['algo']} on {e['env']}" for e in data.get("entry", [])})
    raise ConfigError(f"algo config: settings={name} has no entry for {algo} on {env} (a run would not be tuned); "
                      f"it has: {', '.join(pairs) or 'none'}")


def tuned_entry(name: str, algo: str, env: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The settings file ``name``'s entry for ``algo`` on ``env``: its settings and the settings it was tuned with
    (``tuned_with``, e.g. the network: a run using the entry must have the same), each a dict of config keys;
    refused in one line when the file has no entry for them."""
    entry = _entry(name, algo, env)
    return _typed(entry["settings"]), _typed(entry.get("tuned_with", {}))


def check_tuned_env(name: str, algo: str, env: str, env_overrides: Mapping[str, Any], env_version: int) -> None:
    """Refuse (one line) a run whose env differs from the one ``name``'s entry for ``algo`` on ``env`` was tuned
    on: another version of the env (``env_version``: its dynamics, reward, mask or defaults changed since), or
    other env settings (its ``env_config``: the settings the trials changed from that version's defaults; none
    recorded = the defaults). A choice made under ``invalid_action=noop`` says nothing about the env's own
    default."""
    entry = _entry(name, algo, env)
    if entry["env_version"] != env_version:
        raise ConfigError(f"algo config: settings={name} was tuned for {algo} on version {entry['env_version']} of "
                          f"{env}; this run's {env} is version {env_version} (its dynamics, reward, mask or defaults "
                          "changed since): tune it again on this version")
    tuned_under = {key: value for key, value in _typed(entry["env_config"]).items() if key not in _DEBUGGING}
    run = {key: value for key, value in _typed(env_overrides).items() if key not in _DEBUGGING}
    if tuned_under != run:
        def shown(settings: Mapping[str, Any]) -> str:
            listed = ", ".join(f"{key}={shown_value(value)}" for key, value in sorted(settings.items()))
            return f"env settings {listed}" if listed else "the env's default settings"

        raise ConfigError(f"algo config: settings={name} was tuned for {algo} on {env} under {shown(tuned_under)}; "
                          f"this run has {shown(run)} (set the same env settings, or tune under these)")


def shown_value(value: Any) -> str:
    """A setting's value as a message shows it (TOML's booleans, a list comma-separated, ``()`` when empty)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return ",".join(map(str, value)) or "()"
    return str(value)


def _toml_value(value: Any) -> str:
    if hasattr(value, "item") and not isinstance(value, (list, tuple, Mapping)):  # a numpy scalar
        value = value.item()
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value) if isinstance(value, float) else str(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return "{ " + ", ".join(f"{k} = {_toml_value(v)}" for k, v in value.items()) + " }"
    # JSON's string escapes are TOML basic strings' too; TOML also refuses a raw DEL, which JSON leaves as it is
    return json.dumps(str(value), ensure_ascii=False).replace("\x7f", "\\u007f")


def tuned_toml(provenance: Mapping[str, Any], entries: list[Mapping[str, Any]]) -> str:
    """A settings file's text: ``provenance`` (name, study, made, commit and any other scalar keys) then one
    ``[[entry]]`` table per entry (its keys in the order given). Round-trips through :func:`load_tuned`."""
    lines = [f"{key} = {_toml_value(value)}" for key, value in provenance.items()]
    for entry in entries:
        lines += ["", "[[entry]]", *[f"{key} = {_toml_value(value)}" for key, value in entry.items()]]
    return "\n".join(lines) + "\n"
