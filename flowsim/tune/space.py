"""From the ``tune:`` section to Ray Tune objects: param space, scheduler, searcher, stopper.

Trial parameters are flat: ``{"train.lr": 0.001, "train.epochs": 10}``, the dotted keys of
``tune.search_space``; :func:`flowsim.tune.trainable.trial_config` applies them to the
experiment's config. Nothing here re-implements a scheduler or a search algorithm: each maps
onto the one Ray Tune ships.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from typing import Any

from ray import tune

from flowsim.config import FlowsimConfig
from flowsim.config.tune import PBT_PERTURBATION_INTERVAL, Distribution, TuneConfig
from flowsim.errors import ConfigError

__all__ = [
    "TrialStopper",
    "clip_to_space",
    "default_max_t",
    "make_scheduler",
    "make_searcher",
    "param_space",
]


def _domain(distribution: Distribution, as_grid: bool) -> Any:
    """The Ray Tune domain (or grid) of one search-space entry."""
    kind = distribution.kind
    if kind == "grid" or (kind == "choice" and as_grid):
        return tune.grid_search(list(distribution.values))
    if kind == "choice":
        return tune.choice(list(distribution.values))
    low, high = distribution.low, distribution.high
    assert low is not None and high is not None
    if kind == "uniform":
        return tune.uniform(low, high)
    if kind == "loguniform":
        return tune.loguniform(low, high)
    if kind == "randint":
        return tune.randint(int(low), int(high))
    assert distribution.q is not None
    return tune.quniform(low, high, distribution.q)


def param_space(settings: TuneConfig) -> dict[str, Any]:
    """Ray Tune's ``param_space``: one flat entry per dotted key of ``tune.search_space``."""
    as_grid = settings.search.type == "grid"
    return {key: _domain(d, as_grid) for key, d in settings.search_space.items()}


def clip_to_space(config: dict[str, Any], space: Mapping[str, Distribution]) -> dict[str, Any]:
    """Keep PBT's perturbed values inside their distributions' ranges (and integer grids).

    PBT multiplies a value by 0.8 or 1.2: without this, ``train.gamma: {uniform: [0.9,
    0.999]}`` could become 1.2 and fail the config's own bounds inside a trial.
    """
    clipped = dict(config)
    for key, distribution in space.items():
        value = clipped.get(key)
        if distribution.kind in ("grid", "choice") or not isinstance(value, int | float):
            continue
        assert distribution.low is not None and distribution.high is not None
        if distribution.kind == "randint":
            clipped[key] = int(min(max(round(value), distribution.low), distribution.high - 1))
            continue
        value = min(max(float(value), distribution.low), distribution.high)
        if distribution.kind == "quniform":
            assert distribution.q is not None
            value = round(value / distribution.q) * distribution.q
        clipped[key] = value
    return clipped


def default_max_t(settings: TuneConfig, config: FlowsimConfig) -> float:
    """How long a trial can run in the scheduler's ``time_attr`` (ASHA and HyperBand's max_t)."""
    scheduler, stop = settings.scheduler, settings.stop
    if scheduler.max_t is not None:
        return scheduler.max_t
    if scheduler.time_attr == "iteration":
        return float(min(stop.iterations or math.inf, config.train.iterations))
    limit = stop.env_steps if scheduler.time_attr == "env_steps" else stop.wall_s
    if limit is None:
        raise ConfigError(
            f"tune.scheduler: {scheduler.type} with time_attr {scheduler.time_attr} needs "
            f"tune.scheduler.max_t (or tune.stop.{scheduler.time_attr}); set one of them."
        )
    return float(limit)


def make_scheduler(settings: TuneConfig, config: FlowsimConfig) -> Any:
    """The Ray Tune trial scheduler named by ``tune.scheduler``."""
    from ray.tune.schedulers import (
        ASHAScheduler,
        FIFOScheduler,
        HyperBandScheduler,
        MedianStoppingRule,
        PopulationBasedTraining,
    )

    scheduler = settings.scheduler
    given = {
        name: getattr(scheduler, name)
        for name in (
            "grace_period",
            "reduction_factor",
            "brackets",
            "min_samples_required",
            "burn_in_period",
            "quantile_fraction",
            "resample_probability",
            "perturbation_factors",
            "synch",
        )
        if getattr(scheduler, name) is not None
    }
    time_attr = scheduler.time_attr
    if scheduler.type == "fifo":
        return FIFOScheduler()
    if scheduler.type == "asha":
        max_t = default_max_t(settings, config)
        return ASHAScheduler(time_attr=time_attr, max_t=max_t, **given)
    if scheduler.type == "hyperband":
        max_t = default_max_t(settings, config)
        return HyperBandScheduler(time_attr=time_attr, max_t=max_t, **given)
    if scheduler.type == "median":
        given.setdefault("grace_period", 1.0)
        return MedianStoppingRule(time_attr=time_attr, **given)
    mutations = {
        key: list(d.values) if d.kind in ("grid", "choice") else _domain(d, as_grid=False)
        for key, d in settings.search_space.items()
    }
    return PopulationBasedTraining(
        time_attr=time_attr,
        perturbation_interval=scheduler.perturbation_interval or PBT_PERTURBATION_INTERVAL,
        hyperparam_mutations=mutations,
        custom_explore_fn=functools.partial(clip_to_space, space=dict(settings.search_space)),
        # Until a trial has finished an episode it has no return to rank it by.
        require_attrs=False,
        **given,
    )


def make_searcher(settings: TuneConfig) -> Any:
    """The search algorithm named by ``tune.search`` (random and grid: Tune's basic variants).

    Tune's basic variant generator limits concurrency itself (``max_concurrent``); a
    ``Searcher`` such as Optuna's is limited by ``TuneConfig.max_concurrent_trials``.
    """
    search = settings.search
    if search.type in ("random", "grid"):
        from ray.tune.search.basic_variant import BasicVariantGenerator

        return BasicVariantGenerator(
            max_concurrent=settings.max_concurrent_trials or 0, random_state=search.seed
        )
    try:
        import optuna
        from ray.tune.search.optuna import OptunaSearch
    except ImportError:
        raise ConfigError(
            "tune.search: optuna needs the optuna package, which is not installed; install "
            "it with `pip install 'flowsim[tune]'` (or `pip install optuna`), or set "
            "tune.search: random."
        ) from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return OptunaSearch(
        metric=settings.metric,
        mode=settings.mode,
        sampler=optuna.samplers.TPESampler(seed=search.seed),
    )


class TrialStopper(tune.Stopper):
    """Stops a trial at ``tune.stop``'s iterations, env steps, wall time or metric target."""

    def __init__(self, settings: TuneConfig) -> None:
        self.stop = settings.stop
        self.metric, self.mode = settings.metric, settings.mode

    def reason(self, result: Mapping[str, Any]) -> str | None:
        """Which condition ``result`` meets (``None`` if none)."""
        stop = self.stop
        if stop.iterations is not None and result.get("iteration", 0) >= stop.iterations:
            return "iterations"
        if stop.env_steps is not None and result.get("env_steps", 0) >= stop.env_steps:
            return "env_steps"
        if stop.wall_s is not None and result.get("wall_s", 0.0) >= stop.wall_s:
            return "wall_s"
        value = result.get(self.metric)
        if stop.metric_target is not None and isinstance(value, int | float):
            reached = (
                value >= stop.metric_target if self.mode == "max" else value <= stop.metric_target
            )
            if reached:
                return "metric_target"
        return None

    def __call__(self, trial_id: str, result: dict[str, Any]) -> bool:
        return self.reason(result) is not None

    def stop_all(self) -> bool:
        return False
