"""The decoded-image cache shared by processes: one ``uint8`` array file on disk.

An in-process cache (a list of arrays) lives in the process that decodes: each DataLoader
worker keeps what it decoded (its share of 2.4 GB for 50,000 images of 128 px), as anonymous
memory the kernel cannot drop, and loses it when the epoch's workers exit, so every epoch
decodes everything again. Here the decoded images live in one file, ``images.u8``: a raw
``[count, size, size, 3]`` C-order uint8 array (``np.memmap`` opens it as one). The kernel keeps
one copy of its pages in the page cache, shared by every process, and drops clean pages first
when memory runs short (they are read back from the file), so memory stays bounded.

**Read and written by slot, not mapped.** A slot is read with one positional read (``preadv``)
straight into the array returned (a private copy was needed anyway), and written with one
positional write. Mapping the pixel file instead puts every page a worker touched into that
worker's RSS and PSS: measured on 50,000 images (benchmarks/large_data.py), 2.3 GB of
file-backed PSS and up to 4.4 GB of summed RSS for the tree, against 0.4 GB of real (anonymous)
memory. Positional reads leave the pages in the page cache, owned by no process. The per-slot
flags (4 bytes a slot) are memory-mapped.

**Keyed by content.** A cache folder holds one cache per key: the SHA-256 of the files' bytes
(sorted, duplicates once), the image size, the resize mode and the decoder (the Pillow version
included: its resampling decides the pixels). A second run on the same images reuses the
cache, whatever their order or names; images whose bytes changed get a new cache. An item's
slot is the rank of its file's hash among the sorted hashes.

**Filled lazily, by whoever reads first.** A slot is decoded on its first read, by the process
that reads it (the DataLoader workers, in parallel, during the first epoch), and written in
place; every other process reads it at once from the page cache. There is no separate first
pass, so training starts at once and the decoding is spread over the workers as the epoch
asks for images. Two processes filling one slot write the same bytes: harmless.

**Safe when killed mid-fill.** ``filled.u32`` holds one 32-bit word per slot: 0 while it is
empty, else the CRC-32 of its pixels (1 stands for a CRC of 0). A writer stores the pixels,
then the word. A reader copies the pixels out and trusts them only when their CRC-32 equals the
word; otherwise it decodes the image again and rewrites the slot. A process killed between the
two writes leaves the word 0; pages written back to disk out of order (a power cut) or seen out
of order fail the CRC. Either way the slot is decoded again, never read
half-written. The CRC costs about 15 us per 128 px image.

``header.json`` says what the folder holds. A folder whose header or file sizes do not match
what its key requires (a damaged or foreign cache, another format version) is rebuilt with a
warning, or refused with ``on_mismatch="error"``. A new cache is made in a temporary sibling
and renamed into place, so two runs starting together never see a half-made folder.

Imports nothing of rrrnet's but :mod:`rrrnet.errors` and :mod:`rrrnet.io`: the dataset
(:class:`rrrnet.data.ImageDataset`) passes its own decoding function.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
import warnings
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from ..errors import DataError
from ..io import write_json

CACHE_ENV = "RRRNET_CACHE"
FORMAT = "rrrnet-image-cache"
VERSION = 1
HEADER_FILE = "header.json"
IMAGES_FILE = "images.u8"
FLAGS_FILE = "filled.u32"
MISMATCH_ACTIONS = ("rebuild", "error")


def default_cache_folder() -> Path:
    """``$RRRNET_CACHE``, else ``~/.cache/rrrnet/images``."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    return Path.home() / ".cache" / "rrrnet" / "images"


def file_hash(path: str | os.PathLike) -> str:
    """The SHA-256 of the file's bytes (hex), the identity :mod:`rrrnet.data.files` uses."""
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as handle:
            while chunk := handle.read(1 << 20):
                digest.update(chunk)
    except OSError as error:
        raise DataError(f"cannot read image file {path} ({error.strerror or error}); restore it "
                        f"or remove it from the dataset") from None
    return digest.hexdigest()


def file_hashes(paths: Sequence[str | os.PathLike]) -> list[str]:
    """:func:`file_hash` of every path, in order, on a few threads (hashlib hashes without the
    GIL)."""
    workers = max(1, min(8, os.cpu_count() or 1))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(file_hash, paths, chunksize=64))


