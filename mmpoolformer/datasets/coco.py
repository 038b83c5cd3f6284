import json
import os.path as osp

from mmdet.datasets import CocoDataset
from mmdet.datasets.api_wrappers import COCO

from mmpoolformer.registry import DATASETS
from mmpoolformer.utils.errors import DatasetError, closest_name_hint
from mmpoolformer.utils.rank_zero import run_on_rank_zero

from .transforms import ChecksImages


def check_image_files(ann_file: str, data_list: list):
    """Raise DatasetError on the first image whose file is not there."""
    for info in data_list:
        if not osp.isfile(info['img_path']):
            raise DatasetError(f'{ann_file}: image {info["img_id"]} file not found: '
                               f'{info["img_path"]}')


def check_coco_ids(content: dict, ann_file: str):
    """Raise DatasetError on the first annotation whose image or category id is
    not in the file's "images" / "categories"."""
    image_ids = {img['id'] for img in content.get('images', [])}
    category_ids = {cat['id'] for cat in content.get('categories', [])}
    for ann in content.get('annotations', []):
        if ann['image_id'] not in image_ids:
            raise DatasetError(f'{ann_file}: annotation {ann.get("id")} points at image_id '
                               f'{ann["image_id"]}, which is not in "images"')
        if ann['category_id'] not in category_ids:
            raise DatasetError(f'{ann_file}: annotation {ann.get("id")} has category_id '
                               f'{ann["category_id"]}, not one of the categories '
                               f'{sorted(category_ids)}')


class CheckedCOCO(COCO):
    """mmdet's COCO API that reports a json that does not parse, an annotation
    that points outside "images" / "categories", and a class name (the config's
    metainfo) that no category has, naming the file."""

    def __init__(self, annotation_file=None):
        self.annotation_file = annotation_file
        try:
            super().__init__(annotation_file)
        except json.JSONDecodeError as err:
            raise DatasetError(f'{annotation_file}: not valid JSON ({err})') from None
        check_coco_ids(self.dataset, annotation_file)

    # mmdet's COCO.get_cat_ids signature, lists as defaults included (never mutated).
    def get_cat_ids(self, cat_names=[], sup_names=[], cat_ids=[]):  # noqa: B006
        names = [cat.get('name') for cat in self.dataset.get('categories', [])]
        for name in cat_names or ():
            if name not in names:
                raise DatasetError(f'{self.annotation_file}: metainfo class {name!r} is not '
                                   f'the name of a category; the categories are {names}'
                                   f'{closest_name_hint(name, names)}')
        return super().get_cat_ids(cat_names, sup_names, cat_ids)


@DATASETS.register_module()
class ValidatedCocoDataset(ChecksImages, CocoDataset):
    """mmdet's CocoDataset that checks its annotation file while loading it.

    An annotation pointing at a missing image, a category id outside the
    categories, an image file that is not there, or a json that does not parse
    is reported by name instead of failing somewhere in a data worker. In a
    distributed run rank 0 alone looks for the image files (118k on COCO) and
    the other ranks get its verdict. Images are checked as they load
    (:class:`~mmpoolformer.datasets.transforms.ChecksImages`: ``bad_images``).
    """
    COCOAPI = CheckedCOCO

    def load_data_list(self):
        data_list = super().load_data_list()
        if not data_list:
            raise DatasetError(f'{self.ann_file}: the data set is empty (no images)')
        if self.backend_args is None:  # local files: check that the images are there
            run_on_rank_zero(check_image_files, self.ann_file, data_list)
        return data_list
