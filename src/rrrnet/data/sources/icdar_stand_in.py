"""A RENDERED stand-in for ICDAR-micro (20 character classes): characters drawn with real
fonts on crops of real photographs. Not real ICDAR data; for tuning only."""
from __future__ import annotations

import colorsys
import functools
import io
import os
import re
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from ...errors import DataError
from ..meta_album import DEMO_DIR
from ..meta_album import (DEFAULT_PER_CLASS, IMAGE_SIZE, IMAGES_DIR, check_per_class, to_rgb_image, write_meta_album)


# --------------------------------------------------------------------------------------------
# ICDAR-micro stand-in: rendered characters on real photographs
# --------------------------------------------------------------------------------------------

ICDAR_CHARACTERS = "0 1 2 B D E I K L P W b d f i m o p s v".split()


def character_category(ch: str) -> str:
    """The file-system safe, case-distinguishing name of a character class (``upper_B``...)."""
    if ch.isdigit():
        return f"digit_{ch}"
    if ch.isupper():
        return f"upper_{ch}"
    if ch.islower():
        return f"lower_{ch}"
    return f"char_{ord(ch):04x}"


ICDAR_CLASSES = tuple(character_category(c) for c in ICDAR_CHARACTERS)

# Folders searched for fonts, in order: Debian font packages, then matplotlib's bundled fonts.
FONT_DIRS = (
    "/usr/share/fonts/truetype/dejavu",
    "/usr/share/fonts/truetype/liberation2",
    "/usr/share/fonts/truetype/liberation",
    "/usr/share/fonts/truetype/freefont",
    "/usr/share/fonts/opentype/urw-base35",
    "/usr/share/fonts/truetype/noto",
)
# Symbol, dingbat, maths-extension and size-variant fonts map letters to other shapes.
_FONT_EXCLUDE = re.compile(r"(?i)(symbol|dingbat|d050000l|^cm|stixsize|stixnonuni|display|"
                           r"emoji|color|math)")

# scikit-image's bundled photographs (in the wheel, no download): name -> file in skimage/data.
# All are public domain, CC0 or "no known copyright restrictions" (their docstrings). Images of
# text (page, text) are left out: they would put other characters in the background; moon is
# left out for want of a stated licence.
SKIMAGE_PHOTOS = {
    "astronaut": "astronaut.png", "coffee": "coffee.png", "chelsea": "chelsea.png",
    "rocket": "rocket.jpg", "hubble_deep_field": "hubble_deep_field.jpg",
    "immunohistochemistry": "ihc.png", "retina": "retina.jpg", "brick": "brick.png",
    "grass": "grass.png", "gravel": "gravel.png", "camera": "camera.png", "coins": "coins.png",
}


@functools.lru_cache(maxsize=1)
def _font_files() -> tuple[Path, ...]:
    """Real text fonts that have every ICDAR character, sorted by path."""
    dirs = [Path(d) for d in FONT_DIRS]
    try:
        import matplotlib
        dirs.append(Path(matplotlib.get_data_path()) / "fonts" / "ttf")
    except Exception:  # pragma: no cover - matplotlib is a dependency
        pass
    found: list[Path] = []
    seen: set[str] = set()
    for d in dirs:
        if not d.is_dir():
            continue
        for path in sorted(d.rglob("*")):
            if path.suffix.lower() not in (".ttf", ".otf") or _FONT_EXCLUDE.search(path.stem):
                continue
            if path.name.lower() in seen:           # the same font from two places
                continue
            if _has_characters(path, ICDAR_CHARACTERS):
                seen.add(path.name.lower())
                found.append(path)
    return tuple(found)


