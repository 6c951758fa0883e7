#!/usr/bin/env bash
# Issue 11, part 3: the benchmark of record. Methods A, C, D, E x 3 seeds x the offline datasets
# at the budget of docs/results/study (60 epochs), with the paper's recipe (see the README here
# for why), one thread per cell, no latency inside cells (they train beside other work: latency
# is measured once per method on an idle machine, see measure_latency.sh). Resumable: run the same
# command again after an interruption; seeds are the outer loop, so every dataset gets its first
# seed before any gets its second. Finished cells are copied here as they land (collect.py).
#   WEIGHTS=astra-ct (default) | imagenet | FILE: the backbone; other weights write
#     docs/results/benchmark-<name> so as not to mix with the astra-ct record
#   EPOCHS=60  SEEDS="0 1 2"  METHODS=A,C,D,E
#   CONFIG=FILE: a configuration file (rrrnet fit/benchmark --config), e.g. precision-bf16.json
#   EXECUTOR=local (one cell after another, one thread) | ray (one cell per core, as Ray tasks)
#   SOURCES: the converters (rrrnet data) whose datasets are benchmarked, written to runs/data
#   RUNS: where the run folders go (default ~/rrrnet-runs/benchmark[-<weights>])
#   THREADS=1: threads per cell (2 on an otherwise idle 2-core machine; the rows' train_seconds
#     then count a 2-thread cell: say so where they are read)
set -euo pipefail
cd "$(dirname "$0")/../../.."
RRRNET=${RRRNET:-.venv/bin/rrrnet}
PYTHON=${PYTHON:-.venv/bin/python}
WEIGHTS=${WEIGHTS:-astra-ct}
EPOCHS=${EPOCHS:-60}
SEEDS=${SEEDS:-"0 1 2"}
METHODS=${METHODS:-A,C,D,E}
EXECUTOR=${EXECUTOR:-local}
CONFIG=${CONFIG:-}
SOURCES=${SOURCES:-"fashion-mnist mnist openclipart digits emoji"}
if [ "$WEIGHTS" = astra-ct ]; then tag=""; else tag="-$(basename "$WEIGHTS" | tr -c 'A-Za-z0-9._\n-' _)"; fi
RUNS=${RUNS:-$HOME/rrrnet-runs/benchmark$tag}
OUT=${OUT:-docs/results/benchmark$tag}

datasets=()
for source in $SOURCES; do
    [ -d "runs/data/$source" ] || "$RRRNET" data "$source" "runs/data/$source"
    datasets+=("runs/data/$source")
done
for seed in $SEEDS; do
    OMP_NUM_THREADS=${THREADS:-1} "$RRRNET" benchmark "${datasets[@]}" --methods "$METHODS" \
        --seed-list "$seed" --epochs "$EPOCHS" --weights "$WEIGHTS" --latency-runs 0 \
        ${CONFIG:+--config "$CONFIG"} --executor "$EXECUTOR" --out "$RUNS" -q || echo "seed $seed: some cells failed (see above); run again to retry"
    "$PYTHON" docs/results/benchmark/collect.py "$RUNS" "$OUT"
done
