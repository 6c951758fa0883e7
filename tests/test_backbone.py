import re

import pytest
import torch

from analytic import counts
from rrrnet.backbone import ARCHS, resnet
from rrrnet.errors import ConfigError

# torchvision's published parameter counts for its ImageNet ResNets.
TORCHVISION_PARAMS = {"resnet18": 11_689_512, "resnet34": 21_797_672, "resnet50": 25_557_032,
                      "resnet101": 44_549_160, "resnet152": 60_192_808}
TORCHVISION_KEY = re.compile(
    r"(conv1\.weight|bn1\.(weight|bias|running_mean|running_var|num_batches_tracked)|fc\.(weight|bias)"
    r"|layer[1-4]\.\d+\.(conv[1-3]\.weight|bn[1-3]\.(weight|bias|running_mean|running_var|num_batches_tracked)"
    r"|downsample\.0\.weight|downsample\.1\.(weight|bias|running_mean|running_var|num_batches_tracked)))")


@pytest.mark.parametrize("arch", sorted(ARCHS))
def test_parameter_counts_match_torchvision_and_formula(arch):
    with torch.device("meta"):
        model = resnet(arch)
    n = sum(p.numel() for p in model.parameters())
    assert n == TORCHVISION_PARAMS[arch]
    assert n == counts(arch, ARCHS[arch].blocks, 1000, 224)[0]


@pytest.mark.parametrize("arch", ["resnet18", "resnet152"])
def test_state_dict_keys_are_torchvision_names(arch):
    with torch.device("meta"):
        keys = list(resnet(arch).state_dict())
    assert all(TORCHVISION_KEY.fullmatch(k) for k in keys), [k for k in keys if not TORCHVISION_KEY.fullmatch(k)]
    assert "layer2.0.downsample.0.weight" in keys
    assert ("layer1.0.downsample.0.weight" in keys) == (arch == "resnet152")  # 64 -> 256 channels
    assert ("layer4.2.bn3.running_var" in keys) == (arch == "resnet152")
    assert not any(k.startswith("layer2.1.downsample") for k in keys)  # only first blocks downsample
    n_blocks = len({k.split(".")[0] + "." + k.split(".")[1] for k in keys if k.startswith("layer")})
    assert n_blocks == sum(ARCHS[arch].blocks)


def test_forward_shapes_and_features():
    model = resnet("resnet50", blocks=(1, 1, 1, 1), num_classes=7).eval()
    x = torch.randn(2, 3, 64, 64)
    assert model(x).shape == (2, 7)
    assert model.forward_features(x).shape == (2, 2048)


@pytest.mark.parametrize("blocks", [(0, 1, 1, 1), (1, 1, 1, 4), (1, 1, 1), (4, 1, 1, 1)])
def test_blocks_out_of_range_are_refused(blocks):
    with pytest.raises(ConfigError, match="blocks|keep"):
        resnet("resnet152", blocks=blocks)


def test_unknown_arch():
    with pytest.raises(ConfigError, match="resnet152"):
        resnet("resnet200")
