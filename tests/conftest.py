import os
import sys

import pytest
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
torch.set_num_threads(os.cpu_count() or 1)


def randomize_(module: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Give every parameter distinct random values, so that parity checks cannot
    pass through default initialisations (layer scale 1e-5, GN weight 1)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in module.named_parameters():
            param.copy_(torch.randn(param.shape, generator=gen) * 0.1
                        + (1.0 if 'norm' in name and name.endswith('weight') else 0.0))
    return module


def build_from_config(path, **overrides):
    from mmpoolformer.apis import build_model
    return build_model(os.path.join(ROOT, path), overrides or None).eval()


@pytest.fixture
def randomize():
    return randomize_
