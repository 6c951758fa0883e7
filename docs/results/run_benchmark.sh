#!/usr/bin/env bash
# The small real benchmark committed in docs/results/benchmark/ (see docs/results/README.md),
# exactly as it was run: offline datasets from the converters, the recipe tuned on the ICDAR-micro
# stand-in (never in the benchmark), methods A, C, D, E, 3 seeds, a reduced epoch budget.
# Needs: make install; pip install -e '.[astra,data]'; apt-get install dataset-fashion-mnist
# openclipart-png. Resumable: run it again after an interruption.
set -euo pipefail
DATA=${DATA:-rrrnet-data}
OUT=${OUT:-docs/results}
EPOCHS=${EPOCHS:-5}
WEIGHTS=${WEIGHTS:-astra-ct}     # no ImageNet checkpoint can be fetched here
rrrnet() { .venv/bin/rrrnet "$@"; }

for name in icdar-stand-in fashion-mnist mnist openclipart; do
  [ -d "$DATA/$name" ] || rrrnet data "$name" "$DATA/$name"
done

# Method D on the held-out stand-in: the shared recipe and D's dropout rate in one study,
# scored on 5 validation images per class (15 train); test images never used.
rrrnet tune "$DATA/icdar-stand-in" --out "$OUT/tune" --method D --trials 6 --seed 0 \
  --max-epochs "$EPOCHS" --min-epochs 2 --warm-stem-epochs 2 --weights "$WEIGHTS" \
  --storage "sqlite:///$OUT/tune/study.db" --quiet

rrrnet benchmark "$DATA/fashion-mnist" "$DATA/mnist" "$DATA/openclipart" \
  --out "$OUT/benchmark" --methods A,C,D,E --seeds 3 --config "$OUT/tune/config.json" \
  --weights "$WEIGHTS" --latency-runs 20 --quiet
