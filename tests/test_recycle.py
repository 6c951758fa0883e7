import pytest
import torch

from conftest import randomize_
from rrrnet.backbone import resnet
from rrrnet.errors import ConfigError
from rrrnet.recycle import branch_planes, convert, plan_split, split
from rrrnet.reduce import keep_blocks


def test_equation_one():
    assert branch_planes(256, 8, 0) == 90 and branch_planes(512, 8, 0) == 181
    assert branch_planes(256, 4, 3) == 125 and branch_planes(512, 1, 0) == 512
    assert branch_planes(256, 2, 0) == 181


@pytest.mark.parametrize("arch,blocks,b,split_at,classes", [
    ("resnet152", (1, 1, 1, 1), 8, "layer3", 20),
    ("resnet152", (1, 1, 1, 1), 2, "layer3", 20),
    ("resnet152", (1, 1, 1, 1), 128, "layer3", 20),
    ("resnet152", (3, 8, 36, 3), 8, "layer3", 20),
    ("resnet50", (1, 1, 2, 2), 5, "layer4", 100),
    ("resnet18", (2, 2, 2, 2), 4, "layer3", 10),
])
def test_calibrated_shift_is_the_smallest_that_fits(arch, blocks, b, split_at, classes):
    block = resnet(arch, blocks).block
    plan = plan_split(block, blocks, b, split_at, classes)
    assert plan.branches * plan.branch_params <= plan.unsplit_params
    assert plan.param_ratio <= 1
    if plan.shift > 0:
        looser = plan_split(block, blocks, b, split_at, classes, shift=plan.shift - 1)
        assert looser.branches * looser.branch_params > looser.unsplit_params
    assert plan.branch_planes == tuple(branch_planes(p, b, plan.shift)
                                       for p in (64, 128, 256, 512)[("layer1", "layer2", "layer3", "layer4").index(split_at):])


def test_known_calibration_of_the_default_model():
    # ResNet_1.1.1.1, 8 branches from conv4_1, 20 classes: a = 11, widths 79 and 170.
    plan = plan_split(resnet("resnet152", (1, 1, 1, 1)).block, (1, 1, 1, 1), 8, "layer3", 20)
    assert (plan.shift, plan.branch_planes) == (11, (79, 170))
    assert (plan.branch_params, plan.unsplit_params) == (946_273, 7_592_980)


def test_one_branch_needs_no_shift():
    plan = plan_split(resnet("resnet50", (1, 1, 1, 1)).block, (1, 1, 1, 1), 1, "layer3", 20)
    assert plan.shift == 0 and plan.param_ratio == 1.0


@pytest.mark.parametrize("branches", [0, -3, 2.5, True])
def test_impossible_branch_counts(branches):
    with pytest.raises(ConfigError, match="branches"):
        split(resnet("resnet18", (1, 1, 1, 1)), branches=branches)


def test_too_many_branches_for_the_width():
    with pytest.raises(ConfigError, match="fewer branches"):
        split(resnet("resnet18", (1, 1, 1, 1)), branches=70_000, split_at="layer3")
    with pytest.raises(ConfigError, match="fewer branches|shift"):
        split(resnet("resnet18", (1, 1, 1, 1)), branches=4, shift=128)


def test_unknown_split_point():
    with pytest.raises(ConfigError, match="layer3"):
        split(resnet("resnet18", (1, 1, 1, 1)), branches=2, split_at="conv4_1")


CASES = [  # (arch, blocks, branches, split point, classes)
    ("resnet152", (1, 1, 1, 1), 8, "layer3", 20),
    ("resnet152", (1, 1, 2, 2), 3, "layer3", 5),
    ("resnet50", (2, 1, 1, 2), 4, "layer4", 10),
    ("resnet50", (1, 2, 1, 1), 2, "layer2", 7),
    ("resnet18", (2, 2, 2, 2), 5, "layer3", 3),
    ("resnet34", (1, 1, 2, 1), 16, "layer1", 4),
]


@pytest.mark.parametrize("arch,blocks,b,split_at,classes", CASES)
def test_fused_and_looped_branches_agree(arch, blocks, b, split_at, classes):
    template = randomize_(resnet(arch, blocks))
    fused = split(template, b, split_at, classes, seed=3)
    randomize_(fused.branches, seed=5)  # also BN statistics and classifiers, not only slices
    looped = convert(fused, fused=False)
    assert not looped.fused and len(looped.branches.branches) == b
    back = convert(looped, fused=True)
    for key, value in fused.state_dict().items():
        assert torch.equal(value, back.state_dict()[key]), key
    x = torch.randn(4, 3, 64, 64)
    for mode in ("eval", "train"):  # train: BatchNorm uses per-branch batch statistics
        getattr(fused, mode)(), getattr(looped, mode)()
        a, c = fused(x), looped(x)
        assert a.shape == (b, 4, classes)
        torch.testing.assert_close(a, c, atol=1e-5, rtol=1e-5)


