"""MultiDiscrete actions: one categorical per dimension, in the learners and in the runners."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gymnasium
import numpy as np
import pytest
import torch
from gymnasium import spaces

from flowsim.config import FlowsimConfig, parse_config
from flowsim.errors import ConfigError
from flowsim.evaluation.evaluate import evaluate
from flowsim.policies.numpy_mlp import build_policy
from flowsim.policies.spec import PolicySpec, check_action_space
from flowsim.policies.torch import ActorCritic, MultiCategorical
from flowsim.runs.training import train
from flowsim.testing import cli_flags, run_cli, short_run

BANDIT_ID = "flowsim_test/ContextualMultiBandit-v0"
#: Steps per bandit episode; the best policy earns 2 per step.
BANDIT_STEPS = 8
BEST_RETURN = 2.0 * BANDIT_STEPS


class ContextualMultiBandit(gymnasium.Env[np.ndarray, np.ndarray]):
    """Two independent choices per step, each rewarded when it fits a random context.

    Observation: a one-hot context ``c`` of 3. Action: ``MultiDiscrete([3, 2], start=[0, 1])``.
    Reward: 1 if the first choice is ``c``, plus 1 if the second is ``1 + c % 2`` (so the
    start offset matters). Termination: after ``BANDIT_STEPS`` steps. A uniform policy earns
    ``(1/3 + 1/2) * 8 = 6.7`` per episode, the best one 16.
    """

    observation_space = spaces.Box(0.0, 1.0, (3,), dtype=np.float32)
    action_space = spaces.MultiDiscrete([3, 2], start=[0, 1])

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """A new episode with a fresh context."""
        super().reset(seed=seed)
        self.steps = 0
        return self._observe(), {}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """Score ``action`` against the current context, then draw the next one."""
        first, second = (int(a) for a in np.asarray(action).reshape(-1))
        reward = float(first == self.context) + float(second == 1 + self.context % 2)
        self.steps += 1
        return self._observe(), reward, self.steps >= BANDIT_STEPS, False, {}

    def _observe(self) -> np.ndarray:
        self.context = int(self.np_random.integers(3))
        return np.eye(3, dtype=np.float32)[self.context]


if BANDIT_ID not in gymnasium.registry:
    gymnasium.register(BANDIT_ID, entry_point=ContextualMultiBandit)


def _bandit_config(algo: str, iterations: int, **train: Any) -> FlowsimConfig:
    """The bandit through flowsim's own sampler (one in-process runner) and trainer."""
    return parse_config(
        {
            "name": f"bandit_{algo}",
            "env": {"type": "gym", "id": BANDIT_ID},
            "sampler": {"num_workers": 0, "rollout_fragment_length": 256},
            "train": {"algo": algo, "iterations": iterations, "hidden": [16], **train},
        }
    )


def _greedy_return(config: FlowsimConfig, weights: dict[str, np.ndarray]) -> float:
    result = evaluate(config, weights, episodes=5, seed=7, baselines=())
    return float(result["policy"]["mean_return"])


# -- learning ---------------------------------------------------------------------------------
def test_ppo_learns_both_choices_of_the_contextual_bandit(tmp_path: Path) -> None:
    config = _bandit_config("ppo", 12, lr=0.01, epochs=4, minibatch_size=64, gamma=0.1)
    run = train(config, out=tmp_path)
    returns = [row["return_mean"] for row in run.rows]
    assert returns[0] < 0.6 * BEST_RETURN  # starts near uniform (6.7)
    assert np.mean(returns[-3:]) >= 0.9 * BEST_RETURN  # sampled actions, entropy left
    weights = run.trainer.model.export(run.trainer.normalizer)
    assert _greedy_return(run.trainer.config, weights) == BEST_RETURN


def test_a_multidiscrete_run_resumes_from_its_checkpoint(tmp_path: Path) -> None:
    run_dir = train(_bandit_config("ppo", 2), out=tmp_path).directory
    saved = run_dir / "config.yaml"
    saved.write_text(saved.read_text().replace("iterations: 2", "iterations: 3"))
    resumed = train(None, resume=run_dir)
    assert [int(row["iteration"]) for row in resumed.rows] == [1, 2, 3]


