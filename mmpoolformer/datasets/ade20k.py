import os.path as osp

import numpy as np

from mmseg.datasets import ADE20KDataset, BaseSegDataset
from PIL import Image

from mmpoolformer.errors import DatasetError
from mmpoolformer.registry import DATASETS


def check_label_maps(data_list):
    """Every image has a label map of its size, else DatasetError naming the file.

    Only file headers are read, so this costs seconds on ADE20K.
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
    return data_list


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


@DATASETS.register_module()
class ValidatedADE20KDataset(ADE20KDataset):
    """mmseg's ADE20KDataset, checked with :func:`check_label_maps` while loading."""

    def load_data_list(self):
        return check_label_maps(super().load_data_list())


@DATASETS.register_module()
class ValidatedSegDataset(BaseSegDataset):
    """mmseg's BaseSegDataset (any classes, given in ``metainfo``), checked with
    :func:`check_label_maps` while loading."""

    def load_data_list(self):
        return check_label_maps(super().load_data_list())
