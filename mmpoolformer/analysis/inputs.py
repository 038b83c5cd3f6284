"""What the benchmark, the complexity count, CAM and the tests feed models with.

``TensorForward`` is the one "tensor output of any model" wrapper (logits of a
classifier, whatever library built it); ``randomize_`` gives a model distinct
random weights; ``dense_batch`` builds a preprocessed detector or segmentor batch.
"""
from typing import Optional, Sequence, Tuple

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


def randomize_(module: torch.nn.Module, seed: int = 0, std: float = 0.1) -> torch.nn.Module:
    """Give every parameter distinct random values (norm weights around 1), so that
    parity checks cannot pass through default initialisations (layer scale 1e-5,
    norm weight 1). In place; returns the module."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in module.named_parameters():
            param.copy_(torch.randn(param.shape, generator=gen) * std
                        + (1.0 if 'norm' in name and name.endswith('weight') else 0.0))
    return module


def dense_batch(model: torch.nn.Module, sizes: Sequence[Tuple[int, int]], train: bool = False,
                seed: int = 0) -> dict:
    """A preprocessed batch for a detector or segmentor: random uint8 images of
    these (h, w) sizes with the metainfo their steps read, and with ``train``
    random ground truth (3 boxes with masks of 80 classes; 150-class label maps)."""
    gen = torch.Generator().manual_seed(seed)
    if type(model).__module__.startswith('mmdet'):
        if train:
            from mmdet.testing import demo_mm_inputs
            packed = demo_mm_inputs(len(sizes), [(3, h, w) for h, w in sizes],
                                    num_items=[3] * len(sizes), num_classes=80, with_mask=True)
            return model.data_preprocessor(packed, True)
        from mmdet.structures import DetDataSample
        samples = [DetDataSample(metainfo=dict(img_shape=(h, w), ori_shape=(h, w),
                                               scale_factor=(1.0, 1.0))) for h, w in sizes]
    else:
        from mmengine.structures import PixelData
        from mmseg.structures import SegDataSample
        samples = []
        for h, w in sizes:
            sample = SegDataSample(metainfo=dict(img_shape=(h, w), ori_shape=(h, w)))
            if train:
                sample.set_metainfo(dict(pad_shape=(h, w)))
                sample.gt_sem_seg = PixelData(
                    data=torch.randint(0, 150, (1, h, w), generator=gen))
            samples.append(sample)
    images = [torch.randint(0, 255, (3, h, w), dtype=torch.uint8, generator=gen)
              for h, w in sizes]
    return model.data_preprocessor(dict(inputs=images, data_samples=samples), train)
