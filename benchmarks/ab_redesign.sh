#!/usr/bin/env bash
# Issue 16's check: the figures the redesign could move, measured against the code before it
# in one interleaved run on the same machine (old = a git worktree of the pre-redesign commit).
#   bash benchmarks/ab_redesign.sh OLD_TREE [OUT]
#   NEW_TREE=/path/to/worktree bash benchmarks/ab_redesign.sh OLD_TREE [OUT]
# Runs each tree through this checkout's .venv with PYTHONPATH (the tree's own flowsim package
# wins over the editable install, Ray workers inherit it), so edits to this checkout during the
# run do not leak into either side. Results land in OUT/{old,new}-*.json.
set -euo pipefail
old=$(cd "$1" && pwd)
here=$(cd "$(dirname "$0")/.." && pwd)
new=$(cd "${NEW_TREE:-$here}" && pwd)
out=${2:-$here/benchmarks/results/redesign-ab}
mkdir -p "$out"
bin=$here/.venv/bin

run() {  # run SIDE NAME ARGS...: one bench in the side's tree, its JSON copied to OUT
  local side=$1 name=$2; shift 2
  local tree=$new
  if [ "$side" = old ]; then tree=$old; fi
  local env=(PYTHONPATH="$tree")
  local before; before=$(ls "$tree"/benchmarks/results/*.json 2>/dev/null | wc -l)
  echo "== $side $name: flowsim $*" >&2
  (cd "$tree" && env "${env[@]}" "$bin/flowsim" "$@" --json > "$out/$side-$name.stdout")
  local written; written=$(ls -t "$tree"/benchmarks/results/*.json | head -1)
  cp "$written" "$out/$side-$name.json"
  if [ "$tree" != "$here" ]; then rm -f "$written"; fi
}

for round in 1 2; do
  first=old second=new
  if [ "$round" = 2 ]; then first=new second=old; fi
  for side in $first $second; do run "$side" "env-$round" bench env --config scenarios/ring.yaml --steps 20000; done
  for side in $first $second; do run "$side" "sampler-$round" bench sampler --config scenarios/ring.yaml; done
done
for side in old new; do run "$side" train-1 bench train --config scenarios/ring.yaml --algos ppo; done
echo "results in $out" >&2
