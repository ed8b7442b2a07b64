"""The sampler: EnvRunners in-process or on Ray actors, one rollout contract for every consumer.

>>> from flowsim.config import FlowsimConfig, apply_overrides
>>> from flowsim.distributed import make_runner_group
>>> group = make_runner_group(apply_overrides(FlowsimConfig(), ["env.warmup_steps=10"]))
>>> batch = group.sample(num_steps=100)
>>> len(batch), batch.obs.shape
(100, (100, 3))
>>> group.close()
"""

from flowsim.distributed.batch import Batch
from flowsim.distributed.group import (
    LocalRunnerGroup,
    RayRunnerGroup,
    RunnerGroup,
    make_runner_group,
    runner_seed,
)
from flowsim.distributed.policy import ConstantPolicy, MLPPolicy, PolicySpec, build_policy
from flowsim.distributed.runner import EnvRunner

__all__ = [
    "Batch",
    "ConstantPolicy",
    "EnvRunner",
    "LocalRunnerGroup",
    "MLPPolicy",
    "PolicySpec",
    "RayRunnerGroup",
    "RunnerGroup",
    "build_policy",
    "make_runner_group",
    "runner_seed",
]
