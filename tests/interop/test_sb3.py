"""Stable-Baselines3 trains a flowsim Gymnasium env (docs/interop.md).

libsumo runs one simulation per process, so the envs are SB3's ``SubprocVecEnv``: one ring,
one SUMO, per subprocess.
"""

from __future__ import annotations

from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

import flowsim  # noqa: F401 - registers flowsim/Ring-v0 with Gymnasium

pytest.importorskip("stable_baselines3", reason="pip install -e '.[dev]' (stable-baselines3)")

from stable_baselines3 import PPO
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.vec_env import SubprocVecEnv

#: A short ring episode: 100 decisions (50 s) after 10 s of humans alone.
HORIZON = 100
RING = {"overrides": [f"env.horizon={HORIZON}", "env.warmup_steps=100"], "render_mode": None}
NUM_ENVS = 2
TIMESTEPS = 2048


@pytest.mark.slow
def test_sb3_ppo_trains_the_ring_in_subprocesses(tmp_path: Path) -> None:
    # "flowsim:" makes Gymnasium import flowsim (which registers the id) in each subprocess.
    envs = make_vec_env(
        "flowsim:flowsim/Ring-v0",
        n_envs=NUM_ENVS,
        seed=0,
        vec_env_cls=SubprocVecEnv,
        env_kwargs=RING,
    )
    try:
        model = PPO(
            "MlpPolicy", envs, n_steps=256, batch_size=128, n_epochs=2, seed=0, device="cpu"
        )
        model.learn(total_timesteps=TIMESTEPS)
    finally:
        envs.close()

    # SB3 counted every step of both subprocesses, and its Monitor saw whole ring episodes end
    # at the horizon (the env's truncation reached SB3 through the subprocess pipe).
    assert model.num_timesteps == TIMESTEPS
    lengths = [episode["l"] for episode in model.ep_info_buffer]
    assert len(lengths) >= TIMESTEPS // HORIZON - NUM_ENVS
    assert set(lengths) == {HORIZON}
    assert all(np.isfinite(episode["r"]) for episode in model.ep_info_buffer)

    # The learned policy drives a fresh ring in this process: finite accelerations in the box.
    ring = gym.make("flowsim/Ring-v0", **RING)
    observations = []
    try:
        observation, _ = ring.reset(seed=1)
        for _ in range(20):
            action, _ = model.predict(observation, deterministic=True)
            assert np.all(np.isfinite(action))
            assert ring.action_space.contains(action.astype(ring.action_space.dtype))
            observations.append(observation)
            observation, _, terminated, truncated, _ = ring.step(action)
            assert not terminated and not truncated
    finally:
        ring.close()

    # Saved and loaded, the policy gives the same greedy actions.
    model.save(tmp_path / "ppo_ring.zip")
    loaded = PPO.load(tmp_path / "ppo_ring.zip", device="cpu")
    batch = np.stack(observations)
    np.testing.assert_array_equal(
        loaded.predict(batch, deterministic=True)[0], model.predict(batch, deterministic=True)[0]
    )
