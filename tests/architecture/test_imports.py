"""The package's shape: no import cycles, layers that only look down, light imports.

The import graph comes from grimp, which parses every import in ``flowsim/`` (those inside
functions too) without running them; imports under ``if TYPE_CHECKING:`` are left out,
since they never run.
"""

from __future__ import annotations

import json
import subprocess
import sys

import grimp
import pytest

HEAVY = ("ray", "libsumo", "traci", "sumolib", "torch", "gymnasium", "pettingzoo")


@pytest.fixture(scope="module")
def graph() -> grimp.ImportGraph:
    """flowsim's import graph (internal modules only)."""
    return grimp.build_graph("flowsim", cache_dir=None, exclude_type_checking_imports=True)


def _cycles(graph: grimp.ImportGraph) -> list[list[str]]:
    """Every strongly connected set of two or more modules (Tarjan), each as a cycle path."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for target in sorted(graph.find_modules_directly_imported_by(module)):
            if target not in index:
                visit(target)
                low[module] = min(low[module], low[target])
            elif target in on_stack:
                low[module] = min(low[module], index[target])
        if low[module] == index[module]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == module:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    for module in sorted(graph.modules):
        if module not in index:
            visit(module)
    return components


def test_no_import_cycle(graph: grimp.ImportGraph) -> None:
    cycles = _cycles(graph)
    shown = []
    for component in cycles:
        first, second = component[0], component[1]
        there = graph.find_shortest_chain(first, second) or ()
        back = graph.find_shortest_chain(second, first) or ()
        shown.append(" -> ".join([*there, *back[1:]]))
    assert not cycles, "import cycles in flowsim/:\n" + "\n".join(shown)


def test_cycle_finder_finds_a_planted_cycle(graph: grimp.ImportGraph) -> None:
    graph.add_import(importer="flowsim.errors", imported="flowsim.jsonout")
    graph.add_import(importer="flowsim.jsonout", imported="flowsim.errors")
    try:
        assert ["flowsim.errors", "flowsim.jsonout"] in _cycles(graph)
    finally:
        graph.remove_import(importer="flowsim.errors", imported="flowsim.jsonout")
        graph.remove_import(importer="flowsim.jsonout", imported="flowsim.errors")


#: (package, packages it must never import, even through others) from DESIGN.md's table
FORBIDDEN = [
    ("flowsim.config", ("flowsim.scenarios", "flowsim.sim", "flowsim.envs", "flowsim.runs")),
    ("flowsim.scenarios", ("flowsim.sim", "flowsim.envs", "flowsim.distributed")),
    ("flowsim.sim", ("flowsim.envs", "flowsim.policies", "flowsim.distributed", "flowsim.algos")),
    ("flowsim.controllers", ("flowsim.sim", "flowsim.envs", "flowsim.scenarios")),
    ("flowsim.envs", ("flowsim.distributed", "flowsim.algos", "flowsim.runs")),
    ("flowsim.policies", ("flowsim.envs", "flowsim.sim", "flowsim.distributed", "flowsim.algos")),
    ("flowsim.distributed", ("flowsim.algos", "flowsim.runs", "flowsim.evaluation")),
    ("flowsim.algos", ("flowsim.runs", "flowsim.evaluation", "flowsim.tune", "flowsim.cli")),
    ("flowsim.runs", ("flowsim.tune", "flowsim.hierarchy", "flowsim.cli", "flowsim.bench")),
    ("flowsim.evaluation", ("flowsim.hierarchy", "flowsim.tune", "flowsim.cli", "flowsim.bench")),
]


@pytest.mark.parametrize(("package", "forbidden"), FORBIDDEN, ids=[p for p, _ in FORBIDDEN])
def test_layers_only_look_down(
    graph: grimp.ImportGraph, package: str, forbidden: tuple[str, ...]
) -> None:
    problems = []
    for upper in forbidden:
        chain = graph.find_shortest_chains(importer=package, imported=upper, as_packages=True)
        problems += [" -> ".join(c) for c in sorted(chain)]
    assert not problems, f"{package} reaches up:\n" + "\n".join(problems)


def test_runs_know_no_algorithm(graph: grimp.ImportGraph) -> None:
    """The loop talks to the Trainer protocol; trainers are found by name in algos.base."""
    for module in ("flowsim.algos.ppo", "flowsim.algos.trpo", "flowsim.algos.es"):
        assert not graph.find_shortest_chains("flowsim.runs", module, as_packages=True)


def _loaded(statement: str) -> dict[str, list[str]]:
    """Heavy libraries and flowsim modules loaded by ``statement`` in a fresh interpreter."""
    code = (
        f"import json, sys\n{statement}\n"
        f"heavy = sorted({{m.split('.')[0] for m in sys.modules}} & set({HEAVY!r}))\n"
        "own = sorted(m for m in sys.modules if m.startswith('flowsim'))\n"
        "print(json.dumps({'heavy': heavy, 'own': own}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.splitlines()[-1])


def test_import_flowsim_config_is_light() -> None:
    loaded = _loaded("import flowsim.config")
    assert loaded["heavy"] == []
    assert not [m for m in loaded["own"] if m.startswith(("flowsim.sim", "flowsim.scenarios"))]
    assert set(loaded["own"]) & {"flowsim.envs.base", "flowsim.envs.make"} == set()


def test_import_flowsim_sim_loads_no_gymnasium_or_envs() -> None:
    loaded = _loaded("import flowsim.sim, flowsim.sim.kernel, flowsim.sim.simulation")
    assert "gymnasium" not in loaded["heavy"]
    # ``import flowsim`` declares the env ids (flowsim.envs.registry: strings only)
    envs = {m for m in loaded["own"] if m.startswith("flowsim.envs")}
    assert envs <= {"flowsim.envs", "flowsim.envs.registry"}


def test_import_flowsim_is_light_and_registers_the_ids_when_gymnasium_loads() -> None:
    assert _loaded("import flowsim")["heavy"] == []
    for order in ("import flowsim, gymnasium", "import gymnasium, flowsim"):
        code = f"{order}\nprint(sorted(i for i in gymnasium.registry if i.startswith('flowsim/')))"
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        assert "flowsim/Ring-v0" in out.stdout, (order, out.stderr)
