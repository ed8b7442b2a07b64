"""`--resume` with `--set`: the run is extended or a safe setting applied, else a clear refusal."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import pytest

from flowsim.cli import main
from flowsim.config import dump_config, load_config
from flowsim.errors import ConfigError
from flowsim.runs.directory import RunDirectory
from flowsim.runs.events import read_events
from flowsim.runs.resume import RESUMABLE_KEYS, resume_config
from flowsim.runs.training import train
from flowsim.testing import ROOT

CARTPOLE = ROOT / "scenarios" / "cartpole.yaml"


def _iterations(run_dir: Path) -> list[int]:
    with open(run_dir / "progress.csv", newline="") as stream:
        return [int(row["iteration"]) for row in csv.DictReader(stream)]


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished 2-iteration CartPole run (copy it before resuming)."""
    config = load_config(CARTPOLE, ["train.iterations=2", "sampler.rollout_fragment_length=64"])
    return train(config, out=tmp_path_factory.mktemp("finished")).directory


def _copy(run_dir: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(run_dir, tmp_path / "run"))


def test_raising_iterations_on_resume_extends_the_run(finished_run: Path, tmp_path: Path) -> None:
    run_dir = _copy(finished_run, tmp_path)
    run = train(None, resume=run_dir, overrides=["train.iterations=4"])
    assert run.trainer.iteration == 4 and _iterations(run_dir) == [1, 2, 3, 4]
    assert load_config(run_dir / "config.yaml").train.iterations == 4  # the folder tells it
    (event,) = read_events(run_dir)
    assert event["kind"] == "resumed" and event["iteration"] == 2
    assert "train.iterations 2 -> 4" in event["detail"]
    assert sorted(p.name for p in (run_dir / "checkpoints").glob("checkpoint-*.pt"))[-1] == (
        "checkpoint-000004.pt"
    )


def test_a_safe_setting_is_applied_on_resume(finished_run: Path, tmp_path: Path) -> None:
    run_dir = _copy(finished_run, tmp_path)
    run = train(
        None,
        resume=run_dir,
        overrides=["train.iterations=3", "train.lr=0.0005", "train.lr_schedule=constant"],
    )
    assert [g["lr"] for g in run.trainer.optimizer.param_groups] == [0.0005]  # not the checkpoint's
    saved = load_config(run_dir / "config.yaml").train
    assert (saved.lr, saved.lr_schedule, saved.iterations) == (0.0005, "constant", 3)
    assert "train.lr 0.001 -> 0.0005" in read_events(run_dir)[-1]["detail"]


@pytest.mark.parametrize(
    "override",
    ["train.hidden=[32]", "train.seed=7", "env.id=Acrobot-v1", "train.normalize_obs=false"],
)
def test_a_setting_that_cannot_change_is_refused_by_name(
    finished_run: Path, tmp_path: Path, override: str
) -> None:
    run_dir = _copy(finished_run, tmp_path)
    before = (run_dir / "config.yaml").read_text()
    key = override.split("=")[0]
    with pytest.raises(ConfigError, match=rf"{key} cannot change when a run resumes") as error:
        train(None, resume=run_dir, overrides=["train.iterations=4", override])
    assert "Start a new run instead" in str(error.value)
    assert (run_dir / "config.yaml").read_text() == before  # nothing changed on disk
    assert _iterations(run_dir) == [1, 2] and read_events(run_dir) == []


def test_a_larger_time_budget_is_applied_on_resume(finished_run: Path, tmp_path: Path) -> None:
    """A row of `flowsim bench suite` resumed with more minutes: train.time_budget_s may grow."""
    run_dir = _copy(finished_run, tmp_path)
    overrides = ["train.iterations=3", "train.time_budget_s=3600"]
    run = train(None, resume=run_dir, overrides=overrides)
    assert run.trainer.iteration == 3
    assert load_config(run_dir / "config.yaml").train.time_budget_s == 3600
    assert "train.time_budget_s null -> 3600.0" in read_events(run_dir)[-1]["detail"]


