"""The robustness survey: every case of the reliability issues replayed, counted handled/tried per area.

``python -m tests.robustness.survey`` runs, through pytest, every slow test (clusters, killed and resumed runs,
overlapping writers) and every default test the survey counts (the matrices of bad input, the user-env contract,
hostile folders, locks), then prints one row per area: cases tried, cases handled (the test passed), and the
minimum the area must hold (the counts of the survey that found the problems, issue 32). It exits non-zero when a
case is not handled, when an area holds fewer cases than its minimum, or when a case could not be exercised
(skipped: said, never counted as handled). CI runs it in place of ``pytest --slow`` (``.ci/run``).

Extra arguments go to pytest (``-x``, ``-k EXPR``; a ``-k`` that leaves an area under its minimum fails).
"""

from __future__ import annotations

import sys
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import pytest

#: Area -> (the minimum number of cases, the tests that are its cases: node id prefixes).
AREAS: dict[str, tuple[int, tuple[str, ...]]] = {
    "kills": (24, ("tests/suite/test_resume.py::",)),
    "concurrency": (14, (
        "tests/suite/test_lock_race.py::",
        "tests/robustness/test_concurrency.py::",
        "tests/suite/test_files.py::test_a_second_writer_is_refused_with_the_holder_named",
        "tests/suite/test_files.py::test_a_lock_left_by_a_killed_writer_is_taken_over",
        "tests/suite/test_files.py::test_a_lock_of_another_host_is_stale_only_when_it_has_not_been_refreshed",
        "tests/suite/test_files.py::test_lock_state_tells_a_live_writer_from_one_that_is_gone",
        "tests/suite/test_files.py::test_a_stale_lock_taken_over_leaves_no_file_behind_but_the_new_lock",
        "tests/suite/test_run_safety.py::test_a_folder_being_written_is_refused_to_a_second_writer",
        "tests/suite/test_run_safety.py::test_two_identical_commands_at_once",
        "tests/suite/test_sweep.py::test_two_sweeps_into_one_folder_each_find_their_own_node_check",
        "tests/suite/test_sweep.py::test_a_trial_refused_by_the_folders_lock",
        "tests/suite/test_trust.py::test_first_runs_at_once_agree_on_one_key",
    )),
    "cli": (350, ("tests/robustness/test_cli_matrix.py::", "tests/suite/test_bad_input.py::",
                  "tests/suite/test_report.py::test_a_damaged_run_is_a_problem_of_the_report")),
    "api": (200, ("tests/robustness/test_api_matrix.py::", "tests/envs/test_contract_enforced.py::")),
    "cluster": (10, ("tests/suite/test_cluster.py::", "tests/suite/test_other_ray.py::",
                     "tests/suite/test_run_safety.py::test_a_non_ray_address_is_answered_in_seconds",
                     "tests/suite/test_sweep.py::test_a_trial_on_a_node_that_does_not_see_out",
                     "tests/suite/test_sweep.py::test_a_trial_that_errored_before_its_run_started",
                     "tests/suite/test_sweep.py::test_a_failed_trial_is_one_line")),
    "leftovers": (15, ("tests/robustness/test_leftovers.py::",
                       "tests/suite/test_run_safety.py::test_resume_finishes_an_interrupted_checkpoint_swap",
                       "tests/suite/test_sweep.py::test_a_failed_trial_is_reported_the_others_finish_and_other_files_in_out",
                       "tests/suite/test_sweep.py::test_ctrl_c_on_a_sweep")),
    "security": (13, ("tests/suite/test_trust.py::", "tests/suite/test_hostile_folders.py::",
                      "tests/suite/test_race.py::test_the_race_trains_each_contender")),
}


#: The reason ``--survey`` skips the tests it does not run (tests/conftest.py).
NOT_A_CASE = "not a case of the robustness survey (nor a slow test)"


def area_of(nodeid: str) -> str | None:
    """The area whose most specific prefix matches the test ``nodeid`` (None: not a case of the survey)."""
    best, length = None, -1
    for area, (_, prefixes) in AREAS.items():
        for prefix in prefixes:
            if nodeid.startswith(prefix) and len(prefix) > length:
                best, length = area, len(prefix)
    return best


def survey_files() -> list[str]:
    """The test files that hold the survey's cases (the slow tests elsewhere run too, see the docstring)."""
    return sorted({prefix.split("::")[0] for _, prefixes in AREAS.values() for prefix in prefixes})


@dataclass
class Tally:
    """A pytest plugin that counts each test's outcome by area."""

    outcomes: dict[str, dict[str, list[str]]] = field(default_factory=lambda: defaultdict(lambda: defaultdict(list)))

    def pytest_runtest_logreport(self, report):
        if report.skipped and NOT_A_CASE in str(report.longrepr):
            return  # a default-run test that is not the survey's: skipped on purpose, not a case left out
        area = area_of(report.nodeid) or "other slow tests"
        if report.when == "call" or (report.when == "setup" and not report.passed):
            kind = "handled" if report.passed else "skipped" if report.skipped else "not handled"
            self.outcomes[area][kind].append(report.nodeid)


def table(tally: Tally) -> tuple[str, bool]:
    """The markdown table of the survey and whether every area is complete."""
    lines = ["| area | tried | handled | share | minimum | not exercised |",
             "| --- | ---: | ---: | ---: | ---: | ---: |"]
    complete = True
    for area in [*AREAS, "other slow tests"]:
        counts = tally.outcomes.get(area, {})
        handled, failed, skipped = (len(counts.get(kind, [])) for kind in ("handled", "not handled", "skipped"))
        tried = handled + failed
        minimum = AREAS[area][0] if area in AREAS else 0
        complete &= failed == 0 and skipped == 0 and tried >= minimum
        share = f"{handled / tried:.0%}" if tried else "n/a"
        lines.append(f"| {area} | {tried} | {handled} | {share} | {minimum or '-'} | {skipped} |")
    return "\n".join(lines), complete


def main(argv: list[str] | None = None) -> int:
    root = Path(__file__).resolve().parents[2]
    tally = Tally()
    status = pytest.main(["--survey", "-q", "-p", "no:cacheprovider", "--rootdir", str(root),
                          *(sys.argv[1:] if argv is None else argv)], plugins=[tally])
    text, complete = table(tally)
    print("\nrobustness survey (issue 32): cases per area\n" + text)
    for area, counts in tally.outcomes.items():
        for kind in ("not handled", "skipped"):
            for nodeid in counts.get(kind, []):
                print(f"{kind}: [{area}] {nodeid}")
    if not complete:
        print("survey incomplete: a case not handled or not exercised, or an area under its minimum", file=sys.stderr)
    return int(status) or (0 if complete else 1)


if __name__ == "__main__":
    sys.exit(main())
