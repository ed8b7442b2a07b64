"""Learning algorithms (PPO, TRPO, ES) behind the Trainer protocol; the update maths only."""
