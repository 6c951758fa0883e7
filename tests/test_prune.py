"""The pruning-granularity study (Figure 3) on a tiny scale: ResNet-50 at 32 px, few runs."""
import csv
import json
import math

import pytest
import torch
from torch import nn

from analytic import counts
from rrrnet.backbone import resnet
from rrrnet.cli import main
from rrrnet.cost import backbone_cost
from rrrnet.errors import ConfigError
from rrrnet.experiments.prune import (FIELDS, block_setting, build_pruned, channel_params,
                                      channel_setting, element_setting,
                                      parse_sparsities, prune_channels, read_rows, structure,
                                      unpruned)
from rrrnet.reduce import forward_order

ARCH, SIZE = "resnet50", 32
FULL = counts(ARCH, (3, 4, 6, 3), 1000, SIZE)  # (parameters, MACs) of the unpruned ResNet-50
SMALL = "resnet18"  # the unit tests of element/channel pruning, which touch every weight
SMALL_FULL = counts(SMALL, (2, 2, 2, 2), 1000, SIZE)


def convs(model):
    return [m for m in model.modules() if isinstance(m, nn.Conv2d)]


def test_element_wise_zeroes_the_target_fraction_and_keeps_dense_shapes():
    arch, full = SMALL, SMALL_FULL
    template = unpruned(arch, seed=0)
    setting = element_setting(template, 0.4)
    conv_weights = sum(m.weight.numel() for m in convs(template))
    assert setting.amount == pytest.approx(0.4 * full[0] / conv_weights)
    before = {k: v.clone() for k, v in template.state_dict().items()}
    model, zeroed = build_pruned(template, setting, seed=0, image_size=SIZE)
    assert all(torch.equal(v, before[k]) for k, v in template.state_dict().items())  # a copy
    state, reference = model.state_dict(), template.state_dict()
    assert list(state) == list(reference)  # the pruning is permanent: no weight_orig / masks
    assert all(state[k].shape == reference[k].shape for k in state)
    expected = [math.ceil(setting.amount * m.weight.numel()) for m in convs(model)]
    assert zeroed == sum(expected)  # each convolution loses ceil(amount * its weights)
    for m, before, n in zip(convs(model), convs(template), expected):
        kept = m.weight != 0
        assert torch.equal(m.weight[kept], before.weight[kept])  # the rest is untouched
        # a random-normal weight can be exactly 0 already; those may be drawn or not
        assert n <= int((~kept).sum()) <= n + int((before.weight == 0).sum())
    row = structure(model, zeroed, full[0], 0.4, SIZE)
    assert (row["params"], row["macs"]) == full  # dense: nothing shrinks
    assert row["remaining_params"] == full[0] - zeroed
    assert row["achieved_sparsity"] == zeroed / full[0]
    assert row["reached"] and 0.4 <= row["achieved_sparsity"] < 0.4 + len(expected) / full[0]


def test_channel_wise_shrinks_tensors_as_counted_and_still_runs():
    pytest.importorskip("torch_pruning", reason="pip install 'rrrnet[prune]'")
    ratio = 0.3
    model = resnet(SMALL)
    widths = {name: (m.in_channels, m.out_channels) for name, m in model.named_modules()
              if isinstance(m, nn.Conv2d)}
    predicted = channel_params(model, ratio)
    torch.manual_seed(0)
    prune_channels(model, ratio, SIZE)
    assert sum(p.numel() for p in model.parameters()) == predicted  # the search's count is exact
    for name, m in model.named_modules():
        if isinstance(m, nn.Conv2d):
            cin, cout = widths[name]
            assert m.out_channels == m.weight.shape[0] == int(cout * (1 - ratio))
            assert m.in_channels == (3 if name == "conv1" else int(cin * (1 - ratio)))
    assert model.fc.out_features == 1000 and model.fc.in_features == int(512 * (1 - ratio))
    assert model.eval()(torch.randn(2, 3, SIZE, SIZE)).shape == (2, 1000)


