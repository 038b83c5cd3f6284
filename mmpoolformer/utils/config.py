"""Reading OpenMMLab configs and what is built from them."""
from collections.abc import Iterator
from typing import Any


def iter_datasets(dataset, where: str = 'dataset') -> Iterator[tuple[str, Any]]:
    """``(where, data set)`` for each data set inside dataset wrappers, depth first.

    ``dataset`` is a data set config (a dict) or a built data set; wrappers are
    followed as mmengine, mmdet and mmpretrain write them: ``dataset`` holds the
    wrapped one (RepeatDataset, ClassBalancedDataset, MultiImageMixDataset...),
    ``datasets`` a list of them (ConcatDataset). ``where`` is the config key of
    each yielded data set, starting from the given one (``'train_dataloader.dataset'``
    gives ``'train_dataloader.dataset.datasets.1'``). Yields the objects themselves,
    not copies; nothing for None.
    """
    if dataset is None:
        return
    if isinstance(dataset, dict):
        inner, parts = dataset.get('dataset'), dataset.get('datasets')
        inner = inner if isinstance(inner, dict) else None  # a leaf's own `dataset` option
    else:
        inner, parts = getattr(dataset, 'dataset', None), getattr(dataset, 'datasets', None)
    if isinstance(parts, (list, tuple)):
        for i, each in enumerate(parts):
            yield from iter_datasets(each, f'{where}.datasets.{i}')
    elif inner is not None:
        yield from iter_datasets(inner, f'{where}.dataset')
    else:
        yield where, dataset
