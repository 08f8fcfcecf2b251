#!/usr/bin/env bash
# Interleaved before/after latency rounds on one host (BENCHMARKS.md, run I).
#
#   BEFORE=/path/to/old/checkout AFTER=/path/to/new/checkout [ROUNDS=5] [OUT=dir] ops/bench_ab.sh
#   .venv/bin/python ops/bench_ab_report.py OUT
#
# Each checkout needs its own .venv (`make test` or `pip install -e .` in it).  A round runs,
# for each side: five/block on the README's tuned placement, fused/spin with keep-warm, and
# the shipped config.yaml as it is; then the zero-work floor (floorbench) unpinned and pinned.
set -u
: "${BEFORE:?set BEFORE to the old checkout}" "${AFTER:?set AFTER to the new checkout}"
OUT=${OUT:-/tmp/bench-ab}; ROUNDS=${ROUNDS:-5}
mkdir -p "$OUT"
TUNED="--cpus feed=0,features=0,infer=1,risk=1,router=1 --sched fifo --idle-poll --infer-keep-warm-us 100"
FUSED="--topology fused --wait spin --infer-keep-warm-us 100"
COMMON="--ticks 10000 --rate 1000"
for r in $(seq 1 "$ROUNDS"); do
  for side in before after; do
    dir=$AFTER; [ $side = before ] && dir=$BEFORE
    cd "$dir" || exit 1
    # a checkout with `topology.placement` takes the tuned keys as given, nothing chosen for it
    manual=""; .venv/bin/alphad bench --help | grep -q -- --placement && manual="--placement manual"
    .venv/bin/alphad bench $COMMON $TUNED $manual --json "$OUT/$side-tuned-$r.json" >/dev/null 2>"$OUT/$side-tuned-$r.err"
    .venv/bin/alphad bench $COMMON $FUSED $manual --json "$OUT/$side-fused-$r.json" >/dev/null 2>"$OUT/$side-fused-$r.err"
    .venv/bin/alphad bench $COMMON --json "$OUT/$side-shipped-$r.json" >/dev/null 2>"$OUT/$side-shipped-$r.err"
  done
  cd "$AFTER" || exit 1
  .venv/bin/python -m alphad.ops.floorbench --wait eventfd --stages 5 >"$OUT/floor-$r.json" 2>/dev/null
  .venv/bin/python -m alphad.ops.floorbench --wait eventfd --stages 5 --cpus 0,0,1,1,1 --sched fifo --idle-poll \
    >"$OUT/floor-tuned-$r.json" 2>/dev/null
  echo "round $r done $(date +%T)"
done
