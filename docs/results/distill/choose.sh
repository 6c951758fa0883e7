#!/usr/bin/env bash
# Issue 25, part 2: the defaults of --distill-temperature and --distill-weight, chosen on
# held-out data before the study's distilled arms run (run_distill.sh's first stage, the B
# teachers, must have finished). E distilled from B (each branch, the default target) on the
# study's two held-out datasets, seed 0, at each SETTING (temperature:weight), every other
# option as in run_distill.sh; the choice is the lowest mean val error over the two datasets
# (choose.py; test is never looked at). The current defaults (4:0.5) are one of the settings.
# Resumable; JOBS runs at a time, one thread each. Then run_distill.sh's second stage runs
# with the chosen values (TEMPERATURE=... WEIGHT=..., or new defaults in rrrnet.recipe).
#   DATASETS="icdar-stand-in openclipart-extra"  SEEDS="0"  JOBS=2  EPOCHS=60
#   SETTINGS="2:0.5 4:0.5 8:0.5 4:0.25 4:0.9"  TEACHERS=~/rrrnet-runs/distill
#   RUNS=~/rrrnet-runs/distill-choice  OUT=this folder (choice.csv, choice.md, choice.json)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cd "$here/../../.."
RRRNET=${RRRNET:-.venv/bin/rrrnet}
TEACHERS=${TEACHERS:-$HOME/rrrnet-runs/distill}
RUNS=${RUNS:-$HOME/rrrnet-runs/distill-choice}
EPOCHS=${EPOCHS:-60}
export RRRNET TEACHERS RUNS EPOCHS

fit_once() {  # dataset temperature weight seed
    local run="$RUNS/$1/T$2-w$3/seed$4" teacher="$TEACHERS/$1/B/seed0" extra=()
    [ -f "$run/metrics.json" ] && return 0
    [ -f "$teacher/model.pt" ] || { echo "no teacher for $1: run run_distill.sh first ($teacher)" >&2; return 1; }
    [ -d "$run" ] && extra+=(--resume)
    mkdir -p "$(dirname "$run")"
    OMP_NUM_THREADS=1 "$RRRNET" fit "runs/data/$1" --out "$run" --method E --seed "$4" \
        --recipe paper --epochs "$EPOCHS" --weights astra-ct --train 15 --val 5 --test 20 \
        --keep-duplicates --quiet --distill "$teacher" --distill-temperature "$2" \
        --distill-weight "$3" "${extra[@]}" > "$run.log" 2>&1 \
        && echo "done: $1 T $2 weight $3 seed $4" || echo "FAILED: $1 T $2 weight $3 seed $4 (see $run.log)"
}
export -f fit_once
for s in ${SEEDS:-0}; do for setting in ${SETTINGS:-2:0.5 4:0.5 8:0.5 4:0.25 4:0.9}; do
    for d in ${DATASETS:-icdar-stand-in openclipart-extra}; do
        echo "$d ${setting%%:*} ${setting##*:} $s"
    done
done; done | xargs -P "${JOBS:-2}" -L 1 bash -c 'fit_once "$@"' _
"${PYTHON:-.venv/bin/python}" "$here/choose.py" "$RUNS" "${OUT:-$here}"
