#!/usr/bin/env bash
# Issue 21's ring env rows (BENCHMARKS.md, "Ring env step: where the time goes"): `flowsim bench
# env` on the shipped ring with flowsim's IDM humans (noise 0.2) and with SUMO's, the code before
# issue 21 (OLD_TREE: a git worktree of commit 475bdb6) against this checkout, interleaved: each
# round runs both sides back to back for each kind of humans, the side that goes first
# alternating between rounds.
#   git worktree add /tmp/before-21 475bdb6
#   bash benchmarks/ab_hotpath_env.sh /tmp/before-21 [OUT]
#   ROUNDS=3 STEPS=20000 NEW_TREE=/path/to/worktree bash benchmarks/ab_hotpath_env.sh OLD_TREE
# Each tree runs through this checkout's .venv with PYTHONPATH (the tree's own flowsim package
# wins over the editable install). Defaults (2 rounds of 20,000 steps) take about 6 minutes on
# the 2-core VM. JSON lands in OUT/{old,new}-{idm,sumo}-ROUND.json; a table of medians follows.
# MODE=cpu instead times both sides with benchmarks/hotpath_profile.py --rate (3 rounds, about
# 3 minutes): CPU time per step of the env and of the raw binary, which a loaded machine
# inflates far less than wall time; OUT/{old,new}-{idm,sumo}-ROUND.rate.json.
set -euo pipefail
old=$(cd "$1" && pwd)
here=$(cd "$(dirname "$0")/.." && pwd)
new=$(cd "${NEW_TREE:-$here}" && pwd)
out=${2:-$here/benchmarks/results/hotpath-env-ab}
rounds=${ROUNDS:-2}
steps=${STEPS:-20000}
mkdir -p "$out"
bin=$here/.venv/bin

run() {  # run SIDE NAME ARGS...: one bench in the side's tree, its JSON copied to OUT
  local side=$1 name=$2; shift 2
  local tree=$new
  if [ "$side" = old ]; then tree=$old; fi
  echo "== $side $name: flowsim $* (load $(cut -d' ' -f1 /proc/loadavg))" >&2
  (cd "$tree" && env PYTHONPATH="$tree" "$bin/flowsim" "$@" --json > "$out/$side-$name.stdout")
  local written; written=$(ls -t "$tree"/benchmarks/results/*.json | head -1)
  cp "$written" "$out/$side-$name.json"
  if [ "$tree" != "$here" ]; then rm -f "$written"; fi
}

if [ "${MODE:-bench}" = cpu ]; then
  for round in $(seq "${ROUNDS:-3}"); do
    first=old second=new
    if [ $((round % 2)) = 0 ]; then first=new second=old; fi
    for humans in idm sumo; do
      for side in $first $second; do
        tree=$new
        if [ "$side" = old ]; then tree=$old; fi
        echo "== $side $humans-$round: hotpath_profile.py --rate (load $(cut -d' ' -f1 /proc/loadavg))" >&2
        (cd "$tree" && env PYTHONPATH="$tree" "$bin/python" "$here/benchmarks/hotpath_profile.py" \
          "$humans" --rate > "$out/$side-$humans-$round.rate.json")
      done
    done
  done
  "$bin/python" - "$out" "${ROUNDS:-3}" <<'PY'
import json, statistics, sys
from pathlib import Path

out, rounds = Path(sys.argv[1]), int(sys.argv[2])
print("| humans | old env CPU µs/step | new env CPU µs/step | new / old speed (paired) "
      "| raw sumo CPU µs/step | old ratio_to_raw (CPU) | new ratio_to_raw (CPU) | load (1 min) |")
print("|---|---|---|---|---|---|---|---|")
for humans in ("idm", "sumo"):
    runs = {side: [json.loads((out / f"{side}-{humans}-{r}.rate.json").read_text())
                   for r in range(1, rounds + 1)] for side in ("old", "new")}
    cpu = {s: [r["env_cpu_us"] for r in runs[s]] for s in runs}
    ratio = {s: [r["ratio_to_raw_cpu"] for r in runs[s]] for s in runs}
    raw = [r["raw_cpu_us"] for s in runs for r in runs[s]]
    paired = [o / n for n, o in zip(cpu["new"], cpu["old"])]
    loads = [r[k] for s in runs for r in runs[s] for k in ("load_before", "load_after")]
    span = lambda values, f: f"{f(statistics.median(values))} ({f(min(values))}-{f(max(values))})"
    one, two = (lambda v: f"{v:.1f}"), (lambda v: f"{v:.2f}")
    print(f"| {humans} | {span(cpu['old'], one)} | {span(cpu['new'], one)} | {span(paired, two)} "
          f"| {span(raw, one)} | {span(ratio['old'], two)} | {span(ratio['new'], two)} "
          f"| {span(loads, two)} |")
PY
  echo "results in $out" >&2
  exit 0
fi

for round in $(seq "$rounds"); do
  first=old second=new
  if [ $((round % 2)) = 0 ]; then first=new second=old; fi
  for side in $first $second; do
    run "$side" "idm-$round" bench env --config scenarios/ring.yaml --steps "$steps"
  done
  for side in $first $second; do
    run "$side" "sumo-$round" bench env --config scenarios/ring.yaml --steps "$steps" \
      --set vehicles.0.controller=sumo
  done
done

"$bin/python" - "$out" "$rounds" <<'PY'
import json, statistics, sys
from pathlib import Path

out, rounds = Path(sys.argv[1]), int(sys.argv[2])
print("| humans | old env steps/s | new env steps/s | new / old (paired) | raw sumo steps/s "
      "| old ratio_to_raw | new ratio_to_raw | load (1 min) |")
print("|---|---|---|---|---|---|---|---|")
for humans in ("idm", "sumo"):
    runs = {side: [json.loads((out / f"{side}-{humans}-{r}.json").read_text())
                   for r in range(1, rounds + 1)] for side in ("old", "new")}
    rate = {s: [r["env_steps_per_s"]["libsumo"] for r in runs[s]] for s in runs}
    ratio = {s: [r["ratio_to_raw"] for r in runs[s]] for s in runs}
    raw = [r["raw_sumo_steps_per_s"] for s in runs for r in runs[s]]
    paired = [n / o for n, o in zip(rate["new"], rate["old"])]
    loads = [x for s in runs for r in runs[s] for x in r.get("load_average", [])]
    span = lambda values, f: f"{f(statistics.median(values))} ({f(min(values))}-{f(max(values))})"
    whole, two = (lambda v: f"{v:,.0f}"), (lambda v: f"{v:.2f}")
    print(f"| {humans} | {span(rate['old'], whole)} | {span(rate['new'], whole)} "
          f"| {span(paired, two)} | {span(raw, whole)} | {span(ratio['old'], two)} "
          f"| {span(ratio['new'], two)} | {span(loads, two) if loads else 'n/a'} |")
PY
echo "results in $out" >&2
