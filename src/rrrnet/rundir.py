"""A run folder: its files, claiming it (refuse, overwrite, resume), checkpoints: the writing side.
Reading a run back, finished or not, is :class:`rrrnet.run.Run`'s.

A training run (``rrrnet fit``) writes into one folder:

``config.json``   the model, recipe, data and classes, written first;
``stump.pt``      a frozen stump after its BatchNorm warm-up, written once;
``checkpoint.pt`` what changes, after every epoch (atomically), for exact resumption;
``history.csv``   one row per epoch;
``model.pt``, ``metrics.json``  when finished;
``manifest.json`` the SHA-256 of every file above, rewritten (atomically) with each of them;
``.rrrnet-run``   the marker that makes the folder a run folder (``rrrnet-run/1``), written first;
``.rrrnet.lock``  the OS lock of the process writing the folder, with its PID.

A folder is a run folder when it holds the marker, or (runs written before the marker existed)
a manifest of rrrnet's format: never because it holds a ``config.json``. A folder holding run
files without either is not rrrnet's, and nothing is written into it or removed from it.

Crash consistency: files are written by :func:`write_files`, which stages every file of one
step (a checkpoint and its history, the model and its metrics) as a temporary sibling, names
their hashes as *pending* in the manifest, renames them into place, and then commits the
manifest. A kill at any instant leaves every file matching its committed or its pending hash,
so a resumption never calls a file damaged that rrrnet wrote itself.

``--overwrite`` never deletes a run before the new one is valid: :func:`set_aside` moves the
old run's files into ``OUT/.rrrnet-replaced-TIME/``; :func:`restore_aside` moves them back if
the new run fails, and :func:`discard_asides` removes them once it has finished.

No symbolic link inside a run folder is followed: the lock is opened with ``O_NOFOLLOW``, and
run files, the manifest and the sub-folders later commands write (``evaluate/``,
``uncertainty/``, ``export/``) are refused when they are links (:func:`no_link`).

A folder is written by one process at a time (:func:`locked`): a second one is refused with the
holder's PID; the OS releases the lock when its holder exits or dies, so a stale lock is simply
taken over. Files are read back only if their hash matches the manifest (:func:`verify`).

Sweeps, block selections and benchmarks claim their output folders the same way
(:func:`claim_folder`). This module knows files, not models: it imports nothing of rrrnet's but
:mod:`rrrnet.io` and :mod:`rrrnet.errors`; loading ``model.pt`` is :func:`rrrnet.model.load`'s job.
"""
from __future__ import annotations

import contextlib
import csv
import errno
import fcntl
import functools
import hashlib
import inspect
import json
import os
import shutil
import stat
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import torch

from .checks import text as checked_text
from .errors import ConfigError, RunError
from .io import (atomic_write, make_folder, read_json, stage, write_csv, write_error,
                 write_json)

# What a run writes (split.csv and skipped.csv: every image used, every file left out): their
# presence makes a folder a run's to claim (--resume, --overwrite), never a fresh --out.
RUN_FILES = ("config.json", "history.csv", "checkpoint.pt", "stump.pt", "model.pt", "metrics.json",
             "manifest.json", "split.csv", "skipped.csv")
CHECKPOINT_FORMAT = "rrrnet-checkpoint/1"
MANIFEST = "manifest.json"
MANIFEST_FORMAT = "rrrnet-manifest/1"
LOCK = ".rrrnet.lock"
MARKER = ".rrrnet-run"
MARKER_FORMAT = "rrrnet-run/1"
ASIDE = ".rrrnet-replaced-"
# Everything a run and the commands reading it write into its folder: what --overwrite sets
# aside (files the user put there stay where they are).
RUN_OUTPUTS = (*RUN_FILES, MARKER)
RUN_FOLDERS = ("evaluate", "uncertainty", "export", "logs")


# ---------------------------------------------------------------------------------------------
# One writer per folder.
# ---------------------------------------------------------------------------------------------

