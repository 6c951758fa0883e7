#!/usr/bin/env bash
# Issue 23, item 7: does the default budget (--recipe quick: 60 epochs but at least 2,000
# optimiser steps, which makes 286 epochs of 7 steps here, a constant rate after a warm-up
# (a cosine one in the quick-cosine arm, the default until 2026-12-07), bf16 autocast
# where the CPU has it, early stopping after 10 validation checks without progress, a weight
# average over the last fifth) lose more than 1 point of balanced error against the
# paper's long recipe (--recipe paper: 300 epochs, constant rate, fp32, no early stopping, a
# 60-epoch average)? RRR-Net E with astra-ct weights on two datasets of the benchmark of record
# (mnist, fashion-mnist: per-class micro split, 10 classes) x 3 seeds, every other option the
# default (the paper's runs: --eval-every 0, see below). The micro split has no val part, so
# early stopping never acts here: the comparison is of epochs, schedule, precision and average.
# Two runs at a time, one thread each; resumable (a finished run is skipped, an interrupted one
# resumed). Then `python docs/results/recipe/compare.py`. The 60-epoch default measured before
# the step budget: RUNS/DATASET/quick-epochs60 (the same command at commit 7c67419).
# ARMS: the quick recipe's schedules, each a folder of its own, named on the command line
# (--schedule constant: the default since 2026-12-07; --schedule cosine: before it), and paper.
#   DATASETS="mnist fashion-mnist"  SEEDS="0 1 2"  RUNS=~/rrrnet-runs/recipe  JOBS=2
#   ARMS="quick-constant quick-cosine paper"
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cd "$here/../../.."
RRRNET=${RRRNET:-.venv/bin/rrrnet}
RUNS=${RUNS:-$HOME/rrrnet-runs/recipe}
JOBS=${JOBS:-2}
cells=()
for recipe in ${ARMS:-quick-constant quick-cosine paper}; do
    for seed in ${SEEDS:-0 1 2}; do
        for dataset in ${DATASETS:-mnist fashion-mnist}; do
            [ -d "runs/data/$dataset" ] || "$RRRNET" data "$dataset" "runs/data/$dataset"
            cells+=("$dataset $recipe $seed")
        done
    done
done
one_cell() {
    set -- $1
    local run="$RUNS/$1/$2/seed$3"
    if [ -f "$run/metrics.json" ]; then return 0; fi
    local again=""; [ -d "$run" ] && again=--resume
    # The micro split has no val part: the per-epoch test errors in history.csv would select
    # nothing and cost a third of a 300-epoch run, so the paper's runs score test once.
    local evaluate=""; [ "$2" = paper ] && evaluate="--eval-every 0"
    local variant=""; case "$2" in quick-*) variant="--schedule ${2#quick-}" ;; esac
    mkdir -p "$(dirname "$run")"
    OMP_NUM_THREADS=1 "$RRRNET" fit "runs/data/$1" --out "$run" --recipe "${2%%-*}" \
        --seed "$3" --weights astra-ct --quiet $evaluate $variant $again > "$run.log" 2>&1 \
        && echo "done: $1 $2 seed $3" || echo "FAILED: $1 $2 seed $3 (see $run.log)"
}
export -f one_cell; export RRRNET RUNS
printf '%s\n' "${cells[@]}" | xargs -P "$JOBS" -I{} bash -c 'one_cell "{}"'
"${PYTHON:-.venv/bin/python}" "$here/compare.py" "$RUNS"
