"""Imitation benchmark: demonstrations needed by the hierarchical program against flat cloning."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from flowsim.bench.results import result_path, write_result
from flowsim.config import FlowsimConfig
from flowsim.config.imitation import ImitationConfig
from flowsim.hierarchy.imitate import THRESHOLDS, recovery, versus_expert


def bench_imitate(
    config: FlowsimConfig,
    imitation: ImitationConfig,
    counts: tuple[int, ...] = (1, 3, 10, 30),
    eval_episodes: int = 3,
    results: Path | None = Path("benchmarks/results"),
    report: Any = None,
    weak_demos: int = 0,
    plot: bool = True,
) -> dict[str, Any]:
    """Data efficiency: closed-loop driving against the number of strong demonstrations.

    Collects ``max(counts, weak_demos)`` training episodes and one held-out episode of the
    expert once; for each count fits the hierarchical program and the flat baseline on the
    first episodes (``imitation.epochs`` each) and drives both on the same evaluation seeds as
    the expert. With ``weak_demos``, also fits a program on that many episodes with their call
    stacks hidden and scores its procedure recovery on the held-out episode (best permutation
    of labels) and its driving. ``threshold`` lists, for each share of the expert's score in
    :data:`THRESHOLDS` and each model, the fewest demonstrations whose ``score_vs_expert``
    reaches it (None: none did). The JSON (and a PNG of the curve when
    ``plot``) goes to ``results/imitate-<name>-<UTC time>.json`` (nothing written when ``results``
    is None).
    """
    import torch

    from flowsim.hierarchy.collect import play, summarise
    from flowsim.hierarchy.experts import check_expert_config, expert_task
    from flowsim.hierarchy.learn import FlatPolicy, action_metrics, fit, fit_flat
    from flowsim.hierarchy.neural import NeuralProgram

    say = report or (lambda text: None)
    torch.set_num_threads(1)
    task = expert_task(imitation.expert)
    check_expert_config(config, task)
    spec = task.spec(tuple(imitation.hidden), imitation.pc_cap)
    base = imitation.seed * 100_000
    most = max(*counts, weak_demos)
    say(f"collecting {most + 1} expert episodes")
    demos, _ = play(
        config,
        list(range(base, base + most + 1)),
        "expert",
        record=True,
        expert=task.name,
        noise=imitation.demo_noise,
    )
    held_out = [d for d in demos if d.episode == base + most]
    seeds = list(range(1000, 1000 + eval_episodes))
    _, expert_stats = play(config, seeds, "expert", expert=task.name)
    expert = summarise(expert_stats)

    def drive(name: str, model: Any, fit_s: float) -> dict[str, Any]:
        _, stats = play(config, seeds, name, model.state(), expert=task.name)
        entry = versus_expert(summarise(stats), expert)
        return {**entry, **action_metrics(model, held_out), "fit_s": fit_s}

    curve = []
    for count in counts:
        train = [d for d in demos if d.episode < base + count]
        entry: dict[str, Any] = {"strong_demos": count, "demonstrations": len(train)}
        for name in ("program", "flat"):
            say(f"{count} demonstration(s): fitting and driving the {name}")
            started = time.perf_counter()
            if name == "program":
                model: Any = NeuralProgram(spec, seed=imitation.seed)
                fit(model, train, epochs=imitation.epochs, lr=imitation.lr)
            else:
                model = FlatPolicy(spec, seed=imitation.seed)
                fit_flat(model, train, epochs=imitation.epochs, lr=imitation.lr)
            entry[name] = drive(name, model, time.perf_counter() - started)
        curve.append(entry)
    result: dict[str, Any] = {
        "benchmark": "imitate",
        "config": config.name,
        "expert_task": task.name,
        "score": "stops_served" if task.at_stop is not None else "av_speed",
        "epochs": imitation.epochs,
        "demo_noise": imitation.demo_noise,
        "eval_seeds": seeds,
        "expert": expert,
        "curve": curve,
        "threshold": {
            f"{level:.2f}": {
                name: next(
                    (e["strong_demos"] for e in curve if e[name]["score_vs_expert"] >= level),
                    None,
                )
                for name in ("program", "flat")
            }
            for level in THRESHOLDS
        },
    }
    if weak_demos:
        say(f"weak supervision: fitting {weak_demos} episode(s) without call stacks")
        weak = [d.weak() for d in demos if d.episode < base + weak_demos]
        started = time.perf_counter()
        model = NeuralProgram(spec, seed=imitation.seed)
        fit(model, weak, epochs=imitation.epochs, lr=imitation.lr)
        fit_s = time.perf_counter() - started
        say("weak supervision: procedure recovery and driving")
        result["weak"] = {
            "weak_demos": weak_demos,
            "demonstrations": len(weak),
            "recovery": recovery(model, held_out),
            "program": drive("program", model, fit_s),
        }
    if results is not None:
        path = result_path(result, Path(results))
        if plot:
            result["plot"] = str(plot_curve(result, path.with_suffix(".png")))
        write_result(result, path=path)
        result["written_to"] = str(path)
    return result


def plot_curve(result: dict[str, Any], path: Path) -> Path:
    """The data-efficiency curve of :func:`bench_imitate` (score against the expert's, per
    number of strong demonstrations, program and flat baseline) as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    counts = [e["strong_demos"] for e in result["curve"]]
    figure, axis = plt.subplots(figsize=(5, 3.5))
    for name, label in (("program", "hierarchical (strong)"), ("flat", "flat cloning")):
        axis.plot(counts, [e[name]["score_vs_expert"] for e in result["curve"]], "o-", label=label)
    axis.axhline(1.0, color="grey", linestyle=":", label="expert")
    axis.set_xscale("log")
    axis.set_xticks(counts, [str(c) for c in counts])
    axis.set_xlabel("strong demonstrations (episodes)")
    axis.set_ylabel(f"{result['score']} / expert's")
    axis.set_title(f"{result['config']}: closed-loop data efficiency")
    axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path