_HELD: dict[Path, list] = {}   # folder -> [open lock file, how many times this process took it]
_REPLACED: dict[Path, Path] = {}   # folder -> where start_run set the earlier run aside


def _key(out: Path) -> Path:
    return Path(os.path.realpath(out))


def lock_folder(out: Path) -> None:
    """Take ``out``'s OS lock (creating the folder), or raise a :class:`RunError` naming the
    process that holds it. Re-entrant within a process; see :func:`release_folder`. The lock
    file is opened without following a symbolic link (``O_NOFOLLOW``): a link planted there
    is refused, never written through."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise RunError(f"--out {out} is a file, not a folder; choose another --out")
    key = _key(out)
    if key in _HELD:
        _HELD[key][1] += 1
        return
    try:
        out.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise RunError(f"cannot create the folder {out}: a part of that path is a file; choose "
                       f"another --out") from None
    except OSError as err:
        raise RunError(f"cannot create the folder {out} ({err.strerror}); choose an --out you "
                       f"may write to") from None
    f = _open_lock(out / LOCK)
    try:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        f.seek(0)
        holder = f.read().strip() or "unknown"
        f.close()
        raise RunError(f"{out} is being written by another process (PID {holder}); wait for it "
                       f"to finish, stop it, or choose another --out") from None
    f.seek(0)
    f.truncate()
    f.write(f"{os.getpid()}\n")
    f.flush()
    _HELD[key] = [f, 1]


def _open_lock(path: Path):
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK,
                     0o644)
    except OSError as err:
        if err.errno == errno.ELOOP:
            raise RunError(f"{path} is a symbolic link; rrrnet never follows links inside a run "
                           f"folder. Remove it (rm {path}) and run the command again") from None
        raise RunError(f"cannot write the lock file {path} ({err.strerror}); choose an --out you "
                       f"may write to, or give yourself write permission on {path.parent}") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise RunError(f"{path} is not a regular file; remove it and run the command again")
    return os.fdopen(fd, "r+")


def release_folder(out: Path) -> None:
    """Give back one :func:`lock_folder` of this process; the last one unlocks the folder."""
    key = _key(out)
    held = _HELD.get(key)
    if held is None:
        return
    held[1] -= 1
    if held[1] == 0:
        del _HELD[key]
        held[0].close()  # closing the file releases the OS lock


@contextlib.contextmanager
def locked(out: str | os.PathLike) -> Iterator[Path]:
    """``out`` locked for the ``with`` block (:func:`lock_folder`). A folder created only to
    hold the lock is removed again when the block fails before writing anything."""
    out = Path(out)
    created = not out.exists()
    lock_folder(out)
    try:
        yield out
    except BaseException:
        if _HELD[_key(out)][1] == 1:
            restore_aside(out, _REPLACED.pop(_key(out), None))  # the new run failed: the old one back
        if created and _HELD[_key(out)][1] == 1 and \
                {p.name for p in out.iterdir()} <= {LOCK}:
            release_folder(out)
            shutil.rmtree(out, ignore_errors=True)
            raise
        release_folder(out)
        raise
    if _HELD[_key(out)][1] == 1:
        _REPLACED.pop(_key(out), None)   # stopped on purpose: the old run stays set aside
    release_folder(out)


def holds_folder(argument: str = "out") -> Callable:
    """Decorator: the function's ``argument`` folder is locked while it runs."""
    def decorate(function: Callable) -> Callable:
        signature = inspect.signature(function)

        @functools.wraps(function)
        def run(*args: Any, **kwargs: Any) -> Any:
            bound = signature.bind(*args, **kwargs)
            bound.apply_defaults()
            with locked(bound.arguments[argument]):
                return function(*args, **kwargs)
        return run
    return decorate


# ---------------------------------------------------------------------------------------------
# Hashes of what a run wrote.
# ---------------------------------------------------------------------------------------------

def sha256_of(path: Path) -> str:
    sha = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            sha.update(chunk)
    return sha.hexdigest()


