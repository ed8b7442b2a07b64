"""The suites' baselines play the policy's episodes: for episode seed ``s`` the same SUMO seed,
warm-up, length and metric as the trained policy played on the row's own env through the
runners (``flowsim.bench.suite.policy_figures``' path)."""

from __future__ import annotations

import pytest

from flowsim import testing
from flowsim.bench.resco import baseline_episode
from flowsim.bench.suite_flow import episode_figure, human_config, human_figures
from flowsim.config import FlowsimConfig, load_config
from flowsim.distributed import EpisodeJob, EpisodeResult, make_runner_group
from flowsim.evaluation.evaluate import BaselineActor
from flowsim.sim.kernel import Kernel
from flowsim.testing import ROOT

BENCHMARKS = ROOT / "scenarios" / "benchmarks"


@pytest.fixture
def sumo_seeds(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The SUMO seed of every scenario loaded while the test runs (SUMO loads it as usual)."""
    seeds: list[int] = []
    load = Kernel.load

    def recording(self: Kernel, instance: object, seed: int) -> None:
        seeds.append(seed)
        load(self, instance, seed)  # type: ignore[arg-type]

    monkeypatch.setattr(Kernel, "load", recording)
    return seeds


def _played(config: FlowsimConfig, jobs: list[EpisodeJob]) -> list[EpisodeResult]:
    """``jobs`` played on one in-process runner of ``config``'s own env."""
    group = make_runner_group(config, num_workers=0)
    try:
        return group.play(jobs)
    finally:
        group.close()


def test_the_humans_get_the_policys_sumo_seed(sumo_seeds: list[int]) -> None:
    """figureeight0 (IDM humans with noise): the all-human episode from seed s loads the SUMO
    seed the policy's episode s loads on the row's env; another seed, another SUMO seed."""
    config = load_config(BENCHMARKS / "figureeight0.yaml", ["env.horizon=20"])
    _played(config, [EpisodeJob(1000)])  # the runner's policy, as a trained one plays
    policy = sumo_seeds[-1]
    sumo_seeds.clear()
    first, second = human_figures(config, "speed", episodes=2, seed=1000)
    assert sumo_seeds == [policy, sumo_seeds[1]] and sumo_seeds[1] != policy
    assert first != second  # the humans' noise follows the seed


def test_sumos_programme_scores_the_same_played_both_ways() -> None:
    """grid0 with random desired speeds: SUMO's actuated programme as the all-human baseline
    and as an actor on the row's own env (Flow's grid env, through the runners, as the policy
    plays) give the same delay per episode seed, and the seeds give different delays."""
    config = load_config(BENCHMARKS / "grid0.yaml", ["env.horizon=60", "vehicles.0.speed_dev=0.2"])
    assert human_config(config) is config  # no AV to turn into a human
    humans = human_figures(config, "delay", episodes=2, seed=3)
    jobs = [EpisodeJob(seed, actor=BaselineActor("program")) for seed in (3, 4)]
    on_the_env = [episode_figure("delay", config, result) for result in _played(config, jobs)]
    assert humans == on_the_env
    assert humans[0] != humans[1]


def test_the_avs_drive_as_the_humans() -> None:
    """human_config: flowsim-driven humans give the AVs ``flowsim evaluate``'s human
    controller (figureeight2's 0-vehicle group says it); SUMO-driven ones SUMO's model."""
    eight = human_config(load_config(BENCHMARKS / "figureeight2.yaml"))
    assert {(g.controller.type, g.controller.params.get("noise")) for g in eight.vehicles} == {
        ("idm", 0.2)
    }
    merge = human_config(load_config(BENCHMARKS / "merge0.yaml"))
    assert {g.controller.type for g in merge.vehicles} == {"sumo"}


@testing.needs_sumo_rl()
def test_a_resco_baseline_scores_the_same_played_both_ways() -> None:
    """cologne1 (random demand): ``bench resco``'s baseline episode from seed s is the
    policy's episode s of the multi-agent env on the runners, played by the same rule."""
    config = load_config(ROOT / "scenarios" / "resco" / "cologne1.yaml", ["env.horizon=20"])
    seeds = (5, 6)
    alone = [baseline_episode(config, "max_pressure", seed)["avg_delay"] for seed in seeds]
    jobs = [EpisodeJob(seed, actor=BaselineActor("max_pressure")) for seed in seeds]
    on_runners = [result.metrics["avg_delay"] for result in _played(config, jobs)]
    assert alone == on_runners
    assert alone[0] != alone[1]
