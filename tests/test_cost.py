import pytest
import torch

from analytic import counts, widths
from rrrnet.backbone import resnet
from rrrnet.cost import backbone_cost, cost, format_table

SPLIT = {"layer1": 0, "layer2": 1, "layer3": 2, "layer4": 3}


def test_resnet152_at_224_with_1000_classes():
    rep = cost(arch="resnet152", blocks=(3, 8, 36, 3), branches=1, num_classes=1000, image_size=224)
    assert rep.params == 60_192_808
    assert (rep.params, rep.macs) == counts("resnet152", (3, 8, 36, 3), 1000, 224)
    assert round(rep.macs / 1e9, 2) == 11.51
    assert rep.shift == 0 and rep.branch_planes == [256, 512]


def test_reference_counts_at_128_pixels():
    full = cost(arch="resnet152", blocks=(3, 8, 36, 3), branches=1, num_classes=1000, image_size=128)
    assert full.params == 60_192_808 and round(full.macs / 1e9, 2) == 3.76
    small = cost(arch="resnet152", blocks=(1, 1, 1, 1), branches=1, num_classes=20, image_size=128)
    assert small.params == 8_056_916 and round(small.macs / 1e9, 3) == 0.479
    assert small.trainable_params == small.params - 9_536 - 75_008 - 379_392  # stump frozen


@pytest.mark.parametrize("arch,blocks,b,split_at,classes,image", [
    ("resnet152", (1, 1, 1, 1), 8, "layer3", 20, 128),
    ("resnet152", (3, 8, 36, 3), 8, "layer3", 20, 128),
    ("resnet152", (1, 2, 3, 2), 16, "layer4", 20, 96),
    ("resnet50", (1, 1, 1, 1), 4, "layer2", 10, 64),
    ("resnet18", (2, 2, 2, 2), 8, "layer3", 20, 128),
    ("resnet34", (1, 1, 1, 1), 3, "layer1", 5, 112),
])
def test_branched_counts_match_the_closed_form(arch, blocks, b, split_at, classes, image):
    rep = cost(arch=arch, blocks=blocks, branches=b, split_at=split_at, num_classes=classes,
               image_size=image)
    stage = SPLIT[split_at]
    assert rep.branch_planes == widths(b, rep.shift, stage)
    assert (rep.params, rep.macs) == counts(arch, blocks, classes, image, b,
                                            rep.branch_planes, stage)
    assert sum(s.params for s in rep.stages) == rep.params
    assert sum(s.macs for s in rep.stages) == rep.macs
    assert rep.branches_params == b * rep.branch_params <= rep.unsplit_params


def test_default_model_rows():
    rep = cost()  # resnet152 ResNet_1.1.1.1, 8 branches from layer3, 20 classes, 128 px
    rows = {s.stage: s for s in rep.stages}
    assert list(rows) == ["conv1", "layer1", "layer2", "layer3", "layer4", "fc"]
    assert rows["layer3"].planes == 79 and rows["layer3"].branches == 8
    assert rows["layer3"].output_size == [8 * 79 * 4, 8, 8]
    assert rows["layer4"].output_size == [8 * 170 * 4, 4, 4]
    assert rows["conv1"].output_size == [64, 32, 32]
    assert rows["layer2"].trainable_params == 0 and rows["layer3"].trainable_params == rows["layer3"].params
    assert rows["fc"].params == 8 * (170 * 4 * 20 + 20)
    # the whole model costs about as much as the unsplit ResNet_1.1.1.1 (the point of Equation 1)
    assert rep.params <= 8_056_916 and rep.macs < 0.6e9
    text = format_table(rep)
    assert "79 x 8" in text and f"{rep.params:,}" in text and "a=11" in text


def test_backbone_cost_of_a_plain_resnet():
    params, macs = backbone_cost(resnet("resnet50", num_classes=20).to("meta"), 128)
    assert (params, macs) == counts("resnet50", (3, 4, 6, 3), 20, 128)


def test_cost_builds_nothing_in_memory():
    rep = cost(blocks=(3, 8, 36, 3))
    assert rep.params > 50_000_000  # measured on the meta device, in seconds not gigabytes
    assert torch.get_default_device() == torch.device("cpu")
