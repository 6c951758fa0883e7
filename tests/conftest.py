import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))  # the analytic helper module


@pytest.fixture(autouse=True)
def _deterministic():
    torch.manual_seed(0)
    torch.set_num_threads(2)
    yield


def randomize_(module: torch.nn.Module, seed: int = 1) -> torch.nn.Module:
    """Give every parameter and BatchNorm statistic distinct random values, so that any
    misplaced channel changes outputs (default BN values would hide it)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in module.state_dict().items():
            if t.is_floating_point():
                values = torch.rand(t.shape, generator=g)
                t.copy_(values + 0.5 if name.endswith("running_var") else (values - 0.5) * 0.2
                        if "conv" in name or "downsample.0" in name else values - 0.5)
    return module
