"""The sampler: EnvRunners in-process or on Ray actors; ``sample`` fragments and ``play`` episodes.

>>> from flowsim.config import FlowsimConfig, apply_overrides
>>> from flowsim.distributed import make_runner_group
>>> group = make_runner_group(apply_overrides(FlowsimConfig(), ["env.warmup_steps=10"]))
>>> batch = group.sample(num_steps=100)
>>> len(batch), batch.obs.shape
(100, (100, 3))
>>> group.close()
"""

from flowsim.distributed.base import RunnerGroup, make_runner_group
from flowsim.distributed.batch import Batch
from flowsim.distributed.local import LocalRunnerGroup
from flowsim.distributed.play import EpisodeJob, EpisodeResult, Perturbation
from flowsim.distributed.ray_group import RayRunnerGroup
from flowsim.distributed.runner import EnvRunner, runner_seed

__all__ = [
    "Batch",
    "EnvRunner",
    "EpisodeJob",
    "EpisodeResult",
    "LocalRunnerGroup",
    "Perturbation",
    "RayRunnerGroup",
    "RunnerGroup",
    "make_runner_group",
    "runner_seed",
]
