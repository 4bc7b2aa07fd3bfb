"""A results folder received from someone else is not trusted (issue 32): its symbolic links and the names in
its files never make the report or ``--overwrite`` write or delete anything outside the folder they work on.

Every test builds a hostile folder beside a folder "elsewhere" (what a link points to, or a hostile name
aims at) and checks that "elsewhere" is byte for byte what it was, and that a refusal is one line."""

import json
import os
import signal
from pathlib import Path

import pytest

from suite import files, report, results
from suite.cli import UsageError, run_cli
from tests.helpers import run_main, write_synthetic_run

HOSTILE_ENV = "x/../../../elsewhere/pwned"


def snapshot(root: Path) -> dict[str, tuple[str, bytes | str]]:
    """Every entry under ``root`` (links not followed): its kind and its bytes, or a link's target."""
    found = {}
    for folder, subfolders, names in os.walk(root):
        for name in [*subfolders, *names]:
            path = Path(folder) / name
            key = path.relative_to(root).as_posix()
            if path.is_symlink():
                found[key] = ("link", os.readlink(path))
            elif path.is_dir():
                found[key] = ("folder", b"")
            else:
                found[key] = ("file", path.read_bytes())
    return found


@pytest.fixture
def elsewhere(tmp_path):
    """A folder of the user's beside the hostile one, with a file a link will point to."""
    folder = tmp_path / "elsewhere"
    (folder / "kept").mkdir(parents=True)
    (folder / "victim.png").write_bytes(b"the user's own picture")
    (folder / "kept" / "notes.txt").write_text("the user's notes")
    return folder


def received(tmp_path: Path) -> Path:
    """A results folder with complete runs on portfolio (a learning-curve plot is drawn)."""
    root = tmp_path / "received"
    for seed in range(2):
        write_synthetic_run(root, "portfolio", "masked_ppo", seed)
        write_synthetic_run(root, "portfolio", "random_valid", seed)
    return root


def report_cli(*argv) -> int:
    return run_cli(report.main, "python -m suite.report", [str(a) for a in argv])


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err and "\n" not in err and "Traceback" not in err, err
    return err


# --------------------------------------------------------------------------------------------
# The report


def test_a_linked_plot_file_is_replaced_never_written_through(tmp_path, elsewhere, capsys):
    root = received(tmp_path)
    (root / "plots").mkdir()
    (root / "plots" / "learning_curves_portfolio.png").symlink_to(elsewhere / "victim.png")
    (root / "summary.csv").symlink_to(elsewhere / "kept" / "notes.txt")  # a top-level file too
    before = snapshot(elsewhere)
    assert report_cli(root) == 0
    capsys.readouterr()
    assert snapshot(elsewhere) == before
    for written in (root / "plots" / "learning_curves_portfolio.png", root / "summary.csv"):
        assert written.is_file() and not written.is_symlink()
    assert (root / "plots" / "learning_curves_portfolio.png").read_bytes().startswith(b"\x89PNG")
    assert not [p for p in (root / "plots").iterdir() if p.name.endswith(".tmp")]


@pytest.mark.parametrize("where", ["plots", "report"])
def test_a_linked_plots_folder_is_refused_in_one_line_before_anything_is_written(tmp_path, elsewhere, capsys, where):
    root = received(tmp_path)
    out = root if where == "plots" else tmp_path / "report"  # the received folder itself, or --out
    out.mkdir(exist_ok=True)
    (out / "plots").symlink_to(elsewhere)
    before, before_out = snapshot(elsewhere), snapshot(out)
    assert report_cli(root, *(["--out", out] if out != root else [])) == 2
    err = one_line_error(capsys)
    assert f"{out / 'plots'} is a symbolic link" in err and "nothing is written through one" in err
    assert snapshot(elsewhere) == before
    assert snapshot(out) == before_out  # refused before any file was written


def test_a_plots_entry_that_is_a_file_is_refused_in_one_line(tmp_path, elsewhere, capsys):
    root = received(tmp_path)
    (root / "plots").write_text("not a folder")
    assert report_cli(root) == 2
    assert "plots is not a folder" in one_line_error(capsys)
    assert (root / "plots").read_text() == "not a folder"


