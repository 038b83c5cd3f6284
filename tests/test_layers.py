"""The layers below the model (mmpoolformer/models/layers/) on their own."""
import pytest
import torch

from mmpoolformer.models.layers import SquaredReLU, StarReLU


@pytest.mark.parametrize('act', [StarReLU, SquaredReLU])
def test_squared_activations_do_not_overflow_in_fp16(act):
    """fp16's largest value is 65504: 300**2 = 90000 would be inf if squared in fp16."""
    act = act()
    x = torch.tensor([300., -5., 2.], dtype=torch.float16)
    for autocast in (False, True):
        with torch.autocast('cpu', dtype=torch.float16, enabled=autocast):
            out = act(x)
        assert torch.isfinite(out).all(), (autocast, out)
        assert out.tolist() == [90000., 0., 4.]  # relu(x)**2, with StarReLU's s=1, b=0


def test_squared_activations_keep_bf16_and_fp32():
    x = torch.tensor([300., -5.])
    assert SquaredReLU()(x).dtype == torch.float32
    assert SquaredReLU()(x.bfloat16()).dtype == torch.bfloat16
