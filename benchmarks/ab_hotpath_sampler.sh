#!/usr/bin/env bash
# Issue 21's sampler and training rows, interleaved in one run on one machine:
#   (a) PPO training throughput on the ring including learning (22 vehicles, SUMO humans, 0.1 s
#       actions, 3,000-step episodes, 24,000-step batches, 10 epochs, minibatch 4,000, 2 runners):
#       flowsim OLD_TREE, flowsim NEW_TREE, and the RLlib 2.60 peer (../shared/peers, as it is);
#   (b) `flowsim bench sampler`'s 144-trajectory figure in the seed's setting (0.1 s actions,
#       3,000-step trajectories, 750 warm-up steps), old and new.
#   bash benchmarks/ab_hotpath_sampler.sh OLD_TREE [OUT]
#   bash benchmarks/ab_hotpath_sampler.sh --profile TREE   # where a PPO iteration's time goes
# OLD_TREE: a git worktree of the commit before the change (git worktree add /tmp/old COMMIT).
# Each tree runs through this checkout's .venv with PYTHONPATH (its own flowsim package wins
# over the editable install; Ray workers inherit it). Knobs (environment): ROUNDS (2),
# ITERATIONS (6 flowsim PPO iterations per run; the first is left out of the median, as the
# peer's first), TRAJECTORIES (72; the JSON scales to 144), TIMEOUT_S (300 s a run, the peer
# twice that; a run cut short keeps the iterations it finished), NEW_TREE (this checkout),
# PEERS (../shared/peers), SKIP_PEER=1. About 8-9 minutes on 2 quiet cores. Every Ray
# instance listens on 127.0.0.1 only (flowsim's own; the peer's through the switch
# flowsim.distributed.cluster.loopback_only sets). Results: OUT (benchmarks/results/
# hotpath-sampler-ab-<time>/), one summary.json with medians and spreads.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
bin=$here/.venv/bin

PPO_SETTING=(--set vehicles.0.controller=sumo --set env.sims_per_step=1 --set env.horizon=3000
  --set env.warmup_steps=0 --set sampler.num_workers=2 --set sampler.envs_per_worker=1
  --set sampler.rollout_fragment_length=12000 --set train.minibatch_size=4000
  --set train.epochs=10)

if [ "${1:-}" = "--profile" ]; then
  tree=$(cd "$2" && pwd)
  cd "$tree"
  PYTHONPATH="$tree" "$bin/python" - "${ITERATIONS:-4}" "${PPO_SETTING[@]}" <<'EOF'
"""Where one PPO iteration's time goes, measured in the driver and reported by the runners."""
import sys
import time

import numpy as np

import flowsim.algos.ppo as ppo_module
from flowsim.algos.ppo import PPOTrainer
from flowsim.config import load_config
from flowsim.distributed import make_runner_group

iterations = int(sys.argv[1])
overrides = [a for a in sys.argv[2:] if a != "--set"]
config = load_config("scenarios/ring.yaml", overrides)
group = make_runner_group(config)
trainer = PPOTrainer(config, group)
estimate_advantages = ppo_module.estimate_advantages
advantages_s = []


def timed_estimate(*args, **kwargs):
    """PPO's own estimate_advantages, timed (the update is the rest of learn)."""
    start = time.perf_counter()
    try:
        return estimate_advantages(*args, **kwargs)
    finally:
        advantages_s.append(time.perf_counter() - start)