def test_a_hostile_env_name_becomes_a_safe_plot_name_inside_plots(tmp_path, elsewhere, capsys):
    root = received(tmp_path)
    for seed in range(2):  # runs whose config.json names an env that climbs out of plots/
        directory = write_synthetic_run(root, "toy", "masked_ppo", seed)
        record = json.loads((directory / "config.json").read_text())
        (directory / "config.json").write_text(json.dumps({**record, "env": HOSTILE_ENV}))
    # with this folder shipped too, plots/learning_curves_x/../../../elsewhere/pwned.png is a path that resolves
    (root / "plots" / "learning_curves_x").mkdir(parents=True)
    before = snapshot(elsewhere)
    summary, _, text = report.write_report(root)
    assert HOSTILE_ENV in set(summary["env"])
    assert snapshot(elsewhere) == before and not (tmp_path / "elsewhere" / "pwned.png").exists()
    plot = files.safe_name(f"learning_curves_{HOSTILE_ENV}")
    assert plot.startswith("learning_curves_x_elsewhere_pwned-") and "/" not in plot and ".." not in plot
    assert (root / "plots" / f"{plot}.png").is_file()
    assert f"(plots/{plot}.png)" in text  # the report links the file it wrote
    assert sorted(p.name for p in (root / "plots").iterdir()) == sorted(
        ["learning_curves_x", "learning_curves_portfolio.png", f"{plot}.png"])
    assert report.main([str(root)]) == 0  # the command line too
    capsys.readouterr()
    assert snapshot(elsewhere) == before


def test_loading_never_reads_a_link_out_of_the_results_folder_nor_a_fifo(tmp_path, elsewhere):
    root = received(tmp_path)
    (elsewhere / "credentials").write_text("https://me:secret-token@example.org\n")
    failed = write_synthetic_run(root, "portfolio", "masked_ppo", 5, evaluated=False)
    (failed / "error.txt").symlink_to(elsewhere / "credentials")  # its last line would be the report's problem
    linked = write_synthetic_run(root, "portfolio", "masked_ppo", 6)
    (linked / "eval.csv").rename(elsewhere / "eval.csv")
    (linked / "eval.csv").symlink_to(elsewhere / "eval.csv")
    fifo = write_synthetic_run(root, "portfolio", "masked_ppo", 7)
    (fifo / "config.json").unlink()
    os.mkfifo(fifo / "config.json")  # reading it would wait forever
    inner = write_synthetic_run(root, "portfolio", "masked_ppo", 8)
    (inner / "eval.csv").rename(root / "eval-copy.csv")
    (inner / "eval.csv").symlink_to(root / "eval-copy.csv")  # a link inside the folder is read
    previous = signal.signal(signal.SIGALRM,
                             lambda *_: pytest.fail("loading read the FIFO (it waits for a writer forever)"))
    signal.alarm(20)
    try:
        loaded = results.load(root)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    problems = dict(zip(loaded.runs["seed"], loaded.runs["problem"]))
    assert problems[5] == "error.txt is a link out of the results folder (not read)"
    assert problems[6] == "eval.csv is a link out of the results folder (not read)"
    assert problems[7] == "config.json is unreadable (not a regular file)"
    assert problems[8] == "" and "secret-token" not in report.write_report(root)[2]


def test_the_leftovers_clean_up_knows_every_file_a_run_folder_gets():
    assert set(files.RUN_FILES) == {results.CONFIG_FILE, results.PROGRESS_FILE, results.EVAL_FILE, results.ERROR_FILE}


# --------------------------------------------------------------------------------------------
# The helpers of suite.files


def test_safe_name_keeps_clean_names_and_makes_hostile_ones_one_readable_file_name():
    for clean in ("portfolio", "speed_limit-l", "learning_curves_sum_to_zero-m", "scaling_portfolio"):
        assert files.safe_name(clean) == clean
    for hostile in (HOSTILE_ENV, "..", ".", "", "/etc/passwd", "a\\..\\b", "a\nb", ".hidden", "é" * 300):
        safe = files.safe_name(hostile)
        assert "/" not in safe and "\\" not in safe and ".." not in safe and not safe.startswith(".")
        assert safe.isprintable() and len(safe.encode()) <= 130
    assert files.safe_name("a/b") != files.safe_name("a_b")  # a changed name never takes a clean one's file


def test_inside_refuses_names_that_leave_the_folder_and_linked_folders(tmp_path, elsewhere):
    out = tmp_path / "out"
    out.mkdir()
    assert files.inside(out, "plots/a.png") == out / "plots" / "a.png"  # missing folders are fine
    for bad in ("../elsewhere/x", "plots/../../x", "/etc/passwd", "", "."):
        with pytest.raises(files.UnsafePath, match="must stay inside its folder"):
            files.inside(out, bad)
    (out / "plots").symlink_to(elsewhere)
    with pytest.raises(files.UnsafePath, match="is a symbolic link"):
        files.inside(out, "plots/a.png")
    assert issubclass(files.UnsafePath, UsageError)  # one line on every command line


