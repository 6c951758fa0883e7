#!/usr/bin/env bash
# Issue 25, part 3: does distillation from baseline B widen E's lead over C? On held-out data
# only (the ablation's validation sets: the ICDAR-micro stand-in and openclipart-extra, never
# the benchmark's datasets), 3 seeds, 60 epochs of the paper's recipe (with `fit`'s weight
# average over the last 30, not the benchmark cells' 12: README), astra-ct weights, 15 train /
# 5 val / 20 test images per class, duplicates kept as the benchmark keeps them. Arms, all
# through `rrrnet fit`:
#   B    the teacher, one per dataset (seed 0; bf16 autocast as in the benchmark's B cells). The
#        micro split does not depend on the seed, so no student's val or test image is one the
#        teacher trained on.
#   E, C                  the students without a teacher
#   E<-B                  E distilled from B, each branch on its own (--distill-target branches)
#   E<-B(ensemble)        E distilled from B through the branches' averaged output
#   C<-B                  C distilled from B
# Distillation runs the teacher online on every augmented batch (see rrrnet.training.distill).
# Three stages, each resumable (a finished run is skipped, an interrupted one resumed), in the
# order that brings a first distillation figure soonest:
#   1      the teachers, and E and C at the first seed
#   choose choose.sh: the temperature and weight, on the val error of the first seed
#          (choice.json); its runs are E<-B at the first seed
#   2      E and C at the other seeds, then the distilled arms at TEMPERATURE/WEIGHT when given,
#          else at choice.json's setting (the options' defaults only where no choice exists,
#          said on stderr)
# then compare.py. JOBS runs at a time, one thread each.
#   DATASETS="icdar-stand-in openclipart-extra"  SEEDS="0 1 2"  JOBS=2  STAGES="1 choose 2"
#   RUNS=~/rrrnet-runs/distill  CHOICE_RUNS=~/rrrnet-runs/distill-choice  TEMPERATURE=  WEIGHT=
#   EPOCHS=60  OUT=this folder (distill.csv, distill.md; choose.sh's choice files)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cd "$here/../../.."
RRRNET=${RRRNET:-.venv/bin/rrrnet}
RUNS=${RUNS:-$HOME/rrrnet-runs/distill}
JOBS=${JOBS:-2}
DATASETS=${DATASETS:-icdar-stand-in openclipart-extra}
EPOCHS=${EPOCHS:-60}   # a smaller figure only to try the script
CHOICE_RUNS=${CHOICE_RUNS:-$HOME/rrrnet-runs/distill-choice}
OUT=${OUT:-$here}
export RRRNET RUNS EPOCHS CHOICE_RUNS OUT TEMPERATURE="${TEMPERATURE:-}" WEIGHT="${WEIGHT:-}"

fit_once() {  # dataset arm seed
    local run="$RUNS/$1/$2/seed$3" method=${2:0:1} extra=()
    local chosen="$CHOICE_RUNS/$1/T$TEMPERATURE-w$WEIGHT/seed$3"
    [ -f "$run/metrics.json" ] && return 0
    mkdir -p "$(dirname "$run")"
    if [ "$2" = E-from-B ] && [ ! -e "$run" ] && [ -f "$chosen/metrics.json" ]; then
        cp -a "$chosen" "$run" && echo "done: $1 $2 seed $3 (choose.sh's identical run)"
        return 0   # the same command and seed as a choice run: bit for bit the same result
    fi
    case "$2" in
        B) extra=(--precision bf16) ;;
        E-from-B|C-from-B) extra=(--distill "$RUNS/$1/B/seed0") ;;
        E-from-B-ensemble) extra=(--distill "$RUNS/$1/B/seed0" --distill-target ensemble) ;;
    esac
    case "$2" in *-from-B*)
        [ -n "$TEMPERATURE" ] && extra+=(--distill-temperature "$TEMPERATURE")
        [ -n "$WEIGHT" ] && extra+=(--distill-weight "$WEIGHT") ;;
    esac
    [ -d "$run" ] && extra+=(--resume)
    OMP_NUM_THREADS=1 "$RRRNET" fit "runs/data/$1" --out "$run" --method "$method" --seed "$3" \
        --recipe paper --epochs "$EPOCHS" --weights astra-ct --train 15 --val 5 --test 20 \
        --keep-duplicates --quiet "${extra[@]}" > "$run.log" 2>&1 \
        && echo "done: $1 $2 seed $3" || echo "FAILED: $1 $2 seed $3 (see $run.log)"
}
export -f fit_once

