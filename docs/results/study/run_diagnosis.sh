#!/usr/bin/env bash
# Issue 11, part 1: C and E trained for 100 epochs, test error of the raw and the averaged
# weights, each branch's error, ensemble gain and disagreement every 4 epochs (history.csv).
# Resumable: re-run the same command after an interruption. Two queues (one per dataset) of
# one thread each, so that the two cores are used without oversubscription.
#   WEIGHTS=astra-ct (default) | imagenet | /path/to/resnet152.pth
#   DATASETS: folders in Meta-Album format; by default the embedded clip-art set and
#   Fashion-MNIST (rrrnet data fashion-mnist runs/data/fashion-mnist).
set -euo pipefail
cd "$(dirname "$0")/../../.."
RRRNET=${RRRNET:-.venv/bin/rrrnet}
WEIGHTS=${WEIGHTS:-astra-ct}
EPOCHS=${EPOCHS:-100}
if [ "$WEIGHTS" = astra-ct ]; then tag=""; else tag="-$(basename "$WEIGHTS" | tr -c 'A-Za-z0-9._\n-' _)"; fi
RUNS=${RUNS:-runs/study$tag}
OUT=${OUT:-docs/results/study$tag}   # other weights: their own folder
DEMO=$(.venv/bin/python -c "from rrrnet.demo import demo_data; print(demo_data())")
DATASETS=${DATASETS:-"clipart=$DEMO fashion-mnist=runs/data/fashion-mnist"}

queue() {  # NAME=FOLDER
    local name=${1%%=*} data=${1#*=}
    for method in C E; do
        local run=$RUNS/$name/$method
        OMP_NUM_THREADS=1 "$RRRNET" fit "$data" --method "$method" --weights "$WEIGHTS" \
            --epochs "$EPOCHS" --eval-every 4 --seed 0 --out "$run" --resume -q \
            || { echo "$name $method failed"; return 1; }
        mkdir -p "$OUT/$name/$method"
        cp "$run/config.json" "$run/history.csv" "$run/metrics.json" "$OUT/$name/$method/"
        echo "$name $method done"
    done
}
for d in $DATASETS; do queue "$d" & done
wait
.venv/bin/python docs/results/study/summarize.py "$OUT"