def test_writers_with_a_root_never_leave_it_nor_follow_a_link(tmp_path, elsewhere):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = tmp_path / "out"
    out.mkdir()
    before = snapshot(elsewhere)
    (out / "report.md").symlink_to(elsewhere / "victim.png")
    files.atomic_write_text(out / "report.md", "mine", root=out)
    assert not (out / "report.md").is_symlink() and (out / "report.md").read_text() == "mine"
    with pytest.raises(files.UnsafePath):
        files.atomic_write_text(out / ".." / "elsewhere" / "victim.png", "pwned", root=out)
    with pytest.raises(files.UnsafePath):
        files.atomic_write_text(tmp_path / "elsewhere" / "victim.png", "pwned", root=out)
    (out / "sub").symlink_to(elsewhere / "kept")
    with pytest.raises(files.UnsafePath, match="is a symbolic link"):
        files.atomic_write_text(out / "sub" / "notes.txt", "pwned", root=out)
    (out / "dangling").symlink_to(tmp_path / "nowhere")
    with pytest.raises(files.UnsafePath, match="is a symbolic link"):
        files.atomic_write_text(out / "dangling" / "x.txt", "pwned", root=out)
    assert not (tmp_path / "nowhere").exists()
    (out / "plots").mkdir()
    (out / "plots" / "a.png").symlink_to(elsewhere / "victim.png")
    fig = plt.figure()
    try:
        files.atomic_savefig(fig, out / "plots" / "a.png", root=out)
    finally:
        plt.close(fig)
    assert not (out / "plots" / "a.png").is_symlink() and (out / "plots" / "a.png").read_bytes()[:4] == b"\x89PNG"
    (out / "folder.csv").mkdir()
    with pytest.raises(files.UnsafePath, match="is a folder, not a file"):
        files.atomic_write_text(out / "folder.csv", "x", root=out)
    assert snapshot(elsewhere) == before
    assert not list(out.rglob("*.tmp"))  # no temporary file left by a refusal


def test_clean_leftovers_removes_only_the_suites_own_temporary_files(tmp_path, elsewhere):
    ours = [".progress.csv.ab12cd_3.tmp", ".eval.csv.x1y2z3w4.tmp", ".config.json.k9k9k9k9.tmp",
            ".error.txt.a1b2c3d4.tmp", ".lock.zz99zz99.tmp"]
    theirs = [".notes.tmp", ".my-draft.tmp", ".progress.csv.tmp", ".summary.csv.ab12cd34.tmp", "progress.csv",
              ".eval.csv.x1y2.tmp", ".config.json.abcdefghij.tmp",  # not the 8 characters the writers use
              ".progress.csv.AB-12.tmp"]
    for name in ours + theirs:
        (tmp_path / "run" / name).parent.mkdir(exist_ok=True)
        (tmp_path / "run" / name).write_text("x")
    (tmp_path / "run" / ".eval.csv.linkzz00.tmp").symlink_to(elsewhere / "victim.png")
    before = snapshot(elsewhere)
    assert files.clean_leftovers(tmp_path / "run") == sorted([*ours, ".eval.csv.linkzz00.tmp"])
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == sorted(theirs)
    assert snapshot(elsewhere) == before  # a linked leftover loses the link only


def test_a_linked_checkpoint_loses_its_link_not_its_targets_files(tmp_path, elsewhere):
    run = tmp_path / "run"
    run.mkdir()
    before = snapshot(elsewhere)
    (run / "checkpoint").symlink_to(elsewhere / "kept")
    (run / ".checkpoint.old").symlink_to(elsewhere)
    (run / ".checkpoint.ab12cd34").symlink_to(elsewhere)  # named as a copy built aside
    files.remove_dir(run / "checkpoint")
    assert list(run.iterdir()) == [] and snapshot(elsewhere) == before

    (run / "checkpoint").symlink_to(elsewhere / "kept")  # swapped for a new checkpoint: the link goes
    files.atomic_replace_dir(run / "checkpoint", lambda tmp: (tmp / "weights").write_text("new"))
    assert sorted(p.name for p in run.iterdir()) == ["checkpoint"]  # no .checkpoint.old link left behind
    assert not (run / "checkpoint").is_symlink() and (run / "checkpoint" / "weights").read_text() == "new"
    assert snapshot(elsewhere) == before


def test_a_linked_copy_aside_is_never_recovered_as_the_checkpoint(tmp_path, elsewhere):
    run = tmp_path / "run"
    run.mkdir()
    (elsewhere / files.COMPLETE_MARKER).write_text("complete")  # looks like a complete copy
    before = snapshot(elsewhere)
    (run / ".checkpoint.ab12cd34").symlink_to(elsewhere)
    (run / ".checkpoint.old").symlink_to(elsewhere)
    assert files.recover_dir(run / "checkpoint") is None
    assert not (run / "checkpoint").exists() and snapshot(elsewhere) == before