def _has_characters(path: Path, characters: Sequence[str]) -> bool:
    try:
        from fontTools.ttLib import TTFont
        with TTFont(str(path), lazy=True, fontNumber=0) as font:
            cmap = font.getBestCmap() or {}
        if not all(ord(c) in cmap for c in characters):
            return False
    except ImportError:  # pragma: no cover - fontTools comes with matplotlib
        pass
    except Exception:
        return False
    try:
        font = ImageFont.truetype(str(path), 32)
        masks = {c: bytes(font.getmask(c)) for c in characters}
    except Exception:
        return False
    # Every character must draw something, and no two characters the same thing.
    return all(any(m) for m in masks.values()) and len(set(masks.values())) == len(masks)


def _skimage_photos() -> list[tuple[str, Image.Image]]:
    try:
        import skimage.data
    except Exception:
        return []
    folder = Path(skimage.data.__file__).parent
    photos = []
    for name, file in SKIMAGE_PHOTOS.items():
        path = folder / file
        if path.is_file():           # read the bundled file directly: never a download
            try:
                with Image.open(path) as im:
                    photos.append((f"skimage.data.{name}", to_rgb_image(im)))
            except Exception:
                continue
    return photos


def _folder_photos(folder: Path, limit: int = 200) -> list[tuple[str, Image.Image]]:
    files = sorted(p for p in folder.rglob("*")
                   if p.suffix.lower() in (".jpg", ".jpeg", ".png", ".bmp", ".webp"))[:limit]
    photos = []
    for path in files:
        try:
            with Image.open(path) as im:
                photos.append((str(path), to_rgb_image(im)))
        except Exception:
            continue
    return photos


def _backgrounds(source: str | os.PathLike | None
                 ) -> tuple[str, str, list[tuple[str, Image.Image]]]:
    """Background photos, where they come from, and their licence."""
    if source is not None:
        folder = Path(source).expanduser()
        if not folder.is_dir():
            raise DataError(f"background folder {folder} not found (--source is a folder of "
                            "photographs to crop backgrounds from)")
        photos = _folder_photos(folder)
        if not photos:
            raise DataError(f"{folder} holds no readable images for backgrounds")
        return f"crops of the images in {folder}", "the user's images, under their own licence", \
            photos
    photos = _skimage_photos()
    if photos:
        return ("random crops of scikit-image's bundled photographs",
                "scikit-image's sample photographs (public domain, CC0 or no known copyright "
                "restrictions)", photos)
    demo = DEMO_DIR / IMAGES_DIR
    if demo.is_dir():
        photos = _folder_photos(demo)
        if photos:
            return ("random crops of rrrnet's embedded clip-art images",
                    "rrrnet's embedded clip art (public domain, Open Clip Art Library)", photos)
    return "smooth random colour gradients", "generated", []


def _gradient(rng: np.random.Generator, size: int) -> Image.Image:
    corners = rng.integers(0, 256, size=(2, 2, 3)).astype(np.float64)
    t = np.linspace(0.0, 1.0, size)
    top = corners[0, 0] + (corners[0, 1] - corners[0, 0]) * t[:, None]
    bottom = corners[1, 0] + (corners[1, 1] - corners[1, 0]) * t[:, None]
    grid = top[None] + (bottom - top)[None] * t[:, None, None]
    grid += rng.normal(0.0, 6.0, size=grid.shape)
    return Image.fromarray(np.clip(grid, 0, 255).astype(np.uint8), "RGB")


def _background(rng: np.random.Generator, photos: list[tuple[str, Image.Image]],
                size: int = IMAGE_SIZE) -> Image.Image:
    if not photos:
        return _gradient(rng, size)
    _, photo = photos[int(rng.integers(len(photos)))]
    w, h = photo.size
    side_max = min(w, h)
    side_min = max(16, min(side_max, int(0.25 * side_max)))
    side = int(rng.integers(side_min, side_max + 1))
    x = int(rng.integers(0, w - side + 1))
    y = int(rng.integers(0, h - side + 1))
    crop = photo.crop((x, y, x + side, y + side))
    if rng.random() < 0.5:
        crop = crop.transpose(Image.FLIP_LEFT_RIGHT)
    return crop.resize((size, size), Image.BICUBIC, reducing_gap=2.0)


