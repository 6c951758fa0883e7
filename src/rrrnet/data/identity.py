"""A dataset file's identity, the one rule every layout uses to catch one image listed twice.

A file is identified by its resolved path (symbolic links followed), its (device, inode) pair
(the same for hard links) and the SHA-256 of its bytes (the same for copies). Two listed files
that share any of the three are the same image, under two names: it could land in both the
training and the test images and flatter the error. :func:`related` says which it is.
Imports nothing of rrrnet's, so every loader can use it.
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Identity:
    path: Path                   # as listed
    real: Path                   # resolved
    inode: tuple[int, int]       # (device, inode)
    sha256: str


def identify(path: Path, data: bytes | None = None) -> Identity:
    """The identity of ``path`` (``data``: its bytes, when already read)."""
    path = Path(path)
    if data is None:
        data = path.read_bytes()
    st = os.stat(path)
    return Identity(path, Path(os.path.realpath(path)), (st.st_dev, st.st_ino),
                    hashlib.sha256(data).hexdigest())


def related(a: Identity, b: Identity) -> str:
    """How two identities of one image are related: ``the same file`` (two names resolving to
    one path: ``./x.jpg``, ``../``, a symbolic link), ``a hard link`` or ``a copy`` (same
    bytes); "" when they are different images."""
    if a.real == b.real:
        return "the same file" + (" (a symbolic link)" if a.path.is_symlink() or b.path.is_symlink()
                                  else "")
    if a.inode == b.inode:
        return "a hard link of the same file"
    if a.sha256 == b.sha256:
        return "a copy (the same bytes)"
    return ""


def outside(path: Path, root_real: Path) -> bool:
    """True when ``path`` resolves outside the resolved dataset folder ``root_real`` (a
    symbolic link out of it, or ``../``)."""
    return not Path(os.path.realpath(path)).is_relative_to(root_real)
