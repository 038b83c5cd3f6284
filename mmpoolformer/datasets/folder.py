from mmpretrain.datasets import CustomDataset, ImageNet

from mmpoolformer.registry import DATASETS
from mmpoolformer.utils.errors import DatasetError

from .transforms import ChecksImages


class _NamesAnEmptySet:
    """Reports an empty data set as a DatasetError naming the folder, instead of
    a RuntimeError deep in the Runner."""

    def load_data_list(self):
        try:
            data_list = super().load_data_list()
        except RuntimeError as err:
            raise DatasetError(f'empty data set: {err}') from None
        if not data_list:
            raise DatasetError(f'empty data set: no images in {self.img_prefix}')
        return data_list


@DATASETS.register_module()
class ValidatedImageFolder(_NamesAnEmptySet, ChecksImages, CustomDataset):
    """mmpretrain's CustomDataset (``<root>/<split>/<class>/<image>`` or an
    annotation list) that names an empty data set and checks its images as they
    load (``bad_images``, :class:`~mmpoolformer.datasets.transforms.ChecksImages`).

    ``split`` names the sub-folder of ``data_root`` (``'train'``, ``'val'``) when
    ``data_prefix`` is not given, as mmpretrain's ImageNet does, so a config that
    inherits an ImageNet one only swaps the dataset type and ``data_root``.
    """

    def __init__(self, *args, split: str = '', data_prefix='', **kwargs):
        super().__init__(*args, data_prefix=data_prefix or split, **kwargs)


@DATASETS.register_module()
class ValidatedImageNet(_NamesAnEmptySet, ChecksImages, ImageNet):
    """mmpretrain's ImageNet (its 1000 class names, ``split``, ``meta/*.txt``
    annotation lists) that names an empty data set and checks its images as
    they load (``bad_images``)."""
