"""RLlib 2.60's multi-agent PPO trains a flowsim PettingZoo env (docs/interop.md).

The multi-agent ring goes through RLlib's own PettingZoo wrapper (``ParallelPettingZooEnv``);
its three AVs share one policy. RLlib's env runner is a Ray actor, a process of its own, so
its libsumo simulation is the only one in that process.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Iterator
from typing import Any

import pytest

pytest.importorskip("ray.rllib", reason="pip install -e '.[dev]' (ray[rllib])")

import ray
from ray.rllib.algorithms.ppo import PPOConfig
from ray.rllib.env.wrappers.pettingzoo_env import ParallelPettingZooEnv
from ray.tune.registry import register_env

from flowsim.distributed.cluster import loopback_only

# Ray's workers cannot import this test module (pytest imports it by path), so the env creator
# and the mapping function below travel by value.
ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])

ENV_NAME = "flowsim_multiagent_ring"
#: A short multi-agent ring episode: 100 decisions per AV after 10 s of humans alone.
RING_OVERRIDES = ["env.horizon=100", "env.warmup_steps=100"]
FRAGMENT = 200  # env steps: two episodes, 600 AV decisions


def make_ring(env_config: dict[str, Any]) -> ParallelPettingZooEnv:
    """RLlib's env creator: flowsim's multi-agent ring in RLlib's PettingZoo wrapper."""
    from flowsim.envs.multiagent import parallel_env

    return ParallelPettingZooEnv(parallel_env(overrides=list(env_config["overrides"])))


@pytest.fixture
def ray_on_localhost() -> Iterator[None]:
    """A local Ray bound to 127.0.0.1; shut down afterwards only if this fixture started it."""
    started = not ray.is_initialized()
    if started:
        with loopback_only():
            ray.init(_node_ip_address="127.0.0.1", include_dashboard=False, num_cpus=2)
    yield
    if started:
        ray.shutdown()


@pytest.mark.slow
def test_rllib_multiagent_ppo_trains_the_ring(ray_on_localhost: None) -> None:
    register_env(ENV_NAME, make_ring)
    config = (
        PPOConfig()
        .environment(ENV_NAME, env_config={"overrides": RING_OVERRIDES})
        .env_runners(num_env_runners=1, rollout_fragment_length=FRAGMENT)
        .multi_agent(
            policies={"shared"},
            policy_mapping_fn=lambda agent_id, episode, **kwargs: "shared",
        )
        .training(train_batch_size_per_learner=FRAGMENT, minibatch_size=100, num_epochs=1)
    )
    algo = config.build_algo()
    try:
        result = algo.train()
    finally:
        algo.stop()

    sampled = result["env_runners"]
    assert sampled["num_env_steps_sampled"] >= FRAGMENT
    # Every AV acted at every env step, all through the one shared module.
    assert sampled["num_agent_steps_sampled"] == {f"av_{i}": FRAGMENT for i in range(3)}
    assert sampled["num_module_steps_sampled"]["shared"] == 3 * FRAGMENT
    # Whole episodes ended at the horizon (the env's truncation reached RLlib's episodes).
    assert sampled["num_episodes"] >= 1
    assert sampled["episode_len_max"] == 100
    assert math.isfinite(sampled["episode_return_mean"])
    learner = result["learners"]["shared"]
    assert math.isfinite(learner["total_loss"])
    assert math.isfinite(learner["policy_loss"])
