"""Runner actors inside Ray Tune trials live in each trial's placement group."""

from __future__ import annotations

from pathlib import Path

from flowsim.config import FlowsimConfig, apply_overrides
from flowsim.distributed.cluster import placement_bundles


def test_two_trials_with_their_own_runner_run_at_once(local_ray, tmp_path: Path) -> None:
    from ray import tune
    from ray.tune import PlacementGroupFactory, RunConfig, TuneConfig, Tuner

    config = apply_overrides(
        FlowsimConfig(), ["env.warmup_steps=10", "env.horizon=100", "sampler.num_workers=1"]
    )
    bundles = placement_bundles(config, trainer_cpus=0)
    assert bundles == [{"CPU": 0.0}, {"CPU": 1.0}]

    def trial(params: dict) -> None:
        import os

        from flowsim.distributed import RayRunnerGroup

        group = RayRunnerGroup(apply_overrides(config, [f"sim.seed={params['seed']}"]), 1)
        try:
            batch = group.sample(num_steps=200)
            (runner,) = group.describe()
            tune.report(
                {"steps": len(batch), "runner_pid": runner["pid"], "trial_pid": os.getpid()}
            )
        finally:
            group.close()

    tuner = Tuner(
        tune.with_resources(trial, PlacementGroupFactory(bundles)),
        param_space={"seed": tune.grid_search([0, 1])},
        tune_config=TuneConfig(max_concurrent_trials=2),
        run_config=RunConfig(storage_path=str(tmp_path), name="sampler", verbose=0),
    )
    results = tuner.fit()
    assert not results.errors
    frames = [result.metrics for result in results]
    assert [f["steps"] for f in frames] == [200, 200]
    assert len({f["runner_pid"] for f in frames}) == 2  # each trial had its own runner
