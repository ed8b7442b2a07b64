"""sumo-gui through the TraCI backend, on a real X server (Xvfb)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from flowsim.config import parse_config
from flowsim.sim.simulation import Simulation

pytestmark = pytest.mark.gui


def test_sumo_gui_shows_the_ring(display: str, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("DISPLAY", display)
    cfg = parse_config({"sim": {"backend": "traci", "gui": True}})
    simulation = Simulation(cfg, rl_as_human=True)
    shot = tmp_path / "ring.png"
    try:
        simulation.reset(seed=0)
        for _ in range(20):
            simulation.step()
        process = simulation.kernel.backend.process
        simulation.kernel.backend.api.gui.screenshot("View #0", str(shot))
        simulation.step()  # sumo-gui writes the screenshot during the next step
    finally:
        simulation.close()
    assert process.poll() is not None  # sumo-gui is gone after close()
    from PIL import Image

    pixels = np.asarray(Image.open(shot).convert("RGB")).astype(int)
    red, green, blue = pixels[..., 0], pixels[..., 1], pixels[..., 2]
    yellow = (red > 180) & (green > 180) & (blue < 100)  # SUMO's default vehicle colour
    av_red = (red > 180) & (green < 80) & (blue < 80)  # the AV group's colour in ring.yaml
    assert yellow.sum() > 50 and av_red.sum() > 3