def no_link(path: Path, what: str = "") -> Path:
    """``path``, or a :class:`RunError` when it is a symbolic link: nothing inside a run
    folder is read or written through one."""
    path = Path(path)
    if path.is_symlink():
        raise RunError(f"{path} is a symbolic link (to {os.readlink(path)}); rrrnet never follows "
                       f"links inside a run folder{what}. Replace it with the real "
                       f"{'folder' if path.is_dir() else 'file'}, or remove it")
    return path


def run_subfolder(run: Path, name: str) -> Path:
    """``run/name`` (``evaluate``, ``uncertainty``, ``export``), created if needed; a
    symbolic link there is refused, so that nothing is written through it."""
    return make_folder(no_link(Path(run) / name), what=f"{name} folder of the run")


def read_manifest(out: Path) -> dict[str, Any]:
    """``out``'s manifest (``files``: committed hashes; ``pending``: hashes of files being
    renamed into place), empty when there is none."""
    path = no_link(Path(out) / MANIFEST)
    if not path.exists():
        return {}
    manifest = read_json(path, "the run's manifest")
    if not isinstance(manifest, dict) or not isinstance(manifest.get("files", {}), dict):
        raise RunError(f"{path} is not an rrrnet manifest; the run folder is damaged")
    return manifest


def _settled(out: Path, manifest: dict[str, Any]) -> dict[str, str]:
    """The committed hashes, with those pending from an interrupted :func:`write_files` that
    the files on disk now have (the rename happened) taken in."""
    files = dict(manifest.get("files", {}))
    for name, digest in (manifest.get("pending") or {}).items():
        path = out / name
        if path.is_file() and not path.is_symlink() and sha256_of(path) == digest:
            files[name] = digest
    return files


def write_files(out: Path, files: dict[str, tuple[Callable[[Any], None], str]]) -> None:
    """Write several files of the run folder ``out`` as one step (``files``: name -> (writer
    of an open file, mode)): each is staged as a temporary sibling and flushed, the manifest
    names their hashes as pending, they are renamed into place, and the manifest commits
    them. Killed at any instant, every file matches its committed or its pending hash."""
    out = Path(out)
    staged: dict[str, Path] = {}
    try:
        for name, (write, mode) in files.items():
            staged[name] = stage(out / name, write, mode)
        hashes = {name: sha256_of(tmp) for name, tmp in staged.items()}
        committed = _settled(out, read_manifest(out))
        write_json(out / MANIFEST, {"format": MANIFEST_FORMAT, "files": committed,
                                    "pending": hashes})
        for name, tmp in staged.items():
            try:
                os.replace(tmp, out / name)
            except OSError as err:
                raise write_error(out / name, err) from None
        write_json(out / MANIFEST, {"format": MANIFEST_FORMAT, "files": {**committed, **hashes}})
    finally:
        for tmp in staged.values():
            tmp.unlink(missing_ok=True)


def record(out: Path, *names: str) -> None:
    """Put the SHA-256 of ``out/name`` for each name into ``out``'s manifest (atomically):
    for files written on their own, whose absence from the manifest until then is harmless."""
    out = Path(out)
    files = _settled(out, read_manifest(out))
    for name in names:
        files[name] = sha256_of(no_link(out / name))
    write_json(out / MANIFEST, {"format": MANIFEST_FORMAT, "files": files})


