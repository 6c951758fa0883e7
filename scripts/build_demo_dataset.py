#!/usr/bin/env python3
"""Build rrrnet's embedded demo dataset (src/rrrnet/data/demo/) from Debian's openclipart-png.

    apt-get install openclipart-png          # public-domain clip art, /usr/share/openclipart/png
    python scripts/build_demo_dataset.py --overwrite
    python scripts/build_demo_dataset.py --stats   # usable images per class, writes nothing

20 classes x 40 images, Meta-Album format (labels.csv, info.json, images/), 128x128 RGB JPEG.
The 20 classes were picked by hand from the package's category folders (see CLASSES) so that no
two overlap in meaning and each looks different from the others. For every class the candidate
files are listed in sorted order, shuffled with a seed, and the first 40 usable ones are kept: a
file is skipped when it is larger than 2 MB or 2000x2000 px, cannot be decoded, is blank or too
faint on white, or appears (the same file or the same bytes) under two classes. Transparency is
composited on white, the picture is cropped to its drawing with a small margin, padded to a
square (keeping its aspect) and resized to 128x128. The result is deterministic for a given
version of the package.
"""
from __future__ import annotations

import argparse
import hashlib
import re
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from rrrnet.data.converters import to_rgb_image, write_meta_album  # noqa: E402
from rrrnet.errors import DataError  # noqa: E402

CLIPART = Path("/usr/share/openclipart/png")
OUT = REPO / "src" / "rrrnet" / "data" / "demo"
PER_CLASS = 40
SEED = 0
MAX_FILE_BYTES = 2 * 1024 * 1024
MAX_SIDE = 2000
MAX_MB = 8.0
LICENSE = "Public Domain (Open Clip Art Library, Debian openclipart-png)"


@dataclass(frozen=True)
class ClipArtClass:
    name: str                      # the category name (file-name safe)
    folders: tuple[str, ...]       # under /usr/share/openclipart/png; "x/**" = with sub-folders
    include: str | None = None     # regular expression a file name must match (search)
    exclude: str | None = None     # regular expression a file name must not match (search)


