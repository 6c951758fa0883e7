#!/usr/bin/env bash
# Issue 11 from start to end: the diagnosis (study/), the ablations on held-out data (ablation/),
# the benchmark of record (benchmark/) and its latency, each resumable (run this again after an
# interruption: finished runs and cells are read back, never retrained).
#   WEIGHTS=astra-ct (default: the offline backbone of every committed result) | imagenet
#     (torchvision's ResNet-152 ImageNet weights, for a machine that can fetch or has them) |
#     FILE (a checkpoint). Other weights write docs/results/<folder>-<weights>, next to the
#     astra-ct folders, never over them.
#   The steps read EPOCHS, SEEDS, DATASETS/SOURCES, RUNS, OUT from the environment too (see each
#   script); STEPS="diagnosis ablation benchmark latency" chooses which run.
# Needs: make install; .venv/bin/pip install -e '.[astra,data]'; apt-get install
#   dataset-fashion-mnist openclipart-png fonts-noto-color-emoji unicode-data
# Time on a 2-core CPU: diagnosis about 2 h, ablation about 10 h (all of it), benchmark about
# 5 h (cells of one thread each; two scripts can run side by side), latency 5 min (idle machine).
set -euo pipefail
cd "$(dirname "$0")/../.."
export WEIGHTS=${WEIGHTS:-astra-ct}
STEPS=${STEPS:-"diagnosis ablation benchmark latency"}
for step in $STEPS; do
    case $step in
        diagnosis) bash docs/results/study/run_diagnosis.sh ;;
        ablation)  bash docs/results/ablation/run_ablation.sh ;;
        benchmark) bash docs/results/benchmark/run_benchmark.sh ;;
        latency)   bash docs/results/benchmark/measure_latency.sh ;;
        *) echo "unknown step $step (diagnosis, ablation, benchmark, latency)" >&2; exit 2 ;;
    esac
done
