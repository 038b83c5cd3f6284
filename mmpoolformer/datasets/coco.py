import json
import os.path as osp

from mmdet.datasets import CocoDataset

from mmpoolformer.utils.errors import DatasetError, closest_name_hint
from mmpoolformer.registry import DATASETS


def check_coco(content: dict, ann_file: str, img_dir: str = None, classes=None):
    """Raise DatasetError on the first annotation or image that does not fit, or
    on a class of ``classes`` (the config's metainfo) that no category is named."""
    image_ids = {img['id'] for img in content.get('images', [])}
    category_ids = {cat['id'] for cat in content.get('categories', [])}
    names = [cat.get('name') for cat in content.get('categories', [])]
    for name in classes or ():
        if name not in names:
            raise DatasetError(f'{ann_file}: metainfo class {name!r} is not the name of a '
                               f'category; the categories are {names}'
                               f'{closest_name_hint(name, names)}')
    for ann in content.get('annotations', []):
        if ann['image_id'] not in image_ids:
            raise DatasetError(f'{ann_file}: annotation {ann.get("id")} points at image_id '
                               f'{ann["image_id"]}, which is not in "images"')
        if ann['category_id'] not in category_ids:
            raise DatasetError(f'{ann_file}: annotation {ann.get("id")} has category_id '
                               f'{ann["category_id"]}, not one of the categories '
                               f'{sorted(category_ids)}')
    if img_dir is not None:
        for img in content.get('images', []):
            path = osp.join(img_dir, img['file_name'])
            if not osp.isfile(path):
                raise DatasetError(f'{ann_file}: image {img["id"]} file not found: {path}')


@DATASETS.register_module()
class ValidatedCocoDataset(CocoDataset):
    """mmdet's CocoDataset that checks its annotation file while loading it.

    An annotation pointing at a missing image, a category id outside the
    categories, an image file that is not there, or a json that does not parse
    is reported by name instead of failing somewhere in a data worker.
    """

    def load_data_list(self):
        coco_api = self.COCOAPI

        def load_and_check(path):
            try:
                coco = coco_api(path)
            except json.JSONDecodeError as err:
                raise DatasetError(f'{self.ann_file}: not valid JSON ({err})') from None
            local = self.backend_args is None
            check_coco(coco.dataset, self.ann_file,
                       self.data_prefix.get('img', '') if local else None,
                       self.metainfo['classes'])
            return coco

        self.COCOAPI = load_and_check  # shadows the class attribute for one load
        try:
            data_list = super().load_data_list()
        finally:
            del self.COCOAPI
        if not data_list:
            raise DatasetError(f'{self.ann_file}: the data set is empty (no images)')
        return data_list
