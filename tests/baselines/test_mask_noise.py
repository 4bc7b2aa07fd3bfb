"""Corrupted masks at deployment: what each corruption may and may not do to a mask, and a run evaluated under
them."""

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from baselines.mask_noise import MaskCorruption
from suite import report
from tests.helpers import TINY, random_masks, run_folder, run_main

NVEC = [11, 11, 11]


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), p=st.floats(0.0, 1.0))
def test_hidden_only_hides_admissible_values_and_never_empties_a_sub_action(seed, p):
    rng = np.random.default_rng(seed)
    mask = random_masks(rng, 64, NVEC)
    seen = MaskCorruption("hidden", p, NVEC, np.random.default_rng(seed + 1))(mask)
    assert np.all(seen <= mask)  # nothing inadmissible revealed
    for block in np.split(seen, np.cumsum(NVEC)[:-1], axis=-1):
        assert block.any(axis=-1).all()
    if p == 0:
        assert np.array_equal(seen, mask)


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), p=st.floats(0.0, 1.0))
def test_leaky_only_reveals_inadmissible_values(seed, p):
    rng = np.random.default_rng(seed)
    mask = random_masks(rng, 64, NVEC)
    seen = MaskCorruption("leaky", p, NVEC, np.random.default_rng(seed + 1))(mask)
    assert np.all(seen >= mask) and seen.dtype == mask.dtype
    if p == 1:
        assert seen.all()


def test_stale_shows_the_previous_steps_mask_with_probability_p():
    rng = np.random.default_rng(0)
    first, second = random_masks(rng, 2000, NVEC), random_masks(rng, 2000, NVEC)
    corruption = MaskCorruption("stale", 0.3, NVEC, np.random.default_rng(1))
    assert np.array_equal(corruption(first), first)  # an episode's first step has no previous mask
    seen = corruption(second)
    stale = (seen == first).all(axis=-1) & ~(seen == second).all(axis=-1)
    assert 0.25 < stale.mean() < 0.35
    assert np.all((seen == first).all(axis=-1) | (seen == second).all(axis=-1))


def test_bad_corruptions_are_refused():
    with pytest.raises(ValueError, match="unknown mask corruption 'noisy'"):
        MaskCorruption("noisy", 0.1, NVEC, np.random.default_rng(0))
    with pytest.raises(ValueError, match=r"probability is in \[0, 1\]"):
        MaskCorruption("hidden", 1.5, NVEC, np.random.default_rng(0))


def test_a_run_evaluated_under_corrupted_masks_and_its_report(tmp_path):
    """The env still enforces the true constraints: a leaky mask lets the masked policy try inadmissible actions
    (counted), a hidden one never does; the report's table and plot start every curve at the clean mask."""
    assert run_main("--env", "portfolio", "--algo", "masked_ppo", "--backend", "torch", *TINY, "--steps", "1024",
                    "--episodes", "10", "--eval-mask-noise", "0,0.5,1", "--out", str(tmp_path / "runs"),
                    "--quiet") == 0
    evaluation = pd.read_csv(run_folder(tmp_path / "runs", "portfolio", "masked_ppo") / "eval.csv")
    # greedy and stochastic with the mask on, 3 corruptions x 2 probabilities; mask off is not corrupted
    assert len(evaluation) == 4 * 10 + 2 * 3 * 2 * 10
    corrupted = evaluation[evaluation["mask_noise"] != "none"]
    assert set(corrupted["mask"]) == {"on"} and set(corrupted["mask_noise_p"]) == {0.5, 1.0}
    leaky = corrupted[(corrupted["mask_noise"] == "leaky") & (corrupted["mask_noise_p"] == 1.0)]
    assert leaky["invalid_steps"].sum() > 0
    assert corrupted.loc[corrupted["mask_noise"] == "hidden", "invalid_steps"].sum() == 0
    clean = evaluation[(evaluation["mask_noise"] == "none") & (evaluation["mask"] == "on")]
    assert clean["invalid_steps"].sum() == 0
    summary, _, text = report.write_report(tmp_path / "runs", tmp_path / "report")
    assert summary["seeds"].iloc[0] == 1 and "mask_noise_portfolio.png" in text
    table = pd.read_csv(tmp_path / "report" / "mask_noise.csv")
    assert set(table["p"]) == {0.0, 0.5, 1.0} and set(table["corruption"]) == {"hidden", "leaky", "stale"}


@pytest.mark.parametrize("value", ["1.5", "-0.1", "a,b", ""])
def test_bad_mask_noise_is_one_line_with_status_2(tmp_path, capsys, value):
    assert run_main("--env", "portfolio", "--algo", "masked_ppo", "--eval-mask-noise", value,
                    "--out", str(tmp_path)) == 2
    err = capsys.readouterr().err
    assert "expected a comma list of probabilities in [0, 1]" in err and len(err.strip().splitlines()) == 1
