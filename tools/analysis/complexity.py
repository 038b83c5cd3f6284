"""Model size and complexity, counted the way the PoolFormer paper does (fvcore).
Shared by get_flops.py, make_metafiles.py and benchmark.py of this folder."""
import math

import torch

from mmpoolformer.utils.tensor_forward import TensorForward

# Input sizes the papers count at, by toolbox (height, width).
DEFAULT_SHAPES = {'mmpretrain': (224, 224), 'mmdet': (800, 1280), 'mmseg': (512, 512)}


def _tensor_forward(model, shape) -> TensorForward:
    """The model's tensor forward, flattened for fvcore's tracer."""
    data_samples = None
    if type(model).__module__.startswith('mmdet'):
        # Two-stage detectors read image shapes from the samples in their RPN.
        from mmdet.structures import DetDataSample
        h, w = shape
        data_samples = [DetDataSample(metainfo=dict(
            img_shape=(h, w), ori_shape=(h, w), pad_shape=(h, w),
            batch_input_shape=(h, w), scale_factor=(1.0, 1.0)))]
    return TensorForward(model, data_samples, flatten=True)


def _attention_macs(inputs, outputs) -> int:
    """fvcore has no rule for fused attention: count its two matmuls,
    Q @ K^T and A @ V, as the explicit form would be counted."""
    from fvcore.nn.jit_handles import get_shape
    *batch, n, d = get_shape(inputs[0])
    m, dv = get_shape(inputs[1])[-2], get_shape(inputs[2])[-1]
    return math.prod(batch) * n * m * (d + dv)


def count_parameters(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def count_macs(model: torch.nn.Module, shape: tuple[int, int] = (224, 224)) -> int:
    """Multiply-accumulates of one forward pass on a 1x3xHxW input (fvcore)."""
    from fvcore.nn import FlopCountAnalysis
    was_training = model.training
    model.eval()
    analysis = FlopCountAnalysis(_tensor_forward(model, shape), torch.randn(1, 3, *shape))
    analysis.set_op_handle('aten::scaled_dot_product_attention', _attention_macs)
    analysis.unsupported_ops_warnings(False)
    analysis.uncalled_modules_warnings(False)
    try:
        return int(analysis.total())
    finally:
        model.train(was_training)