# The 20 classes, picked by hand. Sibling sub-folders (birds / bugs / mammals, fruit / desserts /
# beverages) are used instead of a parent and a child, so that no class contains another; the
# include/exclude patterns drop files that belong to another class in meaning.
CLASSES: tuple[ClipArtClass, ...] = (
    # Birds of every kind (eagles, swans, penguins, hens, cartoon penguins); a turkey on a platter
    # (food), a lone wing and two "Linked Image Not Found" placeholders are left out.
    ClipArtClass("bird", ("animals/birds/**",),
                 exclude=r"turkey_on_platter|wing_mitchell|tux_didier_fabert|duck_yellow_ii"),
    # Insects, spiders and snails: small creatures, drawn very differently from mammals and birds.
    ClipArtClass("bug", ("animals/bugs",), exclude=r"virus|mostriciattolo"),
    # Mammals (dogs, cats, horses, bears, elephants ...), with their sub-folders; an icon, two
    # cartoons with their names written in and an empty cat-scratching post are left out.
    ClipArtClass("mammal", ("animals/mammals/**",),
                 exclude=r"emule_icon|skoynk|squeek|scrathing_post"),
    # Houses and other buildings seen from outside; wall and column details are left out.
    ClipArtClass("building", ("buildings", "buildings/homes"),
                 exclude=r"^brick|capitello|^wall|old_sign|school_hallway|demolizione"),
    # Computers, monitors, keyboards, printers, network boxes.
    ClipArtClass("computer_hardware", ("computer/hardware",),
                 exclude=r"etiquette|rhythmbox|keyboardlayout"),
    # Drinks: cups, mugs, glasses, bottles, cans, cartons.
    ClipArtClass("beverage", ("food/beverages/**",), exclude=r"flower-pot"),
    # Cakes, ice creams, sweets, pies.
    ClipArtClass("dessert", ("food/desserts",)),
    # Whole or cut fruit; pies, juices, candied apples and fruit-shaped objects are left out.
    ClipArtClass("fruit", ("food/fruit",),
                 exclude=r"pie_|juice|candied|champignon|gumnut|straw_tote|tile_|tree_|turkey|"
                         r"slate|kallisti|eris_apple|fruitcollection"),
    # Flowers, trees, leaves and cacti; vegetables, mushrooms and garden tools are left out.
    ClipArtClass("plant", ("plants", "plants/flowers", "plants/trees/**"),
                 exclude=r"potato|cayenne|champignon|mushroom|toadstool|gumnut|acorn|human_humain|"
                         r"bowsaw|bypasspruner|christmas_balls|tree_whit_fruits|cartoon_tree|"
                         r"cannabis"),
    # Hand tools and instruments (hammers, saws, wrenches, shovels, brushes, magnifiers ...);
    # appliances, cameras, phones, keys, compasses, a toothbrush and other odd objects of the
    # tools folder are left out.
    ClipArtClass("hand_tool", ("tools",),
                 include=r"axe|hammer|drill|saw|sega|screwdriver|wrench|shovel|rake|"
                         r"trowel|scissors|brush|roller|nail_puller|mallot|hedgeshear|lopper|"
                         r"cultivator|spaclu|livella|anvil|utensil|tools_|^tool\.|magnif|^mag\d|"
                         r"lente_|scalpel|broom|bucket|secchio|viti_|airbrush",
                 exclude=r"toothbrush"),
    # Cars, trucks, buses, aircraft, bicycles, boats; traffic signs showing vehicles (they belong
    # to road_sign), a ship in a bottle and two faint blueprints are left out.
    ClipArtClass("vehicle", ("transportation", "transportation/vehicles/**"),
                 include=r"car|truck|bus|hummer|plane|aircraft|tank|trattore|bicycle|bicicletta|"
                         r"bike|motorcycle|ambulan|fire_engine|formula|tramway|shuttle|trawler|"
                         r"ship|chevrolet|cobra|skoda|dodge|toyota|blazer|4wd|autos|vtt|"
                         r"pallone_aerestatico",
                 exclude=r"lane|symbol|route|only|no_|crossroads|curve|parking|quay|car_ride|"
                         r"buses_and_bikes|bus_opposite|road_runner|wing_|mad_little_ship|bluepr"),
    # Traffic signs: warning triangles, prohibition discs, direction signs.
    ClipArtClass("road_sign", ("transportation/roadsigns",),
                 exclude=r"Evel|advertising|ampel|nws_|route_jakob|kaboom"),
    # National flags (Africa and Asia: rectangles of flat colour).
    ClipArtClass("flag", ("signs_and_symbols/flags/africa", "signs_and_symbols/flags/asia")),
    # Musical instruments, notes and records; portraits of composers are left out.
    ClipArtClass("music", ("recreation/music/**",),
                 exclude=r"bach_|beethoveo|handel|a_man_singing|jazz_"),
    # Playing cards (one deck style: white cards with suits and pips).
    ClipArtClass("playing_card", ("recreation/games/cards/simple",)),
    # Stick-figure people in many poses (one drawing style, very different from the rest).
    ClipArtClass("stick_figure", ("people/stickmen",)),
    # Jigsaw puzzle pieces.
    ClipArtClass("jigsaw_piece", ("shapes/jigsaw",)),
    # Arrows of every style (one sheet of two tiny, far-apart arrow icons is left out).
    ClipArtClass("arrow", ("shapes/arrows",), exclude=r"fudriot"),
    # Repeating patterns and textures (checks, dots, scales, stripes).
    ClipArtClass("pattern", ("special/patterns",)),
    # Smiley faces (emoticons): round yellow or orange faces; a portrait, a skull and a sheet of
    # face outlines are left out.
    ClipArtClass("smiley", ("people/smilies",),
                 exclude=r"portrait_of_a_woman|crossbones|3_faces"),
)


def candidates(cls: ClipArtClass, root: Path) -> list[Path]:
    """The class's candidate files, sorted, without duplicates."""
    files: set[Path] = set()
    for folder in cls.folders:
        recursive = folder.endswith("/**")
        base = root / folder.removesuffix("/**")
        if not base.is_dir():
            raise DataError(f"{base} not found: is openclipart-png installed "
                            "(apt-get install openclipart-png)?")
        for path in (base.rglob("*.png") if recursive else base.glob("*.png")):
            name = path.name
            if cls.include and not re.search(cls.include, name):
                continue
            if cls.exclude and re.search(cls.exclude, name):
                continue
            files.add(path)
    return sorted(files)


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def load_clipart(path: Path) -> Image.Image | None:
    """The picture on white, cropped to its content with a margin; None if it is unusable."""
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            return None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                if im.width > MAX_SIDE or im.height > MAX_SIDE:
                    return None
                im.load()
                rgb = to_rgb_image(im)
    except Exception:
        return None
    pixels = np.asarray(rgb, dtype=np.int16)
    ink = (255 - pixels).max(axis=2) > 16
    ys, xs = np.nonzero(ink)
    if len(ys) < 64:                                       # blank or nearly blank
        return None
    # The drawing's box, ignoring the outermost 0.5 % of its ink (stray specks far away).
    top, bottom = np.percentile(ys, [0.5, 99.5]).astype(int) + (0, 1)
    left, right = np.percentile(xs, [0.5, 99.5]).astype(int) + (0, 1)
    # Too faint on white (white or pale drawings, hairlines): under 2 % of clearly visible ink.
    strong = (255 - pixels[top:bottom, left:right]).max(axis=2) > 64
    if strong.mean() < 0.02:
        return None
    margin = max(2, int(0.04 * max(bottom - top, right - left)))
    box = (max(0, left - margin), max(0, top - margin),
           min(rgb.width, right + margin), min(rgb.height, bottom + margin))
    return rgb.crop(box)


