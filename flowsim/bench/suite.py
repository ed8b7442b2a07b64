"""``flowsim bench suite flow``: Flow's CoRL 2018 benchmark table, trained and evaluated here.

For each row (``scenarios/benchmarks/<row>.yaml``): the all-human baseline, a training run
under a wall-time budget (``train.time_budget_s``) that keeps ``best.pt`` by a greedy
evaluation (``train.best_by: eval``), then the final and the best checkpoint played greedily
on the same seeds as the humans, each scored with Flow's metric for the row. The figures sit
beside Flow's published ones (:data:`FLOW_TABLE`). docs/benchmarks.md describes each task.

Resumable: each row's figures go to ``<results>/suite-flow/<row>.json`` as they are measured;
a row whose file says ``complete`` is kept, a row interrupted in training continues its run
directory under ``<out>/<row>/`` (``flowsim train --resume``), one interrupted later keeps
what it had measured.
"""

from __future__ import annotations

import json
import math
import os
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from flowsim.bench.results import machine_description, result_path, write_result
from flowsim.config import FlowsimConfig, apply_overrides, load_config
from flowsim.errors import ConfigError

__all__ = [
    "FLOW_SOURCE",
    "FLOW_TABLE",
    "METRICS",
    "FlowRow",
    "bench_suite_flow",
    "flow_delay",
    "human_config",
    "parse_rows",
    "plot_suite",
]


@dataclass(frozen=True)
class FlowRow:
    """One row of Flow's published table.

    Attributes:
        metric: ``speed`` (average speed, m/s), ``delay`` (Flow's grid delay measure, s) or
            ``outflow`` (veh/h over the last 500 s).
        human: the all-human (or actuated-signal) baseline.
        best_rl: the best of Flow's four algorithms after 500 iterations.
        algorithm: which algorithm that was.
    """

    metric: str
    human: float
    best_rl: float
    algorithm: str


#: Where :data:`FLOW_TABLE` comes from.
FLOW_SOURCE = (
    "Vinitsky, Kreidieh, Le Flem, Kheterpal, Jang, Wu, Liaw, Liang, Bayen: Benchmarks for "
    "reinforcement learning in mixed-autonomy traffic, CoRL 2018 (PMLR 87:399-409), Table 1: "
    "average over 40 rollouts, 3 seeds, after 500 iterations of 50 rollouts"
)

#: Flow's published figures per row (:data:`FLOW_SOURCE`).
FLOW_TABLE: dict[str, FlowRow] = {
    "figureeight0": FlowRow("speed", 4.18, 8.26, "TRPO"),
    "figureeight1": FlowRow("speed", 4.18, 6.43, "ARS"),
    "figureeight2": FlowRow("speed", 4.18, 5.96, "ES"),
    "merge0": FlowRow("speed", 7.39, 14.95, "TRPO"),
    "merge1": FlowRow("speed", 7.39, 17.29, "ES"),
    "merge2": FlowRow("speed", 7.39, 17.36, "ES"),
    "grid0": FlowRow("delay", 280.8, 296.8, "PPO"),
    "grid1": FlowRow("delay", 276.8, 296.2, "PPO"),
    "bottleneck0": FlowRow("outflow", 1023.0, 1360.0, "ES"),
    "bottleneck1": FlowRow("outflow", 1135.0, 1378.0, "ES"),
    "bottleneck2": FlowRow("outflow", 1889.0, 2324.0, "ES"),
}

#: metric -> (what it is, unit, the ``train.eval_metric`` that keeps ``best.pt``). The delay
#: falls as the mean speed rises (:func:`flow_delay`), so the grid keeps the fastest policy.
METRICS: dict[str, tuple[str, str, str]] = {
    "speed": ("average speed", "m/s", "mean_speed"),
    "delay": ("Flow's delay measure", "s", "mean_speed"),
    "outflow": ("outflow, last 500 s", "veh/h", "outflow"),
}