def test_taking_over_a_stale_lock_never_creates_a_file_through_a_link(tmp_path, elsewhere):
    run = tmp_path / "run"
    run.mkdir()
    lock = run / files.LOCK_FILE
    lock.write_text(json.dumps({"host": "another-node", "pid": 1, "started": "earlier", "command": "x"}))
    old = lock.stat().st_mtime - files.FOREIGN_LOCK_STALE_SECONDS - 10
    os.utime(lock, (old, old))  # stale: taken over under the takeover file's OS lock
    (run / files.TAKEOVER_FILE).symlink_to(elsewhere / "created-by-the-lock")
    before = snapshot(elsewhere)
    with files.RunLock(run, "me"):
        assert json.loads(lock.read_text())["pid"] == os.getpid()
    assert snapshot(elsewhere) == before and not os.path.lexists(run / files.TAKEOVER_FILE)


# --------------------------------------------------------------------------------------------
# suite.run --overwrite


def run_args(out, *extra):
    return ["--env", "portfolio", "--algo", "random_valid", "--steps", "2000", "--episodes", "2", "--out", str(out),
            "--quiet", *extra]


def another_run(elsewhere: Path) -> Path:
    """A run folder of the user's elsewhere, with an unrelated file in its checkpoint."""
    folder = write_synthetic_run(elsewhere, "portfolio", "random_valid", 0)
    (folder / "checkpoint").mkdir()
    (folder / "checkpoint" / "unrelated.txt").write_text("not the suite's")
    return folder


@pytest.mark.parametrize("linked", ["seed0", "random_valid", "portfolio"])
def test_overwrite_refuses_a_run_folder_reached_through_a_link_in_one_line(tmp_path, elsewhere, capsys, linked):
    target = another_run(elsewhere)
    out = tmp_path / "out"
    link = {"seed0": out / "portfolio" / "random_valid" / "seed0", "random_valid": out / "portfolio" / "random_valid",
            "portfolio": out / "portfolio"}[linked]
    link.parent.mkdir(parents=True)
    link.symlink_to({"seed0": target, "random_valid": target.parent, "portfolio": target.parent.parent}[linked])
    before, before_out = snapshot(elsewhere), snapshot(out)
    for extra in (["--overwrite"], ["--resume"], []):
        capsys.readouterr()
        assert run_main(*run_args(out, *extra)) == 2
        err = one_line_error(capsys)
        assert f"{link} is a symbolic link" in err and "nothing was changed" in err
        assert snapshot(elsewhere) == before and snapshot(out) == before_out


def test_a_linked_results_folder_is_the_users_own_and_is_written(tmp_path):
    (tmp_path / "disk").mkdir()
    (tmp_path / "results").symlink_to(tmp_path / "disk")  # e.g. results on a bigger disk
    assert run_main(*run_args(tmp_path / "results")) == 0
    assert (tmp_path / "disk" / "portfolio" / "random_valid" / "seed0" / "eval.csv").is_file()


def test_overwrite_removes_links_never_their_targets_and_only_the_suites_leftovers(tmp_path, elsewhere):
    out = tmp_path / "out"
    assert run_main(*run_args(out)) == 0
    directory = out / "portfolio" / "random_valid" / "seed0"
    target = another_run(elsewhere)
    files.remove_dir(directory / "checkpoint")
    (directory / "checkpoint").symlink_to(target / "checkpoint")
    (directory / "eval.csv").unlink()
    (directory / "eval.csv").symlink_to(target / "eval.csv")
    (directory / "error.txt").symlink_to(target / "progress.csv")
    (directory / ".notes.tmp").write_text("the user's")
    (directory / ".my.draft.tmp").write_text("the user's too")
    (directory / ".progress.csv.killed12.tmp").write_text("half a file a killed run left")
    before = snapshot(elsewhere)
    assert run_main(*run_args(out, "--overwrite")) == 0
    assert snapshot(elsewhere) == before
    names = sorted(p.name for p in directory.iterdir())
    assert names == sorted([".my.draft.tmp", ".notes.tmp", "checkpoint", "config.json", "eval.csv", "progress.csv"])
    for name in ("checkpoint", "eval.csv"):
        assert not (directory / name).is_symlink()
    assert (directory / "checkpoint").is_dir() and "unrelated.txt" not in os.listdir(directory / "checkpoint")