def test_trpo_runs_and_improves_on_the_bandit(tmp_path: Path) -> None:
    config = _bandit_config("trpo", 6, gamma=0.1, trpo={"max_kl": 0.05})
    rows = train(config, out=tmp_path).rows
    assert all(row["line_search_failed"] == 0.0 for row in rows)
    assert all(0.0 < row["kl"] <= 0.05 * 1.5 for row in rows)  # the trust region holds
    assert rows[-1]["return_mean"] > rows[0]["return_mean"] + 2.0


def test_es_learns_the_bandit_with_greedy_choices(tmp_path: Path) -> None:
    es = {"sigma": 0.1, "perturbations": 16, "noise_table_size": 100_000, "eval_episodes": 8}
    rows = train(_bandit_config("es", 10, lr=0.05, es=es), out=tmp_path).rows
    assert all(row["pairs"] == 16 for row in rows)
    # returns are the unperturbed policy's: the argmax of every dimension
    assert np.mean([row["return_mean"] for row in rows[-3:]]) >= 0.9 * BEST_RETURN


# -- the runners' numpy policy against the learners' torch policy ---------------------------
SPACES = [
    spaces.MultiDiscrete([2] * 9),  # the traffic-light grid
    spaces.MultiDiscrete([3, 1, 4, 2], start=[0, 5, -2, 1]),
    spaces.MultiDiscrete([[2, 3], [4, 2]], start=[[1, 0], [0, -1]]),
    spaces.Discrete(4, start=3),
]


@pytest.mark.parametrize("action_space", SPACES, ids=str)
def test_numpy_and_torch_policies_agree(action_space: spaces.Space[Any]) -> None:
    observation_space = spaces.Box(-1.0, 1.0, (5,), dtype=np.float32)
    torch.manual_seed(0)
    spec = PolicySpec.for_spaces(observation_space, action_space, (16, 16))
    model = ActorCritic(spec)
    with torch.no_grad():  # sharper than the near-uniform initial head
        for parameter in model.pi.parameters():
            parameter.normal_(0.0, 0.7)
    policy = build_policy(spec, observation_space, action_space, seed=0)
    policy.set_weights(model.export(None))
    obs = np.random.default_rng(1).uniform(-1, 1, (64, 5)).astype(np.float32)

    sampled, logp, _ = policy.compute_actions(obs, explore=True, rng=np.random.default_rng(2))
    assert sampled.shape == (64, *action_space.shape) and sampled.dtype == np.int64
    assert all(action_space.contains(action) for action in sampled)
    dist = model.distribution(torch.as_tensor(obs))
    torch_logp = model.log_prob(dist, model.action_tensor(sampled)).detach().numpy()
    np.testing.assert_allclose(torch_logp, logp, atol=1e-5)

    greedy, greedy_logp, _ = policy.compute_actions(obs, explore=False, rng=None)  # type: ignore[arg-type]
    mode = dist.mode.numpy() + model.action_start.numpy()
    np.testing.assert_array_equal(greedy.reshape(mode.shape), mode)
    greedy_torch = model.log_prob(dist, model.action_tensor(greedy)).detach().numpy()
    np.testing.assert_allclose(greedy_torch, greedy_logp, atol=1e-5)


def test_runner_policy_samples_each_dimension_from_its_probabilities() -> None:
    action_space = spaces.MultiDiscrete([2, 3], start=[1, 0])
    policy = build_policy(
        PolicySpec(kind="multi_categorical_mlp", nvec=(2, 3)),
        spaces.Box(-1, 1, (4,)),
        action_space,
        seed=0,
    )
    weights = policy.initial_weights(seed=0)
    weights["pi.2.weight"] = np.zeros_like(weights["pi.2.weight"])
    probabilities = [np.array([0.3, 0.7]), np.array([0.2, 0.3, 0.5])]
    weights["pi.2.bias"] = np.log(np.concatenate(probabilities))
    policy.set_weights(weights)
    actions, logp, _ = policy.compute_actions(np.zeros((30000, 4)), True, np.random.default_rng(0))
    first, second = actions[:, 0] - 1, actions[:, 1]
    assert np.allclose(np.bincount(first, minlength=2) / len(actions), probabilities[0], atol=0.01)
    assert np.allclose(np.bincount(second, minlength=3) / len(actions), probabilities[1], atol=0.01)
    assert np.allclose(np.exp(logp), probabilities[0][first] * probabilities[1][second])