def verify(path: Path) -> None:
    """Check ``path`` against the manifest of its folder (or of the run above it, for
    ``evaluate/...``): it must have the hash committed or pending for it. Files of a folder
    without manifest (older runs), and files it does not list, are not checked; symbolic
    links are refused."""
    path = no_link(Path(path))
    for folder in (path.parent, path.parent.parent):
        manifest_path = folder / MANIFEST
        if manifest_path.exists() or manifest_path.is_symlink():
            break
    else:
        return
    if folder != path.parent:
        no_link(path.parent)
    manifest = read_manifest(folder)
    name = path.relative_to(folder).as_posix()
    accepted = {manifest.get("files", {}).get(name), (manifest.get("pending") or {}).get(name)}
    accepted.discard(None)
    if not accepted:
        return
    actual = sha256_of(path)
    if actual not in accepted:
        expected = manifest.get("files", {}).get(name) or next(iter(accepted))
        fix = ("rrrnet fit ... --resume continues from the last checkpoint, or --overwrite "
               "starts again" if name in ("checkpoint.pt", "stump.pt", "history.csv") else
               f"restore it from a copy, or train the run again (rrrnet fit ... --overwrite)"
               if name in ("model.pt", "metrics.json", "config.json") else
               "remove it and run the command that wrote it again")
        raise RunError(f"{path} is damaged: its SHA-256 ({actual[:16]}...) is not the one recorded "
                       f"in {manifest_path} when it was written ({expected[:16]}...); {fix}")


# ---------------------------------------------------------------------------------------------
# What a run folder is, and --overwrite without loss.
# ---------------------------------------------------------------------------------------------

def is_run_folder(out: Path) -> bool:
    """True when ``out`` holds rrrnet's marker, or (a run written before the marker existed)
    a manifest of rrrnet's format. A ``config.json`` alone does not make a run."""
    out = Path(out)
    for name, fmt in ((MARKER, MARKER_FORMAT), (MANIFEST, MANIFEST_FORMAT)):
        path = out / name
        if path.is_file() and not path.is_symlink():
            try:
                with open(path, "rb") as f:
                    head = f.read(4096).decode("utf-8", "replace")
            except OSError:
                continue
            if fmt.split("/")[0] in head:
                return True
    return False


def mark_run(out: Path) -> None:
    """Write the marker that makes ``out`` a run folder (first, before any run file)."""
    atomic_write(Path(out) / MARKER, lambda f: f.write(MARKER_FORMAT + "\n"), mode="w")


def _outputs(out: Path) -> list[Path]:
    names = [*RUN_OUTPUTS, *RUN_FOLDERS]
    found = [out / n for n in names if (out / n).exists() or (out / n).is_symlink()]
    return found + sorted(out.glob(".*.tmp"))


def set_aside(out: Path) -> Path | None:
    """Move the run in ``out`` (its files, the sub-folders later commands wrote, orphan
    temporary files) into ``out/.rrrnet-replaced-TIME/``, renaming only; None when there is
    nothing to move. Files that rrrnet does not write stay where they are."""
    out = Path(out)
    present = _outputs(out)
    if not present:
        return None
    stamp, n = time.strftime("%Y%m%d-%H%M%S"), 0
    while (aside := out / f"{ASIDE}{stamp}-{os.getpid()}{'-' + str(n) if n else ''}").exists():
        n += 1
    try:
        aside.mkdir()
        for path in present:
            os.rename(path, aside / path.name)
    except OSError as err:
        raise RunError(f"could not move the earlier run in {out} aside ({err.strerror}); nothing "
                       f"was deleted (what moved is in {aside})") from None
    return aside


def restore_aside(out: Path, aside: Path | None) -> None:
    """Undo :func:`set_aside`: remove what the new run wrote and move the old run back."""
    if aside is None or not aside.is_dir():
        return
    for path in _outputs(out):
        shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink()
    for path in sorted(aside.iterdir()):
        os.rename(path, out / path.name)
    aside.rmdir()


def start_run(out: Path, replace: bool) -> None:
    """A new run starts writing into ``out`` (locked with :func:`locked`): with ``replace``
    (``--overwrite``) the earlier run is set aside, and :func:`locked` puts it back if the new
    run fails before :func:`finish_run`; without, what a run that never trained left is
    cleared. Then the marker is written: the folder is a run folder from now on."""
    if replace:
        aside = set_aside(out)
        if aside is not None:
            _REPLACED[_key(out)] = aside
    else:
        clear_run(out)
    mark_run(out)


