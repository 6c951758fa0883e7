"""Exact rewrites (rrrnet.fold): BatchNorm folding and subsampled strided 1x1 convolutions give
the same function."""
import copy

import torch
from torch import nn

from conftest import TINY_FUSED as TINY
from conftest import images, randomize_, relative_error  # noqa: F401
from rrrnet import fold
from rrrnet.backbone import SharedInputConv2d

@torch.no_grad()
def test_folded_model_matches_and_has_no_batchnorm(model):
    x = images()
    expected = model(x)
    folded = fold.fold_batchnorm(model)
    assert fold.batchnorm_count(folded) == 0
    assert fold.batchnorm_count(model) > 0                      # the original is untouched
    assert relative_error(folded(x), expected) < 1e-5
    assert torch.equal(model(x), expected)
    # the fused branches' shared-input convolutions took a bias from their BatchNorm
    shared = [m for m in folded.modules() if isinstance(m, SharedInputConv2d)]
    assert shared and all(m.bias is not None for m in shared)


@torch.no_grad()
def test_folded_model_keeps_one_view_per_branch(model):
    views = torch.randn(2, TINY.branches, 3, 32, 32)             # the per-branch input path
    assert relative_error(fold.fold_batchnorm(model)(views), model(views)) < 1e-5


def test_subsampled_conv_equals_strided_conv():
    conv = nn.Conv2d(6, 8, 1, stride=2, groups=2, bias=True)
    x = torch.randn(2, 6, 7, 7)                                    # odd size: the last pixel
    with torch.no_grad():
        expected = conv(x)
        got = fold.SubsampledConv(copy.deepcopy(conv))(x)
    assert got.shape == expected.shape == (2, 8, 4, 4)
    assert torch.allclose(got, expected, atol=1e-6)
