import os.path as osp

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