def _luminance(rgb: np.ndarray) -> np.ndarray:
    return rgb[..., 0] * 0.299 + rgb[..., 1] * 0.587 + rgb[..., 2] * 0.114


def _contrasting_colour(rng: np.random.Generator, background_lum: float,
                        min_difference: float = 110.0) -> tuple[int, int, int]:
    for _ in range(64):
        h, s, v = rng.random(), rng.random() ** 1.5, rng.random()
        colour = np.array(colorsys.hsv_to_rgb(h, s, v)) * 255.0
        if abs(float(_luminance(colour)) - background_lum) >= min_difference:
            return tuple(int(round(c)) for c in colour)
    return (0, 0, 0) if background_lum > 127.5 else (255, 255, 255)


def _perspective_coefficients(src: np.ndarray, dst: np.ndarray) -> list[float]:
    """Coefficients for PIL's PERSPECTIVE transform mapping output points ``dst`` to ``src``."""
    a = []
    b = []
    for (x, y), (u, v) in zip(dst, src):
        a.append([x, y, 1, 0, 0, 0, -u * x, -u * y])
        a.append([0, 0, 0, x, y, 1, -v * x, -v * y])
        b += [u, v]
    solution = np.linalg.solve(np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64))
    return solution.tolist()


@functools.lru_cache(maxsize=512)
def _font(path: str, size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(path, size)


def render_character(ch: str, rng: np.random.Generator, fonts: Sequence[Path],
                     photos: list[tuple[str, Image.Image]], size: int = IMAGE_SIZE) -> Image.Image:
    """One image of ``ch``: a random real font, size and colour on a random photo crop, then
    a small rotation with a perspective warp, blur and JPEG compression (all drawn from ``rng``).
    The character stays inside the frame (its size is reduced until it fits)."""
    background = _background(rng, photos, size)
    font_path = str(fonts[int(rng.integers(len(fonts)))])
    font_size = int(rng.integers(int(size * 0.45), int(size * 0.8)))
    shift = rng.uniform(-1.0, 1.0, size=2)
    angle = np.deg2rad(float(rng.uniform(-12.0, 12.0)))
    jitter = rng.uniform(-0.07, 0.07, size=(4, 2)) * size
    stroke = int(rng.integers(1, 4)) if rng.random() < 0.25 else 0  # an outline, as on signs
    colour_draw = rng.random()
    blur = float(rng.uniform(0.0, 1.2))
    quality = int(rng.integers(35, 91))

    # Rotation about the centre and a perspective warp as one homography (output -> input).
    corners = np.array([[0, 0], [size, 0], [size, size], [0, size]], dtype=np.float64)
    c, s = np.cos(angle), np.sin(angle)
    centred = corners - size / 2
    moved = centred @ np.array([[c, s], [-s, c]]) + size / 2 + jitter
    warp = _perspective_coefficients(corners, moved)

    pixels = np.asarray(background, dtype=np.float64)
    for _ in range(6):
        font = _font(font_path, font_size)
        left, top, right, bottom = font.getbbox(ch, stroke_width=stroke)
        gw, gh = right - left, bottom - top
        slack_x, slack_y = max(0, size - gw - 12) / 3, max(0, size - gh - 12) / 3
        x = int(round((size - gw) / 2 + shift[0] * slack_x)) - left
        y = int(round((size - gh) / 2 + shift[1] * slack_y)) - top
        region = pixels[max(0, y + top):max(1, y + bottom), max(0, x + left):max(1, x + right)]
        lum = float(_luminance(region).mean()) if region.size else 127.5
        colour = _contrasting_colour(np.random.default_rng(int(colour_draw * 2**32)), lum)
        layer = Image.new("RGBA", (size, size), colour + (0,))
        outline = (0, 0, 0) if float(_luminance(np.array(colour))) > 127.5 else (255, 255, 255)
        ImageDraw.Draw(layer).text((x, y), ch, font=font, fill=colour + (255,),
                                   stroke_width=stroke, stroke_fill=outline + (255,))
        layer = layer.transform((size, size), Image.PERSPECTIVE, warp, resample=Image.BICUBIC)
        box = layer.getchannel("A").getbbox()
        if box and box[0] > 1 and box[1] > 1 and box[2] < size - 1 and box[3] < size - 1:
            break
        font_size = max(8, int(font_size * 0.85))
    background = background.convert("RGBA")
    background.alpha_composite(layer)
    image = background.convert("RGB")

    if blur > 0.3:
        image = image.filter(ImageFilter.GaussianBlur(blur))
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality)
    buffer.seek(0)
    with Image.open(buffer) as decoded:
        return decoded.convert("RGB")


