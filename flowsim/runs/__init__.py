"""Run directories, the one training loop, its callbacks and writers, and checkpoints."""
