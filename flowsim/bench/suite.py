"""``flowsim bench suite TABLE``: a published benchmark table trained and evaluated here.

A :class:`Suite` says what one table is: its rows (a YAML each under its folder), the
training settings of a row, its no-training baselines, how a played episode is scored, how a
row compares with the published figures and how the table is drawn. The tables are in
``suite_flow.py`` (Flow's CoRL 2018 table) and ``suite_resco.py`` (RESCO's eight maps); this
module runs any of them the same way (:func:`bench_suite`): for each row the baselines, a
training run under a wall-time budget (``train.time_budget_s``) that keeps ``best.pt`` by a
greedy evaluation (``train.best_by: eval``), then the final and the best checkpoint played
greedily on the baselines' seeds.

Resumable: each row's figures go to ``<results>/suite-<table>/<row>.json`` as they are
measured; a row whose file says ``complete`` is kept, a row interrupted in training continues
its run directory under ``<out>/<row>/`` (``flowsim train --resume``), one interrupted later
keeps what it had measured.
"""

from __future__ import annotations

import json
import os
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from flowsim.bench.results import machine_description, result_path, write_result
from flowsim.config import FlowsimConfig, load_config
from flowsim.errors import ConfigError

if TYPE_CHECKING:
    from flowsim.distributed.play import EpisodeResult

__all__ = [
    "SUITE_ITERATIONS",
    "Defaults",
    "Report",
    "Suite",
    "SuiteHooks",
    "bench_suite",
    "parse_rows",
    "policy_figures",
    "row_config",
    "run_row",
    "save_png",
    "stats",
]

#: Iterations of a suite run: the wall-time budget ends it (``--set train.iterations=N``
#: lowers it).
SUITE_ITERATIONS = 1_000_000

Report = Callable[[str], None]


def _quiet(phase: str) -> None:
    """A ``report`` that shows nothing."""


class SuiteHooks(Protocol):
    """How one table's rows are trained, measured and compared: a module (``suite_flow``,
    ``suite_resco``) with these names.

    Attributes:
        SOURCE: where the published figures come from.
        ROWS: the rows in table order; row ``r`` is ``<folder>/r.yaml``.
        BASELINES: the no-training baselines of every row, each a key of the row's state.
    """

    SOURCE: str
    ROWS: tuple[str, ...]
    BASELINES: tuple[str, ...]

    def settings(self, row: str) -> list[str]:
        """The row's training settings (``--set`` items, before the user's)."""
        ...

    def describe(self, row: str) -> dict[str, Any]:
        """The row's fixed fields (its metric, the published figures)."""
        ...

    def baseline(
        self, row: str, name: str, config: FlowsimConfig, episodes: int, seed: int, report: Report
    ) -> dict[str, Any]:
        """A baseline's figures over ``episodes`` runs from seeds ``seed + k`` (:func:`stats`
        and more)."""
        ...

    def score(self, row: str, config: FlowsimConfig, result: EpisodeResult) -> float:
        """The figure of a policy's played episode."""
        ...

    def compare(self, row: str, state: dict[str, Any]) -> dict[str, Any]:
        """The row's figures against the published ones."""
        ...

    def plot(self, rows: Sequence[dict[str, Any]], path: Path) -> Path:
        """The table's picture, written as a PNG at ``path``."""
        ...


@dataclass(frozen=True)
class Defaults:
    """A table's command-line defaults: the folder of its YAMLs, the minutes of training per
    row, the greedy episodes per policy and baseline."""

    folder: Path
    budget_min: float
    episodes: int


@dataclass(frozen=True)
class Suite:
    """One published table: its rows, its baselines and how each row is measured.

    Attributes:
        name: the table's name on the command line (``flow``, ``resco``).
        title: the table in words, for messages.
        hooks: the table's module (:class:`SuiteHooks`).
        defaults: the command line's defaults.
    """

    name: str
    title: str
    hooks: SuiteHooks
    defaults: Defaults

    @property
    def rows(self) -> tuple[str, ...]:
        """The rows in table order."""
        return self.hooks.ROWS

    @property
    def source(self) -> str:
        """Where the published figures come from."""
        return self.hooks.SOURCE

    def row_file(self, row: str, folder: Path) -> Path:
        """The row's YAML: ``<folder>/<row>.yaml``, or where the table's ``row_file(row,
        folder)`` hook says, for a row kept outside the table's folder."""
        elsewhere = getattr(self.hooks, "row_file", None)
        return Path(elsewhere(row, Path(folder)) if elsewhere else Path(folder) / f"{row}.yaml")

    @property
    def state_folder(self) -> str:
        """The folder under ``--results`` of the rows' states: ``suite-<name>``."""
        return f"suite-{self.name}"


