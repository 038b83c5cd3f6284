"""Check a config's data sets before a long run (``tools/data/check_dataset.py``).

Each split (train, val, test) is built from the config as the Runner builds it
(``DATASETS.build`` in the config's default scope; only ``serialize_data`` is
switched off, see :func:`unserialized`) and checked in this order;
the first problem stops the check with a DatasetError that names the file, key
or value:

1. the split builds and is not empty;
2. its classes agree with every class count of the model (the heads'
   ``num_classes``, mmpretrain's ``data_preprocessor.num_classes``);
3. every image and label map it lists exists, and every class folder of an
   image-folder set holds an image;
4. every label is one of the classes: classification labels, COCO category ids
   and box labels, every value of every segmentation label map (each decoded,
   single-channel); every COCO box lies inside its image;
5. a sample of the images decodes, or with ``decode_workers`` every image, in
   that many processes; each decoded image has the size of its annotations
   (COCO's ``width`` and ``height``, the size of its label map).

The evaluators' ``ann_file`` must exist as well: a missing one would only show
after the first training epoch.
"""
import copy
import os.path as osp
from typing import Callable, Optional

import numpy as np
from mmengine.config import Config
from mmengine.fileio import load
from mmengine.registry import DATASETS, init_default_scope
from PIL import Image

from mmpoolformer.apis import load_config, model_heads
from mmpoolformer.datasets.ade20k import check_label_values
from mmpoolformer.datasets.image_check import decode_all, decode_samples
from mmpoolformer.utils.config import iter_datasets
from mmpoolformer.utils.errors import DatasetError

SPLITS = ('train', 'val', 'test')


def model_class_counts(cfg: Config) -> dict[str, int]:
    """Every class count of the config's model, by config key."""
    counts = {f'{key}.num_classes': head['num_classes'] for key, head in model_heads(cfg.model)}
    preprocessor = cfg.get('data_preprocessor') or {}  # mmpretrain's top-level one
    if 'num_classes' in preprocessor:
        counts['data_preprocessor.num_classes'] = preprocessor['num_classes']
    return counts


def unserialized(dataset_cfg):
    """A copy with ``serialize_data=False`` on the data sets inside wrappers: the
    checks read ``data_list`` as it is, and an empty set stays an empty list
    (mmengine fails to serialize one with 'need at least one array to concatenate')."""
    dataset_cfg = copy.deepcopy(dataset_cfg)
    for _, leaf in iter_datasets(dataset_cfg):
        leaf['serialize_data'] = False
    return dataset_cfg


def describe(dataset_cfg) -> str:
    """The type and paths of a data set config (not a wrapper), for messages."""
    keys = ('data_root', 'ann_file', 'data_prefix', 'split')
    return ', '.join([str(dataset_cfg.get('type'))] +
                     [f'{k}={dataset_cfg[k]}' for k in keys if dataset_cfg.get(k)])


def build_split(cfg: Config, split: str):
    """The split's data set, or None when the config has no such loader."""
    loader = cfg.get(f'{split}_dataloader')
    if not loader:
        return None
    try:
        return DATASETS.build(unserialized(loader.dataset))
    except Exception as err:  # any failure to load is a problem of this split's data
        message = str(err).strip().splitlines()[-1] if str(err).strip() else ''
        datasets = '; '.join(describe(leaf) for _, leaf in iter_datasets(loader.dataset))
        raise DatasetError(f'{split} set ({datasets}) does not load: '
                           f'{type(err).__name__}: {message}') from None


def check_class_count(split: str, classes, counts: dict[str, int]):
    for key, value in counts.items():
        if value != len(classes):
            raise DatasetError(f'{split} set has {len(classes)} classes but the model has '
                               f'{key}={value}')


def check_files_exist(split: str, dataset):
    missing, total = [], 0
    for info in dataset.data_list:
        for key in ('img_path', 'seg_map_path'):
            if isinstance(info.get(key), str):
                total += 1
                if not osp.isfile(info[key]):
                    missing.append(info[key])
    if missing:
        more = f' (and {len(missing) - 1} more of {total} files)' if len(missing) > 1 else ''
        raise DatasetError(f'{split} set: file not found: {missing[0]}{more}')


def check_class_folders(split: str, dataset):
    """Every class folder of an image-folder set (mmpretrain's CustomDataset and
    ImageNet without an annotation list) holds an image: mmpretrain only logs a
    warning for an empty one, and its class is then never seen."""
    folder_to_idx = getattr(dataset, 'folder_to_idx', None)  # set when folders were listed
    if not folder_to_idx:
        return
    labels = {info.get('gt_label') for info in dataset.data_list}
    empty = [folder for folder, index in sorted(folder_to_idx.items()) if index not in labels]
    if empty:
        more = f' (and {len(empty) - 1} more)' if len(empty) > 1 else ''
        extensions = ', '.join(sorted(getattr(dataset, 'extensions', ())))
        raise DatasetError(f'{split} set: class folder without images: '
                           f'{osp.join(dataset.img_prefix, empty[0])}{more} '
                           f'(no file ending in {extensions})')