tree_hash() {  # one SHA-256 over a dataset folder's files (names and contents)
    (cd "$1" && find . -type f | LC_ALL=C sort | xargs -d '\n' sha256sum | sha256sum | cut -c1-64)
}
for dataset in $DATASETS; do
    [ -d "runs/data/$dataset" ] || "$RRRNET" data "$dataset" "runs/data/$dataset"
    # Every run of the study must see the same images. The ICDAR stand-in is rendered with the
    # fonts a machine has, so a machine with other fonts makes another dataset: refuse it.
    hash=$(tree_hash "runs/data/$dataset") recorded="$OUT/data.sha256"
    if ! grep -q "^$dataset " "$recorded" 2>/dev/null; then
        echo "$dataset $hash" >> "$recorded"
    elif ! grep -qx "$dataset $hash" "$recorded"; then
        echo "runs/data/$dataset differs from the data this study's runs used ($recorded):" \
             "regenerated on a machine with other fonts? Restore it or start the study anew" >&2
        exit 2
    fi
done
STAGES=" ${STAGES:-1 choose 2} "
seeds=(${SEEDS:-0 1 2})
undistilled() {  # the students without a teacher, at the given seeds
    for s in "$@"; do for d in $DATASETS; do echo "$d E $s"; echo "$d C $s"; done; done
}
# 1. the teachers (and, beside them, the students that need none, first seed)
[[ "$STAGES" == *" 1 "* ]] && { for d in $DATASETS; do echo "$d B 0"; done
  undistilled "${seeds[0]}"; } | xargs -P "$JOBS" -L 1 bash -c 'fit_once "$@"' _
# choose: the distillation settings, on held-out val error (first seed)
[[ "$STAGES" == *" choose "* ]] && SEEDS="${seeds[0]}" TEACHERS="$RUNS" RUNS="$CHOICE_RUNS" \
    bash "$here/choose.sh"
[[ "$STAGES" == *" 2 "* ]] || exit 0
if [ -z "$TEMPERATURE$WEIGHT" ] && [ -f "$OUT/choice.json" ]; then
    read -r TEMPERATURE WEIGHT < <("${PYTHON:-.venv/bin/python}" -c 'import json, sys
c = json.load(open(sys.argv[1])) or {}
print(*(f"{c[k]:g}" for k in ("temperature", "weight")) if c else "")' "$OUT/choice.json")
fi
[ -n "$TEMPERATURE$WEIGHT" ] ||
    echo "no choice.json setting: the distilled arms use the defaults" >&2
export TEMPERATURE WEIGHT
# 2. the other seeds' undistilled students, then the distilled ones arm by arm, in the order
# of the questions they answer: E<-B (method F's condition), C<-B (E's lead over C), then
# E<-B(ensemble)
{ undistilled "${seeds[@]:1}"
  for arm in E-from-B C-from-B E-from-B-ensemble; do
    for s in "${seeds[@]}"; do for d in $DATASETS; do
      if [ -f "$RUNS/$d/B/seed0/model.pt" ]; then echo "$d $arm $s"
      else echo "no teacher for $d: $RUNS/$d/B/seed0" >&2; fi
    done; done
  done; } | xargs -P "$JOBS" -L 1 bash -c 'fit_once "$@"' _
"${PYTHON:-.venv/bin/python}" "$here/compare.py" "$RUNS" "$OUT"