def test_gradients_reach_only_the_branches_when_the_stump_is_frozen():
    model = split(resnet("resnet50", (1, 1, 1, 1)), 4, "layer3", 6).train()
    assert not model.stump.training  # the frozen stump stays in eval mode
    running = model.stump.bn1.running_mean.clone()
    logits = model(torch.randn(3, 3, 64, 64))
    torch.nn.functional.cross_entropy(logits.flatten(0, 1), torch.arange(3).repeat(4)).backward()
    assert all(p.grad is None and not p.requires_grad for p in model.stump.parameters())
    grads = {n: p.grad for n, p in model.branches.named_parameters()}
    assert all(g is not None and g.abs().sum() > 0 for g in grads.values()), \
        [n for n, g in grads.items() if g is None or g.abs().sum() == 0]
    assert torch.equal(model.stump.bn1.running_mean, running)


def test_unfrozen_stump_trains():
    model = split(resnet("resnet18", (1, 1, 1, 1)), 2, "layer3", 3, freeze_stump=False).train()
    assert model.stump.training
    model(torch.randn(2, 3, 32, 32)).sum().backward()
    assert model.stump.conv1.weight.grad is not None


def test_prediction_averages_branch_softmaxes():
    model = split(resnet("resnet18", (1, 1, 1, 1)), 3, "layer3", 4).eval()
    x = torch.randn(5, 3, 32, 32)
    probs = model.predict_proba(x)
    torch.testing.assert_close(probs, model(x).softmax(-1).mean(0))
    torch.testing.assert_close(probs.sum(-1), torch.ones(5))


def test_one_branch_without_shift_is_the_reduced_network():
    # b = 1, a = 0 and the template's own classifier: slicing must hand over every kernel,
    # statistic and classifier weight unchanged, so outputs are identical.
    template = randomize_(keep_blocks(resnet("resnet50"), (1, 2, 1, 2))).eval()
    model = split(template, 1, "layer3", 1000, shift=0).eval()
    x = torch.randn(2, 3, 64, 64)
    torch.testing.assert_close(model(x)[0], template(x), atol=1e-5, rtol=1e-5)


def _rows(branch_stat: torch.Tensor, template_stat: torch.Tensor) -> torch.Tensor:
    """Which template channel each branch channel came from (BN statistics are all distinct)."""
    match = (branch_stat[:, None] == template_stat[None, :])
    assert torch.all(match.sum(1) == 1)
    return match.float().argmax(1)


def test_aligned_slicing_follows_each_branch_channels():
    template = randomize_(resnet("resnet50", (1, 1, 1, 1)))
    b = 3
    model = split(template, b, "layer3", 10, seed=7)
    t = template.state_dict()
    states = model.branch_states()
    w3, w4 = model.plan.branch_planes
    mids = []
    for s in states:
        r1 = _rows(s["layer3.0.bn1.running_mean"], t["layer3.0.bn1.running_mean"])
        r2 = _rows(s["layer3.0.bn2.running_mean"], t["layer3.0.bn2.running_mean"])
        out3 = _rows(s["layer3.0.bn3.running_mean"], t["layer3.0.bn3.running_mean"])
        assert torch.equal(_rows(s["layer3.0.downsample.1.running_mean"],
                                 t["layer3.0.downsample.1.running_mean"]), out3)
        assert torch.equal(s["layer3.0.conv1.weight"], t["layer3.0.conv1.weight"][r1])  # reads the stump whole
        assert torch.equal(s["layer3.0.conv2.weight"], t["layer3.0.conv2.weight"][r2][:, r1])
        assert torch.equal(s["layer3.0.conv3.weight"], t["layer3.0.conv3.weight"][out3][:, r2])
        assert torch.equal(s["layer3.0.downsample.0.weight"], t["layer3.0.downsample.0.weight"][out3])
        q1 = _rows(s["layer4.0.bn1.running_mean"], t["layer4.0.bn1.running_mean"])
        assert torch.equal(s["layer4.0.conv1.weight"], t["layer4.0.conv1.weight"][q1][:, out3])
        for key in ("bn1.weight", "bn1.bias", "bn1.running_var"):
            assert torch.equal(s["layer3.0." + key], t["layer3.0." + key][r1])
        mids.append(r1)
    # Algorithm 2: contiguous slices of 0..C-1 first, then seeded permutations.
    order = torch.cat(mids)
    assert order.numel() == b * w3 > 256
    assert torch.equal(order[:256], torch.arange(256))
    assert order[256:512].unique().numel() == order[256:512].numel()
    assert states[0]["fc.weight"].shape == (10, 4 * w4)


