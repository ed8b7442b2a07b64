"""The ``tune:`` section of an experiment: search space, scheduler, search algorithm, stop.

These models only describe and check the section; :mod:`flowsim.tune.space` turns them into
Ray Tune objects. Importing this module imports neither Ray nor the rest of flowsim.

Example:
    >>> tune = TuneConfig.model_validate(
    ...     {"search_space": {"train.lr": {"loguniform": [1.0e-4, 1.0e-2]}}, "scheduler": "asha"}
    ... )
    >>> tune.search_space["train.lr"].kind, tune.scheduler.type
    ('loguniform', 'asha')
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Mapping
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    WithJsonSchema,
    field_validator,
    model_serializer,
    model_validator,
)

from flowsim.config.keys import key_problem
from flowsim.config.sections import Section

__all__ = [
    "DISTRIBUTIONS",
    "PBT_FIXED_KEYS",
    "PBT_PERTURBATION_INTERVAL",
    "SCHEDULER_FIELDS",
    "Distribution",
    "SchedulerConfig",
    "SearchConfig",
    "StopConfig",
    "TuneConfig",
    "config_key_problem",
]

#: Distribution name -> (arguments it takes, an example) for messages and docs.
DISTRIBUTIONS: dict[str, tuple[str, str]] = {
    "grid": ("a list of values, every one tried", "{grid: [0.001, 0.01]}"),
    "choice": ("a list of values, one sampled per trial", "{choice: [64, 128]}"),
    "uniform": ("[low, high]", "{uniform: [0.9, 0.999]}"),
    "loguniform": ("[low, high] with 0 < low", "{loguniform: [1.0e-4, 1.0e-2]}"),
    "randint": ("[low, high], an integer with low <= x < high", "{randint: [5, 20]}"),
    "quniform": (
        "[low, high, q]: uniform rounded to a multiple of q",
        "{quniform: [0.8, 1, 0.05]}",
    ),
}

#: Keys PBT may not mutate: a checkpoint from another trial would no longer load.
PBT_FIXED_KEYS = frozenset(
    {"train.algo", "train.hidden", "train.normalize_obs", "env.type", "env.id", "env.num_rl"}
)

#: PBT's perturbation interval when ``tune.scheduler.perturbation_interval`` is not set.
PBT_PERTURBATION_INTERVAL = 5.0

#: Scheduler -> the fields of :class:`SchedulerConfig` it reads (besides ``type``).
SCHEDULER_FIELDS: dict[str, frozenset[str]] = {
    "fifo": frozenset(),
    "asha": frozenset({"time_attr", "max_t", "grace_period", "reduction_factor", "brackets"}),
    "hyperband": frozenset({"time_attr", "max_t", "reduction_factor"}),
    "median": frozenset({"time_attr", "grace_period", "min_samples_required"}),
    "pbt": frozenset(
        {
            "time_attr",
            "perturbation_interval",
            "burn_in_period",
            "quantile_fraction",
            "resample_probability",
            "perturbation_factors",
            "synch",
        }
    ),
}


def _number(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError(f"{what} must be a number, got {value!r}")
    try:
        number = float(value)  # YAML reads 1e-4 (no dot) as a string
    except ValueError:
        raise ValueError(f"{what} must be a number, got {value!r}") from None
    if not math.isfinite(number):
        raise ValueError(f"{what} must be finite, got {value!r}")
    return int(number) if isinstance(value, int) else number


#: What PyYAML (YAML 1.1) leaves as text although it is a number: 1e-4, 3E5 (no dot).
_EXPONENT_NUMBER = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+$")


def _listed(value: Any) -> Any:
    """A grid / choice value, with ``1e-4`` read as the number YAML 1.1 misses."""
    if isinstance(value, str) and _EXPONENT_NUMBER.match(value.strip()):
        return float(value)
    return value


_DISTRIBUTION_SCHEMA = {
    "type": "object",
    "description": "One of "
    + "; ".join(f"{name}: {args}" for name, (args, _) in DISTRIBUTIONS.items())
    + ".",
    "minProperties": 1,
    "maxProperties": 1,
    "additionalProperties": False,
    "properties": {
        "grid": {"type": "array", "minItems": 1},
        "choice": {"type": "array", "minItems": 1},
        "uniform": {"type": "array", "items": {"type": "number"}, "minItems": 2, "maxItems": 2},
        "loguniform": {"type": "array", "items": {"type": "number"}, "minItems": 2, "maxItems": 2},
        "randint": {"type": "array", "items": {"type": "integer"}, "minItems": 2, "maxItems": 2},
        "quniform": {"type": "array", "items": {"type": "number"}, "minItems": 3, "maxItems": 3},
    },
}


class Distribution(BaseModel):
    """One search-space entry, written in YAML as a one-key mapping: ``{loguniform: [a, b]}``."""

    model_config = ConfigDict(frozen=True)

    kind: Literal["grid", "choice", "uniform", "loguniform", "randint", "quniform"]
    values: tuple[Any, ...] = ()
    low: float | None = None
    high: float | None = None
    q: float | None = None

    @model_validator(mode="before")
    @classmethod
    def _from_yaml(cls, data: Any) -> Any:
        if isinstance(data, Distribution):
            return data
        kinds = ", ".join(DISTRIBUTIONS)
        if not isinstance(data, dict) or len(data) != 1:
            raise ValueError(
                f"a search-space entry is a one-key mapping such as {{loguniform: [1.0e-4, "
                f"1.0e-2]}} or {{grid: [64, 128]}}; distributions: {kinds}"
            )
        ((kind, args),) = data.items()
        if kind not in DISTRIBUTIONS:
            close = difflib.get_close_matches(str(kind), DISTRIBUTIONS, n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            raise ValueError(f"unknown distribution '{kind}'{hint}; use one of {kinds}")
        shape, example = DISTRIBUTIONS[kind]
        if not isinstance(args, list | tuple):
            raise ValueError(f"{kind} takes {shape}, e.g. {example}")
        if kind in ("grid", "choice"):
            if not args:
                raise ValueError(f"{kind} needs at least one value, e.g. {example}")
            return {"kind": kind, "values": tuple(_listed(v) for v in args)}
        size = 3 if kind == "quniform" else 2
        if len(args) != size:
            raise ValueError(f"{kind} takes {shape}, e.g. {example}")
        low, high = _number(args[0], f"{kind} low"), _number(args[1], f"{kind} high")
        if not low < high:
            raise ValueError(f"{kind} needs low < high, got [{low}, {high}], e.g. {example}")
        if kind == "loguniform" and low <= 0:
            raise ValueError(f"loguniform needs 0 < low, got {low}, e.g. {example}")
        if kind == "randint" and not (float(low).is_integer() and float(high).is_integer()):
            raise ValueError(f"randint takes integers, got [{low}, {high}], e.g. {example}")
        step = None
        if kind == "quniform":
            step = _number(args[2], "quniform q")
            if step <= 0:
                raise ValueError(f"quniform needs q > 0, got {step}, e.g. {example}")
        return {"kind": kind, "low": low, "high": high, "q": step}

    @model_serializer
    def _to_yaml(self) -> dict[str, list[Any]]:
        if self.kind in ("grid", "choice"):
            return {self.kind: list(self.values)}
        args = [self.low, self.high] + ([self.q] if self.kind == "quniform" else [])
        if self.kind == "randint":
            args = [int(a) for a in args if a is not None]
        return {self.kind: args}

    def representatives(self) -> list[Any]:
        """Values a trial may get that bound the range: every listed value, or both ends."""
        if self.kind in ("grid", "choice"):
            return list(self.values)
        assert self.low is not None and self.high is not None
        if self.kind == "randint":
            return [int(self.low), int(self.high) - 1]
        if self.kind == "quniform":
            assert self.q is not None
            return [round(self.low / self.q) * self.q, round(self.high / self.q) * self.q]
        return [self.low, self.high]


#: What a search-space value looks like in YAML (for ``flowsim schema``).
SearchSpaceEntry = Annotated[Distribution, WithJsonSchema(_DISTRIBUTION_SCHEMA)]

TimeAttr = Literal["iteration", "env_steps", "wall_s"]


class SchedulerConfig(Section):
    """Which Ray Tune trial scheduler decides when trials stop, pause or copy each other.

    ``fifo`` runs every trial to its end; ``asha`` (asynchronous successive halving) and
    ``hyperband`` stop poor trials at rungs; ``median`` stops a trial whose metric falls below
    the median of the others at the same time; ``pbt`` (population-based training) copies good
    trials' checkpoints into poor ones and perturbs their hyper-parameters (mutations come from
    ``search_space``). Unset fields keep Ray Tune's defaults. YAML may give just the name:
    ``scheduler: asha``.
    """

    type: Literal["fifo", "asha", "hyperband", "median", "pbt"] = Field(
        "fifo", description="fifo, asha, hyperband, median or pbt."
    )
    time_attr: TimeAttr = Field(
        "iteration",
        description="What measures a trial's progress for the scheduler: iteration, env_steps "
        "or wall_s (columns of progress.csv).",
    )
    max_t: float | None = Field(
        None,
        gt=0,
        description="asha/hyperband: most time_attr a trial gets (default: the trial length, "
        "tune.stop.iterations or train.iterations, when time_attr is iteration).",
    )
    grace_period: float | None = Field(
        None, gt=0, description="asha/median: time_attr before a trial may be stopped."
    )
    reduction_factor: float | None = Field(
        None, gt=1, description="asha/hyperband: 1/fraction of trials kept at each rung."
    )
    brackets: int | None = Field(None, ge=1, le=10, description="asha: number of brackets.")
    min_samples_required: int | None = Field(
        None, ge=1, description="median: trials needed before the median counts."
    )
    perturbation_interval: float | None = Field(
        None, gt=0, description="pbt: time_attr between exploit/explore steps (default 5)."
    )
    burn_in_period: float | None = Field(
        None, ge=0, description="pbt: time_attr before the first perturbation."
    )
    quantile_fraction: float | None = Field(
        None,
        gt=0,
        le=0.5,
        description="pbt: bottom fraction of trials that copy the top fraction.",
    )
    resample_probability: float | None = Field(
        None, ge=0, le=1, description="pbt: chance to resample a value instead of perturbing it."
    )
    perturbation_factors: tuple[float, float] | None = Field(
        None, description="pbt: factors a continuous value is multiplied by (e.g. [1.2, 0.8])."
    )
    synch: bool | None = Field(None, description="pbt: synchronous perturbations.")

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        if isinstance(data, str):
            return {"type": data}
        return data

    @model_serializer(mode="wrap")
    def _without_unset(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        return {k: v for k, v in handler(self).items() if v is not None}

    @model_validator(mode="after")
    def _fields_apply(self) -> SchedulerConfig:
        allowed = SCHEDULER_FIELDS[self.type] | {"type"}
        given = {
            name for name in self.model_fields_set if getattr(self, name) is not None
        } - allowed
        if given and not (given == {"time_attr"} and self.time_attr == "iteration"):
            owners = {
                name: [s for s, fields in SCHEDULER_FIELDS.items() if name in fields]
                for name in sorted(given)
            }
            parts = [f"'{name}' applies to {' / '.join(o)} only" for name, o in owners.items()]
            raise ValueError(
                f"scheduler {self.type}: {'; '.join(parts)}; remove it or change "
                "tune.scheduler.type"
            )
        return self


class SearchConfig(Section):
    """How trial configurations are picked from ``search_space``.

    ``random`` samples each distribution (``grid`` entries are crossed with the samples, as in
    Ray Tune); ``grid`` tries every combination of ``grid`` / ``choice`` entries;
    ``optuna`` is Bayesian optimisation with Optuna's TPE sampler (``pip install
    'flowsim[tune]'``). YAML may give just the name: ``search: optuna``.
    """

    type: Literal["random", "grid", "optuna"] = Field(
        "random", description="random, grid or optuna (TPE)."
    )
    seed: int | None = Field(
        0, ge=0, description="Seed of the sampler (null: a different draw every run)."
    )

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        if isinstance(data, str):
            return {"type": data}
        return data


class StopConfig(Section):
    """When a trial stops besides ``train.iterations`` (and the scheduler): the first reached."""

    iterations: int | None = Field(
        None, ge=1, description="Training iterations (at most train.iterations)."
    )
    env_steps: int | None = Field(None, ge=1, description="Environment steps sampled.")
    wall_s: float | None = Field(None, gt=0, description="Seconds of training of the trial.")
    metric_target: float | None = Field(
        None,
        description="Stop once tune.metric reaches this (>= for mode max, <= for mode min).",
    )

    @model_serializer(mode="wrap")
    def _without_unset(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        return {k: v for k, v in handler(self).items() if v is not None}


class TuneConfig(Section):
    """``tune:``: hyper-parameter search on Ray Tune, one trial = one flowsim training run.

    Each trial runs the trainer of ``train.algo`` with its own runner actors inside a placement
    group (one bundle for the trainer, one per runner), reports every iteration's
    ``progress.csv`` row and checkpoints through flowsim's atomic checkpoints.
    """

    metric: str = Field(
        "return_mean",
        description="The progress.csv column trials are ranked by (e.g. return_mean, mean_speed).",
    )
    mode: Literal["max", "min"] = Field("max", description="Maximise or minimise the metric.")
    num_samples: int = Field(
        1,
        ge=1,
        le=100_000,
        description="Trials sampled (random/optuna), or repeats of the grid (grid).",
    )
    max_concurrent_trials: int | None = Field(
        None, ge=1, description="Trials running at once (default: as many as resources allow)."
    )
    search_space: dict[str, SearchSpaceEntry] = Field(
        default_factory=dict,
        description="Dotted config keys -> distributions, e.g. train.lr: {loguniform: "
        "[1.0e-4, 1.0e-2]}.",
    )
    scheduler: SchedulerConfig = Field(default_factory=SchedulerConfig)
    search: SearchConfig = Field(default_factory=SearchConfig)
    stop: StopConfig = Field(default_factory=StopConfig)
    time_budget_s: float | None = Field(
        None, gt=0, description="Wall-clock budget of the whole tuning run (s)."
    )
    checkpoint_every: int | None = Field(
        None,
        ge=1,
        description="Iterations between trial checkpoints, which resumes, pauses and PBT's "
        "copies start from; null: every iteration (pbt: every perturbation_interval).",
    )
    keep_checkpoints: int | None = Field(
        5,
        ge=1,
        description="Tune checkpoints kept per trial (null: all). pbt keeps all: a trial may "
        "copy another's checkpoint some iterations after it was written.",
    )
    trainer_cpus: float | None = Field(
        None,
        ge=0,
        description="CPUs of a trial's trainer bundle; null: 1 with in-process sampling "
        "(sampler.num_workers 0), 0 with runner actors (the trainer waits on them).",
    )
    placement_strategy: Literal["PACK", "SPREAD", "STRICT_PACK", "STRICT_SPREAD"] = Field(
        "PACK", description="How a trial's bundles are placed on nodes."
    )
    reuse_actors: bool = Field(
        True,
        description="Run a new trial (or one PBT restarts) in a finished trial's process when "
        "their resources match: no new process, no second import of torch.",
    )
    max_failures: int = Field(
        0, ge=0, description="Retries of a trial that fails (from its last checkpoint)."
    )

    #: The experiment model whose dotted keys ``search_space`` names. Set by
    #: :mod:`flowsim.config.root`, which imports this module (so this one never imports it);
    #: unset, only the form of the keys is checked.
    experiment_model: ClassVar[type[BaseModel] | None] = None

    def checkpoint_interval(self) -> int:
        """Iterations between checkpoints, ``checkpoint_every`` resolved."""
        if self.checkpoint_every is not None:
            return self.checkpoint_every
        scheduler = self.scheduler
        if scheduler.type == "pbt" and scheduler.time_attr == "iteration":
            return max(int(scheduler.perturbation_interval or PBT_PERTURBATION_INTERVAL), 1)
        return 1

    def checkpoints_kept(self) -> int | None:
        """Tune checkpoints kept per trial (``None``: all)."""
        return None if self.scheduler.type == "pbt" else self.keep_checkpoints

    @field_validator("search_space")
    @classmethod
    def _keys_exist(cls, space: dict[str, Distribution]) -> dict[str, Distribution]:
        for key in space:
            problem = config_key_problem(key, cls.experiment_model)
            if problem:
                raise ValueError(problem)
        return space

    @model_validator(mode="after")
    def _consistent(self) -> TuneConfig:
        space, kind = self.search_space, self.search.type
        if kind == "grid":
            loose = [k for k, d in space.items() if d.kind not in ("grid", "choice")]
            if loose:
                raise ValueError(
                    f"tune.search: grid tries listed values only, but {loose} use continuous "
                    "distributions; give them {grid: [...]} or use search: random / optuna"
                )
        if kind == "optuna":
            grids = [k for k, d in space.items() if d.kind == "grid"]
            if grids:
                raise ValueError(
                    "tune.search: optuna picks its own values and cannot run grid entries "
                    f"{grids}; write them as {{choice: [...]}} or use search: random"
                )
            if self.scheduler.type == "pbt":
                raise ValueError(
                    "tune.scheduler: pbt mutates the hyper-parameters itself and does not combine "
                    "with search: optuna; use search: random with pbt"
                )
        if self.scheduler.type == "pbt":
            fixed = sorted(set(space) & PBT_FIXED_KEYS)
            if fixed:
                raise ValueError(
                    "tune.scheduler: pbt copies checkpoints between trials, so "
                    f"{fixed} cannot vary (the network would not load); move them out of "
                    "tune.search_space"
                )
            if not space:
                raise ValueError(
                    "tune.scheduler: pbt mutates the hyper-parameters of tune.search_space, which "
                    "is empty; add e.g. train.lr: {loguniform: [1.0e-4, 1.0e-2]}"
                )
        return self


def config_key_problem(
    dotted: str, root: type[BaseModel] | None, picked: Mapping[str, str] | None = None
) -> str | None:
    """Why ``dotted`` cannot be a ``search_space`` key (``None`` if it can).

    The key must name a value of the experiment model ``root`` (nested sections, list items
    such as ``vehicles.0.count``, free mappings such as ``...controller.params.v0``); a
    section picked by a tag takes the keys of its picked model when ``picked`` gives the tag
    (``{"env": "accel"}``), else those of any. With ``root`` None only the form is checked.
    """
    parts = dotted.split(".")
    if not all(parts):
        return f"'{dotted}' is not a dotted config key such as train.lr"
    if parts[0] in ("tune", "name"):
        return f"'{dotted}' cannot be tuned: trials vary training settings, not the tune section"
    problem = key_problem(root, dotted, picked) if root is not None else None
    if problem is None:
        return None
    where = problem.where or "the top level"
    if problem.kind == "value":
        return f"'{dotted}': {where} holds a single value, not a section; tune '{where}'"
    if problem.kind == "index":
        return f"'{dotted}': {where} is a list; index it, e.g. {where}.0"
    if problem.kind == "variant":
        return (
            f"'{dotted}' does not apply to {problem.tag_key} {problem.tag} (only to "
            f"{', '.join(problem.owners)}); keys under {where}: {', '.join(problem.valid)}. "
            "Fix the search_space key (see `flowsim schema`)"
        )
    hint = ""
    if problem.close is not None:
        hint = f" (did you mean '{'.'.join([*parts[: problem.index], problem.close])}'?)"
    return (
        f"'{dotted}' is not a config key{hint}; keys under {where}: "
        f"{', '.join(problem.valid)}. Fix the search_space key (see `flowsim schema`)"
    )