def select(root: Path, per_class: int, seed: int, verbose: bool = True
           ) -> dict[str, list[tuple[Path, Image.Image]]]:
    """``per_class`` usable images of every class, in the order of CLASSES."""
    lists = {cls.name: candidates(cls, root) for cls in CLASSES}
    # A file (or identical bytes) listed under two classes is ambiguous: used by neither.
    owners: dict[str, set[str]] = {}
    for name, files in lists.items():
        for path in files:
            for key in (str(path.resolve()), digest(path)):
                owners.setdefault(key, set()).add(name)
    chosen: dict[str, list[tuple[Path, Image.Image]]] = {}
    for index, cls in enumerate(CLASSES):
        files = [p for p in lists[cls.name]
                 if len(owners[str(p.resolve())]) == 1 and len(owners[digest(p)]) == 1]
        rng = np.random.default_rng([seed, index])
        picked: list[tuple[Path, Image.Image]] = []
        seen: set[str] = set()
        usable = 0
        for i in rng.permutation(len(files)):
            path = files[int(i)]
            key = digest(path)
            if key in seen:                      # the same picture twice within the class
                continue
            seen.add(key)
            image = load_clipart(path)
            if image is None:
                continue
            usable += 1
            if len(picked) < per_class:
                picked.append((path, image))
        if verbose:
            print(f"{cls.name:<18} candidates {len(lists[cls.name]):4d}  unambiguous "
                  f"{len(files):4d}  usable {usable:4d}  picked {len(picked)}")
        if len(picked) < per_class:
            raise DataError(f"class {cls.name}: only {len(picked)} usable images, "
                            f"{per_class} needed")
        chosen[cls.name] = picked
    return chosen


def folder_mb(folder: Path) -> float:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 1e6


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--source", type=Path, default=CLIPART, help="openclipart-png's png folder")
    p.add_argument("--out", type=Path, default=OUT, help="output folder")
    p.add_argument("--per-class", type=int, default=PER_CLASS)
    p.add_argument("--seed", type=int, default=SEED)
    p.add_argument("--overwrite", action="store_true", help="replace an existing dataset")
    p.add_argument("--stats", action="store_true", help="print the counts only; write nothing")
    args = p.parse_args(argv)

    chosen = select(args.source, args.per_class, args.seed)
    if args.stats:
        return 0
    sources: dict[str, str] = {}
    items = []
    for name, picked in chosen.items():
        for k, (path, image) in enumerate(picked):
            sources[f"{name}_{k:04d}.jpg"] = str(path.relative_to(args.source))
            items.append((image, name))
    out = write_meta_album(
        args.out, items, name="rrrnet demo (Open Clip Art, 20 classes)",
        description=(f"{len(CLASSES)} hand-picked, non-overlapping classes of public-domain clip "
                     f"art from the Open Clip Art Library (Debian package openclipart-png), "
                     f"{args.per_class} images each, chosen with seed {args.seed} by "
                     "scripts/build_demo_dataset.py; transparency composited on white, cropped "
                     "to the drawing, padded to a square and resized to 128x128."),
        license=LICENSE,
        source="Open Clip Art Library via Debian openclipart-png (/usr/share/openclipart/png)",
        overwrite=args.overwrite,
        extra_info={"builder": "scripts/build_demo_dataset.py", "seed": args.seed,
                    "source_folders": {c.name: list(c.folders) for c in CLASSES},
                    "source_files": sources})
    size = folder_mb(out)
    print(f"wrote {out}: {len(items)} images, {size:.2f} MB")
    if size > MAX_MB:
        raise SystemExit(f"the dataset is {size:.2f} MB, more than {MAX_MB} MB")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except DataError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
