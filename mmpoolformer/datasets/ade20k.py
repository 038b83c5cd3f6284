import os.path as osp

import mmcv
import numpy as np
from mmengine import fileio
from mmseg.datasets import ADE20KDataset, BaseSegDataset
from mmseg.datasets.transforms import LoadAnnotations
from PIL import Image

from mmpoolformer.registry import DATASETS, TRANSFORMS
from mmpoolformer.utils.errors import ConfigError, DatasetError
from mmpoolformer.utils.rank_zero import run_on_rank_zero

from .transforms import ChecksImages


def check_label_maps(data_list) -> None:
    """Every image has a label map of its size, else DatasetError naming the file.

    Only file headers are read, so this costs seconds on ADE20K. In a distributed
    run rank 0 alone reads them (:func:`checked_on_rank_zero`).
    """
    if not data_list:
        raise DatasetError('the segmentation data set is empty: no images found')
    for info in data_list:
        img, seg = info['img_path'], info.get('seg_map_path')
        if seg is None:  # test mode without annotations
            continue
        if not osp.isfile(seg):
            raise DatasetError(f'{img}: no label map (expected {seg})')
        with Image.open(img) as im_img, Image.open(seg) as im_seg:
            if im_img.size != im_seg.size:
                raise DatasetError(
                    f'{seg}: label map is {im_seg.size[0]}x{im_seg.size[1]} but its image '
                    f'{img} is {im_img.size[0]}x{im_img.size[1]} (width x height)')


def check_label_values(seg_map_path: str, labels: np.ndarray, num_classes: int,
                       reduce_zero_label: bool = False, ignore_index: int = 255) -> None:
    """Raise DatasetError naming the file and the value when ``labels`` (a label
    map as stored on disk) holds a value that is neither a class nor ignore.

    Raw values are checked: with ``reduce_zero_label`` the classes are stored as
    1..num_classes and 0 means ignore; without it they are 0..num_classes-1.
    ``ignore_index`` is valid in both. Never lets a bad value become ignore silently.
    """
    values = np.unique(labels)
    low, high = (1, num_classes) if reduce_zero_label else (0, num_classes - 1)
    valid = (values >= low) & (values <= high) | (values == ignore_index)
    if reduce_zero_label:
        valid |= values == 0
    if not valid.all():
        bad = values[~valid].tolist()
        raise DatasetError(
            f'{seg_map_path}: label value(s) {bad} outside the {num_classes} classes '
            f'(stored values {low}..{high}'
            f'{", 0 = ignore" if reduce_zero_label else ""}, {ignore_index} = ignore; '
            f'reduce_zero_label={reduce_zero_label})')


def checked_on_rank_zero(data_list):
    """``data_list`` once :func:`check_label_maps` passed on rank 0; the other ranks
    wait for its verdict (and raise its error)."""
    run_on_rank_zero(check_label_maps, data_list)
    return data_list


def add_label_range(dataset: BaseSegDataset, data_list):
    """Give each sample what :class:`LoadSegAnnotationsChecked` checks its label
    values against: the number of classes as stored on disk (the data set
    class's own list when ``metainfo`` picks a subset of it) and ``ignore_index``."""
    classes = dataset.metainfo.get('classes')
    if not classes:
        raise ConfigError(f'{type(dataset).__name__} in {dataset.data_root or "."}: '
                          'no classes; set metainfo=dict(classes=(...)) on the data set')
    num_classes = len(dataset.label_map) if dataset.label_map else len(classes)
    for info in data_list:
        info.update(num_classes=num_classes, ignore_index=dataset.ignore_index)
    return data_list


@DATASETS.register_module()
class ValidatedADE20KDataset(ChecksImages, ADE20KDataset):
    """mmseg's ADE20KDataset, checked with :func:`check_label_maps` while loading;
    images are checked as they load (``bad_images``, :class:`ChecksImages`)."""

    def load_data_list(self):
        return add_label_range(self, checked_on_rank_zero(super().load_data_list()))


@DATASETS.register_module()
class ValidatedSegDataset(ChecksImages, BaseSegDataset):
    """mmseg's BaseSegDataset (any classes, given in ``metainfo``), checked with
    :func:`check_label_maps` while loading; images are checked as they load
    (``bad_images``, :class:`ChecksImages`)."""

    def load_data_list(self):
        return add_label_range(self, checked_on_rank_zero(super().load_data_list()))


@TRANSFORMS.register_module()
class LoadSegAnnotationsChecked(LoadAnnotations):
    """mmseg's ``LoadAnnotations`` that first checks the label map's values as
    stored on disk (:func:`check_label_values`): a value that is neither a class
    nor ignore is a DatasetError naming the file and the value, where mmseg would
    wrap it into uint8 or turn it into ignore without a word.

    Takes ``reduce_zero_label`` from the data set, which must be one of ours
    (``ValidatedSegDataset``, ``ValidatedADE20KDataset``: they state the classes).
    Without ``seg_map_path`` (an inferencer's test pipeline) it does nothing.
    """

    def _load_seg_map(self, results: dict) -> None:
        path = results.get('seg_map_path')
        if path is None:
            return
        if 'num_classes' not in results:
            raise ConfigError(f'{type(self).__name__} needs its data set to state the '
                              'classes: use mmpoolformer.ValidatedSegDataset or '
                              'mmpoolformer.ValidatedADE20KDataset')
        raw = mmcv.imfrombytes(fileio.get(path, backend_args=self.backend_args),
                               flag='unchanged', backend=self.imdecode_backend)
        check_label_values(path, raw, results['num_classes'], results['reduce_zero_label'],
                           results['ignore_index'])
        super()._load_seg_map(results)