def test_a_run_that_died_before_its_first_checkpoint_trains_from_the_start(
    finished_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`train --resume` on a run killed before its first checkpoint: the same run, from scratch,
    in its own folder with its config and logs; a folder with no run at all is still refused."""
    directory = RunDirectory.create(load_config(finished_run / "config.yaml"), tmp_path)
    directory.events().record("sim_restart", 0, "logged before the kill")  # a log to keep
    before = directory.config_path.read_text()
    assert main(["train", "--resume", str(directory.path)]) == 0
    err = capsys.readouterr().err
    assert "has no checkpoint yet" in err and "training it from the start" in err
    assert directory.config_path.read_text() == before
    assert [e["kind"] for e in read_events(directory.path)] == ["sim_restart", "resumed"]
    # the same seeds as a fresh start: the rows of the run that was never interrupted
    other = {"wall_s", "steps_per_s", "resumes"}

    def rows(run_dir: Path) -> list[dict[str, str]]:
        with open(run_dir / "progress.csv", newline="") as stream:
            return [{k: v for k, v in r.items() if k not in other} for r in csv.DictReader(stream)]

    assert rows(directory.path) == rows(finished_run) and len(rows(finished_run)) == 2
    assert [p.name for p in directory.checkpoint_paths()][-1] == "checkpoint-000002.pt"
    assert main(["train", "--resume", str(tmp_path / "nothing")]) == 2
    assert "not a run directory" in capsys.readouterr().err


def test_iterations_below_those_done_are_refused(finished_run: Path, tmp_path: Path) -> None:
    run_dir = _copy(finished_run, tmp_path)
    with pytest.raises(ConfigError, match=r"already done 2 iterations; give at least 2"):
        train(None, resume=run_dir, overrides=["train.iterations=1"])


def test_overrides_without_resume_are_refused() -> None:
    with pytest.raises(ConfigError, match="resumed run"):
        train(load_config(CARTPOLE), overrides=["train.iterations=3"])


def test_resume_config_names_each_change_and_honours_refusals() -> None:
    saved = load_config(CARTPOLE)
    same, changes = resume_config(saved, None, done=5, source="run")
    assert same is saved and changes == []
    config, changes = resume_config(
        saved, ["sampler.num_workers=2", "train.entropy_coef=0.01"], done=5, source="run"
    )
    assert config.sampler.num_workers == 2 and config.train.entropy_coef == 0.01
    assert changes == ["sampler.num_workers 0 -> 2", "train.entropy_coef 0.0 -> 0.01"]
    with pytest.raises(
        ConfigError, match=r"train\.lr=0\.01: cannot change on --resume run: searched"
    ):
        resume_config(saved, ["train.lr=0.01"], 0, "run", refused={"train.lr": "searched"})
    assert {"train.iterations", "train.lr", "sampler.num_workers"} <= set(RESUMABLE_KEYS)


def test_tune_resume_refuses_what_its_trials_cannot_change(tmp_path: Path) -> None:
    from flowsim.tune.results import TUNE_CONFIG_FILE
    from flowsim.tune.run import resume_tune

    config = load_config(ROOT / "scenarios" / "tune_cartpole.yaml")
    assert "train.lr" in config.tune.search_space
    (tmp_path / TUNE_CONFIG_FILE).write_text(dump_config(config))
    (tmp_path / "tuner.pkl").write_bytes(b"")  # refused before Ray Tune reads it
    for override, fragment in [
        ("train.iterations=500", "finished trials stay finished"),
        ("train.lr=0.01", "tune.search_space gives every trial its own value"),
        ("sampler.num_workers=3", "placement group"),
        ("tune.num_samples=9", "tune.num_samples cannot change when a run resumes"),
        ("env.id=Acrobot-v1", "env.id cannot change when a run resumes"),
    ]:
        with pytest.raises(ConfigError, match=fragment):
            resume_tune(tmp_path, overrides=[override])
    assert load_config(tmp_path / TUNE_CONFIG_FILE) == config