def parse_rows(suite: Suite, text: str) -> tuple[str, ...]:
    """The rows ``--rows`` names (``all``, or names separated by commas), in table order.

    Raises:
        ConfigError: a name is not a row (the message lists the valid ones).
    """
    if text.strip() == "all":
        return suite.rows
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in suite.rows]
    if not names or unknown:
        raise ConfigError(
            f"--rows {text}: {', '.join(unknown) or 'no row'} is not a row of {suite.title}; "
            f"choose from all, {', '.join(suite.rows)} (e.g. --rows {','.join(suite.rows[:2])})."
        )
    return tuple(row for row in suite.rows if row in names)


def save_png(figure: Any, path: Path) -> Path:
    """Write a matplotlib ``figure`` as a PNG at ``path`` (its folder made), then close it."""
    import matplotlib.pyplot as plt

    figure.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return Path(path)


def row_config(
    suite: Suite, row: str, folder: Path, budget_s: float, overrides: Sequence[str] = ()
) -> FlowsimConfig:
    """The row's YAML with the suite's training settings (the wall-time budget, ``best.pt``
    by a greedy evaluation, the table's own settings), then ``overrides``."""
    path = suite.row_file(row, Path(folder))
    if not path.is_file():
        raise ConfigError(
            f"--folder {folder}: no {path.name} at {path.parent}; give {suite.defaults.folder} "
            f"(the folder of {suite.title})."
        )
    common = [
        f"train.time_budget_s={budget_s}",
        f"train.iterations={SUITE_ITERATIONS}",
        "train.best_by=eval",
    ]
    return load_config(path, [*common, *suite.hooks.settings(row), *overrides])


def stats(figures: Sequence[float]) -> dict[str, Any]:
    """Mean, population standard deviation and every figure of a set of episodes."""
    return {
        "mean": float(statistics.fmean(figures)),
        "std": float(statistics.pstdev(figures)) if len(figures) > 1 else 0.0,
        "episodes": [float(f) for f in figures],
    }


def policy_figures(
    run_dir: Path,
    episodes: int,
    seed: int,
    score: Callable[[FlowsimConfig, EpisodeResult], float],
    report: Report = _quiet,
) -> dict[str, dict[str, Any]]:
    """The run's ``latest`` (``final``) and ``best`` checkpoints played greedily on the
    run's runners (``sampler.num_workers``) from seeds ``seed + k``, each episode scored by
    ``score(config, result)``.

    ``best`` is missing when the run wrote no ``best.pt``; when it is the final iteration's
    checkpoint, its figures are the final's (the same weights on the same seeds).
    """
    from flowsim.distributed import make_runner_group
    from flowsim.distributed.play import EpisodeJob
    from flowsim.runs.directory import BEST_CHECKPOINT, RunDirectory

    directory = RunDirectory(run_dir)
    config = directory.load_config()
    wanted = {"final": "latest"}
    if (directory.checkpoints / BEST_CHECKPOINT).is_file():
        wanted["best"] = "best"
    jobs = [EpisodeJob(seed + k) for k in range(episodes)]
    results: dict[str, dict[str, Any]] = {}
    group = make_runner_group(config)
    try:
        for version, (name, which) in enumerate(wanted.items()):
            state, _ = directory.load_checkpoint(which)
            iteration = int(state["trainer"]["iteration"])
            played = [f for f in results.values() if f["iteration"] == iteration]
            if played:  # best.pt is the final checkpoint: 40 episodes would say the same
                results[name] = dict(played[0])
                continue
            report(f"{name} policy (iteration {iteration}), {episodes} episodes")
            group.set_weights(state["policy"], version=version)
            figures = [score(config, result) for result in group.play(jobs)]
            results[name] = {"iteration": iteration, **stats(figures)}
    finally:
        group.close()
    return results


