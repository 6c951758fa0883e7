"""Open Clip Art (Debian ``openclipart-png``, public domain): 20 hand-picked classes; with
seed 0 the embedded demo dataset's images."""
from __future__ import annotations

import functools
import hashlib
import os
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image

from ...errors import DataError
from ..meta_album import (DEFAULT_PER_CLASS, check_per_class, to_rgb_image, write_meta_album)


# --------------------------------------------------------------------------------------------
# Open Clip Art (Debian package openclipart-png): the embedded demo dataset's source
# --------------------------------------------------------------------------------------------

OPENCLIPART_DIR = Path("/usr/share/openclipart/png")
OPENCLIPART_LICENSE = "Public Domain (Open Clip Art Library, Debian openclipart-png)"
OPENCLIPART_NAME = "Open Clip Art (20 classes)"
# Larger files are skipped (slow to decode); changing these limits changes the picks.
CLIPART_MAX_FILE_BYTES = 2 * 1024 * 1024
CLIPART_MAX_SIDE = 2000


@dataclass(frozen=True)
class ClipArtClass:
    name: str                      # the category name (file-name safe)
    folders: tuple[str, ...]       # under the png folder; "x/**" = with sub-folders
    include: str | None = None     # regular expression a file name must match (search)
    exclude: str | None = None     # regular expression a file name must not match (search)


