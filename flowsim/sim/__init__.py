"""The simulation kernel: SUMO through libsumo or TraCI, state as numpy arrays."""

from flowsim.sim.backends import Backend, LibsumoBackend, TraciBackend, make_backend
from flowsim.sim.kernel import Kernel, StepEvents, crash_guard

__all__ = [
    "Backend",
    "Kernel",
    "LibsumoBackend",
    "StepEvents",
    "TraciBackend",
    "crash_guard",
    "make_backend",
]
