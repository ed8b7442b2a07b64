"""``train.best_by: eval``: best.pt is the checkpoint of the best greedy evaluation, written in
progress.csv's ``eval_<metric>`` column; ``train.time_budget_s`` ends a run by wall time."""

from __future__ import annotations

import csv
import json
import math
import shutil
from pathlib import Path

import pytest

from flowsim.config import load_config
from flowsim.distributed import make_runner_group
from flowsim.distributed.play import EpisodeJob
from flowsim.errors import ConfigError
from flowsim.runs.checkpoints import read_checkpoint
from flowsim.runs.directory import RunDirectory
from flowsim.runs.loop import EVAL_SEED
from flowsim.runs.training import train
from flowsim.testing import ROOT

CARTPOLE = ROOT / "scenarios" / "cartpole.yaml"
EVAL = [
    "sampler.rollout_fragment_length=256",
    "train.epochs=4",
    "train.best_by=eval",
    "train.eval_every=1",
    "train.eval_episodes=2",
    "train.keep_checkpoints=20",
]


def _greedy_return(run_dir: Path, checkpoint: Path, episodes: int) -> float:
    """The checkpoint's policy played greedily on the evaluation's seeds, in its own runner."""
    config = load_config(run_dir / "config.yaml")
    group = make_runner_group(config, num_workers=0)
    try:
        group.set_weights(read_checkpoint(checkpoint)["policy"], version=0)
        played = group.play([EpisodeJob(EVAL_SEED + k) for k in range(episodes)])
    finally:
        group.close()
    return sum(r.episode_return for r in played) / len(played)


@pytest.fixture(scope="module")
def eval_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Six CartPole iterations, each evaluated greedily on 2 episodes, every checkpoint kept."""
    config = load_config(CARTPOLE, ["train.iterations=6", *EVAL])
    return train(config, out=tmp_path_factory.mktemp("eval")).directory


def test_best_pt_holds_the_best_greedy_evaluation(eval_run: Path) -> None:
    with open(eval_run / "progress.csv", newline="") as stream:
        rows = list(csv.DictReader(stream))
    figures = {int(r["iteration"]): float(r["eval_return"]) for r in rows}
    assert len(figures) == 6 and all(math.isfinite(v) for v in figures.values())
    best_iteration = max(figures, key=lambda i: (figures[i], -i))  # the first of the best
    best = read_checkpoint(eval_run / "checkpoints" / "best.pt")
    assert int(best["trainer"]["iteration"]) == best_iteration
    # The column is what the checkpoint's greedy policy scores: replayed, it gives the same.
    assert _greedy_return(eval_run, eval_run / "checkpoints" / "best.pt", 2) == pytest.approx(
        figures[best_iteration]
    )
    # And no other checkpoint's greedy policy scores better on those seeds.
    for path in RunDirectory(eval_run).checkpoint_paths():
        assert _greedy_return(eval_run, path, 2) <= figures[best_iteration] + 1e-9
    summary = json.loads((eval_run / "summary.json").read_text())
    assert summary["best_by"] == "eval" and summary["best_iteration"] == best_iteration
    assert summary["best"] == pytest.approx(figures[best_iteration])


def test_resume_keeps_the_evaluated_best(eval_run: Path, tmp_path: Path) -> None:
    run_dir = Path(shutil.copytree(eval_run, tmp_path / "run"))
    before = read_checkpoint(run_dir / "checkpoints" / "best.pt")["trainer"]["iteration"]
    summary = json.loads((run_dir / "summary.json").read_text())
    run = train(None, resume=run_dir, overrides=["train.iterations=8"])
    assert run.trainer.iteration == 8
    figures = [r["eval_return"] for r in run.rows]
    assert len(figures) == 8 and all(math.isfinite(v) for v in figures)
    after = read_checkpoint(run_dir / "checkpoints" / "best.pt")["trainer"]["iteration"]
    if max(figures[6:]) > summary["best"]:  # a later evaluation beat the carried best
        assert after > 6
    else:  # the best carried over from before the resume stays, not the resumed run's own
        assert after == before


def test_a_time_budget_ends_the_run(tmp_path: Path) -> None:
    config = load_config(CARTPOLE, ["train.iterations=1000", "train.time_budget_s=1.5", *EVAL[:2]])
    run = train(config, out=tmp_path)
    assert 1 <= run.trainer.iteration < 1000
    walls = [row["wall_s"] for row in run.rows]
    assert walls[-1] >= 1.5 and all(wall < 1.5 for wall in walls[:-1])  # the first past it
    assert (run.directory / "checkpoints" / f"checkpoint-{run.trainer.iteration:06d}.pt").is_file()


def test_an_eval_metric_the_env_lacks_is_refused(tmp_path: Path) -> None:
    config = load_config(CARTPOLE, ["train.iterations=1", *EVAL, "train.eval_metric=outflow"])
    with pytest.raises(ConfigError, match=r"train\.eval_metric outflow"):
        train(config, out=tmp_path)
