"""Shared skills: procedures of one run reused frozen, retrained or recreated in another."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from flowsim.config.imitation import ImitationConfig
from flowsim.errors import ConfigError
from flowsim.hierarchy.learn import fit
from flowsim.hierarchy.neural import NeuralProgram
from flowsim.hierarchy.skills import reuse_skills
from flowsim.hierarchy.synthetic import FLIP, MATCH, synthetic_demonstrations, synthetic_spec
from flowsim.runs.checkpoints import save_checkpoint

SOURCE_FEATURES = ("u", "w")
TARGET_FEATURES = ("u", "w", "z")


@pytest.fixture(scope="module")
def source_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, NeuralProgram]:
    """A fake imitate run whose program learned the synthetic task (features u, w)."""
    torch.set_num_threads(1)
    program = NeuralProgram(synthetic_spec(), seed=0)
    fit(program, synthetic_demonstrations(2, steps=100, noise=0.0, seed=0), epochs=150, lr=1e-2)
    folder = tmp_path_factory.mktemp("source")
    state = {"kind": "hierarchy", "program": program.state(), "features": list(SOURCE_FEATURES)}
    (folder / "checkpoints").mkdir()
    save_checkpoint(state, folder / "checkpoints" / "checkpoint-000150.pt")
    return folder, program


def _with_extra_feature(demos: list) -> list:
    """The synthetic demonstrations with a third, irrelevant feature z."""
    rng = np.random.default_rng(5)
    return [
        replace(d, obs=np.concatenate([d.obs, rng.uniform(-1, 1, (len(d), 1))], 1).astype("f4"))
        for d in demos
    ]


def _imitation(folder: Path, skills: list[dict]) -> ImitationConfig:
    return ImitationConfig.model_validate({"skills_from": str(folder), "skills": skills})


def test_frozen_retrain_and_recreate_on_a_task_with_another_feature(source_run) -> None:
    folder, source = source_run
    target = NeuralProgram(replace(synthetic_spec(), obs_dim=3), seed=1)
    imitation = _imitation(
        folder,
        [
            {"procedure": "Match", "mode": "frozen"},
            {"procedure": "Flip", "mode": "retrain"},
            {"procedure": "Root", "mode": "recreate"},
        ],
    )
    assert reuse_skills(target, imitation, TARGET_FEATURES) == ["Match"]
    # Loaded procedures compute what they computed on the old task, whatever z is.
    obs = torch.rand(50, 2) * 2 - 1
    z = torch.rand(50, 1) * 2 - 1
    pc, arg = torch.randint(0, 8, (50,)), torch.zeros(50, dtype=torch.long)
    for k in (MATCH, FLIP):
        before = source.procedures[k](obs, pc, arg)
        after = target.procedures[k](torch.cat([obs, z], 1), pc, arg)
        torch.testing.assert_close(after.term_logit, before.term_logit)
        torch.testing.assert_close(after.action_logp[0], before.action_logp[0])
    frozen = {k: v.clone() for k, v in target.procedures[MATCH].state_dict().items()}
    flip = {k: v.clone() for k, v in target.procedures[FLIP].state_dict().items()}
    demos = _with_extra_feature(synthetic_demonstrations(2, steps=100, noise=0.1, seed=3))
    fit(target, demos, epochs=5, lr=1e-2)
    for key, value in target.procedures[MATCH].state_dict().items():
        torch.testing.assert_close(value, frozen[key])  # frozen: untouched by training
    assert any(
        not torch.equal(value, flip[key])
        for key, value in target.procedures[FLIP].state_dict().items()
    )  # retrain: trained on
    root_weight = target.procedures[0].trunk[0].weight[:, :2]
    assert not torch.allclose(root_weight, source.procedures[0].trunk[0].weight[:, :2])


def test_skill_errors_name_the_key_and_the_fix(source_run, tmp_path: Path) -> None:
    folder, _ = source_run
    target = NeuralProgram(synthetic_spec(), seed=1)
    with pytest.raises(ConfigError, match=r"skills_from: .* is not a directory"):
        reuse_skills(target, _imitation(tmp_path / "nowhere", [{"procedure": "Match"}]), ())
    with pytest.raises(ConfigError, match=r"skills_from: .*checkpoint"):
        reuse_skills(target, _imitation(tmp_path, [{"procedure": "Match"}]), ())
    with pytest.raises(ConfigError, match=r"'Follow' is not in both programs.*Match"):
        reuse_skills(target, _imitation(folder, [{"procedure": "Follow"}]), SOURCE_FEATURES)
    twice = [{"procedure": "Match"}, {"procedure": "Match", "mode": "retrain"}]
    with pytest.raises(ConfigError, match=r"lists \['Match'\] more than once"):
        reuse_skills(target, _imitation(folder, twice), SOURCE_FEATURES)
    other_cap = NeuralProgram(replace(synthetic_spec(), pc_cap=3), seed=1)
    with pytest.raises(ConfigError, match=r"Set imitation\.pc_cap to 7"):
        reuse_skills(other_cap, _imitation(folder, [{"procedure": "Match"}]), SOURCE_FEATURES)
    with pytest.raises(ValueError, match="mode"):
        ImitationConfig.model_validate(
            {"skills_from": str(folder), "skills": [{"procedure": "Match", "mode": "thaw"}]}
        )
    with pytest.raises(ValueError, match="skills_from"):
        ImitationConfig.model_validate({"skills": [{"procedure": "Match"}]})
