"""Large data in bounded memory: 50,000 images of 128 px, 2 DataLoader workers, peak memory of
the whole process tree (issue 23, item 6).

1. Makes N synthetic PNG images (default 50,000, 128 px, 10 classes: a coloured rectangle or
   ellipse on noise, as tests/conftest.make_meta_album draws them) in class folders under
   --data, once (a second call finds them and writes nothing).
2. Runs each asked variant in a child process (``nice``), whose whole process tree (the child
   and its DataLoader workers) is sampled every 0.5 s from /proc/PID/smaps_rollup: summed PSS
   (each shared page divided among the processes that map it: what the tree really costs),
   its anonymous and file-backed parts, and summed RSS (shared pages counted once per process).

A child trains RRR-Net E (ResNet_1.1.1.1, 8 branches from conv4_1, --weights none, fp32, the
paper's recipe: batch 32, AdamW; 1 epoch, --ema-epochs 0 --warm-stump-epochs 0) through the
Python API: ``rrrnet.train`` on an ``ImageDataset`` of all N images with ``num_workers=2``.
``rrrnet fit`` has no option for the cache or for a number of steps, so it is not called; its
``ImageDataset`` picks the shared cache by itself (``cache="auto"``) above 512 MiB of decoded
images. A full epoch of E over 50,000 images takes hours on 2 shared cores, so the child runs:

* ``fill``: one pass over all N images in a DataLoader with 2 workers, in order: batch k goes to
  worker k mod 2, which decodes (or reads from the cache) each of its images, as the first
  epoch of training would. Every image is decoded and cached once; every cached page is
  touched by a worker;
* ``train``: then ``--steps`` optimiser steps of the training epoch (shuffled order, 2 workers,
  augmentation and normalisation as ``rrrnet fit`` does), stopped by a callback.

Variants: ``memmap`` (a fresh shared cache: decoded and written by the workers), ``memmap-again``
(a second run: the same cache reused, nothing decoded) and ``ram`` (the old in-process cache,
on ``--ram-images`` images: each worker keeps the arrays it decodes, and they are lost when the
epoch's workers exit). Usage:

    python benchmarks/large_data.py --data /tmp/rrrnet-large-data [--images 50000]
        [--steps 30] [--variants memmap,memmap-again,ram] [--ram-images 50000]
        [--out benchmarks/results/large_data.json]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from multiprocessing import get_context
from pathlib import Path

import numpy as np

from tree_memory import TreeSampler  # benchmarks/ is the script's folder, on sys.path

CLASSES = 10
SIZE = 128
PALETTE = [(220, 40, 40), (40, 180, 60), (50, 80, 220), (230, 200, 40), (160, 60, 200),
           (40, 200, 200), (250, 130, 20), (120, 120, 120), (250, 250, 250), (90, 50, 20)]


# ---- the images ---------------------------------------------------------------------------

def image_paths(data: Path, images: int) -> list[tuple[Path, int]]:
    """The benchmark's files and labels: image i is in class i mod CLASSES."""
    return [(data / f"class_{i % CLASSES}" / f"{i:06d}.png", i % CLASSES) for i in range(images)]


