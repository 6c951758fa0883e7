#!/usr/bin/env bash
# Issue 25: baseline B (ResNet-152, all layers fine-tuned) in the benchmark of record, one cell
# at a time (seed, then dataset: the smallest datasets first), each cell copied into this folder
# as soon as it is finished (collect.py, through run_benchmark.sh). Resumable: run it again.
# B trains with bf16 autocast (precision-bf16.json): about 3x faster than fp32 on a CPU with
# native bf16; the other methods' cells are fp32.
#   SEEDS="0 1 2"  SOURCES="digits mnist fashion-mnist emoji openclipart"  (and run_benchmark.sh's)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
for seed in ${SEEDS-0 1 2}; do
    for source in ${SOURCES-digits mnist fashion-mnist emoji openclipart}; do
        METHODS=B SEEDS="$seed" SOURCES="$source" CONFIG="${CONFIG:-$here/precision-bf16.json}" \
            bash "$here/run_benchmark.sh"
    done
done
