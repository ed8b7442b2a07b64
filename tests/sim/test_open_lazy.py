"""An open network's vehicles read lazily: a step only notes who entered and left, and the ids,
arrays and groups are rebuilt when read. Whatever the reads' rhythm, they must equal what
rebuilding at every step gives, and follow the step events (placed vehicles first, entering
ones appended in order of entry, leaving ones dropped in place)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from flowsim.config import apply_overrides, load_config
from flowsim.sim.simulation import Simulation

INTERSECTION = Path(__file__).resolve().parents[2] / "scenarios" / "intersection.yaml"
#: short teleport time: jammed vehicles teleport, which takes the kernel's eager path
CONFIG = apply_overrides(load_config(INTERSECTION), ["sim.teleport_time=4"])
STEPS = 300


def _run(lazy: bool, read_every: int) -> tuple[list[tuple], list[tuple], int]:
    """(the step events, the reads every ``read_every`` steps, teleports) of one episode."""
    simulation = Simulation(CONFIG)
    try:
        simulation.reset(seed=2)
        assert simulation._lazy  # every group SUMO-driven on an open network
        simulation._lazy = lazy
        kernel = simulation.kernel
        followed = list(kernel.vehicle_ids)
        events, reads, teleports = [], [], 0
        for step in range(STEPS):
            event = simulation.step()
            events.append((event.removed, event.added, event.arrived, event.collisions))
            teleports += event.teleports
            gone = set(event.removed)
            followed = [v for v in followed if v not in gone] + list(event.added)
            if step % read_every == 0:
                ids = kernel.vehicle_ids
                assert ids == tuple(followed)
                assert set(ids) == set(kernel.backend.vehicle_ids())
                (group,) = simulation.groups
                assert group.ids == ids
                assert group.indices.tolist() == list(range(len(ids)))
                every = np.arange(len(ids))
                reads.append(
                    (
                        ids,
                        kernel.index_of(ids[::2]).tolist(),
                        kernel.min_gaps().tolist(),
                        kernel.speed_limits().tolist(),
                        kernel.speeds().tolist(),
                        kernel.ids_of(every[1::3]),
                        kernel.leaders(every[::4])[0].tolist(),
                    )
                )
        return events, reads, teleports
    finally:
        simulation.close()


@pytest.fixture(scope="module")
def every_step() -> tuple[list[tuple], list[tuple], int]:
    return _run(lazy=False, read_every=1)


@pytest.mark.parametrize("read_every", [1, 7])
def test_lazy_reads_equal_rebuilding_every_step(every_step, read_every: int) -> None:
    events, reads, teleports = _run(lazy=True, read_every=read_every)
    eager_events, eager_reads, _ = every_step
    assert teleports > 0  # the eager path for teleports ran between lazy reads
    assert sum(1 for removed, added, *_ in events if removed or added) > STEPS // 2
    assert events == eager_events
    assert reads == eager_reads[::read_every]
