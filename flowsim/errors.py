"""Errors that flowsim raises on purpose, each meant to be caught and shown without a traceback."""

from __future__ import annotations


class FlowsimError(Exception):
    """Base class of flowsim's own errors."""


class ConfigError(FlowsimError, ValueError):
    """A configuration (YAML, ``--set`` override or keyword) is invalid.

    The message names the key, the value and the fix; the CLI prints it and exits with code 2.
    """


class SimulationCrashed(FlowsimError, RuntimeError):
    """The SUMO process or in-process simulation died; the kernel can be restarted."""


class BackendUnavailable(FlowsimError, RuntimeError):
    """The requested simulation backend cannot run here (e.g. a second libsumo simulation)."""
