#!/usr/bin/env bash
# Issue 21: does bf16 autocast hold E's test error? E with bf16 on two of the benchmark of
# record's datasets (digits, mnist) x 3 seeds, the benchmark's exact cells otherwise (60 epochs,
# astra-ct, the paper's recipe); the fp32 figures are the committed E cells of
# docs/results/benchmark. Resumable; then `python docs/results/precision/compare.py`.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
for seed in ${SEEDS-0 1 2}; do
    METHODS=E SEEDS="$seed" SOURCES="${SOURCES-digits mnist}" CONFIG="$here/bf16-E.json" \
        RUNS="${RUNS:-$HOME/rrrnet-runs/precision}" OUT="${OUT:-$here}" \
        bash "$here/../benchmark/run_benchmark.sh"
done
