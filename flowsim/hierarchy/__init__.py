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
- :mod:`~flowsim.hierarchy.experts`: the experts ``imitation.expert`` names (``ring``,
  ``bus``, ``figure_eight``), each an :class:`~flowsim.hierarchy.experts.task.ExpertTask`
  (features, program shape, rule-based procedures):

  - :mod:`~flowsim.hierarchy.experts.ring`: the multi-lane ring's expert and shared rules;
  - :mod:`~flowsim.hierarchy.experts.bus`: the bus serving stops (a task that needs memory);
  - :mod:`~flowsim.hierarchy.experts.figure_eight`: the AV yielding at the crossing;

- :mod:`~flowsim.hierarchy.driver`: a driver from procedures, one call stack per AV (an actor
  for the runners' episodes);
- :mod:`~flowsim.hierarchy.collect`: demonstrations and closed-loop driving as play jobs on
  the runners (:meth:`flowsim.distributed.RunnerGroup.play`);
- :mod:`~flowsim.hierarchy.imitate`: ``flowsim imitate`` run directories;
- :mod:`~flowsim.hierarchy.state`: reading an imitation run's checkpoints;
- :mod:`~flowsim.hierarchy.evaluate`: ``flowsim evaluate`` for any run (a policy or a program);
- :mod:`~flowsim.hierarchy.cli`: the ``imitate`` and ``bench imitate`` commands. The
  benchmark itself is :mod:`flowsim.bench.imitate`.
"""
