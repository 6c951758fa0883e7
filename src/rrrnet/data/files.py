"""One file of a dataset: is it a usable image, and what is its identity.

A file's identity is its resolved path and the SHA-256 of its bytes. Two names of one file (a
symbolic or a hard link) and two copies of one image share the hash, so the layouts
(:mod:`rrrnet.data.layouts`) catch all three by one rule and can say which it was
(:func:`how_related`).

A file is usable when it is not hidden or a system file, its extension (any case) is an image's,
it stays inside the dataset folder (a symbolic link may point out of it), it is not empty, and
its bytes pass PIL's ``verify`` and then decode fully to RGB by the conversion training uses.
Otherwise :func:`check_file` says which of :data:`SKIP_KINDS` it is, and why, and never raises.
"""
from __future__ import annotations

import hashlib
import io
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from PIL import Image, ImageOps

from .dataset import IMAGE_EXTENSIONS, MAX_PIXELS_VARIABLE, shrink_large
from .meta_album import to_rgb_image

# Why a file is left out: kind -> what the summary calls it.
SKIP_KINDS = {
    "hidden": "hidden or system file",
    "not-image": "not an image",
    "empty": "empty file",
    "unreadable": "unreadable or truncated image",
    "too-large": "image over the decompression-bomb limit",
    "broken-link": "broken symbolic link",
    "outside": "link out of the dataset folder",
    "duplicate": "duplicate within its part",
    "copy": "copy of an image in an earlier part",
    "misplaced": "not in a class folder",
    "unlisted": "not listed in labels.csv",
    "folder": "folder not read",
}
# Names that operating systems and archivers leave behind (compared in lower case).
SYSTEM_NAMES = frozenset({"thumbs.db", "ehthumbs.db", "desktop.ini", "__macosx", "$recycle.bin",
                          "system volume information", "icon\r"})


def is_hidden(name: str) -> bool:
    """A dot-file or -folder (.DS_Store, ._x.jpg, .git) or a system name (Thumbs.db, __MACOSX)."""
    return name.startswith(".") or name.lower() in SYSTEM_NAMES


@dataclass(frozen=True)
class FileCheck:
    """What :func:`check_file` found: a usable image (``kind`` empty) with its identity, or the
    kind and reason it is left out."""

    path: Path
    sha256: str = ""
    real: Path | None = None           # the resolved path
    inode: tuple[int, int] = (0, 0)     # (device, inode): the same for hard links
    kind: str = ""
    reason: str = ""

    @property
    def usable(self) -> bool:
        return not self.kind


def check_file(path: Path, root_real: Path, allow_outside: bool = False) -> FileCheck:
    """Check one listed file (``root_real``: the resolved dataset folder); never raises."""
    path = Path(path)
    if is_hidden(path.name):
        return FileCheck(path, kind="hidden", reason=f"{SKIP_KINDS['hidden']} ({path.name})")
    real = Path(os.path.realpath(path))
    if path.is_symlink() and not real.exists():
        return FileCheck(path, kind="broken-link", reason=f"broken symbolic link to {real}")
    if not allow_outside and not real.is_relative_to(root_real):
        return FileCheck(path, kind="outside", reason=f"symbolic link to {real}, outside the "
                                                      f"dataset folder {root_real}; not used")
    if path.suffix.lower() not in IMAGE_EXTENSIONS:
        return FileCheck(path, kind="not-image",
                         reason=f"not an image (extension {path.suffix or 'none'!r})")
    try:
        data = path.read_bytes()
        stat = path.stat()
    except OSError as error:
        return FileCheck(path, kind="unreadable", reason=f"cannot read the file ({error.strerror})")
    if not data:
        return FileCheck(path, kind="empty", reason="empty file (0 bytes)")
    problem = image_problem(data)
    if problem.startswith("DecompressionBombError"):
        return FileCheck(path, kind="too-large",
                         reason=f"{SKIP_KINDS['too-large']} ({problem}); downscale it, or raise "
                                f"the limit with ${MAX_PIXELS_VARIABLE}=PIXELS")
    if problem:
        return FileCheck(path, kind="unreadable", reason=f"unreadable or truncated image ({problem})")
    return FileCheck(path, sha256=hashlib.sha256(data).hexdigest(), real=real,
                     inode=(stat.st_dev, stat.st_ino))


def image_problem(data: bytes) -> str:
    """Why these bytes are not a usable image ("" when they are): PIL's verify (checksums,
    structure), then a full decode and the RGB conversion of :func:`rrrnet.data.decode_rgb`
    (verify alone misses truncated JPEGs)."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.verify()
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            to_rgb_image(ImageOps.exif_transpose(shrink_large(image)))
    except Exception as error:  # PIL raises OSError, ValueError, SyntaxError, struct.error ...
        return f"{type(error).__name__}: {error}"
    return ""


def check_files(paths: Sequence[Path], root: Path, allow_outside: bool = False,
                on_progress: Callable[[int, int], None] | None = None) -> list[FileCheck]:
    """:func:`check_file` of every path, in order, on a few threads (PIL decodes and hashlib
    hashes without the GIL); ``on_progress(done, total)`` is called as they finish."""
    root_real = Path(os.path.realpath(root))
    workers = max(1, min(8, os.cpu_count() or 1))
    checks = []
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for check in pool.map(lambda p: check_file(p, root_real, allow_outside), paths):
            checks.append(check)
            if on_progress is not None:
                on_progress(len(checks), len(paths))
    return checks


def how_related(kept: FileCheck, other: FileCheck) -> str:
    """How two files with the same bytes are related: symbolic link, hard link or copy."""
    if kept.real == other.real:
        return "symbolic link"
    if kept.inode == other.inode:
        return "hard link"
    return "same bytes"
