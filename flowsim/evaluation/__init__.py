"""Evaluation: baselines and metrics of policies and human drivers, played on the runners."""
