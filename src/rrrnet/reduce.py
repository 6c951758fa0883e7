"""Reduce: ResNet_{x1-x2-x3-x4} keeps the first x_i pretrained blocks of each stage.

Forward block selection (the paper's Algorithm 1), which chooses the x_i, trains models and so
lives with the experiments; this module only does the surgery.
"""
from __future__ import annotations

from typing import Sequence

from .backbone import ResNet, check_blocks
from .errors import ConfigError

DEFAULT_BLOCKS = (1, 1, 1, 1)


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


__all__ = ["DEFAULT_BLOCKS", "keep_blocks", "parse_blocks", "check_blocks"]