def value_range(values) -> str:
    return f'{min(values)}..{max(values)}' if len(values) else 'none'


def classification_labels(split: str, dataset, num_classes: int) -> dict:
    labels = set()
    for info in dataset.data_list:
        for label in np.atleast_1d(info.get('gt_label', [])).tolist():
            if not 0 <= label < num_classes:
                source = getattr(dataset, 'ann_file', '') or 'the class folders'
                raise DatasetError(f'{split} set: {info["img_path"]} has label {label} '
                                   f'(from {source}), outside 0..{num_classes - 1} '
                                   f'({num_classes} classes)')
            labels.add(label)
    return {'labels': value_range(labels)}


def check_coco_categories(dataset, content: dict):
    """The categories of a COCO-style file are the config's classes, in order,
    and every annotation is of one of them: mmdet numbers the classes in the
    file's order and drops annotations of other categories without a word."""
    ann_file = dataset.ann_file
    names = {cat['id']: cat['name'] for cat in content.get('categories', [])}
    classes = dataset.metainfo['classes']
    in_file_order = [names[i] for i in dataset.cat_ids]  # mmdet numbers them in this order
    if in_file_order != list(classes):
        absent = [name for name in classes if name not in in_file_order]
        raise DatasetError(f'{ann_file}: ' + (
            f'classes {absent[:5]} of the config (metainfo.classes) are not among its categories'
            if absent else 'its categories list the classes of the config (metainfo.classes) '
            'in another order, so mmdet would give them the wrong labels'))
    for ann in content.get('annotations', []):
        if ann['category_id'] not in dataset.cat_ids:
            name = names.get(ann['category_id'], 'not in categories')
            raise DatasetError(f'{ann_file}: annotation {ann.get("id")} has category_id '
                               f'{ann["category_id"]} ({name!r}), which is not one of the '
                               f'{len(classes)} classes of the config')


# Pixels a box may reach past its image: float rounding of converted annotations.
BOX_TOLERANCE = 1.0


def check_coco_boxes(dataset, content: dict):
    """Every box (COCO ``bbox`` [x, y, w, h]) lies inside its image, as the file
    gives its size: mmdet keeps a box that reaches outside as it is, and drops
    one wholly outside without a word."""
    images = {img['id']: img for img in content.get('images', [])}
    for ann in content.get('annotations', []):
        img = images.get(ann.get('image_id'))
        if img is None or len(ann.get('bbox') or ()) != 4:
            continue  # not a box of a listed image: mmdet's loading deals with those
        x, y, w, h = ann['bbox']
        width, height = img['width'], img['height']
        if (min(x, y) < -BOX_TOLERANCE or x + w > width + BOX_TOLERANCE
                or y + h > height + BOX_TOLERANCE):
            path = osp.join(dataset.data_prefix.get('img', ''), img['file_name'])
            raise DatasetError(f'{dataset.ann_file}: annotation {ann.get("id")}: bbox '
                               f'[x, y, w, h] = {ann["bbox"]} reaches outside its image '
                               f'{path} ({width}x{height})')


def detection_labels(split: str, dataset, num_classes: int) -> dict:
    summary = {}
    if hasattr(dataset, 'cat_ids') and str(dataset.ann_file).endswith('.json'):
        content = load(dataset.ann_file, backend_args=getattr(dataset, 'backend_args', None))
        check_coco_categories(dataset, content)
        check_coco_boxes(dataset, content)
        summary['images in file'] = len(content.get('images', []))
    labels, count = set(), 0
    for info in dataset.data_list:
        for instance in info.get('instances', []):
            label = instance['bbox_label']
            if not 0 <= label < num_classes:
                raise DatasetError(f'{split} set: {info["img_path"]} has box label {label}, '
                                   f'outside 0..{num_classes - 1}')
            labels.add(label)
            count += 1
    summary.update({'annotations': count, 'labels': value_range(labels)})
    return summary


