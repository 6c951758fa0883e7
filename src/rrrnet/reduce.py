"""Reduce: ResNet_{x1-x2-x3-x4} keeps the first x_i pretrained blocks of each stage.

Forward block selection (the paper's Algorithm 1), which chooses the x_i, trains models and so
lives with the experiments; this module only does the surgery.
"""
from __future__ import annotations

from typing import Sequence

from .backbone import ResNet, check_blocks
from .errors import ConfigError
from .options import DEFAULT_BLOCKS, ORDERS



def parse_blocks(text: str | Sequence[int]) -> tuple[int, ...]:
    """``"1,1,1,1"``, ``"1.1.1.1"``, ``"1-1-1-1"`` or a sequence -> a tuple of ints."""
    if not isinstance(text, str):
        return tuple(int(n) for n in text)
    parts = text.replace("-", ",").replace(".", ",").split(",")
    try:
        return tuple(int(p) for p in parts)
    except ValueError:
        raise ConfigError(f"blocks must look like 1,1,1,1 (one count per stage), got {text!r}") from None


def keep_blocks(template: ResNet, blocks: Sequence[int] = DEFAULT_BLOCKS) -> ResNet:
    """A new ResNet with the first ``blocks[i]`` blocks of each stage of ``template``.

    Every kept tensor (weights and BatchNorm statistics) is copied from the template; the
    classifier is kept too. The template is not modified.
    """
    blocks = check_blocks(template.blocks, blocks)
    reduced = ResNet(template.block, blocks, template.num_classes)
    source = template.state_dict()
    # Kept blocks have the same names in both models (layer3.0 stays layer3.0), so a plain
    # name lookup copies exactly the first x_i blocks of each stage.
    reduced.load_state_dict({key: source[key] for key in reduced.state_dict()})
    return reduced




def forward_order(full: Sequence[int], start: Sequence[int] = DEFAULT_BLOCKS,
                  order: str = "stages") -> list[tuple[int, ...]]:
    """The block configurations forward block selection visits, ``start`` first, ``full`` last.

    ``"stages"`` (the paper's Algorithm 1) fills one stage before moving to the next:
    1.1.1.1, 2.1.1.1, 3.1.1.1, 3.2.1.1, ... 3.8.36.3. ``"cyclic"`` adds one block to each
    unfilled stage in turn: 1.1.1.1, 2.1.1.1, 2.2.1.1, 2.2.2.1, 2.2.2.2, 3.2.2.2, ...
    Block-wise pruning removes blocks in the reverse of this order.
    """
    if order not in ORDERS:
        raise ConfigError(f"order must be one of {', '.join(ORDERS)}, got {order!r}")
    full, current = tuple(full), list(start)
    if len(current) != len(full) or any(s < 1 or s > f for s, f in zip(current, full)):
        raise ConfigError(f"start {tuple(start)} must have 1..x_i blocks per stage of {full}")
    visited = [tuple(current)]
    stage = 0
    while current != list(full):
        if order == "stages":
            stage = next(i for i, (c, f) in enumerate(zip(current, full)) if c < f)
        else:
            while current[stage] >= full[stage]:
                stage = (stage + 1) % len(full)
        current[stage] += 1
        visited.append(tuple(current))
        if order == "cyclic":
            stage = (stage + 1) % len(full)
    return visited


__all__ = ["DEFAULT_BLOCKS", "ORDERS", "forward_order", "keep_blocks", "parse_blocks",
           "check_blocks"]
