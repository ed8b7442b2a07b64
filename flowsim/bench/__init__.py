"""Benchmarks: env, sampler, train, tune, faults and imitation; one result writer."""
