#!/usr/bin/env bash
# Issue 23, item 9: rrrnet fit with every default on a real, imbalanced image folder that a
# registry package ships: Debian's openclipart-png (apt-get install openclipart-png), eight of
# its top-level category folders copied unchanged into DATA/CLASS/ (sub-folders kept, every file
# as the package has it: PNGs, and whatever else the folders hold). No --split: a plain
# class-folder tree gets the default stratified 0.8,0.1,0.1 split (seeded), val for early
# stopping, test scored once at the end. The whole process tree's peak PSS/RSS and the wall
# time come from benchmarks/tree_memory.py. Then collect.py writes the figures here.
# One option is not a default: --weights astra-ct, the offline pretrained ResNet-152 (the
# default downloads timm's ImageNet checkpoint, which this machine cannot reach).
# Time it on an idle machine (nothing else running): it is the default budget's figure.
#   DATA=runs/data/own-openclipart  RUN=~/rrrnet-runs/own-data/defaults
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cd "$here/../../.."
RRRNET=${RRRNET:-.venv/bin/rrrnet}
PYTHON=${PYTHON:-.venv/bin/python}
DATA=${DATA:-runs/data/own-openclipart}
RUN=${RUN:-$HOME/rrrnet-runs/own-data/defaults}
PACKAGE=/usr/share/openclipart/png
CLASSES="signs_and_symbols recreation people food animals transportation tools plants"
[ -d "$PACKAGE" ] || { echo "needs Debian's openclipart-png: apt-get install openclipart-png" >&2; exit 2; }
for class in $CLASSES; do
    [ -d "$DATA/$class" ] || { mkdir -p "$DATA" && cp -r "$PACKAGE/$class" "$DATA/$class.tmp" && mv "$DATA/$class.tmp" "$DATA/$class"; }
done
mkdir -p "$(dirname "$RUN")"
"$PYTHON" benchmarks/tree_memory.py --out "$here/memory.json" -- "$RRRNET" fit "$DATA" --out "$RUN" --weights astra-ct \
    2> >(tee "${RUN%/}.log" >&2)
"$PYTHON" "$here/collect.py" "$RUN" "$here"
