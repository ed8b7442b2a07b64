"""A fixed number of agent slots for AVs that come and go (Flow's merge machinery).

On an open network AVs enter and leave, but a policy's observation and action have a fixed
size. :class:`AVSlots` gives each AV a slot first come, first served; an AV keeps its slot
until it leaves, AVs that find every slot taken wait in a queue (and drive by SUMO's model),
and a freed slot goes to the AV that has waited longest.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from flowsim.sim.kernel import Kernel


class AVSlots:
    """``count`` first-come-first-served slots over the AVs in the network.

    After :meth:`admit`, :attr:`indices` holds the kernel indices of the slotted AVs and
    :attr:`slot_of` their slot numbers (same order); iterating gives each slot's AV id, ``''``
    for an empty slot.

    Example:
        >>> slots = AVSlots(2)
        >>> list(slots)
        ['', '']
    """

    def __init__(self, count: int, color: tuple[int, int, int, int] | None = None) -> None:
        self.count = count
        self.color = color
        #: the AV id in each slot ('' for an empty slot)
        self.ids: list[str] = [""] * count
        #: AVs waiting for a slot, longest-waiting first
        self.queue: list[str] = []
        self.indices = np.zeros(0, dtype=np.int64)
        self.slot_of = np.zeros(0, dtype=np.int64)

    def __iter__(self) -> Iterator[str]:
        return iter(self.ids)

    def __len__(self) -> int:
        return self.count

    def reset(self) -> None:
        """Empty every slot and the queue (a new episode)."""
        self.ids = [""] * self.count
        self.queue = []
        self.indices = np.zeros(0, dtype=np.int64)
        self.slot_of = np.zeros(0, dtype=np.int64)

    def admit(self, kernel: Kernel, avs: np.ndarray) -> None:
        """Update the slots to the AVs at kernel indices ``avs`` (in arrival order): free the
        slots of AVs that left, queue new ones, fill free slots from the queue's head."""
        names = kernel.vehicle_ids
        present = [names[i] for i in avs.tolist()]
        here = set(present)
        self.ids = [av if av in here else "" for av in self.ids]
        waiting = set(self.queue)
        slotted = set(self.ids)
        self.queue = [av for av in self.queue if av in here]
        self.queue += [av for av in present if av not in waiting and av not in slotted]
        for slot, av in enumerate(self.ids):
            if not av and self.queue:
                self.ids[slot] = new = self.queue.pop(0)
                if self.color is not None:
                    kernel.set_color(kernel.index_of((new,)), self.color)
        filled = [(slot, av) for slot, av in enumerate(self.ids) if av]
        self.slot_of = np.array([slot for slot, _ in filled], dtype=np.int64)
        self.indices = kernel.index_of(tuple(av for _, av in filled))

    def scatter(self, rows: np.ndarray, width: int) -> np.ndarray:
        """``rows`` (one per slotted AV, ``width`` values each) laid out per slot, zeros in
        empty slots: shape ``(count, width)``."""
        out = np.zeros((self.count, width), dtype=np.float32)
        if self.slot_of.size:
            out[self.slot_of] = rows
        return out
