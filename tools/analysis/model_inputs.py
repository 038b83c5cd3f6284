"""What the benchmark and the tests feed models with: ``randomize_`` gives a model
distinct random weights; ``dense_batch`` builds a preprocessed detector or
segmentor batch."""
from collections.abc import Sequence

import torch


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


def dense_batch(model: torch.nn.Module, sizes: Sequence[tuple[int, int]], train: bool = False,
                seed: int = 0, preprocessed: bool = True) -> dict:
    """A preprocessed batch for a detector or segmentor: random uint8 images of
    these (h, w) sizes with the metainfo their steps read, and with ``train``
    random ground truth (3 boxes with masks of 80 classes; 150-class label maps).
    ``preprocessed=False`` returns the batch before the model's data preprocessor."""
    gen = torch.Generator().manual_seed(seed)
    if type(model).__module__.startswith('mmdet'):
        if train:
            from mmdet.testing import demo_mm_inputs
            packed = demo_mm_inputs(len(sizes), [(3, h, w) for h, w in sizes],
                                    num_items=[3] * len(sizes), num_classes=80, with_mask=True)
            return model.data_preprocessor(packed, True) if preprocessed else packed
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
    packed = dict(inputs=images, data_samples=samples)
    return model.data_preprocessor(packed, train) if preprocessed else packed
