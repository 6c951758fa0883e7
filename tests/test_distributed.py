"""Data-parallel training (rrrnet.training.distributed): 2 gloo processes on a tiny set."""
import json
import socket
import subprocess
import sys

import pytest
import torch
import torch.multiprocessing as mp

from conftest import make_meta_album
from rrrnet.model import ModelConfig
from rrrnet.train import Callback, DataSpec, Recipe, fit

MODEL = ModelConfig(arch="resnet18", blocks=(1, 1, 1, 1), branches=2, weights="none")
RECIPE = Recipe(epochs=3, batch_size=4, ema_epochs=1, warm_stump_epochs=1, image_size=32, seed=1)
FILES = {"config.json", "history.csv", "checkpoint.pt", "stump.pt", "model.pt", "metrics.json",
         "manifest.json"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Shards(Callback):
    """Records the training indices this process iterated in every epoch."""

    def __init__(self):
        self.seen = []

    def on_train_epoch_end(self, state):
        self.seen.append(sorted(state.data.indices))


def _worker(rank, port, root, out, report, stop_after, resume):
    import os
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      WORLD_SIZE="2", LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    from rrrnet.training import distributed
    world = distributed.from_environment("cpu")
    shards = Shards()
    result = fit(DataSpec(root, train=4, test=2), out, MODEL, RECIPE, progress=False,
                 callbacks=[shards], world=world, stop_after=stop_after, resume=resume)
    torch.save({"seen": shards.seen, "weights": result.model.cpu().state_dict(),
                "metrics": result.metrics}, f"{report}-rank{rank}.pt")
    distributed.shutdown()


def run_two(tmp_path, root, out, name, stop_after=None, resume=False):
    mp.spawn(_worker, args=(free_port(), str(root), str(out), str(tmp_path / name), stop_after,
                            resume), nprocs=2, join=True)
    return [torch.load(tmp_path / f"{name}-rank{r}.pt", weights_only=False) for r in (0, 1)]


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return make_meta_album(tmp_path_factory.mktemp("data") / "tiny", classes=4, per_class=8)


def test_two_processes_train_disjoint_shards_to_identical_weights(root, tmp_path):
    ranks = run_two(tmp_path, root, tmp_path / "run", "whole")
    train_images = 16  # 4 classes x 4
    for epoch in range(RECIPE.epochs):
        a, b = ranks[0]["seen"][epoch], ranks[1]["seen"][epoch]
        assert len(a) == len(b) == train_images // 2 and not set(a) & set(b)
        assert sorted(a + b) == list(range(train_images))      # a disjoint cover, every epoch
    assert ranks[0]["seen"][0] != ranks[0]["seen"][1]           # reshuffled per epoch
    w0, w1 = ranks[0]["weights"], ranks[1]["weights"]
    assert all(torch.equal(w0[k], w1[k]) for k in w0)          # parameters and statistics
    assert FILES <= {p.name for p in (tmp_path / "run").iterdir()}
    history = (tmp_path / "run" / "history.csv").read_text().strip().splitlines()
    assert len(history) == 1 + RECIPE.epochs
    assert ranks[1]["metrics"] == {}  # rank 1 writes nothing and scores nothing at the end

    # Interrupted after one epoch, then resumed by both processes: the same final run.
    run_two(tmp_path, root, tmp_path / "again", "first", stop_after=1)
    assert not (tmp_path / "again" / "metrics.json").exists()
    resumed = run_two(tmp_path, root, tmp_path / "again", "second", resume=True)
    assert resumed[0]["metrics"]["error"] == ranks[0]["metrics"]["error"]
    assert all(torch.equal(resumed[0]["weights"][k], w0[k]) for k in w0)


def test_fit_nproc_2_writes_a_complete_run_folder(root, tmp_path):
    out = tmp_path / "cli"
    done = subprocess.run(
        [sys.executable, "-m", "rrrnet", "fit", str(root), "--out", str(out), "--nproc", "2",
         "--arch", "resnet18", "--weights", "none", "--epochs", "2", "--image-size", "32",
         "--batch-size", "4", "--train", "4", "--test", "2", "--recipe", "paper",
         "--ema-epochs", "1", "--warm-stump-epochs", "1", "-q"],
        capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert FILES <= {p.name for p in out.iterdir()}
    assert json.loads((out / "metrics.json").read_text())["epochs_trained"] == 2
    assert done.stdout.count("test error") == 1  # rank 0 alone reports
