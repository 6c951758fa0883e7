"""Closed-form parameter and MAC counts of (branched) ResNets, written independently of the
modules so that tests can check the library's counts against them."""
from __future__ import annotations

import math

PLANES = (64, 128, 256, 512)
STRIDES = (1, 2, 2, 2)
TEMPLATES = {"resnet18": ("basic", (2, 2, 2, 2)), "resnet34": ("basic", (3, 4, 6, 3)),
             "resnet50": ("bottleneck", (3, 4, 6, 3)), "resnet101": ("bottleneck", (3, 4, 23, 3)),
             "resnet152": ("bottleneck", (3, 8, 36, 3))}


def conv_out(size: int, kernel: int, stride: int, pad: int) -> int:
    return (size + 2 * pad - kernel) // stride + 1


def counts(arch: str, blocks, num_classes: int, image: int, branches: int = 1,
           widths=None, split_stage: int = 2) -> tuple[int, int]:
    """(parameters, MACs) of ResNet_{blocks} of ``arch``'s block type, the stages from
    ``split_stage`` on split into ``branches`` branches of bottleneck widths ``widths``."""
    kind, _ = TEMPLATES[arch]
    widths = widths if widths is not None else PLANES[split_stage:]
    exp = 4 if kind == "bottleneck" else 1
    params = 3 * 64 * 49 + 2 * 64
    size = conv_out(image, 7, 2, 3)
    macs = size * size * 64 * 3 * 49
    size = conv_out(size, 3, 2, 1)
    cin = 64
    for s in range(4):
        split = s >= split_stage
        nb = branches if split else 1
        width = widths[s - split_stage] if split else PLANES[s]
        shared_input = not (split and s > split_stage)  # stump output is read whole by every branch
        for i in range(blocks[s]):
            stride = STRIDES[s] if i == 0 else 1
            cin_b = cin if (i == 0 and shared_input) else cin // nb if split else cin
            out = width * exp
            out_size = conv_out(size, 3, stride, 1)
            if kind == "bottleneck":
                p = cin_b * width + 9 * width * width + width * out + 2 * (2 * width + out)
                m = size * size * cin_b * width + out_size ** 2 * (9 * width * width + width * out)
            else:
                p = 9 * cin_b * width + 9 * width * width + 4 * width
                m = out_size ** 2 * (9 * cin_b * width + 9 * width * width)
            if i == 0 and (stride != 1 or cin_b != out):
                p += cin_b * out + 2 * out
                m += out_size ** 2 * cin_b * out
            params += nb * p
            macs += nb * m
            size, cin = out_size, out * nb
    feat = cin // (branches if split_stage < 4 else 1)
    params += branches * (feat * num_classes + num_classes)
    macs += branches * feat * num_classes
    return params, macs


def widths(branches: int, shift: int, split_stage: int = 2):
    return [math.floor(p / math.sqrt(branches)) - shift for p in PLANES[split_stage:]]
