"""Exact rewrites of a network in eval mode: the same function, fewer or faster kernels.

* :func:`fold_batchnorm`: every BatchNorm folded into the convolution before it (PyTorch's
  ``fuse_conv_bn_eval``), fused branch convolutions included;
* :func:`subsample_strided_pointwise`: strided 1x1 convolutions run on the subsampled input
  (:class:`SubsampledConv`), the same arithmetic, which oneDNN runs several times faster for
  grouped convolutions at small batches;
* :func:`frozen_copy`: both, on a copy without gradients, for a part that never trains again
  (deployment, :mod:`rrrnet.deploy`, and the frozen stump during training, :mod:`rrrnet.train`).
"""
from __future__ import annotations

import copy

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

# (convolution, BatchNorm) attribute pairs of our modules: the stem (ResNet, Stump) and the
# basic/bottleneck blocks. Downsamples are ``Sequential(conv, BatchNorm)``.
_CONV_BN = (("conv1", "bn1"), ("conv2", "bn2"), ("conv3", "bn3"))


def fold_batchnorm(model: nn.Module) -> nn.Module:
    """A copy of ``model`` in eval mode with every BatchNorm folded into the convolution before it
    (the BatchNorm becomes ``nn.Identity``). Fused branch convolutions fold like any other: a
    BatchNorm over ``b`` branches' channels scales each output channel of the grouped (or
    :class:`~rrrnet.backbone.SharedInputConv2d`) convolution that feeds it."""
    model = copy.deepcopy(model).eval()
    for module in list(model.modules()):
        for conv_name, bn_name in _CONV_BN:
            conv, bn = getattr(module, conv_name, None), getattr(module, bn_name, None)
            if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d):
                setattr(module, conv_name, fuse_conv_bn_eval(conv, bn))
                setattr(module, bn_name, nn.Identity())
        if (isinstance(module, nn.Sequential) and len(module) == 2
                and isinstance(module[0], nn.Conv2d) and isinstance(module[1], nn.BatchNorm2d)):
            module[0], module[1] = fuse_conv_bn_eval(module[0], module[1]), nn.Identity()
    return model


def batchnorm_count(model: nn.Module) -> int:
    return sum(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())


class SubsampledConv(nn.Module):
    """A 1x1 convolution of stride ``s`` as a stride-1 convolution of every ``s``-th pixel.

    Without padding both read exactly the same pixels. oneDNN's strided 1x1 kernels are slow for
    grouped convolutions at small batches (the fused branches' downsample: 10 ms against 2 ms).
    """

    def __init__(self, conv: nn.Conv2d):
        super().__init__()
        self.step = tuple(conv.stride)
        self.conv = conv
        conv.stride = (1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x[:, :, ::self.step[0], ::self.step[1]])


def subsample_strided_pointwise(model: nn.Module) -> nn.Module:
    """Wrap every strided, unpadded 1x1 convolution of ``model`` (in place) in :class:`SubsampledConv`."""
    for module in list(model.modules()):
        for name, child in list(module.named_children()):
            if (isinstance(child, nn.Conv2d) and child.kernel_size == (1, 1)
                    and child.stride != (1, 1) and child.padding == (0, 0)):
                setattr(module, name, SubsampledConv(child))
    return model


def frozen_copy(model: nn.Module, fold_bn: bool = True, subsample: bool = True,
                channels_last: bool = False) -> nn.Module:
    """A copy of ``model`` in eval mode without gradients, with the chosen exact rewrites. The
    original is left untouched; outputs agree up to float rounding."""
    model = fold_batchnorm(model) if fold_bn else copy.deepcopy(model).eval()
    if subsample:
        subsample_strided_pointwise(model)
    model.requires_grad_(False)
    return model.to(memory_format=torch.channels_last) if channels_last else model
