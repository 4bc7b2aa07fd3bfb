"""The examples in examples/ run as their readers would run them: a maskbench env in one's own RLlib
PPOConfig (the suite's masking module, and RLlib's own example module through the key adapter) and in
sb3-contrib's MaskablePPO behind ``ActionMasker``; each acts without an inadmissible action."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest

import envs
from envs.observation_keys import RenameObservationKeys
from tests.helpers import assert_ray_is_gone

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def example(name):
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("argv", [[], ["--rllib-example"]], ids=["suite_module", "rllib_example_module"])
def test_your_own_ppo_config_trains_without_an_inadmissible_action(argv):
    results = example("rllib_own_config").main(["--iterations", "2", *argv])
    assert_ray_is_gone()
    assert len(results) == 2
    assert all(r["num_episodes"] > 0 for r in results)  # episodes ended, so the callback saw their steps
    assert all(r["inadmissible_actions"] == 0 for r in results)


def test_the_inadmissible_action_counter_counts():
    from ray.rllib.utils.metrics.metrics_logger import MetricsLogger

    class Episode:
        def get_infos(self, index):
            return {"invalid_actions": np.int64(2)}

    logger = MetricsLogger()
    counter = example("rllib_own_config").count_inadmissible
    counter(episode=Episode(), metrics_logger=logger)
    counter(episode=Episode(), metrics_logger=logger)
    assert logger.peek("inadmissible_actions") == 4


def test_sb3_contribs_action_masker_trains_without_an_inadmissible_action():
    pytest.importorskip("sb3_contrib", reason='the compare extra: pip install -e ".[compare]"')
    out = example("sb3_action_masker").main(["--steps", "1024"])
    assert out["inadmissible_actions"] == 0 and np.isfinite(out["mean_return"])


def test_the_key_adapter_renames_only_the_keys():
    env = envs.make("portfolio")
    renamed = RenameObservationKeys(envs.make("portfolio"))
    assert set(renamed.observation_space.spaces) == {"observations", "action_mask"}
    obs, _ = env.reset(seed=3)
    again, _ = renamed.reset(seed=3)
    assert np.array_equal(obs["observation"], again["observations"])
    assert np.array_equal(obs["action_mask"], again["action_mask"]) and again["action_mask"].dtype == np.int8
    assert renamed.observation_space.contains(again)
    with pytest.raises(ValueError, match="cannot rename 'observations': the observation's keys are"):
        RenameObservationKeys(env, {"observations": "x"})