def test_multi_categorical_entropy_and_kl_are_sums_over_dimensions() -> None:
    logits = torch.randn(5, 7, generator=torch.Generator().manual_seed(0))
    other = torch.randn(5, 7, generator=torch.Generator().manual_seed(1))
    p, q = MultiCategorical(logits, (3, 4)), MultiCategorical(other, (3, 4))
    parts = [torch.distributions.Categorical(logits=t) for t in logits.split((3, 4), -1)]
    others = [torch.distributions.Categorical(logits=t) for t in other.split((3, 4), -1)]
    assert torch.allclose(p.entropy(), parts[0].entropy() + parts[1].entropy())
    expected_kl = sum(
        torch.distributions.kl_divergence(a, b) for a, b in zip(parts, others, strict=True)
    )
    assert torch.allclose(torch.distributions.kl_divergence(p, q), expected_kl)
    assert p.sample().shape == (5, 2) and p.mode.shape == (5, 2)


# -- spaces and specs --------------------------------------------------------------------------
def test_spec_carries_nvec_and_a_runner_refuses_another() -> None:
    spec = PolicySpec.for_spaces(spaces.Box(-1, 1, (4,)), spaces.MultiDiscrete([2, 2, 3]), (8,))
    assert spec.kind == "multi_categorical_mlp" and spec.nvec == (2, 2, 3)
    with pytest.raises(ValueError, match=r"\[2, 2, 3\] choices per action dimension"):
        build_policy(spec, spaces.Box(-1, 1, (4,)), spaces.MultiDiscrete([2, 2, 2]), seed=0)


@pytest.mark.parametrize(
    "action_space", [spaces.MultiBinary(3), spaces.Tuple([spaces.Discrete(2)])]
)
def test_unsupported_action_spaces_are_refused_by_name(action_space: spaces.Space[Any]) -> None:
    with pytest.raises(ConfigError, match="Box, Discrete and MultiDiscrete"):
        check_action_space(action_space)
    with pytest.raises(ConfigError, match="Box, Discrete and MultiDiscrete"):
        PolicySpec.for_spaces(spaces.Box(-1, 1, (4,)), action_space, (8,))


def test_checkpoint_layout_of_existing_policies_is_unchanged() -> None:
    # No new parameters or buffers: checkpoints written before MultiDiscrete still load.
    box = spaces.Box(-1, 1, (2,))
    for action_space, extra in ((box, {"log_std"}), (spaces.Discrete(3), set())):
        model = ActorCritic(PolicySpec.for_spaces(box, action_space, (8, 8)))
        layers = {
            f"{head}.{i}.{p}"
            for head in ("pi", "vf")
            for i in (0, 2, 4)
            for p in ("weight", "bias")
        }
        assert set(model.state_dict()) == layers | extra
    multi = ActorCritic(PolicySpec.for_spaces(box, spaces.MultiDiscrete([2, 3]), (8, 8)))
    fresh = ActorCritic(PolicySpec.for_spaces(box, spaces.MultiDiscrete([2, 3]), (8, 8)))
    fresh.load_state_dict(multi.state_dict())


# -- the signal-control envs through the CLI ---------------------------------------------------
QUICK_SIGNALS = cli_flags(short_run(fragment=100, horizon=50, warmup=None, minibatch=50))


@pytest.mark.parametrize("scenario", ["grid", "osm"])
def test_flowsim_train_runs_on_multidiscrete_signal_envs(tmp_path: Path, scenario: str) -> None:
    done = run_cli(
        "train", f"scenarios/{scenario}.yaml", *QUICK_SIGNALS, "--out", str(tmp_path), timeout=120
    )
    assert done.returncode == 0, done.stderr
    (run_dir,) = tmp_path.iterdir()
    checkpoints = sorted(p.name for p in (run_dir / "checkpoints").iterdir())
    assert checkpoints == ["best.pt", "checkpoint-000001.pt", "checkpoint-000002.pt"]
    assert len((run_dir / "progress.csv").read_text().splitlines()) == 3