def test_first_channels_variant_of_the_authors_release():
    template = randomize_(resnet("resnet50", (1, 1, 1, 1)))
    model = split(template, 4, "layer3", 10, init="first", seed=7)
    t = template.state_dict()
    w3 = model.plan.branch_planes[0]
    for s in model.branch_states():
        # every output row is a template row restricted to the first C_in input channels
        conv2 = t["layer3.0.conv2.weight"][:, :w3]
        hits = (s["layer3.0.conv2.weight"][:, None] == conv2[None]).flatten(2).all(-1)
        assert torch.all(hits.any(1))
        assert torch.all(s["layer3.0.bn1.weight"] == 1) and torch.all(s["layer3.0.bn2.running_mean"] == 0)


def test_slicing_is_seeded():
    template = randomize_(resnet("resnet18", (1, 1, 1, 1)))
    a = split(template, 4, "layer3", 5, seed=1).state_dict()
    b = split(template, 4, "layer3", 5, seed=1).state_dict()
    c = split(template, 4, "layer3", 5, seed=2).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


@pytest.mark.parametrize("arch,blocks,b,split_at", [("resnet50", (1, 1, 1, 1), 4, "layer3"),
                                                    ("resnet18", (1, 1, 1, 1), 3, "layer4"),
                                                    ("resnet18", (1, 1, 1, 1), 2, "fc")])
def test_independent_views_feed_one_view_to_each_branch(arch, blocks, b, split_at):
    model = randomize_(split(resnet(arch, blocks), b, split_at, 5)).eval()
    looped = convert(model, fused=False).eval()
    views = torch.randn(3, b, 3, 64, 64)
    out = model(views)
    assert out.shape == (b, 3, 5)
    for i in range(b):  # branch i of the views pass == branch i on its own view
        torch.testing.assert_close(out[i], model(views[:, i])[i], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(looped(views), out, atol=1e-5, rtol=1e-5)
    same = views[:, :1].expand(-1, b, -1, -1, -1)
    torch.testing.assert_close(model(same), model(views[:, 0]), atol=1e-5, rtol=1e-5)
    with pytest.raises(ConfigError, match="views"):
        model(torch.randn(2, b + 1, 3, 32, 32))


def test_split_at_fc_trains_only_classifiers_of_the_whole_backbone():
    template = randomize_(resnet("resnet18", (2, 2, 2, 2))).eval()
    model = split(template, 1, "fc", 1000).eval()  # baseline A: last-layer fine-tuning
    x = torch.randn(2, 3, 64, 64)
    torch.testing.assert_close(model(x)[0], template(x), atol=1e-5, rtol=1e-5)
    assert model.plan.branch_planes == () and model.plan.shift == 0
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable == ["branches.fc.weight", "branches.fc.bias"]
    three = split(template, 3, "fc", 7)
    torch.testing.assert_close(three.eval()(x), convert(three, False).eval()(x), atol=1e-5, rtol=1e-5)


def test_slice_bn_off_keeps_default_batchnorms_with_aligned_slicing():
    """The ablation option: the same aligned kernels, default-initialised branch BatchNorms."""
    from conftest import randomize_
    from rrrnet.backbone import resnet
    from rrrnet.recycle import split
    template = randomize_(resnet("resnet18", (1, 1, 1, 1)))   # BatchNorms far from default
    sliced = split(template, 2, num_classes=4)
    plain = split(template, 2, num_classes=4, slice_bn=False)
    a, b = sliced.branches.state_dict(), plain.branches.state_dict()
    assert torch.equal(a["layer3.0.conv1.weight"], b["layer3.0.conv1.weight"])
    assert torch.equal(b["layer3.0.bn1.weight"], torch.ones_like(b["layer3.0.bn1.weight"]))
    assert torch.equal(b["layer3.0.bn1.running_var"], torch.ones_like(b["layer3.0.bn1.running_var"]))
    assert not torch.equal(a["layer3.0.bn1.running_var"], b["layer3.0.bn1.running_var"])