def finish_run(out: Path) -> None:
    """The run in ``out`` is complete and valid: the runs it replaced go."""
    _REPLACED.pop(_key(out), None)
    discard_asides(out)


def json_file(data: Any) -> tuple[Callable[[Any], None], str]:
    """``data`` as indented JSON, a writer for :func:`write_files`."""
    return (lambda f: f.write(json.dumps(data, indent=2) + "\n")), "w"


def csv_file(rows: list[dict[str, Any]]) -> tuple[Callable[[Any], None], str]:
    """``rows`` as CSV (every key, in order of first appearance), for :func:`write_files`."""
    columns = list(dict.fromkeys(k for row in rows for k in row))

    def write(f):
        writer = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    return write, "w"


def checkpoint_file(payload: dict[str, Any]) -> tuple[Callable[[Any], None], str]:
    """``payload`` as a training checkpoint, for :func:`write_files`."""
    return checkpoint_writer(payload), "wb"


def looks_like_run(folder: Path) -> bool:
    """A run folder (:func:`is_run_folder`), or a folder holding a run's configuration with
    its model or checkpoint: what output paths must never land in."""
    folder = Path(folder)
    return is_run_folder(folder) or ((folder / "config.json").is_file() and
                                     any((folder / n).exists() for n in ("model.pt", "checkpoint.pt")))


def check_output(path: str | os.PathLike, *, inputs: Iterable[str | os.PathLike] = (),
                 overwrite: bool = False, what: str = "--out", folder: bool = False) -> Path:
    """``path``, checked as the output of a command before any work starts (rule: outputs
    never replace inputs or earlier outputs silently). Refused: a path that resolves to one of
    ``inputs`` (files the command reads, or folders it reads, such as a dataset: nothing is
    written inside those); a run's own files (``model.pt``, ``config.json`` ... of any run
    folder); a path through a symbolic link inside a run folder; an existing file or a
    non-empty folder (``folder``) unless ``overwrite``; a folder where a file is wanted."""
    path = Path(checked_text(path, what))
    real = Path(os.path.realpath(path))
    for item in inputs:
        if item is None:
            continue
        source = Path(os.path.realpath(item))
        if real == source or (source.is_dir() and real.is_relative_to(source)):
            inside = "" if real == source else " (inside it)"
            raise RunError(f"{what} {path} would write over {item}{inside}, which this command "
                           f"reads; choose another {what}")
    if path.name in (*RUN_OUTPUTS, LOCK) and looks_like_run(real.parent):
        raise RunError(f"{what} {path} is one of the run's own files ({path.name} of "
                       f"{real.parent}); rrrnet never writes over them: choose another {what}")
    for ancestor in path.parents:   # a link inside a run folder is never written through
        if looks_like_run(ancestor):
            part = path if folder else path.parent
            while part != ancestor and part != part.parent:
                no_link(part)
                part = part.parent
            break
    if path.is_symlink() and folder:
        no_link(path)
    if path.exists() or path.is_symlink():
        if path.is_dir() and not folder:
            raise RunError(f"{what} {path} is a folder; give the name of a file to write")
        if folder and not path.is_dir():
            raise RunError(f"{what} {path} is a file; give a folder to write into")
        if not overwrite and not (folder and not any(path.iterdir())):
            raise RunError(f"{what} {path} exists; pass --overwrite to replace "
                           f"{'what it holds' if folder else 'it'}, or choose another {what}")
    return path


def discard_asides(out: Path) -> None:
    """Remove the runs :func:`set_aside` kept in ``out``: the new run is valid."""
    for aside in Path(out).glob(f"{ASIDE}*"):
        if aside.is_dir() and not aside.is_symlink():
            shutil.rmtree(aside, ignore_errors=True)


