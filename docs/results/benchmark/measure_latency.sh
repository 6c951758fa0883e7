#!/usr/bin/env bash
# Latency of the benchmark's methods, measured once per method on an idle machine (the cells
# train beside each other and are not timed): batch-1 CPU inference of a trained cell of each
# method (seed 0 of DATASET; the time does not depend on the weights or the dataset beyond its
# class count), 2 threads, 200 runs after warm-up. Writes OUT/latency.json; collect.py puts
# each method's median into its rows' cpu_ms. Stop (kill -STOP) anything else running first.
set -euo pipefail
cd "$(dirname "$0")/../../.."
RRRNET=${RRRNET:-.venv/bin/rrrnet}
PYTHON=${PYTHON:-.venv/bin/python}
WEIGHTS=${WEIGHTS:-astra-ct}
METHODS=${METHODS:-"A C D E"}
DATASET=${DATASET:-openclipart}     # 20 classes, as Meta-Album micro
THREADS=${THREADS:-2}
RUNS_N=${RUNS_N:-200}
if [ "$WEIGHTS" = astra-ct ]; then tag=""; else tag="-$(basename "$WEIGHTS" | tr -c 'A-Za-z0-9._\n-' _)"; fi
RUNS=${RUNS:-$HOME/rrrnet-runs/benchmark$tag}
OUT=${OUT:-docs/results/benchmark$tag}

mkdir -p "$OUT"
{
    echo "{"
    first=1
    for m in $METHODS; do
        [ $first -eq 1 ] || echo ","
        first=0
        printf '"%s": ' "$m"
        "$RRRNET" latency "$RUNS/cells/$DATASET/$m/seed0" --threads "$THREADS" --runs "$RUNS_N" --json
    done
    echo "}"
} > "$OUT/latency.json.tmp"
"$PYTHON" -c "import json,sys; d=json.load(open(sys.argv[1])); print({m: round(v['median_ms'], 2) for m, v in d.items()})" "$OUT/latency.json.tmp"
mv "$OUT/latency.json.tmp" "$OUT/latency.json"
"$PYTHON" docs/results/benchmark/collect.py "$RUNS" "$OUT"