ppo_module.estimate_advantages = timed_estimate
rows = []
for it in range(iterations + 1):
    t0 = time.perf_counter()
    group.set_weights(trainer.export_policy(), trainer.iteration)
    t1 = time.perf_counter()
    batch = group.sample(num_steps=trainer.steps_per_call)
    t2 = time.perf_counter()
    trainer.learn(batch)
    trainer.iteration += 1
    t3 = time.perf_counter()
    runners = batch.metrics["runners"]
    runner_wall = max(r["wall_s"] for r in runners)
    row = {
        "iteration_s": t3 - t0,
        "set_weights_s": t1 - t0,
        "sample_s": t2 - t1,
        "runner_wall_s": runner_wall,
        "transfer_and_driver_s": (t2 - t1) - runner_wall,
        "env_us": np.mean([r["sim_s"] / r["steps"] for r in runners]) * 1e6,
        "inference_us": np.mean([r["inference_s"] / r["steps"] for r in runners]) * 1e6,
        "bookkeeping_us": np.mean(
            [(r["wall_s"] - r["sim_s"] - r["inference_s"]) / r["steps"] for r in runners]
        )
        * 1e6,
        "learn_s": t3 - t2,
        "advantages_s": advantages_s[-1],
        "update_s": (t3 - t2) - advantages_s[-1],
        "steps_per_s": len(batch) / (t3 - t0),
    }
    if it:  # the first iteration places the actors and warms the caches
        rows.append(row)
    print(" ".join(f"{k}={v:.4g}" for k, v in row.items()), flush=True)
group.close()
print("median: " + " ".join(f"{k}={np.median([r[k] for r in rows]):.4g}" for k in rows[0]))
EOF
  exit 0
fi

old=$(cd "$1" && pwd)
new=$(cd "${NEW_TREE:-$here}" && pwd)
out=${2:-$here/benchmarks/results/hotpath-sampler-ab-$(date -u +%Y%m%dT%H%M%S)}
peers=$(cd "${PEERS:-$here/../shared/peers}" && pwd)
rounds=${ROUNDS:-2}
iterations=${ITERATIONS:-6}
trajectories=${TRAJECTORIES:-72}
mkdir -p "$out"
out=$(cd "$out" && pwd)
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT

# The peer runs as its README says, from a scratch copy outside the repository, its ring built
# by its own mkring.py; the loopback switch keeps its Ray instance on 127.0.0.1.
if [ -z "${SKIP_PEER:-}" ]; then
  cp "$peers"/ring_env.py "$peers"/rllib_ring.py "$peers"/mkring.py "$scratch"/
  mkdir -p "$scratch/ringnet"
  (cd "$scratch/ringnet" && PATH="$bin:$PATH" "$bin/python" ../mkring.py 230 22)
fi

