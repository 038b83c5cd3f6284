"""The one "tensor output of any model" wrapper, for what traces or differentiates a
model without its data samples: Grad-CAM, fvcore's complexity count, benchmarks."""
from typing import Optional

import torch


class TensorForward(torch.nn.Module):
    """``model(x)`` -> its plain tensor output: ``mode='tensor'`` for an OpenMMLab
    model (a classifier's logits), the model's own forward for any other (timm).

    Args:
        model (nn.Module): The model to wrap.
        data_samples (list, optional): Passed to an OpenMMLab model's forward
            (two-stage detectors read image shapes from them).
        flatten (bool): Return a flat tuple of every tensor in the (nested)
            output, as fvcore's tracer needs. Defaults to False.
    """

    def __init__(self, model: torch.nn.Module, data_samples: Optional[list] = None,
                 flatten: bool = False):
        super().__init__()
        self.model = model
        self.data_samples = data_samples
        self.flatten = flatten

    def forward(self, x):
        if not hasattr(self.model, 'data_preprocessor'):
            return self.model(x)
        outputs = self.model(x, self.data_samples, mode='tensor')
        return _flat_tensors(outputs) if self.flatten else outputs


def _flat_tensors(outputs) -> tuple:
    flat, stack = [], [outputs]
    while stack:
        item = stack.pop()
        if isinstance(item, torch.Tensor):
            flat.append(item)
        elif isinstance(item, (list, tuple)):
            stack.extend(item)
        elif isinstance(item, dict):
            stack.extend(item.values())
    return tuple(flat)
