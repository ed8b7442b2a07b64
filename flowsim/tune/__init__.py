"""Hyper-parameter tuning on Ray Tune: ``flowsim tune CONFIG.yaml``.

The ``tune:`` section of an experiment (:class:`~flowsim.config.tune.TuneConfig`) maps
dotted config keys to distributions and names a scheduler, a search algorithm and a stop
condition. :func:`flowsim.tune.run.run_tune` validates it, starts one Ray Tune trial per
sampled configuration (each a flowsim training run with its own runner actors inside the
trial's placement group), and writes a results table, ``best_config.yaml`` and plots.
"""
