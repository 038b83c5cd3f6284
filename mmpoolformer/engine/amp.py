"""bf16 mixed precision on the CPU, for ``tools/train.py --amp`` without CUDA.

mmengine's ``AmpOptimWrapper`` asserts a GPU (it owns a ``torch.cuda.amp``
GradScaler); bf16 keeps fp32's exponent range, so no loss scaling is needed and
the plain ``OptimWrapper`` with a bf16 autocast context around forward and loss
is the whole of it.
"""
from contextlib import contextmanager

import torch
from mmengine.optim import OptimWrapper
from mmengine.runner.amp import autocast

from mmpoolformer.registry import OPTIM_WRAPPERS


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes in bf16 natively (AVX-512 BF16 or AMX-BF16).

    Without them oneDNN still runs bf16 on AVX-512 by converting to fp32, which
    saves nothing, so ``--amp`` is refused there."""
    caps = torch.cpu.get_capabilities()
    return bool(caps.get('avx512_bf16') or caps.get('amx_bf16'))


@OPTIM_WRAPPERS.register_module()
class CPUBf16OptimWrapper(OptimWrapper):
    """``OptimWrapper`` whose forward and loss run under ``torch.autocast('cpu',
    dtype=torch.bfloat16)``; parameters, gradients and optimizer state stay fp32."""

    @contextmanager
    def optim_context(self, model: torch.nn.Module):
        with super().optim_context(model), autocast(device_type='cpu', dtype=torch.bfloat16):
            yield
