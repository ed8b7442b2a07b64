"""Showing results: progress bars, learning curves, time-space diagrams and GIFs of sumo-gui."""

from flowsim.viz.progress import progress_bar

__all__ = ["progress_bar"]