def cache_key(hashes: Sequence[str], size: int, resize: str, decoder: str) -> str:
    """The SHA-256 naming a cache: its format, image size, resize mode, decoder and the sorted
    distinct file hashes."""
    digest = hashlib.sha256(f"{FORMAT}/{VERSION}\nsize={size}\nresize={resize}\n"
                            f"decoder={decoder}\n".encode())
    for sha in sorted(set(hashes)):
        digest.update(sha.encode() + b"\n")
    return digest.hexdigest()


def pixels_crc(pixels: np.ndarray) -> int:
    """The word that marks a slot filled with ``pixels``: their CRC-32, never 0 (0 is empty)."""
    return zlib.crc32(np.ascontiguousarray(pixels)) or 1


class ImageCache:
    """The decoded images of one dataset, in a memory-mapped file shared by processes.

    ``hashes``: the SHA-256 of each item's file (:func:`file_hashes`), in item order;
    ``folder``: the cache folder (default :func:`default_cache_folder`), which holds one
    sub-folder per key, and which may not lie inside ``dataset_root``; ``decoder``: names the
    decoding (part of the key); ``on_mismatch``: rebuild (with a warning) or refuse (a
    :class:`~rrrnet.errors.DataError`) a folder whose header does not match.
    :meth:`get` ``(index, decode)`` returns item ``index``'s pixels, calling ``decode()`` only
    when its slot is not filled yet. Pickles without its open file and mapping (a spawned
    worker reopens them); a forked worker shares the parent's (positional reads and writes
    share no file offset).
    """

    def __init__(self, hashes: Sequence[str], size: int, resize: str, decoder: str,
                 folder: str | os.PathLike | None = None, on_mismatch: str = "rebuild",
                 dataset_root: str | os.PathLike | None = None):
        if on_mismatch not in MISMATCH_ACTIONS:
            raise ValueError(f"on_mismatch must be one of {MISMATCH_ACTIONS}, got {on_mismatch!r}")
        root = Path(folder).expanduser() if folder is not None else default_cache_folder()
        if dataset_root is not None and Path(os.path.realpath(root)).is_relative_to(
                os.path.realpath(dataset_root)):
            raise DataError(f"the image cache folder {root} is inside the dataset folder "
                            f"{dataset_root}, and nothing is written into a dataset folder; "
                            f"give a folder outside it (cache_folder=..., or ${CACHE_ENV})")
        distinct = sorted(set(hashes))
        rank = {sha: slot for slot, sha in enumerate(distinct)}
        self.slots = np.asarray([rank[sha] for sha in hashes], dtype=np.int64)
        self.count, self.size, self.resize, self.decoder = len(distinct), size, resize, decoder
        self.key = cache_key(distinct, size, resize, decoder)
        self.root = root
        self.path = self.root / f"{size}px-{resize}-{self.count}-{self.key[:24]}"
        self.header = {"format": FORMAT, "version": VERSION, "key": self.key,
                       "count": self.count, "shape": [self.count, size, size, 3],
                       "dtype": "uint8", "size": size, "resize": resize, "decoder": decoder,
                       "flags": "uint32 per slot: 0 empty, else the CRC-32 of its pixels "
                                "(1 for a CRC of 0)"}
        self._ensure(on_mismatch)
        self._fd: int | None = None
        self._flags: np.memmap | None = None
        self._slot_bytes = size * size * 3

    # ---- opening ----------------------------------------------------------------------

    def _ensure(self, on_mismatch: str) -> None:
        """Make the cache folder, or check the one there (rebuilding or refusing a mismatch)."""
        if self.path.exists():
            problem = self.mismatch()
            if not problem:
                return
            if on_mismatch == "error":
                raise DataError(f"the image cache {self.path} does not match its images: "
                                f"{problem}; delete the folder (it is rebuilt on the next run)")
            warnings.warn(f"rebuilding the image cache {self.path}: {problem}", stacklevel=4)
            self._remove(self.path)
        self._create()

    def mismatch(self) -> str:
        """Why the folder at :attr:`path` is not this cache ("" when it is)."""
        try:
            header = json.loads((self.path / HEADER_FILE).read_text())
        except FileNotFoundError:
            return f"it has no {HEADER_FILE}"
        except (OSError, ValueError) as error:
            return f"its {HEADER_FILE} cannot be read ({error})"
        if not isinstance(header, dict):
            return f"its {HEADER_FILE} is not a JSON object"
        different = [name for name, value in self.header.items() if header.get(name) != value]
        if different:
            name = different[0]
            return f"its header's {name} is {header.get(name)!r}, expected {self.header[name]!r}"
        for name, expected in ((IMAGES_FILE, self.count * self.size * self.size * 3),
                               (FLAGS_FILE, self.count * 4)):
            try:
                found = (self.path / name).stat().st_size
            except OSError:
                return f"{name} is missing"
            if found != expected:
                return f"{name} holds {found} bytes, expected {expected}"
        return ""

    def _create(self) -> None:
        """Make the folder in a temporary sibling and rename it into place (another process
        that made it first wins; its folder is used)."""
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            tmp = self.root / f".{self.path.name}.{uuid.uuid4().hex}.tmp"
            tmp.mkdir()
        except OSError as error:
            raise DataError(f"cannot make the image cache folder {self.root} "
                            f"({error.strerror or error}); give a folder you may write to "
                            f"(cache_folder=..., or ${CACHE_ENV})") from None
        try:
            # Sparse files: no disk blocks until a slot is written.
            with open(tmp / IMAGES_FILE, "wb") as handle:
                handle.truncate(self.count * self.size * self.size * 3)
            with open(tmp / FLAGS_FILE, "wb") as handle:
                handle.truncate(self.count * 4)
            write_json(tmp / HEADER_FILE, self.header)
            os.rename(tmp, self.path)
        except OSError as error:
            self._remove(tmp)
            if self.path.exists() and not self.mismatch():
                return  # made by another process meanwhile
            raise DataError(f"cannot write the image cache {self.path} "
                            f"({error.strerror or error}); free disk space or give another "
                            f"folder (cache_folder=..., or ${CACHE_ENV})") from None

    @staticmethod
    def _remove(folder: Path) -> None:
        """Rename ``folder`` aside, then delete it: a process that has its files open keeps
        them."""
        aside = folder.parent / f".{folder.name}.{uuid.uuid4().hex}.old"
        try:
            os.rename(folder, aside)
        except FileNotFoundError:
            return
        if aside.is_dir() and not aside.is_symlink():
            shutil.rmtree(aside, ignore_errors=True)
        else:
            aside.unlink(missing_ok=True)

    def _open(self) -> None:
        self._flags = np.memmap(self.path / FLAGS_FILE, dtype=np.uint32, mode="r+",
                                shape=(self.count,))
        self._fd = os.open(self.path / IMAGES_FILE, os.O_RDWR)

    def close(self) -> None:
        """Close the pixel file and unmap the flags (reopened by the next :meth:`get`)."""
        if self._fd is not None:
            os.close(self._fd)
        self._fd, self._flags = None, None

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # at interpreter exit os may be gone already
            pass

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_fd"] = state["_flags"] = None  # a spawned process opens the files itself
        return state

    # ---- reading and filling ------------------------------------------------------------

    def get(self, index: int, decode: Callable[[], np.ndarray]) -> np.ndarray:
        """Item ``index``'s pixels (a private copy); ``decode()`` fills its slot when empty or
        not trusted."""
        if self._fd is None:
            self._open()
        slot = int(self.slots[index])
        word = int(self._flags[slot])
        if word:
            pixels = self._read(slot)  # copied out, then checked: what is returned
            if pixels is not None and pixels_crc(pixels) == word:
                return pixels
        decoded = decode()
        if not isinstance(decoded, np.ndarray) or decoded.dtype != np.uint8 \
                or decoded.shape != (self.size, self.size, 3):
            raise ValueError(f"the image cache holds uint8 {self.size}x{self.size}x3 arrays; "
                             f"decode gave {getattr(decoded, 'dtype', type(decoded).__name__)} "
                             f"{getattr(decoded, 'shape', '')}")
        pixels = np.array(decoded)  # writable and the caller's own, as a read from the slot
        self._write(slot, pixels)               # the pixels first,
        self._flags[slot] = pixels_crc(pixels)  # then the word that vouches for them
        return pixels

    def _read(self, slot: int) -> np.ndarray | None:
        """The slot's bytes, read into a new array; None when the file ends early."""
        pixels = np.empty((self.size, self.size, 3), dtype=np.uint8)
        if os.preadv(self._fd, [pixels], slot * self._slot_bytes) != self._slot_bytes:
            return None
        return pixels

    def _write(self, slot: int, pixels: np.ndarray) -> None:
        view, offset = memoryview(np.ascontiguousarray(pixels)).cast("B"), slot * self._slot_bytes
        while view:
            written = os.pwrite(self._fd, view, offset)
            view, offset = view[written:], offset + written

    def filled(self) -> int:
        """How many slots are marked filled (not CRC-checked)."""
        if self._flags is None:
            self._open()
        return int(np.count_nonzero(self._flags))