def convert_icdar_stand_in(out_dir: str | os.PathLike, per_class: int = DEFAULT_PER_CLASS,
                           seed: int = 0, source: str | os.PathLike | None = None,
                           overwrite: bool = False) -> Path:
    """A RENDERED stand-in for ICDAR-micro (not real ICDAR data): its 20 character classes.

    Each image draws one character with a randomly chosen real font (Debian DejaVu, Liberation,
    FreeFont, URW base35 ... and matplotlib's bundled DejaVu as a fallback) at a random size and
    colour contrasting with its background, a random crop of a real photograph (scikit-image's
    bundled images; ``source``: a folder of your own photographs instead), then a small rotation,
    perspective warp, blur and JPEG compression. Categories are ``digit_0``, ``upper_B``,
    ``lower_b`` ...; info.json's ``category_characters`` maps them to the characters. The images
    are i.i.d., so any split works (e.g. ICDAR-micro's 15 train / 5 validation / 20 test).
    Reproducible for a seed on a machine with the same fonts and scikit-image images.
    """
    per_class = check_per_class(per_class)
    fonts = _font_files()
    if not fonts:
        raise DataError("no usable TrueType/OpenType font found (searched "
                        f"{', '.join(FONT_DIRS)} and matplotlib's fonts): install one, e.g. "
                        "apt-get install fonts-dejavu-core")
    background_source, background_licence, photos = _backgrounds(source)
    rng = np.random.default_rng(seed)

    def items() -> Iterator[tuple[Image.Image, str]]:
        for ch, category in zip(ICDAR_CHARACTERS, ICDAR_CLASSES):
            for _ in range(per_class):
                yield render_character(ch, rng, fonts, photos), category

    font_names = sorted({p.stem for p in fonts})
    return write_meta_album(
        out_dir, items(), name="ICDAR-micro stand-in (rendered characters)",
        description=(
            "A RENDERED STAND-IN for ICDAR-micro, NOT real ICDAR data: the 20 ICDAR-micro "
            f"character classes ({' '.join(ICDAR_CHARACTERS)}), {per_class} synthetic images "
            f"each, every one rendered with a randomly chosen real font ({len(fonts)} fonts) at a "
            f"random size and contrasting colour on {background_source}, then slightly rotated, "
            f"perspective-warped, blurred and JPEG-compressed (seed {seed}). Category names are "
            "file-system safe and distinguish case: digit_0 is '0', upper_B is 'B', lower_b is "
            "'b' (see category_characters)."),
        license=("Synthetic images; fonts under their own free licences (DejaVu/Bitstream Vera, "
                 f"SIL OFL, GPL with font exception, AGPL for URW base35); backgrounds: "
                 f"{background_licence}"),
        source=f"rendered by rrrnet.data.sources.icdar_stand_in.convert_icdar_stand_in; backgrounds: "
               f"{background_source}",
        overwrite=overwrite,
        extra_info={"rendered_stand_in": True, "seed": seed,
                    "category_characters": dict(zip(ICDAR_CLASSES, ICDAR_CHARACTERS)),
                    "fonts": font_names,
                    "backgrounds": [name for name, _ in photos] or ["random gradients"]})


