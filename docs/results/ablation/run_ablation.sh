#!/usr/bin/env bash
# Issue 11, part 2: RRR-Net E's defaults changed one thing at a time, scored on the validation
# split of held-out data (15 train / 5 validation / 20 test images per class).
# Every variant is a resumable benchmark folder (one cell per dataset, method and seed); re-run
# the same command after an interruption. Loops: dataset, then seed, then variant, so that every
# variant of the first six settings (the issue's order: weights, init, BatchNorm, shift, branch
# views, EMA) gets its seeds on the first dataset before anything else; the rest get seed 0 only
# (REST_SEEDS), as the issue allows when the two cores cannot run everything.
#   WEIGHTS=astra-ct (default) | imagenet | FILE    EPOCHS=60 (the budget of docs/results/study)
#   DATASETS="path ..." (default: the ICDAR-micro stand-in and openclipart-extra, written by
#   rrrnet data if missing; neither is in the benchmark)
#   SEEDS="0 1 2"  REST_SEEDS="0" (an empty list runs none)  QUEUES=2 (1: one thread in all,
#   e.g. beside the benchmark)
#   RUNS: where the run folders go (default ~/rrrnet-runs/ablation[-<weights>], outside the
#   work tree); OUT: the results folder (default docs/results/ablation[-<weights>])
set -euo pipefail
cd "$(dirname "$0")/../../.."
RRRNET=${RRRNET:-.venv/bin/rrrnet}
WEIGHTS=${WEIGHTS:-astra-ct}
EPOCHS=${EPOCHS:-60}
SEEDS=${SEEDS-"0 1 2"}
if [ "$WEIGHTS" = astra-ct ]; then tag=""; else tag="-$(basename "$WEIGHTS" | tr -c 'A-Za-z0-9._\n-' _)"; fi
RUNS=${RUNS:-$HOME/rrrnet-runs/ablation$tag}
HERE=docs/results/ablation                # the variants' configuration files
OUT=${OUT:-docs/results/ablation$tag}     # the results (other weights: their own folder)
DATASETS=${DATASETS:-"runs/data/icdar-stand-in runs/data/openclipart-extra"}
for source in icdar-stand-in openclipart-extra; do
    [ -d "runs/data/$source" ] || "$RRRNET" data "$source" "runs/data/$source"
done

# name, methods, options. FIRST: the first six settings (with the default and C); REST: the others.
FIRST=(
  "default|C,E|"
  "views-independent|E|--config $HERE/configs/views-independent.json"
  "init-first|E|--config $HERE/configs/init-first.json"
  "init-random|E|--config $HERE/configs/init-random.json"
  "bn-default|E|--config $HERE/configs/bn-default.json"
  "shift-0|E|--config $HERE/configs/shift-0.json"
  "ema-step|E|--config $HERE/configs/ema-step.json"
  "ema-none|E|--config $HERE/configs/ema-none.json"
  "weights-none|C,E|--weights none"
)
REST=(
  "warmup-off|E|--config $HERE/configs/warmup-off.json"
  "augment-0|E|--config $HERE/configs/augment-0.json"
  "augment-1|E|--config $HERE/configs/augment-1.json"
  "lr-scaled|E|--config $HERE/configs/lr-scaled.json"
  "split-layer4|E|--config $HERE/configs/split-layer4.json"
  "branches-2|E|--config $HERE/configs/branches-2.json"
  "branches-4|E|--config $HERE/configs/branches-4.json"
  "branches-16|E|--config $HERE/configs/branches-16.json"
)
QUEUES=${QUEUES:-2}
REST_SEEDS=${REST_SEEDS-0}

cell() {  # variant dataset seed
    IFS='|' read -r name methods options <<< "$1"
    # shellcheck disable=SC2086
    OMP_NUM_THREADS=1 "$RRRNET" benchmark "$2" --methods "$methods" --seed-list "$3" \
        --epochs "$EPOCHS" --weights "$WEIGHTS" $options --train 15 --val 5 --test 20 \
        --latency-runs 0 --out "$RUNS/$name" -q > /dev/null \
        || { echo "$name $(basename "$2") seed $3 failed"; return 0; }
    mkdir -p "$OUT/variants"
    cp "$RUNS/$name/results.csv" "$OUT/variants/$name.csv"
    echo "$name $(basename "$2") seed $3 done"
}

queue() {  # index: the queue runs every QUEUES-th job of the list, starting at its index
    local job=0
    for dataset in $DATASETS; do
        for seed in $SEEDS; do
            for variant in "${FIRST[@]}"; do
                [ $((job++ % QUEUES)) -eq "$1" ] && cell "$variant" "$dataset" "$seed"
            done
        done
        for seed in $REST_SEEDS; do
            for variant in "${REST[@]}"; do
                [ $((job++ % QUEUES)) -eq "$1" ] && cell "$variant" "$dataset" "$seed"
            done
        done
    done
}
for ((q = 0; q < QUEUES; q++)); do queue "$q" & done
wait
.venv/bin/python "$HERE/collect.py" "$OUT"