def _draw(chunk: list[tuple[int, str]]) -> None:
    from PIL import Image, ImageDraw
    for index, name in chunk:
        rng = np.random.default_rng(index)
        label = index % CLASSES
        image = Image.fromarray(rng.integers(0, 60, (SIZE, SIZE, 3), dtype=np.uint8))
        box = [int(v) for v in (SIZE // 6 + rng.integers(0, 12), SIZE // 6 + rng.integers(0, 12),
                                SIZE - SIZE // 6 - rng.integers(0, 12),
                                SIZE - SIZE // 6 - rng.integers(0, 12))]
        draw = ImageDraw.Draw(image)
        (draw.ellipse if label % 2 else draw.rectangle)(box, fill=PALETTE[label])
        tmp = f"{name}.tmp.png"
        image.save(tmp, compress_level=1)
        os.replace(tmp, name)


def make_images(data: Path, images: int, processes: int = 2) -> float:
    """Write the missing images (class folders under ``data``); seconds taken."""
    started = time.perf_counter()
    for c in range(CLASSES):
        (data / f"class_{c}").mkdir(parents=True, exist_ok=True)
    todo = [(i, str(p)) for i, (p, _) in enumerate(image_paths(data, images)) if not p.exists()]
    if todo:
        print(f"writing {len(todo)} images into {data}", flush=True)
        chunks = [todo[k:k + 500] for k in range(0, len(todo), 500)]
        with get_context("fork").Pool(processes) as pool:
            for done, _ in enumerate(pool.imap_unordered(_draw, chunks), 1):
                if done % 10 == 0:
                    print(f"  {min(done * 500, len(todo))}/{len(todo)}", flush=True)
    return time.perf_counter() - started


def _resident(path: Path) -> int | None:
    """Bytes of ``path`` in the kernel's page cache (util-linux fincore), None without it."""
    try:
        out = subprocess.run(["fincore", "--bytes", "--noheadings", "--raw", "-o", "RES",
                              str(path)], capture_output=True, text=True, check=True).stdout
        return int(out.split()[0])
    except (OSError, subprocess.CalledProcessError, ValueError, IndexError):
        return None


# ---- the child: what is measured ----------------------------------------------------------

def child(args: argparse.Namespace) -> None:
    import torch

    import rrrnet
    from rrrnet.data import ImageDataset, LabelledImages
    from rrrnet.model import ModelConfig, build
    from rrrnet.train import Callback, Recipe

    torch.set_num_threads(args.threads)
    phases: dict[str, dict] = {}

    def mark(name: str, started: float, **extra) -> None:
        phases[name] = {"seconds": round(time.perf_counter() - started, 2), **extra}
        print(f"[{args.variant}] {name}: {phases[name]}", flush=True)

    listed = image_paths(Path(args.data), args.images)
    # Listed directly (the layouts' check of every file, which rrrnet fit runs first, is not
    # what is measured here).
    images = LabelledImages(root=Path(args.data), paths=tuple(p for p, _ in listed),
                            labels=tuple(y for _, y in listed),
                            classes=tuple(f"class_{c}" for c in range(CLASSES)), name="large")
    started = time.perf_counter()
    if args.variant == "ram":
        dataset = ImageDataset(images, size=SIZE, cache="ram")
    else:
        dataset = ImageDataset(images, size=SIZE, cache="memmap", cache_folder=args.cache)
    filled = dataset.shared_cache.filled() if dataset.shared_cache else 0
    mark("open", started, images=len(dataset), cache_mode=dataset.cache_mode,
         slots_filled_before=filled,
         cache_path=str(dataset.shared_cache.path) if dataset.shared_cache else None)

    model = build(ModelConfig(branches=8, num_classes=CLASSES, weights="none"), progress=False)

    started = time.perf_counter()
    loader = torch.utils.data.DataLoader(dataset, batch_size=64, num_workers=2,
                                         collate_fn=len)  # the pixels stay in the workers
    seen = sum(loader)
    seconds = time.perf_counter() - started
    mark("fill", started, images=seen, images_per_second=round(seen / seconds, 1),
         decoded=len(dataset) - filled if dataset.shared_cache else seen,
         slots_filled_after=dataset.shared_cache.filled() if dataset.shared_cache else None)

    class Budget(Callback):
        def __init__(self):
            self.steps, self.times = 0, []

        def on_step_start(self, state, batch):
            self.t = time.perf_counter()

        def on_step_end(self, state, batch, loss, outputs):
            self.steps += 1
            self.times.append(time.perf_counter() - self.t)
            if self.steps >= args.steps:
                raise Budgeted()

    class Budgeted(Exception):
        pass

    budget = Budget()
    recipe = Recipe(epochs=1, ema_epochs=0, warm_stump_epochs=0, precision="fp32",
                    num_workers=2, image_size=SIZE, seed=0)
    started = time.perf_counter()
    try:
        rrrnet.train(model, dataset, recipe, device="cpu", progress=False, callbacks=[budget])
    except Budgeted:
        pass
    seconds = time.perf_counter() - started
    images_trained = budget.steps * recipe.batch_size
    mark("train", started, steps=budget.steps, batch_size=recipe.batch_size,
         images=images_trained, images_per_second=round(images_trained / seconds, 2),
         median_step_s=round(float(np.median(budget.times)), 2))
    if dataset.shared_cache is not None:
        phases["cache_file"] = {"bytes": len(dataset) * SIZE * SIZE * 3,
                                "in_page_cache_bytes": _resident(dataset.shared_cache.path
                                                                 / "images.u8")}
    Path(args.phases).write_text(json.dumps(phases))


# ---- the parent: the variants, measured ---------------------------------------------------

def measure(args: argparse.Namespace, variant: str, images: int, cache: Path) -> dict:
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as handle:
        phases_file = handle.name
    command = ["nice", "-n", str(args.nice), sys.executable, __file__, "--child",
               "--variant", variant, "--data", str(args.data), "--images", str(images),
               "--steps", str(args.steps), "--threads", str(args.threads),
               "--cache", str(cache), "--phases", phases_file]
    started = time.perf_counter()
    process = subprocess.Popen(command)
    sampler = TreeSampler(process.pid)
    sampler.start()
    code = process.wait()
    sampler.halt.set()
    sampler.join()
    wall = time.perf_counter() - started
    if code:
        raise SystemExit(f"{variant} failed (exit {code})")
    phases = json.loads(Path(phases_file).read_text())
    os.unlink(phases_file)
    shown = ["nice", "-n", str(args.nice), "python", "benchmarks/large_data.py",
             *command[5:-2], "--phases", "PHASES.json"]
    return {"variant": variant, "images": images, "command": shlex.join(shown),
            "wall_seconds": round(wall, 1), **sampler.peaks(), "phases": phases,
            "timeline": sampler.samples[:: max(1, len(sampler.samples) // 60)]}


def earlier(path: Path) -> dict:
    """The peaks of an earlier result, on the first design of the cache."""
    before = json.loads(path.read_text())
    return {"what": "the same measurement (same data, steps and machine, minutes earlier) on the "
                    "cache's first design, commits 741680c/5dd8e80: every worker mapped the "
                    "pixel file (np.memmap), so each page it touched counted in its RSS and PSS; "
                    "the design now reads and writes slots with preadv/pwrite",
            "command": before["command"],
            "runs": [{k: r[k] for k in ("variant", "images", "wall_seconds", "peak_pss_gib",
                                        "peak_rss_gib", "at_peak_pss", "phases")}
                     for r in before["runs"]]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=Path("/tmp/rrrnet-large-data"))
    parser.add_argument("--images", type=int, default=50_000)
    parser.add_argument("--steps", type=int, default=30, help="training steps measured")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--nice", type=int, default=5)
    parser.add_argument("--variants", default="memmap,memmap-again,ram")
    parser.add_argument("--ram-images", type=int, default=50_000)
    parser.add_argument("--cache", type=Path, default=None,
                        help="cache folder (default: a fresh one under the system temp folder, "
                             "removed at the end)")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/large_data.json"))
    parser.add_argument("--earlier", type=Path, default=None,
                        help="an earlier result of this script, on the cache's first design "
                             "(the pixel file mapped by every worker), kept beside the new one")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--variant", help=argparse.SUPPRESS)
    parser.add_argument("--phases", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args)

    made = make_images(args.data, max(args.images, args.ram_images))
    data_bytes = sum(p.stat().st_size for p, _ in image_paths(args.data, args.images))
    cache = args.cache or Path(tempfile.mkdtemp(prefix="rrrnet-large-data-cache-"))
    runs = []
    for variant in args.variants.split(","):
        images = args.ram_images if variant == "ram" else args.images
        runs.append(measure(args, variant, images, cache))
        print(json.dumps({k: v for k, v in runs[-1].items() if k != "timeline"}), flush=True)
    if args.cache is None:
        shutil.rmtree(cache, ignore_errors=True)

    from rrrnet.io import write_json
    import torch
    load = os.getloadavg()
    write_json(args.out, {
        "command": shlex.join(["python", "benchmarks/large_data.py", *sys.argv[1:]]),
        "what": "peak memory of the whole process tree (the child and its 2 DataLoader workers), "
                "sampled every 0.5 s from /proc/PID/smaps_rollup: PSS summed (shared pages "
                "divided among the processes mapping them) and RSS summed (shared pages counted "
                "in every process). Per run: open (hash the files, open the cache), fill (one "
                "pass over every image with 2 workers, as the first epoch's decoding), train "
                "(the first --steps steps of rrrnet.train's epoch, 2 workers).",
        "model": "E: ResNet_1.1.1.1, 8 branches from conv4_1, weights none, fp32, 128 px, "
                 "paper recipe (batch 32, AdamW), 1 epoch, ema_epochs 0, warm_stump_epochs 0, "
                 "num_workers 2",
        "data": {"folder": str(args.data), "images": args.images, "classes": CLASSES,
                 "size": SIZE, "format": "PNG (compress_level 1)", "layout": "class folders",
                 "bytes_on_disk": data_bytes,
                 "decoded_bytes": args.images * SIZE * SIZE * 3,
                 "seconds_writing_missing_images": round(made, 1)},
        "machine": {"cores": os.cpu_count(), "torch_threads": args.threads, "nice": args.nice,
                    "platform": platform.platform(), "python": platform.python_version(),
                    "torch": torch.__version__,
                    "load_average_at_end": [round(x, 2) for x in load],
                    "shared": "2 cores shared with background training jobs and other work: "
                              "images per second are lower bounds"},
        "target": "peak PSS under 4 GiB for the whole tree with 2 data workers",
        "runs": runs,
        **({"earlier_design": earlier(args.earlier)} if args.earlier else {}),
    })
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