def test_channel_ratio_is_the_smallest_reaching_the_target():
    pytest.importorskip("torch_pruning", reason="pip install 'rrrnet[prune]'")
    template, total = unpruned(SMALL, seed=0), SMALL_FULL[0]
    setting = channel_setting(template, 0.5)
    assert 1 - channel_params(template, setting.amount) / total >= 0.5
    assert 1 - channel_params(template, setting.amount - 2e-6) / total < 0.5
    assert abs(setting.amount - (1 - 0.5 ** 0.5)) < 0.02  # about 1 - sqrt(1 - sparsity)
    # reproducible: the same seed keeps the same channels
    a, _ = build_pruned(template, setting, seed=3, image_size=SIZE)
    b, _ = build_pruned(template, setting, seed=3, image_size=SIZE)
    row = structure(a, 0, total, 0.5, SIZE)
    assert row["reached"] and row["params"] == channel_params(template, setting.amount)
    assert row["macs"] < SMALL_FULL[1] * 0.55
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def test_block_wise_walks_the_reversed_forward_order():
    template = unpruned(ARCH)
    order = forward_order((3, 4, 6, 3))[::-1]
    sparsity = [1 - counts(ARCH, blocks, 1000, SIZE)[0] / FULL[0] for blocks in order]
    for target in (0.0, 0.1, 0.3, 0.5, 0.6):
        expected = next(b for b, s in zip(order, sparsity) if s >= target)
        assert block_setting(template, target).blocks == expected
    assert block_setting(template, 0.3).blocks == (3, 4, 6, 1)  # layer4's extra blocks go first
    # ResNet_1.1.1.1 of ResNet-50 still holds ~39% of the parameters: 0.9 is out of reach
    far = block_setting(template, 0.9)
    assert far.blocks == (1, 1, 1, 1)
    model, zeroed = build_pruned(template, far, seed=0, image_size=SIZE)
    row = structure(model, zeroed, FULL[0], 0.9, SIZE)
    assert (row["params"], row["macs"]) == counts(ARCH, (1, 1, 1, 1), 1000, SIZE)
    assert not row["reached"] and row["achieved_sparsity"] == pytest.approx(sparsity[-1])


def test_prune_compare_command_writes_csv_json_and_figure(tmp_path, capsys):
    out = tmp_path / "study"
    assert main(["prune-compare", "--arch", ARCH, "--sparsity", "0.5,0", "--runs", "3",
                 "--warmup", "1", "--image-size", str(SIZE), "--threads", "1", "--out", str(out),
                 "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "pruning.csv" in printed and "blocks 3.4.2.1" in printed
    assert sorted(p.name for p in out.iterdir()) == ["pruning.csv", "pruning.json", "pruning.png"]
    assert (out / "pruning.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with open(out / "pruning.csv", newline="") as f:
        assert tuple(csv.DictReader(f).fieldnames) == FIELDS
    rows = read_rows(out / "pruning.csv")
    assert [(r["granularity"], r["target_sparsity"]) for r in rows] == [
        (g, t) for g in ("element", "channel", "block") for t in (0.0, 0.5)]
    for r in rows:
        assert r["reached"] and r["achieved_sparsity"] >= r["target_sparsity"]
        assert r["median_ms"] > 0 and r["runs"] == 3 and r["threads"] == 1
        assert r["ci95_low_ms"] is None  # fewer than 6 runs: no distribution-free interval
        if r["target_sparsity"] == 0:
            assert (r["params"], r["macs"], r["achieved_sparsity"]) == (*FULL, 0.0)
    by = {(r["granularity"], r["target_sparsity"]): r for r in rows}
    assert by["element", 0.0]["speedup"] == 1.0  # the reference of the paired speedups
    assert by["element", 0.5]["params"] == FULL[0] > by["channel", 0.5]["params"]
    assert by["block", 0.5]["params"] == counts(ARCH, (3, 4, 2, 1), 1000, SIZE)[0]
    saved = json.loads((out / "pruning.json").read_text())
    assert saved["full_params"] == FULL[0] and len(saved["rows"]) == 6
    assert saved["environment"]["torch_pruning"]


@pytest.mark.parametrize("option,value,message", [
    ("--sparsity", "0,1.2", "[0, 1)"),
    ("--sparsity", "a", "fractions separated by commas"),
    ("--granularity", "element,layer", "--granularity"),
    ("--runs", "0", "--runs"),
])
def test_bad_options_exit_2(tmp_path, capsys, option, value, message):
    assert main(["prune-compare", "--arch", ARCH, "--out", str(tmp_path / "x"), option, value,
                 "--quiet"]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_parse_sparsities_sorts_and_deduplicates():
    assert parse_sparsities("0.5, 0,0.50") == (0.0, 0.5)
    with pytest.raises(ConfigError):
        parse_sparsities("")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message without a GPU")
def test_cuda_without_gpu_is_a_clear_error(tmp_path, capsys):
    assert main(["prune-compare", "--device", "cuda", "--out", str(tmp_path / "x")]) == 2
    assert "no CUDA GPU" in capsys.readouterr().err


def test_backbone_cost_counts_pruned_tensors():
    # MACs of the channel-pruned model follow its real (shrunk) tensors: about a quarter
    model = prune_channels(resnet(SMALL), 0.5, SIZE)
    params, macs = backbone_cost(model, SIZE)
    assert params == sum(p.numel() for p in model.parameters())
    assert 0.2 * SMALL_FULL[1] < macs < 0.3 * SMALL_FULL[1]
