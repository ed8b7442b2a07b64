"""The policy network, specified once: sizes, activation, action head and parameter layout.

A :class:`PolicySpec` says which network a runner evaluates (in numpy,
:mod:`flowsim.policies.numpy_mlp`) and a learner trains (in torch,
:mod:`flowsim.policies.torch`). Both read their sizes and parameter names from it, so the
learner's :meth:`~flowsim.policies.torch.ActorCritic.export` is exactly what the runners load.

Parameter layout (``L = len(hidden)`` hidden layers; :meth:`PolicySpec.parameter_shapes`)::

    pi.{i}.weight (out, in), pi.{i}.bias (out,)   for i in 0..L   (last: the action head)
    vf.{i}.weight, vf.{i}.bias                    for i in 0..L   (last: 1 output, the value)
    log_std (act_dim,)                            Gaussian policies only
    obs_mean, obs_std (obs_dim,)                  optional: inputs clip((obs - mean) / std, ±c)
    critic_mean, critic_std (critic_dim,)         optional: the same for a central critic's input

with ``c`` the spec's ``obs_clip``. A centralised critic (MAPPO, ``critic_dim`` set) reads the
global state instead of the observation: ``vf.0.weight`` is then ``(hidden[0], critic_dim)``.

A categorical policy may be given an action mask per observation (True: a valid choice): the
masked logits are -inf in both forwards, so a masked choice is never sampled nor chosen
greedily and the probabilities are renormalised over the valid ones.

The action head has ``act_dim`` outputs: the Gaussian's mean, one logit per choice of a
``Discrete(n)`` space (``act_dim = n``), or, for ``MultiDiscrete(nvec)``, the logits of every
dimension one after another (``act_dim = sum(nvec)``; dimension ``i`` reads its ``nvec[i]``
logits after those of dimensions ``0..i-1``). Categorical actions are the chosen indices plus
the space's ``start``.

>>> from gymnasium import spaces
>>> spec = PolicySpec.for_spaces(spaces.Box(-1, 1, (3,)), spaces.Discrete(2), hidden=(8,))
>>> spec.kind, spec.obs_dim, spec.act_dim
('categorical_mlp', 3, 2)
>>> spec.parameter_shapes()["pi.1.weight"], list(spec.parameter_shapes())[-2:]
((2, 8), ['vf.1.weight', 'vf.1.bias'])
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any, Literal

from flowsim.errors import ConfigError

#: Normalised observations are clipped to ±OBS_CLIP (runners and learners alike).
OBS_CLIP = 10.0

PolicyKind = Literal["gaussian_mlp", "categorical_mlp", "multi_categorical_mlp", "constant"]
Activation = Literal["tanh"]
Head = Literal["pi", "vf"]

#: The two networks: the policy (``pi``, its last layer the action head) and the value (``vf``).
HEADS: tuple[Head, ...] = ("pi", "vf")
#: Scale of each network's last layer at initialisation: a near-uniform (or near-zero-mean)
#: first policy, and values of the rewards' order.
OUTPUT_GAIN: dict[str, float] = {"pi": 0.01, "vf": 1.0}
#: The Gaussian's state-independent log standard deviation.
LOG_STD = "log_std"
#: The observation normaliser's statistics, present in exported weights when one is used.
OBS_MEAN, OBS_STD = "obs_mean", "obs_std"
#: The central critic's input normaliser's statistics (MAPPO), likewise.
CRITIC_MEAN, CRITIC_STD = "critic_mean", "critic_std"

#: The action space each network kind acts in.
_KIND_SPACE = {
    "gaussian_mlp": "Box",
    "categorical_mlp": "Discrete",
    "multi_categorical_mlp": "MultiDiscrete",
}


@dataclass(frozen=True)
class PolicySpec:
    """One policy network: what a runner evaluates and a learner trains (small, picklable).

    Build a complete one for an env with :meth:`for_spaces`. A spec may leave its sizes out
    (``PolicySpec(kind="categorical_mlp")``); a runner completes it from its env with
    :meth:`fit`, which refuses sizes the env contradicts.

    Attributes:
        kind: ``gaussian_mlp`` (a ``Box`` action), ``categorical_mlp`` (``Discrete``),
            ``multi_categorical_mlp`` (``MultiDiscrete``: one independent categorical per
            dimension), or ``constant`` (always ``constant_action``; baselines, benchmarks
            and tests).
        hidden: hidden layer sizes of the policy and value networks.
        obs_dim: length of the flattened observation (None: the env's).
        act_dim: outputs of the action head (see the module docstring; None: the env's).
        nvec: choices per dimension of a ``multi_categorical_mlp`` (the space's ``nvec``,
            flattened); a runner whose env has another ``nvec`` refuses the spec.
        action_start: added to the chosen indices of a categorical (the space's ``start``,
            one per dimension; empty: 0).
        action_shape: shape of one env action (None: the env's).
        activation: the hidden layers' nonlinearity.
        init_log_std: initial log standard deviation of a Gaussian policy.
        obs_clip: normalised observations are clipped to ``±obs_clip``.
        constant_action: the action of the ``constant`` policy.
        critic_dim: inputs of the value network when it is a centralised critic reading the
            global state (MAPPO); None: it reads the observation, like the policy.
    """

    kind: PolicyKind = "gaussian_mlp"
    hidden: tuple[int, ...] = (64, 64)
    obs_dim: int | None = None
    act_dim: int | None = None
    nvec: tuple[int, ...] = ()
    action_start: tuple[int, ...] = ()
    action_shape: tuple[int, ...] | None = None
    activation: Activation = "tanh"
    init_log_std: float = 0.0
    obs_clip: float = OBS_CLIP
    constant_action: float = 0.0
    critic_dim: int | None = None

    def __post_init__(self) -> None:
        # Lists from a config become tuples, so specs compare and hash by value.
        object.__setattr__(self, "hidden", tuple(int(n) for n in self.hidden))
        object.__setattr__(self, "nvec", tuple(int(n) for n in self.nvec))
        object.__setattr__(self, "action_start", tuple(int(s) for s in self.action_start))
        if self.action_shape is not None:
            object.__setattr__(self, "action_shape", tuple(int(n) for n in self.action_shape))
        if self.kind == "multi_categorical_mlp" and self.nvec and self.act_dim is None:
            object.__setattr__(self, "act_dim", sum(self.nvec))
        if self.discrete and self.act_dim is not None:
            choices = self.choices
            if sum(choices) != self.act_dim or min(choices) < 1:
                raise ValueError(
                    f"nvec {list(choices)} does not split an action head of {self.act_dim} "
                    "outputs into dimensions of at least one choice each"
                )

    # -- building from an env ----------------------------------------------------------------
    @classmethod
    def for_spaces(
        cls,
        observation_space: Any,
        action_space: Any,
        hidden: tuple[int, ...] = (64, 64),
        *,
        init_log_std: float = 0.0,
    ) -> PolicySpec:
        """The network flowsim's trainers learn for an env's observation and action spaces.

        Raises:
            ConfigError: the action space is not a ``Box``, ``Discrete`` or ``MultiDiscrete``.
        """
        from gymnasium import spaces

        check_action_space(action_space)
        obs_dim = math.prod(observation_space.shape or ())
        if isinstance(action_space, spaces.MultiDiscrete):
            return cls(
                kind="multi_categorical_mlp",
                hidden=hidden,
                obs_dim=obs_dim,
                nvec=tuple(int(n) for n in action_space.nvec.reshape(-1)),
                action_start=tuple(int(s) for s in action_space.start.reshape(-1)),
                action_shape=tuple(action_space.shape),
            )
        if isinstance(action_space, spaces.Discrete):
            return cls(
                kind="categorical_mlp",
                hidden=hidden,
                obs_dim=obs_dim,
                act_dim=int(action_space.n),
                action_start=(int(action_space.start),),
                action_shape=(),
            )
        return cls(
            kind="gaussian_mlp",
            hidden=hidden,
            obs_dim=obs_dim,
            act_dim=math.prod(action_space.shape),
            action_shape=tuple(action_space.shape),
            init_log_std=init_log_std,
        )

    def fit(self, observation_space: Any, action_space: Any) -> PolicySpec:
        """This spec with the sizes it leaves out taken from an env's spaces.

        Raises:
            ValueError: the env's action space is not the one ``kind`` acts in, or the env
                contradicts a size the spec gives.
        """
        if self.kind == "constant":
            return replace(
                self,
                obs_dim=math.prod(observation_space.shape or ()),
                action_shape=tuple(action_space.shape or ()),
            )
        from gymnasium import spaces

        wanted = _KIND_SPACE[self.kind]
        if not isinstance(action_space, getattr(spaces, wanted)):
            fix = (
                "; use categorical_mlp (Discrete) or multi_categorical_mlp (MultiDiscrete)"
                if self.kind == "gaussian_mlp"
                else ""
            )
            raise ValueError(f"{self.kind} needs a {wanted} action space, not {action_space}{fix}")
        env = PolicySpec.for_spaces(
            observation_space, action_space, self.hidden, init_log_std=self.init_log_std
        )
        if self.nvec and self.nvec != env.nvec:
            raise ValueError(
                f"the policy has {list(self.nvec)} choices per action dimension; the env's "
                f"MultiDiscrete has {list(env.nvec)}"
            )
        for name in ("obs_dim", "act_dim", "action_start", "action_shape"):
            given = getattr(self, name)
            if given not in (None, ()) and given != getattr(env, name):
                raise ValueError(
                    f"the policy has {name} {given}; the env's spaces give {getattr(env, name)}"
                )
        return replace(
            env,
            activation=self.activation,
            obs_clip=self.obs_clip,
            constant_action=self.constant_action,
            critic_dim=self.critic_dim,
        )

    # -- the network -------------------------------------------------------------------------
    @property
    def discrete(self) -> bool:
        """Whether actions are categorical (``Discrete`` or ``MultiDiscrete``)."""
        return self.kind in ("categorical_mlp", "multi_categorical_mlp")

    @property
    def choices(self) -> tuple[int, ...]:
        """Choices per categorical dimension: ``nvec``, or ``(act_dim,)`` for ``Discrete``."""
        if self.kind == "multi_categorical_mlp":
            return self.nvec
        if self.kind == "categorical_mlp" and self.act_dim is not None:
            return (self.act_dim,)
        return ()

    def layer_sizes(self, head: Head) -> list[int]:
        """Widths from the input to the output of network ``head`` (``pi`` or ``vf``)."""
        if self.kind == "constant":
            raise ValueError("a constant policy has no network")
        if self.obs_dim is None or self.act_dim is None:
            raise ValueError(
                f"a {self.kind} spec without obs_dim and act_dim has no network; build it with "
                "PolicySpec.for_spaces or complete it with spec.fit(observation_space, "
                "action_space)"
            )
        if head == "pi":
            return [self.obs_dim, *self.hidden, self.act_dim]
        return [self.critic_dim or self.obs_dim, *self.hidden, 1]

    def layer_names(self, head: Head) -> list[tuple[str, str]]:
        """``(weight, bias)`` parameter names of each linear layer of network ``head``."""
        return [(f"{head}.{i}.weight", f"{head}.{i}.bias") for i in range(len(self.hidden) + 1)]

    def parameter_shapes(self) -> dict[str, tuple[int, ...]]:
        """Every parameter's name and shape, in the order both forwards create them."""
        shapes: dict[str, tuple[int, ...]] = {}
        for head in HEADS:
            sizes = self.layer_sizes(head)
            for i, (weight, bias) in enumerate(self.layer_names(head)):
                shapes[weight] = (sizes[i + 1], sizes[i])
                shapes[bias] = (sizes[i + 1],)
        if not self.discrete:
            assert self.act_dim is not None
            shapes[LOG_STD] = (self.act_dim,)
        return shapes


def check_action_space(action_space: Any) -> None:
    """Refuse, naming what is supported, an action space flowsim's trainers cannot act in.

    Raises:
        ConfigError: the space is not a ``Box``, ``Discrete`` or ``MultiDiscrete``.
    """
    from gymnasium import spaces

    if isinstance(action_space, spaces.Box | spaces.Discrete | spaces.MultiDiscrete):
        return
    raise ConfigError(
        f"action space {action_space}: flowsim's trainers act in Box, Discrete and "
        "MultiDiscrete spaces only; wrap the env to flatten its actions into one of those."
    )
