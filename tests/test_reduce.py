import pytest
import torch

from rrrnet.backbone import resnet
from rrrnet.errors import ConfigError
from rrrnet.reduce import keep_blocks, parse_blocks
from conftest import randomize_


def test_keep_blocks_copies_the_first_blocks_of_each_stage():
    template = randomize_(resnet("resnet50"))
    reduced = keep_blocks(template, (1, 2, 3, 1))
    assert reduced.blocks == (1, 2, 3, 1)
    assert len(reduced.layer3) == 3 and len(template.layer3) == 6
    src = template.state_dict()
    for key, value in reduced.state_dict().items():
        assert torch.equal(value, src[key]), key
    assert "layer3.3.conv1.weight" not in reduced.state_dict()
    # the template is untouched and still whole
    assert len(template.layer3) == 6


def test_full_configuration_reproduces_the_template():
    template = randomize_(resnet("resnet18")).eval()
    same = keep_blocks(template, (2, 2, 2, 2)).eval()
    x = torch.randn(2, 3, 64, 64)
    assert torch.equal(template(x), same(x))


@pytest.mark.parametrize("blocks", [(0, 1, 1, 1), (1, 1, 1, 3), (1, 1, 1)])
def test_impossible_reductions_are_refused_clearly(blocks):
    with pytest.raises(ConfigError, match="1 to|four counts"):
        keep_blocks(resnet("resnet18"), blocks)


def test_parse_blocks_accepts_the_paper_notations():
    assert parse_blocks("1,1,1,1") == parse_blocks("1.1.1.1") == parse_blocks("1-1-1-1") == (1, 1, 1, 1)
    assert parse_blocks([3, 8, 36, 3]) == (3, 8, 36, 3)
    with pytest.raises(ConfigError):
        parse_blocks("one,two")


def test_forward_order_fills_stages_in_turn():
    from rrrnet.reduce import forward_order
    path = forward_order((3, 8, 36, 3))
    assert path[:4] == [(1, 1, 1, 1), (2, 1, 1, 1), (3, 1, 1, 1), (3, 2, 1, 1)]
    assert path[-1] == (3, 8, 36, 3) and len(path) == 1 + 2 + 7 + 35 + 2  # 46 additions: 47 trainings
    assert all(sum(b) - sum(a) == 1 for a, b in zip(path, path[1:]))


def test_forward_order_cyclic():
    from rrrnet.reduce import forward_order
    path = forward_order((3, 2, 3, 1), order="cyclic")
    assert path == [(1, 1, 1, 1), (2, 1, 1, 1), (2, 2, 1, 1), (2, 2, 2, 1), (3, 2, 2, 1),
                    (3, 2, 3, 1)]
