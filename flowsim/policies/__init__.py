"""The policy network, defined once: one spec, a numpy forward and a torch forward.

- :mod:`flowsim.policies.spec`: :class:`~flowsim.policies.spec.PolicySpec`, the network's
  sizes, action head and parameter layout (built for an env with ``PolicySpec.for_spaces``).
- :mod:`flowsim.policies.numpy_mlp`: the runners' inference policy (no torch).
- :mod:`flowsim.policies.torch`: the learners' trainable ``ActorCritic``, whose ``export()``
  is what the runners load.

Importing this package loads neither torch nor gymnasium.
"""
