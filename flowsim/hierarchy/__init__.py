"""Hierarchical imitation: procedures with a call stack, learned from demonstrations.

Modules (torch is imported only by those that need it; the ``imitation:`` section of an
experiment YAML is :mod:`flowsim.config.imitation`):

- :mod:`~flowsim.hierarchy.procedures`: procedures, frames and the call-stack executor (PHP);
- :mod:`~flowsim.hierarchy.neural`: neural procedures (MLPs on observation, counter, argument);
- :mod:`~flowsim.hierarchy.demos`: the demonstration format (``.npz``) and its loader;
- :mod:`~flowsim.hierarchy.strong` / :mod:`~flowsim.hierarchy.weak`: strong supervision and
  weak supervision (log-space forward-backward over procedure and program counter);
- :mod:`~flowsim.hierarchy.learn`: fitting (strong, weak, mixed) and flat behaviour cloning;
- :mod:`~flowsim.hierarchy.levels`: deeper hierarchies from weak supervision, level by level;
- :mod:`~flowsim.hierarchy.skills`: procedures of one run reused (frozen, retrained, recreated);
- :mod:`~flowsim.hierarchy.synthetic`: two- and three-level tasks with known structure;
- :mod:`~flowsim.hierarchy.experts.ring`: the rule-based hierarchical driver of the multi-lane ring;
- :mod:`~flowsim.hierarchy.experts.bus`: the bus expert serving stops (a task that needs memory);
- :mod:`~flowsim.hierarchy.experts.figure_eight`: the figure-eight expert yielding at the crossing;
- :mod:`~flowsim.hierarchy.collect`: demonstrations and closed-loop evaluation via the sampler;
- :mod:`~flowsim.hierarchy.imitate`: ``flowsim imitate`` run directories and the benchmark.
"""
