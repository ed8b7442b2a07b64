"""The task's reward hook is ``step_reward``: SB3's checker accepts the envs, and a task
written with the old name ``compute_reward`` still runs, with a warning."""

from __future__ import annotations

import importlib

import gymnasium as gym
import numpy as np
import pytest

import flowsim  # noqa: F401 - registers the envs
from flowsim.envs.base import FlowsimEnv

SHORT = ["env.warmup_steps=10", "env.horizon=20"]
ENV_MODULES = (
    "flowsim.envs.ring",
    "flowsim.envs.merge",
    "flowsim.envs.bottleneck",
    "flowsim.envs.signals",
    "flowsim.envs.open_av",
    "flowsim.envs.multiagent",
    "flowsim.envs.multiagent_signals",
)


def _flowsim_envs() -> list[type]:
    """Every env class flowsim ships (subclasses of FlowsimEnv in flowsim's own modules)."""
    for module in ENV_MODULES:
        importlib.import_module(module)
    found, todo = [], [FlowsimEnv]
    while todo:
        cls = todo.pop()
        found.append(cls)
        todo.extend(cls.__subclasses__())
    return [cls for cls in found if cls.__module__.startswith("flowsim.")]


def test_no_builtin_env_has_a_compute_reward_method() -> None:
    classes = _flowsim_envs()
    assert len(classes) >= 8  # the ring, merge, bottleneck, signal, open-network and MA tasks
    offenders = [cls.__qualname__ for cls in classes if hasattr(cls, "compute_reward")]
    assert offenders == [], "SB3 takes an env with compute_reward for a GoalEnv"


def test_stable_baselines3_check_env_accepts_the_ring() -> None:
    env_checker = pytest.importorskip("stable_baselines3.common.env_checker")
    env = gym.make("flowsim/Ring-v0", overrides=SHORT).unwrapped
    try:
        env_checker.check_env(env, warn=False)
    finally:
        env.close()


def test_a_task_with_the_old_hook_name_warns_and_still_runs() -> None:
    from flowsim.envs.ring import WaveAttenuationEnv

    with pytest.warns(DeprecationWarning, match="step_reward"):

        class OldStyle(WaveAttenuationEnv):
            def compute_reward(self, action: np.ndarray) -> float:
                return 42.0

    env = OldStyle(overrides=SHORT)
    try:
        env.reset(seed=0)
        _, reward, *_ = env.step(np.zeros(1, dtype=np.float32))
        assert reward == 42.0
        assert isinstance(env, FlowsimEnv)
    finally:
        env.close()