#: How the two readings of the grid figure compare a policy with Flow's.
GRID_DIRECTIONS = {
    "paper": "a delay: lower is better (the paper's text; here Flow's RL is worse than its humans)",
    "code": "higher is better (Flow's regression script flow/benchmarks/create_movies.sh: "
    "reward / 296 >= 0.97)",
}

#: Iterations of a suite run: the wall-time budget ends it (``--set train.iterations=N``
#: lowers it).
SUITE_ITERATIONS = 1_000_000

#: A human baseline further than this from Flow's is compared by improvement over each
#: platform's own humans as well (issue 19).
NOTABLE_HUMAN_DIFFERENCE = 0.15

STATE_FOLDER = "suite-flow"


def parse_rows(text: str) -> tuple[str, ...]:
    """The rows ``--rows`` names (``all``, or names separated by commas), in table order.

    Raises:
        ConfigError: a name is not a row (the message lists the valid ones).
    """
    if text.strip() == "all":
        return tuple(FLOW_TABLE)
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in FLOW_TABLE]
    if not names or unknown:
        raise ConfigError(
            f"--rows {text}: {', '.join(unknown) or 'no row'} is not a row of Flow's table; "
            f"choose from all, {', '.join(FLOW_TABLE)} (e.g. --rows figureeight0,merge1)."
        )
    return tuple(row for row in FLOW_TABLE if row in names)


def row_config(
    row: str, folder: Path, budget_s: float, overrides: Sequence[str] = ()
) -> FlowsimConfig:
    """The row's YAML with the suite's training settings (the wall-time budget, ``best.pt``
    by a greedy evaluation of Flow's metric), then ``overrides``."""
    path = Path(folder) / f"{row}.yaml"
    if not path.is_file():
        raise ConfigError(f"--folder {folder}: no {row}.yaml there; give scenarios/benchmarks.")
    suite = [
        f"train.time_budget_s={budget_s}",
        f"train.iterations={SUITE_ITERATIONS}",
        "train.best_by=eval",
        f"train.eval_metric={METRICS[FLOW_TABLE[row].metric][2]}",
    ]
    return load_config(path, [*suite, *overrides])


#: The human model of a row without humans (figureeight2): Flow's IDM with noise 0.2, as its
#: all-human baseline script drives every vehicle of the figure eight.
FLOW_HUMAN = {"type": "idm", "params": {"noise": 0.2}}


def human_config(config: FlowsimConfig) -> FlowsimConfig:
    """``config`` with every ``rl`` group driven as its humans drive (the controller of the
    largest human group: SUMO's own model, or e.g. IDM with noise on the figure eight; with no
    human group, :data:`FLOW_HUMAN`)."""
    humans = [g for g in config.vehicles if g.controller.type != "rl"]
    if humans:
        controller = max(humans, key=lambda g: g.count).controller.model_dump(mode="json")
    else:
        controller = FLOW_HUMAN
    overrides = [
        f"vehicles.{index}.controller={json.dumps(controller)}"
        for index, group in enumerate(config.vehicles)
        if group.controller.type == "rl"
    ]
    return apply_overrides(config, overrides) if overrides else config


def flow_delay(config: FlowsimConfig, seconds: float, mean_speed: float) -> float:
    """Flow's grid measure (``rewards.min_delay_unscaled`` summed over the rollout) for a run of
    ``seconds`` whose vehicles' mean speed, averaged over its steps, is ``mean_speed``: the
    time integral of the mean slowdown ``(v_top - v) / v_top``, ``v_top`` the speed limit.

    Exact when every step has a vehicle on the network (grid0/1 insert from the first step).
    """
    v_top = config.scenario.speed_limit
    return seconds * (1.0 - mean_speed / v_top)


def _episode_seconds(config: FlowsimConfig) -> float:
    """Simulated seconds of an episode after its warm-up."""
    return config.env.horizon * config.env.sims_per_step * config.sim.step_length


def _stats(figures: list[float]) -> dict[str, Any]:
    return {
        "mean": float(statistics.fmean(figures)),
        "std": float(statistics.pstdev(figures)) if len(figures) > 1 else 0.0,
        "episodes": [float(f) for f in figures],
    }