def _newest_run(folder: Path) -> Path | None:
    """The newest run directory under ``folder`` that has a checkpoint."""
    from flowsim.runs.directory import RunDirectory

    if not folder.is_dir():
        return None
    runs = [p for p in folder.iterdir() if (p / "config.yaml").is_file()]
    runs = [p for p in runs if RunDirectory(p).checkpoint_paths()]
    return max(runs, key=lambda p: p.stat().st_mtime, default=None)


def _train_row(
    row: str, config: FlowsimConfig, out: Path, fresh: bool, budget_s: float, report: Report
) -> Path:
    """Train the row (or go on with its interrupted run, given ``budget_s`` in all); the run
    directory."""
    from flowsim.runs.training import train

    def progress(values: dict[str, float], trainer: Any) -> None:
        report(
            f"training {values['wall_s']:.0f}/{budget_s:.0f} s, iteration "
            f"{int(values['iteration'])}, {int(values['env_steps']):,} steps, return "
            f"{values['return_mean']:.2f}"
        )

    previous = None if fresh else _newest_run(out / row)
    if previous is not None and (previous / "summary.json").is_file():
        return previous  # trained before; only its evaluation was left
    if previous is not None:
        report(f"resuming {previous}")
        budget = [f"train.time_budget_s={budget_s}"]  # --budget-min may have grown
        return train(None, resume=previous, overrides=budget, callback=progress).directory
    return train(config, out=out / row, callback=progress).directory


def _read_state(path: Path) -> dict[str, Any]:
    """A row's state (or a run's summary) as written; empty when missing or unreadable."""
    try:
        state = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return state if isinstance(state, dict) else {}


def _write_state(state: dict[str, Any], path: Path) -> None:
    """Replace the row's state file whole (:func:`write_result`'s JSON): a suite killed while
    writing it keeps the previous state, not a truncated file that would cost the row's
    figures."""
    staging = path.with_name(f"{path.name}.tmp")
    try:
        write_result(state, path=staging)
        os.replace(staging, path)
    except BaseException:
        staging.unlink(missing_ok=True)
        raise