def claim_folder(out: Path, files: Iterable[str], resume: bool, overwrite: bool, what: str,
                 folders: Iterable[str] = (), remove: bool = True) -> list[str]:
    """Make ``out`` ready for a run, sweep or selection, locked for this process
    (:func:`lock_folder`): with ``overwrite`` (and ``remove``) its earlier outputs (``files``,
    and folders matching the ``folders`` patterns) are removed; without ``resume`` any of them
    is refused, naming ``what`` they are. Returns those left to resume from (with ``overwrite``
    and ``remove=False``, those to remove with :func:`clear_run` once the new work is ready)."""
    if resume and overwrite:
        raise ConfigError("--resume and --overwrite exclude each other")
    if _key(out) not in _HELD:
        lock_folder(out)  # held until the process ends, unless the caller holds it already
    present = [out / name for name in files if (out / name).exists()]
    present += [p for pattern in folders for p in sorted(out.glob(pattern))]
    if overwrite:
        if not remove:
            return []
        for path in present:
            shutil.rmtree(path) if path.is_dir() else path.unlink()
        present = []
    if present and not resume:
        raise RunError(f"{out} already holds {what} ({', '.join(p.name for p in present)}); pass "
                       f"--resume to continue it or --overwrite to start again, or choose "
                       f"another --out")
    return [p.name for p in present]


def clear_run(out: Path) -> None:
    """Remove what a run that never trained left in ``out`` (its files, orphan temporary
    files), keeping the lock: a run restarted from scratch. A run that trained is set aside
    instead (:func:`set_aside`)."""
    for name in (*RUN_OUTPUTS,):
        path = out / name
        if path.is_symlink() or path.is_file():
            path.unlink()
    shutil.rmtree(out / "evaluate", ignore_errors=True)
    remove_orphans(out)


def remove_orphans(out: Path) -> list[str]:
    """Delete the temporary files of interrupted atomic writes (``.NAME.*.tmp``), e.g. the
    half-written checkpoint of a process killed with -9. Only safe under the folder's lock."""
    orphans = sorted(out.glob(".*.tmp"))
    for path in orphans:
        path.unlink(missing_ok=True)
    return [p.name for p in orphans]


@dataclass(frozen=True)
class Comparison:
    """How two run configurations are compared for resumption: ``defaults`` fill options that
    were added after a run was written (they are what that run used), ``ignore`` lists options
    that may change between an interruption and its resumption (where it runs), ``inert``
    the options that do nothing while a switch option is off (``{section: {switch: options}}``)."""

    defaults: dict[str, dict[str, Any]] = field(default_factory=dict)
    ignore: dict[str, tuple[str, ...]] = field(default_factory=dict)
    renamed: dict[str, str] = field(default_factory=dict)   # old option name -> current one
    inert: dict[str, dict[str, tuple[str, ...]]] = field(default_factory=dict)

    def comparable(self, config: dict[str, Any]) -> dict[str, Any]:
        out = {}
        for section in ("model", "recipe", "data"):
            given = {self.renamed.get(k, k): v for k, v in config.get(section, {}).items()}
            merged = {**self.defaults.get(section, {}), **given}
            left_out = {*self.ignore.get(section, ()),
                        *(k for switch, options in self.inert.get(section, {}).items()
                          if not merged.get(switch) for k in options)}
            out[section] = {k: v for k, v in merged.items() if k not in left_out}
        out["classes"] = config.get("classes")
        return out

    def differences(self, a: dict[str, Any], b: dict[str, Any]) -> str:
        a, b = self.comparable(a), self.comparable(b)
        diffs = [f"{section}.{k}: {a[section].get(k)!r} -> {b[section].get(k)!r}"
                 for section in ("model", "recipe", "data")
                 for k in sorted(set(a[section]) | set(b[section]))
                 if a[section].get(k) != b[section].get(k)]
        if a["classes"] != b["classes"]:
            diffs.append("the dataset's classes")
        return "; ".join(diffs)