train_run() {  # train_run SIDE ROUND: flowsim PPO on the ring in the peer's setting
  local side=$1 round=$2 tree=$new
  if [ "$side" = old ]; then tree=$old; fi
  echo "== $side train, round $round" >&2
  (cd "$tree" && PYTHONPATH="$tree" timeout "${TIMEOUT_S:-300}" "$bin/flowsim" train scenarios/ring.yaml \
    "${PPO_SETTING[@]}" --set train.iterations="$iterations" \
    --out "$scratch/runs-$side-$round" > "$out/train-$side-$round.log" 2>&1) ||
    echo "   cut short (exit $?): its finished iterations count" >&2
  local progress
  progress=$(ls "$scratch/runs-$side-$round"/*/progress.csv 2>/dev/null | head -1 || true)
  if [ -n "$progress" ]; then cp "$progress" "$out/train-$side-$round.csv"; fi
}

peer_run() {  # peer_run ROUND: RLlib 2.60 PPO on the peer's libsumo ring, 3 iterations
  echo "== RLlib peer, round $1" >&2
  (cd "$scratch" && PATH="$bin:$PATH" RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 timeout "$((2 * ${TIMEOUT_S:-300}))" \
    "$bin/python" rllib_ring.py 3000 24000 > "$out/peer-$1.out" 2>&1) ||
    echo "   cut short (exit $?): its finished iterations count; see peer-$1.out" >&2
  grep -E '^iter' "$out/peer-$1.out" > "$out/peer-$1.log" || true
}

sampler_run() {  # sampler_run SIDE ROUND: bench sampler in the seed's setting, set explicitly
  local side=$1 round=$2 tree=$new
  if [ "$side" = old ]; then tree=$old; fi
  echo "== $side bench sampler, round $round" >&2
  (cd "$tree" && PYTHONPATH="$tree" timeout "${TIMEOUT_S:-300}" "$bin/flowsim" bench sampler \
    --config scenarios/ring.yaml --steps 1000 --trajectories "$trajectories" \
    --set sim.step_length=0.1 --set env.sims_per_step=1 --set env.horizon=3000 \
    --set env.warmup_steps=750 --json --results "$scratch/results-$side-$round" \
    > "$out/sampler-$side-$round.json") || {
    echo "   cut short: left out" >&2
    rm -f "$out/sampler-$side-$round.json"
  }
}

for round in $(seq 1 "$rounds"); do
  order=(old new)
  if [ $((round % 2)) = 0 ]; then order=(new old); fi
  for side in "${order[@]}"; do train_run "$side" "$round"; done
  if [ -z "${SKIP_PEER:-}" ]; then peer_run "$round"; fi
  for side in "${order[@]}"; do sampler_run "$side" "$round"; done
done

"$bin/python" - "$out" "$iterations" <<'EOF'
"""Medians and spreads of the interleaved runs, written to OUT/summary.json."""
import csv
import json
import re
import sys
from pathlib import Path

import numpy as np

out, iterations = Path(sys.argv[1]), int(sys.argv[2])
BATCH = 24000


def train_rates(path):
    """Steps/s of each iteration but the first (it places the runners): from progress.csv's
    wall_s (what a user waits, checkpoints included) and its steps_per_s (the iteration)."""
    rows = list(csv.DictReader(open(path)))
    walls = [float(r["wall_s"]) for r in rows]
    deltas = np.diff([0.0, *walls])[1:]
    return [BATCH / d for d in deltas], [float(r["steps_per_s"]) for r in rows[1:]]


def spread(values):
    values = [float(v) for v in values]
    if not values:
        return {"median": float("nan"), "min": None, "max": None, "n": 0}
    return {"median": float(np.median(values)), "min": min(values), "max": max(values),
            "n": len(values)}


def ratio(a, b):
    return rows[a]["median"] / rows[b]["median"] if a in rows and b in rows else None


summary = {"rows": {}}
for side in ("old", "new"):
    files = sorted(out.glob(f"train-{side}-*.csv"))
    summary["rows"][f"train_{side}_steps_per_s"] = spread(
        [r for p in files for r in train_rates(p)[0]])
    summary["rows"][f"train_{side}_iteration_steps_per_s"] = spread(
        [r for p in files for r in train_rates(p)[1]])
    runs = [json.load(open(p)) for p in sorted(out.glob(f"sampler-{side}-*.json"))]
    if not runs:
        continue
    summary["rows"][f"sampler_{side}_seconds_for_144"] = spread(
        [r["seconds_for_144_trajectories"] for r in runs])
    summary["rows"][f"sampler_{side}_ray_1_worker_steps_per_s"] = spread(
        [r["steps_per_s"]["ray_1_worker"] for r in runs])
    summary["rows"][f"sampler_{side}_per_step_us_ray_1_worker"] = {
        key: float(np.median([r["per_step_us"]["ray_1_worker"][key] for r in runs]))
        for key in runs[0]["per_step_us"]["ray_1_worker"]}
peer = []
for path in sorted(out.glob("peer-*.log")):
    rates = [float(m) for m in re.findall(r"-> (\d+) steps/s", path.read_text())]
    peer += rates[1:]  # the first iteration left out, as flowsim's
if peer:
    summary["rows"]["rllib_peer_steps_per_s"] = spread(peer)
rows = summary["rows"]
summary["ratios"] = {
    "train_new_over_old": ratio("train_new_steps_per_s", "train_old_steps_per_s"),
    "sampler_144_old_over_new": ratio("sampler_old_seconds_for_144", "sampler_new_seconds_for_144"),
    "train_old_over_rllib": ratio("train_old_steps_per_s", "rllib_peer_steps_per_s"),
    "train_new_over_rllib": ratio("train_new_steps_per_s", "rllib_peer_steps_per_s"),
}
(out / "summary.json").write_text(json.dumps(summary, indent=2))
print(json.dumps(summary, indent=2))
EOF
echo "results in $out" >&2