def segmentation_labels(split: str, dataset, num_classes: int) -> dict:
    """Every value of every label map, through check_label_values."""
    # A metainfo that picks some of the data set class's classes makes mmseg map the
    # stored values through label_map: they still range over the class's whole list.
    stored_classes = len(dataset.label_map) if dataset.label_map else num_classes
    values, count = set(), 0
    for info in dataset.data_list:
        path = info.get('seg_map_path')
        if path is None:  # test mode without annotations
            continue
        try:
            with Image.open(path) as im:
                mode, labels = im.mode, np.asarray(im)
        except (OSError, ValueError) as err:  # PIL's UnidentifiedImageError is an OSError
            raise DatasetError(f'{split} set: bad label map {path}: it cannot be decoded '
                               f'({err})') from None
        if labels.ndim != 2:  # mmseg would read it as channels of class indices
            raise DatasetError(f'{path}: label map has {labels.shape[-1]} channels (PIL mode '
                               f'{mode}); it must have one, a class index per pixel '
                               '(mode L or P)')
        check_label_values(path, labels, stored_classes, dataset.reduce_zero_label,
                           dataset.ignore_index)
        values.update(np.unique(labels).tolist())
        count += 1
    return {'label maps': count,
            'labels': f'{value_range(values)} as stored '
                      f'(reduce_zero_label={dataset.reduce_zero_label})'}


LABEL_CHECKS: dict[str, Callable] = dict(
    mmpretrain=classification_labels, mmdet=detection_labels, mmseg=segmentation_labels)


def check_split(cfg: Config, split: str, dataset, samples: int,
                workers: Optional[int] = None,
                out: Callable[[str], None] = print) -> list[dict]:
    """Run the checks on one built split; returns a summary per data set in it.
    With ``workers`` every image is decoded (in that many processes), else ``samples``."""
    counts = model_class_counts(cfg)
    summaries = []
    # Built from these configs: the same wrappers, so the same keys.
    leaf_configs = dict(iter_datasets(cfg[f'{split}_dataloader'].dataset))
    for key, leaf in iter_datasets(dataset):
        if len(leaf) == 0:
            raise DatasetError(f'{split} set is empty: no samples in '
                               f'{describe(leaf_configs[key])}')
        classes = leaf.metainfo.get('classes') or ()
        check_class_count(split, classes, counts)
        check_files_exist(split, leaf)
        check_class_folders(split, leaf)
        rows = {'dataset': type(leaf).__name__ + (
                    f' in {type(dataset).__name__}' if leaf is not dataset else ''),
                'data_root': leaf.data_root,
                'images': len(leaf),
                'classes': len(classes),
                'model classes': ', '.join(f'{k}={v}' for k, v in counts.items()) or 'none'}
        check_labels = LABEL_CHECKS.get(cfg.get('default_scope'))
        if check_labels is not None:
            rows.update(check_labels(split, leaf, len(classes)))
        rows['decoded'] = (decode_all(split, leaf, workers, out) if workers
                           else decode_samples(split, leaf, samples))
        summaries.append(rows)
    return summaries


def check_evaluators(cfg: Config):
    for key in ('val_evaluator', 'test_evaluator'):
        evaluators = cfg.get(key) or []
        for evaluator in evaluators if isinstance(evaluators, (list, tuple)) else [evaluators]:
            ann_file = evaluator.get('ann_file')
            if ann_file and not osp.isfile(ann_file):
                raise DatasetError(f'{key}.ann_file: file not found: {ann_file}')


def format_summary(split: str, rows: dict) -> str:
    return '\n'.join([f'== {split}'] + [f'  {key:<16} {value}' for key, value in rows.items()])


def check_config(config, cfg_options: Optional[dict] = None, samples: int = 8,
                 out: Callable[[str], None] = print,
                 decode_workers: Optional[int] = None) -> dict[str, list[dict]]:
    """Build and check the train, val and test sets of a config, printing a
    summary table per split to ``out``; raises DatasetError at the first problem.
    ``decode_workers``: decode every image, in that many processes, instead of
    ``samples`` per split. Returns the summaries by split (a list: one per data
    set in a wrapper)."""
    cfg = load_config(config, cfg_options)
    init_default_scope(cfg.get('default_scope', 'mmengine'))
    summaries: dict[str, list[dict]] = {}
    for split in SPLITS:
        loader = cfg.get(f'{split}_dataloader')
        val = cfg.get('val_dataloader')
        if split == 'test' and loader and val and loader.dataset == val.dataset:
            out('== test\n  same data set as val')
            summaries['test'] = summaries['val']
            continue
        dataset = build_split(cfg, split)
        if dataset is None:
            continue
        summaries[split] = check_split(cfg, split, dataset, samples, decode_workers, out)
        for rows in summaries[split]:
            out(format_summary(split, rows))
    check_evaluators(cfg)
    if not summaries:
        raise DatasetError(f'{cfg.filename}: no train, val or test data loader')
    return summaries