def human_figures(
    config: FlowsimConfig,
    metric: str,
    episodes: int,
    seed: int,
    report: Callable[[str], None] = lambda phase: None,
) -> list[float]:
    """The all-human baseline (:func:`human_config`; signals run SUMO's own programme) over
    ``episodes`` runs from seeds ``seed + k``, each scored with ``metric``."""
    from flowsim.evaluation.simulate import simulate

    humans = human_config(config)
    sims = config.env.sims_per_step
    steps = (config.env.warmup_steps + config.env.horizon) * sims
    figures = []
    for k in range(episodes):
        report(f"all-human baseline, run {k + 1}/{episodes}")
        summary = simulate(apply_overrides(humans, [f"sim.seed={seed + k}"]), steps)
        if metric == "outflow":
            figures.append(float(summary["outflow"]))
        elif metric == "delay":
            seconds = steps * config.sim.step_length
            figures.append(flow_delay(config, seconds, float(summary["run_mean_speed"])))
        else:
            figures.append(float(summary["run_mean_speed"]))
    return figures


def policy_figures(
    run_dir: Path,
    metric: str,
    episodes: int,
    seed: int,
    report: Callable[[str], None] = lambda phase: None,
) -> dict[str, dict[str, Any]]:
    """The run's ``latest`` (``final``) and ``best`` checkpoints played greedily on the
    run's runners (``sampler.num_workers``) from seeds ``seed + k``, scored with ``metric``.

    ``best`` is missing when the run wrote no ``best.pt``.
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
            report(
                f"{name} policy (iteration {state['trainer']['iteration']}), {episodes} episodes"
            )
            group.set_weights(state["policy"], version=version)
            played = group.play(jobs)
            figures = []
            for result in played:
                if metric == "outflow":
                    figures.append(result.metrics["outflow"])
                elif metric == "delay":
                    speed = result.metrics["episode_mean_speed"]
                    figures.append(flow_delay(config, _episode_seconds(config), speed))
                else:
                    figures.append(result.metrics["episode_mean_speed"])
            results[name] = {"iteration": int(state["trainer"]["iteration"]), **_stats(figures)}
    finally:
        group.close()
    return results


def _newest_run(folder: Path) -> Path | None:
    """The newest run directory under ``folder`` that has a checkpoint."""
    if not folder.is_dir():
        return None
    runs = [p for p in folder.iterdir() if (p / "config.yaml").is_file()]
    runs = [p for p in runs if any((p / "checkpoints").glob("checkpoint-*.pt"))]
    return max(runs, key=lambda p: p.stat().st_mtime, default=None)


def _train_row(
    row: str,
    config: FlowsimConfig,
    out: Path,
    fresh: bool,
    report: Callable[[str], None],
) -> Path:
    """Train the row (or go on with its interrupted run); the run directory."""
    from flowsim.runs.training import train

    budget = config.train.time_budget_s or 0.0

    def progress(values: dict[str, float], trainer: Any) -> None:
        report(
            f"training {values['wall_s']:.0f}/{budget:.0f} s, iteration "
            f"{int(values['iteration'])}, {int(values['env_steps']):,} steps, return "
            f"{values['return_mean']:.2f}"
        )

    previous = None if fresh else _newest_run(out / row)
    if previous is not None and (previous / "summary.json").is_file():
        return previous  # trained before; only its evaluation was left
    if previous is not None:
        report(f"resuming {previous}")
        return train(None, resume=previous, callback=progress).directory
    return train(config, out=out / row, callback=progress).directory


def _read_state(path: Path) -> dict[str, Any]:
    try:
        state = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return state if isinstance(state, dict) else {}


def _improvement(metric: str, human: float, policy: float) -> float:
    """The policy's gain over the humans as a share of theirs; positive is better traffic
    (for the grid's delay: less delay, the paper's reading)."""
    if not human:
        return math.nan
    gain = (policy - human) / abs(human)
    return -gain if metric == "delay" else gain


def _compare(row: str, state: dict[str, Any]) -> dict[str, Any]:
    """The row's figures against Flow's: the difference of the humans, each platform's gain
    over its own humans, and whether flowsim's policy beats Flow's best RL."""
    flow = FLOW_TABLE[row]
    human = state["human"]["mean"]
    chosen = state.get("best") or state["final"]
    policy = chosen["mean"]
    comparison: dict[str, Any] = {
        "policy": "best" if state.get("best") else "final",
        "human_difference": (human - flow.human) / flow.human,
        "gain_over_humans": {
            "flow": _improvement(flow.metric, flow.human, flow.best_rl),
            "flowsim": _improvement(flow.metric, human, policy),
        },
    }
    if flow.metric == "delay":
        comparison["beats_flow_rl"] = {
            "code": policy >= flow.best_rl,
            "paper": policy <= flow.best_rl,
        }
        comparison["directions"] = GRID_DIRECTIONS
    else:
        comparison["beats_flow_rl"] = policy >= flow.best_rl
    comparison["compare_by_gain"] = abs(comparison["human_difference"]) > NOTABLE_HUMAN_DIFFERENCE
    return comparison


def run_row(
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
    report: Callable[[str], None] = lambda phase: None,
) -> dict[str, Any]:
    """One row: the humans, the training run, the final and best policies, against Flow's.

    Each stage's figures are written to ``<results>/suite-flow/<row>.json`` as soon as they
    are measured; a stage already there is not measured again (``fresh`` starts the row over).
    """
    path = Path(results) / STATE_FOLDER / f"{row}.json"
    state = {} if fresh else _read_state(path)
    if state.get("complete"):
        if state.get("episodes") != episodes or state.get("budget_min") != budget_min:
            report(
                f"{row}: kept from {path} ({state.get('budget_min')} min, "
                f"{state.get('episodes')} episodes); --fresh measures it again"
            )
        return state
    config = row_config(row, folder, budget_min * 60.0, overrides)
    flow = FLOW_TABLE[row]
    name, unit, _ = METRICS[flow.metric]
    state.update(
        benchmark="suite-flow-row",
        config=row,
        row=row,
        metric=flow.metric,
        metric_name=name,
        unit=unit,
        flow={"human": flow.human, "best_rl": flow.best_rl, "algorithm": flow.algorithm},
        budget_min=budget_min,
        episodes=episodes,
        seeds=[seed, seed + episodes - 1],
        overrides=list(overrides),
        complete=False,
    )
    human = state.get("human") or {}
    if (human.get("seed"), len(human.get("episodes", []))) != (seed, episodes):
        figures = human_figures(config, flow.metric, episodes, seed, report)
        state["human"] = {"seed": seed, **_stats(figures)}
        write_result(state, path=path)

    run_dir = _train_row(row, config, Path(out), fresh, report)
    state["run_dir"] = str(run_dir)
    summary = _read_state(run_dir / "summary.json")
    state["training"] = {
        key: summary.get(key) for key in ("iterations", "env_steps", "wall_s", "best_iteration")
    }
    write_result(state, path=path)

    state.update(policy_figures(run_dir, flow.metric, episodes, seed, report))
    state["comparison"] = _compare(row, state)
    state["complete"] = True
    state["finished_at"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    write_result(state, path=path)
    return state


def bench_suite_flow(
    rows: Sequence[str],
    *,
    budget_min: float = 30.0,
    episodes: int = 40,
    seed: int = 1000,
    folder: Path = Path("scenarios/benchmarks"),
    out: Path = Path("runs/suite-flow"),
    results: Path = Path("benchmarks/results"),
    overrides: Sequence[str] = (),
    fresh: bool = False,
    report: Callable[[str], None] = lambda phase: None,
    finished: Callable[[dict[str, Any]], None] = lambda row: None,
) -> dict[str, Any]:
    """Flow's table for ``rows``: each row measured by :func:`run_row` (or kept from an
    earlier run), then the whole table as one result with a picture (:func:`plot_suite`).

    Returns the result (``benchmark: suite``, ``config: flow``) with ``written_to`` (the JSON)
    and ``figure`` (the PNG beside it).
    """
    if budget_min <= 0 or episodes < 1:
        raise ConfigError("--budget-min and --episodes must be positive, e.g. --budget-min 30.")
    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    measured = []
    for index, row in enumerate(rows, 1):
        phase = _row_reporter(report, f"{row} ({index}/{len(rows)})")
        state = run_row(
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
        "config": "flow",
        "source": FLOW_SOURCE,
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
    result["figure"] = str(plot_suite(measured, path.with_suffix(".png")))
    result["written_to"] = str(write_result(result, path=path))
    return result


def _row_reporter(report: Callable[[str], None], label: str) -> Callable[[str], None]:
    """``report`` with the row's label and the seconds spent on the row so far in front."""
    started = time.perf_counter()

    def phase(text: str) -> None:
        report(f"{label}, {time.perf_counter() - started:.0f} s: {text}")

    return phase


