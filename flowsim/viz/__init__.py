"""Showing results: progress bars, tables and (later) plots."""

from flowsim.viz.progress import progress_bar

__all__ = ["progress_bar"]
