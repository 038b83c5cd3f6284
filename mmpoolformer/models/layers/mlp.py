"""The channel MLP (two 1x1 convolutions) and its fused CPU inference kernel.

``ConvMlp`` is the plain module: training, and inference on any device, run it.
``OneDNNConvMlp`` is the same module with oneDNN's fused pointwise convolutions
(``torch.ops.mkldnn._convolution_pointwise``, the ops torch.compile's CPU backend
emits) for inference on CPU in channels_last. The backbone chooses between them
once, whenever it is put in train or eval mode (:func:`use_onednn_mlps`), not on
every call.
"""
from typing import Optional

import torch
import torch.nn as nn

from .activations import build_act

# None where this PyTorch build has no oneDNN.
_ONEDNN = getattr(getattr(torch.ops, 'mkldnn', None), '_convolution_pointwise', None) \
    if torch.backends.mkldnn.is_available() else None
_1x1 = ([0, 0], [1, 1], [1, 1], 1)  # padding, stride, dilation, groups


def onednn_supports(dtype: torch.dtype) -> bool:
    """Whether this CPU runs oneDNN's fused convolutions in ``dtype``.

    fp32 runs everywhere; bf16 needs AVX-512 (BW, VL, DQ) or AVX-NE-CONVERT,
    and fp16 AVX-512 FP16 or AMX. Asked of oneDNN itself, not of /proc/cpuinfo.
    """
    if dtype == torch.bfloat16:
        return torch.ops.mkldnn._is_mkldnn_bf16_supported()
    if dtype == torch.float16:
        return torch.ops.mkldnn._is_mkldnn_fp16_supported()
    return dtype == torch.float32


class ConvMlp(nn.Module):
    """Channel MLP as two 1x1 convolutions; ``residual``, when given, is added to
    the output (the folded PoolFormer block passes its residual here)."""

    def __init__(self, dim: int, hidden_dim: int, act_cfg: dict,
                 drop_rate: float = 0., bias: bool = True):
        super().__init__()
        self.fc1 = nn.Conv2d(dim, hidden_dim, 1, bias=bias)
        self.act = build_act(act_cfg)
        self.fc2 = nn.Conv2d(hidden_dim, dim, 1, bias=bias)
        self.drop = nn.Dropout(drop_rate)

    def forward(self, x, residual: Optional[torch.Tensor] = None):
        x = self.drop(self.fc2(self.drop(self.act(self.fc1(x)))))
        return x if residual is None else x + residual


class OneDNNConvMlp(ConvMlp):
    """ConvMlp for inference on CPU in channels_last: fc1 and an exact GELU run as
    one oneDNN convolution (GELU's erf is about a fifth of PoolFormer's eager time
    when it is a separate pass), and the residual is added inside fc2. Same math;
    float rounding differs by ~1e-6 relative.

    Same parameters, buffers and state-dict keys as ConvMlp: only the class
    differs. Each call still checks what can change without a train()/eval()
    call, and runs ConvMlp's plain forward where oneDNN cannot: autograd on
    (Grad-CAM in eval mode), autocast, a model moved off the CPU after eval(), an
    NCHW input (``channels_last_eval`` off), or a dtype this CPU's oneDNN lacks.
    """

    def forward(self, x, residual: Optional[torch.Tensor] = None):
        if not self._fusable(x):
            return super().forward(x, residual)
        if type(self.act) is nn.GELU and self.act.approximate == 'none':
            x = _ONEDNN(x, self.fc1.weight, self.fc1.bias, *_1x1, 'gelu', [], 'none')
        else:
            x = self.act(self.fc1(x))
        if residual is None:
            return self.fc2(x)
        return _ONEDNN.binary(x, residual, self.fc2.weight, self.fc2.bias, *_1x1,
                              'add', None, None, [], None)

    def _fusable(self, x: torch.Tensor) -> bool:
        return (not self.training and x.device.type == 'cpu'
                and x.dtype == self.fc1.weight.dtype and not torch.is_grad_enabled()
                and not torch.is_autocast_enabled('cpu')
                and x.is_contiguous(memory_format=torch.channels_last)
                and onednn_supports(x.dtype))


def use_onednn_mlps(module: nn.Module, enabled: bool):
    """Make every ConvMlp inside ``module`` a OneDNNConvMlp (``enabled`` and this
    PyTorch has oneDNN) or a plain ConvMlp again.

    The class of each module is changed in place, as ``torch.nn.utils.parametrize``
    does, so that modules keep their identity, parameters, hooks and state-dict
    keys; the classes differ only in ``forward``. Subclasses of ConvMlp are left
    as they are.
    """
    cls = OneDNNConvMlp if enabled and _ONEDNN is not None else ConvMlp
    for mlp in module.modules():
        if type(mlp) in (ConvMlp, OneDNNConvMlp):
            mlp.__class__ = cls