# The 20 classes, picked by hand. Sibling sub-folders (birds / bugs / mammals, fruit / desserts /
# beverages) are used instead of a parent and a child, so that no class contains another; the
# include/exclude patterns drop files that belong to another class in meaning.
OPENCLIPART_CLASSES: tuple[ClipArtClass, ...] = (
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


@dataclass
class ClipArtPick:
    """What :func:`select_openclipart` found for one class."""
    name: str
    picked: list[tuple[Path, Image.Image]]   # (source file, cropped RGB picture), in pick order
    candidates: int                          # files matching the class's folders and patterns
    unambiguous: int                         # ... that belong to no other class
    usable: int | None                       # ... that load as clip art (None: not counted)


def _missing_clipart(folder: Path) -> DataError:
    return DataError(f"{folder} not found: install Debian's openclipart-png (apt-get install "
                     "openclipart-png) or give its png folder with --source (source=...)")


def _clipart_candidates(cls: ClipArtClass, root: Path) -> list[Path]:
    """The class's candidate files, sorted, without duplicates."""
    files: set[Path] = set()
    for folder in cls.folders:
        recursive = folder.endswith("/**")
        base = root / folder.removesuffix("/**")
        if not base.is_dir():
            raise _missing_clipart(base)
        for path in (base.rglob("*.png") if recursive else base.glob("*.png")):
            name = path.name
            if cls.include and not re.search(cls.include, name):
                continue
            if cls.exclude and re.search(cls.exclude, name):
                continue
            files.add(path)
    return sorted(files)


def load_clipart(path: str | os.PathLike) -> Image.Image | None:
    """The picture on white, cropped to its drawing with a margin; None if it is unusable
    (too large, undecodable, blank, or too faint on white)."""
    path = Path(path)
    try:
        if path.stat().st_size > CLIPART_MAX_FILE_BYTES:
            return None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                if im.width > CLIPART_MAX_SIDE or im.height > CLIPART_MAX_SIDE:
                    return None
                im.load()
                rgb = to_rgb_image(im)
    except Exception:
        return None
    # How far each pixel is from white: 255 minus its darkest channel (uint8 element-wise
    # minima: much faster than reducing an int16 copy over the channel axis, same numbers).
    pixels = np.asarray(rgb)
    darkness = 255 - np.minimum(np.minimum(pixels[..., 0], pixels[..., 1]), pixels[..., 2])
    ink = darkness > 16
    ys, xs = np.nonzero(ink)
    if len(ys) < 64:                                       # blank or nearly blank
        return None
    # The drawing's box, ignoring the outermost 0.5 % of its ink (stray specks far away).
    top, bottom = np.percentile(ys, [0.5, 99.5]).astype(int) + (0, 1)
    left, right = np.percentile(xs, [0.5, 99.5]).astype(int) + (0, 1)
    # Too faint on white (white or pale drawings, hairlines): under 2 % of clearly visible ink.
    strong = darkness[top:bottom, left:right] > 64
    if strong.mean() < 0.02:
        return None
    margin = max(2, int(0.04 * max(bottom - top, right - left)))
    box = (max(0, left - margin), max(0, top - margin),
           min(rgb.width, right + margin), min(rgb.height, bottom + margin))
    return rgb.crop(box)


def select_openclipart(source: str | os.PathLike | None = None,
                       per_class: int = DEFAULT_PER_CLASS, seed: int = 0,
                       classes: Sequence[ClipArtClass] = OPENCLIPART_CLASSES, *,
                       count_usable: bool = False, strict: bool = True) -> list[ClipArtPick]:
    """``per_class`` usable pictures of every class, in the order of ``classes``.

    For each class the candidate files are listed in sorted order and shuffled with
    ``numpy.random.default_rng([seed, class index])``; the first ``per_class`` usable ones (see
    :func:`load_clipart`) are kept. A file listed under two classes (the same path or the same
    bytes) is ambiguous and used by neither; the same bytes twice within a class count once.
    ``count_usable`` loads every candidate to count the usable ones (slow); ``strict`` raises a
    DataError when a class has fewer than ``per_class`` usable pictures.
    """
    per_class = check_per_class(per_class)
    root = OPENCLIPART_DIR if source is None else Path(source).expanduser()
    if not root.is_dir():
        raise _missing_clipart(root)
    lists = {cls.name: _clipart_candidates(cls, root) for cls in classes}

    @functools.cache
    def digest(path: Path) -> str:
        return hashlib.sha256(path.read_bytes()).hexdigest()

    @functools.cache
    def real(path: Path) -> str:
        return str(path.resolve())

    owners: dict[str, set[str]] = {}
    for name, files in lists.items():
        for path in files:
            for key in (real(path), digest(path)):
                owners.setdefault(key, set()).add(name)
    picks = []
    for index, cls in enumerate(classes):
        files = [p for p in lists[cls.name]
                 if len(owners[real(p)]) == 1 and len(owners[digest(p)]) == 1]
        rng = np.random.default_rng([seed, index])
        picked: list[tuple[Path, Image.Image]] = []
        seen: set[str] = set()
        usable = 0
        for i in rng.permutation(len(files)):
            if len(picked) == per_class and not count_usable:
                break
            path = files[int(i)]
            if digest(path) in seen:             # the same picture twice within the class
                continue
            seen.add(digest(path))
            image = load_clipart(path)
            if image is None:
                continue
            usable += 1
            if len(picked) < per_class:
                picked.append((path, image))
        if strict and len(picked) < per_class:
            raise DataError(f"class {cls.name}: only {len(picked)} usable images in {root}, "
                            f"{per_class} needed; lower per_class (--per-class)")
        picks.append(ClipArtPick(cls.name, picked, len(lists[cls.name]), len(files),
                                 usable if count_usable else None))
    return picks


def convert_openclipart(out_dir: str | os.PathLike, per_class: int = DEFAULT_PER_CLASS,
                        seed: int = 0, source: str | os.PathLike | None = None,
                        overwrite: bool = False, *, name: str = OPENCLIPART_NAME,
                        builder: str = "rrrnet.data.sources.openclipart.convert_openclipart",
                        classes: Sequence[ClipArtClass] = OPENCLIPART_CLASSES) -> Path:
    """20 hand-picked classes of public-domain clip art from Debian's ``openclipart-png``.

    ``source`` is the package's png folder (default /usr/share/openclipart/png). The classes
    (:data:`OPENCLIPART_CLASSES`) do not overlap in meaning; the pictures are chosen by
    :func:`select_openclipart` with ``seed``, composited on white, cropped to the drawing, padded
    to a square and resized to 128x128. ``convert_openclipart(out, 40, seed=0)`` writes the
    images and labels.csv of the embedded demo dataset (which scripts/build_demo_dataset.py
    builds with ``name`` and ``builder`` set to its own); other seeds pick other pictures where
    a class has more than ``per_class`` usable ones. info.json names the seed and lists every
    image's source file. Deterministic for a given version of the package. ``classes``: another
    class list (:data:`OPENCLIPART_EXTRA_CLASSES`: :func:`convert_openclipart_extra`).
    """
    root = OPENCLIPART_DIR if source is None else Path(source).expanduser()
    picks = select_openclipart(root, per_class, seed, classes)
    source_files: dict[str, str] = {}
    items: list[tuple[Image.Image, str]] = []
    for pick in picks:
        for k, (path, image) in enumerate(pick.picked):
            # The file name write_meta_album gives it (class names are already file-name safe).
            source_files[f"{pick.name}_{k:04d}.jpg"] = str(path.relative_to(root))
            items.append((image, pick.name))
    return write_meta_album(
        out_dir, items, name=name,
        description=(f"{len(picks)} non-overlapping classes of public-domain clip "
                     f"art from the Open Clip Art Library (Debian package openclipart-png), "
                     f"{per_class} images each, chosen with seed {seed} by {builder}; "
                     "transparency composited on white, cropped to the drawing, padded to a "
                     "square and resized to 128x128."),
        license=OPENCLIPART_LICENSE,
        source=f"Open Clip Art Library via Debian openclipart-png ({root})",
        overwrite=overwrite,
        extra_info={"builder": builder, "seed": seed,
                    "source_folders": {c.name: list(c.folders) for c in classes},
                    "source_files": source_files})


# 14 further classes, from folders the demo's 20 do not use (a second clip-art dataset for the
# benchmark or for held-out tuning): pictograms, icons of three themes, symbols, maps, flags of
# another continent, objects. Each is one folder (not recursive unless "/**"), so a picture
# belongs to one class; files listed twice (same bytes) are left out by select_openclipart.
OPENCLIPART_EXTRA_NAME = "Open Clip Art, 14 more classes (disjoint from the demo's)"
OPENCLIPART_EXTRA_CLASSES: tuple[ClipArtClass, ...] = (
    ClipArtClass("star", ("shapes/stars",)),                       # geometric star patterns
    # AIGA transport pictograms; each comes twice (name1.png, name_.png): one of each pair
    ClipArtClass("transport_pictogram", ("transportation/aiga-symbols",), include=r"_\.png$"),
    ClipArtClass("sport", ("recreation/sports",)),
    ClipArtClass("party", ("recreation/party",)),
    ClipArtClass("office_item", ("office",)),
    ClipArtClass("map", ("geography",)),
    ClipArtClass("web_button", ("computer/buttons",)),
    ClipArtClass("person", ("people",)),                            # not its sub-folders
    ClipArtClass("document_icon", ("computer/icons/lemon-theme/mimetypes",)),
    ClipArtClass("application_icon", ("computer/icons/lemon-theme/apps",)),
    ClipArtClass("folder_icon", ("computer/icons/lemon-theme/filesystems",)),
    ClipArtClass("action_icon", ("computer/icons/flat-theme/action",)),
    ClipArtClass("european_flag", ("signs_and_symbols/flags/europe/**",)),
    ClipArtClass("sign", ("signs_and_symbols",)),                   # not its sub-folders
)


def convert_openclipart_extra(out_dir: str | os.PathLike, per_class: int = DEFAULT_PER_CLASS,
                              seed: int = 0, source: str | os.PathLike | None = None,
                              overwrite: bool = False) -> Path:
    """14 more classes of Open Clip Art (:data:`OPENCLIPART_EXTRA_CLASSES`), none from a folder
    the demo's 20 classes use: a second real-image clip-art dataset. Public domain."""
    return convert_openclipart(out_dir, per_class, seed, source, overwrite,
                               name=OPENCLIPART_EXTRA_NAME,
                               builder="rrrnet.data.sources.openclipart.convert_openclipart_extra",
                               classes=OPENCLIPART_EXTRA_CLASSES)
