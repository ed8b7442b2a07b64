"""The config check that a minibatch fits the batch counts agent decisions, not env steps."""

from __future__ import annotations

from pathlib import Path

import pytest

from flowsim import testing
from flowsim.config import load_config
from flowsim.errors import ConfigError

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"
# One runner of 100 env steps per iteration.
SMALL_BATCH = ["sampler.num_workers=0", "sampler.rollout_fragment_length=100"]


def test_a_shared_policy_counts_every_av_of_the_multiagent_ring() -> None:
    # 100 env steps x 3 AVs = 300 decisions: a minibatch of 256 fits.
    config = load_config(
        SCENARIOS / "multiagent_ring.yaml", [*SMALL_BATCH, "train.minibatch_size=256"]
    )
    assert config.train.minibatch_size == 256
    with pytest.raises(ConfigError, match=r"larger than the batch of 300 decisions.*x 3 agents"):
        load_config(SCENARIOS / "multiagent_ring.yaml", [*SMALL_BATCH, "train.minibatch_size=301"])


def test_a_policy_per_agent_gets_one_agent_s_decisions() -> None:
    per_agent = [*SMALL_BATCH, "train.multiagent.policies=per_agent"]
    with pytest.raises(ConfigError, match=r"larger than the batch of 100 decisions"):
        load_config(SCENARIOS / "multiagent_ring.yaml", [*per_agent, "train.minibatch_size=256"])


def test_a_shared_policy_counts_every_light_of_the_grid() -> None:
    # Flow's 3 x 3 grid: 9 lights, 900 decisions.
    load_config(SCENARIOS / "multiagent_grid.yaml", [*SMALL_BATCH, "train.minibatch_size=900"])
    with pytest.raises(ConfigError, match=r"batch of 900 decisions.*x 9 agents"):
        load_config(SCENARIOS / "multiagent_grid.yaml", [*SMALL_BATCH, "train.minibatch_size=901"])


def test_single_agent_envs_still_count_env_steps() -> None:
    with pytest.raises(ConfigError, match=r"larger than the batch of 100 decisions"):
        load_config(SCENARIOS / "ring.yaml", [*SMALL_BATCH, "train.minibatch_size=101"])


@testing.needs_sumo_rl()
def test_lights_read_from_network_files_are_not_counted_before_the_env_starts() -> None:
    # RESCO's cologne8: the lights are in the .net.xml, which the config does not read; no
    # env-step bound applies to a policy that all of them share.
    config = load_config(
        SCENARIOS / "resco" / "cologne8.yaml", [*SMALL_BATCH, "train.minibatch_size=512"]
    )
    assert config.train.minibatch_size == 512