def plot_suite(rows: Sequence[dict[str, Any]], path: Path) -> Path:
    """Bars per row: humans and RL, Flow's beside flowsim's, as a share of Flow's humans
    (top), and each platform's gain over its own humans (bottom); written as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    names = [state["row"] for state in rows]
    flow = [FLOW_TABLE[name] for name in names]
    policy = [(state.get("best") or state["final"])["mean"] for state in rows]
    human = [state["human"]["mean"] for state in rows]
    x = np.arange(len(rows))
    width = 0.2
    figure, (top, bottom) = plt.subplots(2, 1, figsize=(max(9.0, 1.0 * len(rows) + 3), 8))
    bars = [
        ("Flow humans", [f.human for f in flow], "#9e9e9e", "//"),
        ("Flow best RL", [f.best_rl for f in flow], "#616161", ""),
        ("flowsim humans", human, "#90caf9", "//"),
        ("flowsim RL", policy, "#1565c0", ""),
    ]
    highest = 1.0
    for offset, (label, values, color, hatch) in zip((-1.5, -0.5, 0.5, 1.5), bars, strict=True):
        shares = [value / f.human for value, f in zip(values, flow, strict=True)]
        highest = max(highest, *shares)
        drawn = top.bar(x + offset * width, shares, width, label=label, color=color, hatch=hatch)
        top.bar_label(drawn, labels=[f"{value:.4g}" for value in values], fontsize=6)
    top.axhline(1.0, color="black", linewidth=0.6)
    top.set_ylim(0, highest * 1.3)
    top.set_ylabel("figure / Flow's humans")
    top.set_title(
        "Flow's benchmark table (CoRL 2018) beside flowsim, each row in its own metric "
        "(bar labels)",
        fontsize=10,
    )
    top.legend(ncol=4, fontsize=8, loc="upper left")
    gains = [_compare(state["row"], state)["gain_over_humans"] for state in rows]
    for offset, (label, key, color) in zip(
        (-0.5, 0.5), (("Flow", "flow", "#616161"), ("flowsim", "flowsim", "#1565c0")), strict=True
    ):
        values = [100 * gain[key] for gain in gains]
        drawn = bottom.bar(x + offset * width, values, width, label=label, color=color)
        bottom.bar_label(drawn, labels=[f"{value:+.0f} %" for value in values], fontsize=7)
    bottom.axhline(0.0, color="black", linewidth=0.6)
    bottom.set_ylabel("RL over own humans (%)")
    bottom.set_title(
        "gain over each platform's own humans (grid: less delay is a gain)", fontsize=10
    )
    bottom.legend(fontsize=8)
    bottom.margins(y=0.2)
    labels = [
        f"{name}\n{METRICS[f.metric][1]}" + (" (delay)" if f.metric == "delay" else "")
        for name, f in zip(names, flow, strict=True)
    ]
    for axes in (top, bottom):
        axes.set_xticks(x, labels, fontsize=8)
        axes.set_xlim(-0.75, len(rows) - 0.25)
    figure.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path