def prepare_run(out: Path, config: dict[str, Any], resume: bool, overwrite: bool,
                comparison: Comparison = Comparison()) -> bool:
    """Check (and lock) the run folder; returns True when a checkpoint (or a finished run) is
    resumed. Nothing is removed here: a new run sets the old one aside (:func:`set_aside`)
    once it is ready to write, so that an option or data error never costs a finished run.
    A folder holding run files without rrrnet's marker or manifest is refused whatever the
    flags: it is not a run."""
    if resume and overwrite:
        raise ConfigError("--resume and --overwrite exclude each other")
    for name in (LOCK, MARKER, MANIFEST, *RUN_FILES):
        no_link(out / name)
    present = [n for n in RUN_FILES if (out / n).exists()]
    if present and not is_run_folder(out):
        raise RunError(f"{out} holds {', '.join(present)} but is not an rrrnet run folder (no "
                       f"{MARKER} or {MANIFEST}); rrrnet neither resumes nor replaces it. Choose "
                       f"another --out")
    finished = (out / "metrics.json").exists()
    what = "a finished run" if finished else "an unfinished run"
    if not claim_folder(out, RUN_FILES, resume, overwrite, what, remove=False):
        return False
    if (out / "config.json").exists():
        saved = read_config(out)
        differences = comparison.differences(saved, config)
        if differences:
            raise RunError(f"{out} holds a run of another configuration; --resume needs the same "
                           f"options. Differences: {differences}")
    if not (out / "checkpoint.pt").exists() and not finished:
        if _never_trained(out):   # stopped before its first epoch ended: nothing to lose
            return False
        raise RunError(f"{out} has no checkpoint.pt to resume from; use --overwrite to start again")
    remove_orphans(out)
    manifest = read_manifest(out)
    if manifest.get("pending"):   # killed during write_files: take in what was renamed
        write_json(out / MANIFEST, {"format": MANIFEST_FORMAT, "files": _settled(out, manifest)})
    return True


def _never_trained(out: Path) -> bool:
    """For a run folder without checkpoint or metrics: True when no checkpoint was ever
    committed to its manifest (killed while its first one was renamed into place) or its
    history has no epoch row, i.e. it holds only what a run writes before its first epoch
    ends (configuration, manifest, frozen stump); such a run is started again on --resume
    instead of being refused."""
    manifest = read_manifest(out)
    if manifest and "checkpoint.pt" not in manifest.get("files", {}):
        return True
    history = out / "history.csv"
    return not history.exists() or len(history.read_text().strip().splitlines()) <= 1


def read_config(run: str | os.PathLike) -> dict[str, Any]:
    """A run's ``config.json``; a damaged one is a :class:`RunError` naming it."""
    verify(Path(run) / "config.json")
    config = read_json(Path(run) / "config.json", "the run's configuration")
    if not isinstance(config, dict) or not {"model", "recipe"} <= set(config):
        raise RunError(f"{Path(run) / 'config.json'} is not an rrrnet run configuration (it needs "
                       f"model and recipe); the run folder is damaged")
    return config


def save_checkpoint(path: Path, payload: dict[str, Any]) -> None:
    """``payload`` (tensors, numbers, lists) as a checkpoint, atomically."""
    atomic_write(path, checkpoint_writer(payload))


def checkpoint_writer(payload: dict[str, Any]) -> Callable[[Any], None]:
    """The writer of ``payload`` as a checkpoint, for :func:`write_files`."""
    payload = {"format": CHECKPOINT_FORMAT, **payload}
    return lambda f: torch.save(payload, f)


def load_checkpoint(path: Path) -> dict[str, Any]:
    """A checkpoint written by :func:`save_checkpoint`, checked against the run's manifest and
    loaded safely (``weights_only``)."""
    verify(path)
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise RunError(f"could not read {path} ({err}); it may be damaged: remove it and use "
                       f"--overwrite to start again") from None
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise RunError(f"{path} is not an rrrnet training checkpoint")
    return payload


def write_history(path: Path, history: list[dict[str, Any]]) -> None:
    if history:
        write_csv(path, history)