def run_row(
    suite: Suite,
    row: str,
    *,
    folder: Path,
    budget_min: float,
    episodes: int,
    seed: int,
    out: Path,
    results: Path,
    overrides: Sequence[str] = (),
    fresh: bool = False,
    report: Report = _quiet,
) -> dict[str, Any]:
    """One row: the baselines, the training run, the final and best policies, against the
    published figures (:meth:`SuiteHooks.compare`).

    Each stage's figures are written to ``<results>/suite-<table>/<row>.json`` as soon as
    they are measured; a stage already there is not measured again (``fresh`` starts the row
    over). A complete row is kept as it is.

    Raises:
        ConfigError: the row was started with other ``overrides`` (``--set``) and is not
            complete: its baselines and its run were measured with those.
    """
    path = Path(results) / suite.state_folder / f"{row}.json"
    state = {} if fresh else _read_state(path)
    if state.get("complete"):
        kept = (state.get("budget_min"), state.get("episodes"), state.get("overrides"))
        if kept != (budget_min, episodes, list(overrides)):
            report(
                f"{row}: kept from {path} ({state.get('budget_min')} min, "
                f"{state.get('episodes')} episodes, --set {state.get('overrides')}); --fresh "
                "measures it again"
            )
        return state
    _check_same_overrides(row, path, state, overrides)
    budget_s = budget_min * 60.0
    config = row_config(suite, row, folder, budget_s, overrides)
    state.update(
        benchmark=f"{suite.state_folder}-row",
        config=row,
        row=row,
        **suite.hooks.describe(row),
        budget_min=budget_min,
        episodes=episodes,
        seeds=[seed, seed + episodes - 1],
        overrides=list(overrides),
        complete=False,
    )
    for name in suite.hooks.BASELINES:
        entry = state.get(name) or {}
        if (entry.get("seed"), len(entry.get("episodes", []))) != (seed, episodes):
            measured = suite.hooks.baseline(row, name, config, episodes, seed, report)
            state[name] = {"seed": seed, **measured}
            _write_state(state, path)

    run_dir = _train_row(row, config, Path(out), fresh, budget_s, report)
    state["run_dir"] = str(run_dir)
    state["training"] = _training_figures(run_dir, config)
    _write_state(state, path)

    def score(played_config: FlowsimConfig, result: EpisodeResult) -> float:
        return suite.hooks.score(row, played_config, result)

    state.update(policy_figures(run_dir, episodes, seed, score, report))
    state["comparison"] = suite.hooks.compare(row, state)
    state["complete"] = True
    state["finished_at"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    _write_state(state, path)
    return state


def _check_same_overrides(
    row: str, path: Path, state: dict[str, Any], overrides: Sequence[str]
) -> None:
    """Refuse to go on with an unfinished row under other ``--set`` items than it started with:
    its baselines would be kept and its run resumed with the first ones."""
    started = state.get("overrides")
    if started is None or started == list(overrides):
        return
    raise ConfigError(
        f"--set: {row} was started with --set {' '.join(started) or '(none)'} ({path}), this "
        f"call gives {' '.join(overrides) or '(none)'}; give the same --set to continue the "
        "row, or add --fresh to measure and train it again with the new ones."
    )


def _training_figures(run_dir: Path, config: FlowsimConfig) -> dict[str, Any]:
    """The run's ``summary.json`` figures the row keeps, and its training episodes."""
    summary = _read_state(run_dir / "summary.json")
    training = {
        key: summary.get(key) for key in ("iterations", "env_steps", "wall_s", "best_iteration")
    }
    # whole episodes of env.horizon env steps (a runner's fragment is whole episodes)
    training["episodes"] = (training["env_steps"] or 0) // config.env.horizon
    return training


def bench_suite(
    suite: Suite,
    rows: Sequence[str],
    *,
    budget_min: float | None = None,
    episodes: int | None = None,
    seed: int = 1000,
    folder: Path | None = None,
    out: Path | None = None,
    results: Path = Path("benchmarks/results"),
    overrides: Sequence[str] = (),
    fresh: bool = False,
    report: Report = _quiet,
    finished: Callable[[dict[str, Any]], None] = lambda row: None,
) -> dict[str, Any]:
    """``suite``'s table for ``rows``: each row measured by :func:`run_row` (or kept from an
    earlier run), then the whole table as one result with a picture
    (:meth:`SuiteHooks.plot`).

    ``budget_min``, ``episodes`` and ``folder`` default to the suite's, ``out`` to
    ``runs/suite-<table>``.

    Returns:
        The result (``benchmark: suite``, ``config``: the table's name) with ``written_to``
        (the JSON) and ``figure`` (the PNG beside it).
    """
    defaults = suite.defaults
    budget_min = defaults.budget_min if budget_min is None else budget_min
    episodes = defaults.episodes if episodes is None else episodes
    folder = defaults.folder if folder is None else Path(folder)
    out = Path("runs") / suite.state_folder if out is None else Path(out)
    if budget_min <= 0 or episodes < 1:
        raise ConfigError(
            f"--budget-min and --episodes must be positive, e.g. --budget-min "
            f"{defaults.budget_min:g}."
        )
    from flowsim.evaluation.evaluate import check_seed

    check_seed(seed)
    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    measured = []
    for index, row in enumerate(rows, 1):
        phase = _row_reporter(report, f"{row} ({index}/{len(rows)})")
        state = run_row(
            suite,
            row,
            folder=folder,
            budget_min=budget_min,
            episodes=episodes,
            seed=seed,
            out=out,
            results=results,
            overrides=overrides,
            fresh=fresh,
            report=phase,
        )
        measured.append(state)
        finished(state)
    result: dict[str, Any] = {
        "benchmark": "suite",
        "config": suite.name,
        "source": suite.source,
        "rows": measured,
        "budget_min": budget_min,
        "episodes": episodes,
        "seed": seed,
        "overrides": list(overrides),
        "wall_s": time.perf_counter() - started,
        "load_average": [load_before, os.getloadavg()[0]],
        "machine": machine_description(),
        "timestamp": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    path = result_path(result, Path(results))
    result["figure"] = str(suite.hooks.plot(measured, path.with_suffix(".png")))
    result["written_to"] = str(write_result(result, path=path))
    return result


def _row_reporter(report: Report, label: str) -> Report:
    """``report`` with the row's label and the seconds spent on the row so far in front."""
    started = time.perf_counter()

    def phase(text: str) -> None:
        report(f"{label}, {time.perf_counter() - started:.0f} s: {text}")

    return phase
