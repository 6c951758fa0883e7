#!/usr/bin/env bash
# Issue 11, part 2: RRR-Net E's defaults changed one thing at a time, scored on the validation
# split of held-out data (15 train / 5 validation / 20 test images per class), 3 seeds.
# Every variant is a resumable benchmark folder (one cell per dataset, method and seed); re-run
# the same command after an interruption. Seeds are the outer loop, so every variant gets its
# first seed before any gets its third. Two queues of one thread each share the two cores.
#   WEIGHTS=astra-ct (default) | imagenet | FILE    EPOCHS=60 (the budget of docs/results/study)
#   DATASETS="path ..." (default: the ICDAR-micro stand-in and openclipart-extra, written by
#   rrrnet data if missing; neither is in the benchmark)
#   RUNS: where the run folders go (default ~/rrrnet-runs/ablation, outside the work tree)
set -euo pipefail
cd "$(dirname "$0")/../../.."
RRRNET=${RRRNET:-.venv/bin/rrrnet}
WEIGHTS=${WEIGHTS:-astra-ct}
EPOCHS=${EPOCHS:-60}
SEEDS=${SEEDS:-"0 1 2"}
RUNS=${RUNS:-$HOME/rrrnet-runs/ablation}
HERE=docs/results/ablation
DATASETS=${DATASETS:-"runs/data/icdar-stand-in runs/data/openclipart-extra"}
for source in icdar-stand-in openclipart-extra; do
    [ -d "runs/data/$source" ] || "$RRRNET" data "$source" "runs/data/$source"
done

# name, methods, options; ordered by expected effect (the issue's list)
VARIANTS=(
  "default|C,E|"
  "weights-none|C,E|--weights none"
  "init-first|E|--config $HERE/configs/init-first.json"
  "init-random|E|--config $HERE/configs/init-random.json"
  "bn-default|E|--config $HERE/configs/bn-default.json"
  "shift-0|E|--config $HERE/configs/shift-0.json"
  "views-independent|E|--config $HERE/configs/views-independent.json"
  "ema-step|E|--config $HERE/configs/ema-step.json"
  "ema-none|E|--config $HERE/configs/ema-none.json"
  "warmup-off|E|--config $HERE/configs/warmup-off.json"
  "augment-0|E|--config $HERE/configs/augment-0.json"
  "augment-1|E|--config $HERE/configs/augment-1.json"
  "lr-scaled|E|--config $HERE/configs/lr-scaled.json"
  "split-layer4|E|--config $HERE/configs/split-layer4.json"
  "branches-2|E|--config $HERE/configs/branches-2.json"
  "branches-4|E|--config $HERE/configs/branches-4.json"
  "branches-16|E|--config $HERE/configs/branches-16.json"
)

cell() {  # variant seed
    IFS='|' read -r name methods options <<< "$1"
    # shellcheck disable=SC2086
    OMP_NUM_THREADS=1 "$RRRNET" benchmark $DATASETS --methods "$methods" --seed-list "$2" \
        --epochs "$EPOCHS" --weights "$WEIGHTS" $options --train 15 --val 5 --test 20 \
        --latency-runs 0 --out "$RUNS/$name" -q > /dev/null \
        || { echo "$name seed $2 failed"; return 0; }
    mkdir -p "$HERE/variants"
    cp "$RUNS/$name/results.csv" "$HERE/variants/$name.csv"
    echo "$name seed $2 done"
}

queue() {  # parity
    for seed in $SEEDS; do
        for i in "${!VARIANTS[@]}"; do
            [ $((i % 2)) -eq "$1" ] && cell "${VARIANTS[$i]}" "$seed"
        done
    done
}
queue 0 & queue 1 &
wait
.venv/bin/python "$HERE/collect.py"
