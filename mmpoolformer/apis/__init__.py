"""Python API: build a model from any mmpoolformer config and load weights."""
import inspect
import os
from typing import Optional, Tuple, Union

from mmengine.config import Config
from mmengine.registry import MODELS, init_default_scope

from mmpoolformer.checkpoint import load_model_weights
from mmpoolformer.utils.errors import ConfigError, UsageError, closest_name_hint
from mmpoolformer.utils.openmmlab import register_config_package

# The configs shipped with the package (a link to the repository's configs/ in a
# checkout, a copy in a wheel).
PACKAGE_CONFIGS = os.path.join(os.path.dirname(os.path.dirname(__file__)), '.mim', 'configs')
# The repository this package sits in, in a checkout.
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def repo_config(path: str) -> str:
    """A config of this repository by its path from the repository root
    (``configs/...``), whatever the working directory."""
    return os.path.join(REPO_ROOT, path)


def load_config(config: Union[str, Config], cfg_options: Optional[dict] = None) -> Config:
    """Read a config (a path, a toolbox's own as ``mmpretrain::deit/...py``, or
    one of this package's as ``mmpoolformer::detection/...py``), with a one-line
    error for a path that does not exist; the heads' num_classes then follow the
    data set's classes (:func:`sync_num_classes`)."""
    register_config_package()  # `mmpoolformer::` bases, in this config or its bases
    if isinstance(config, str) and config.startswith('mmpoolformer::'):
        # The package's own copy, found without mmengine's look-up of the installed
        # distribution (which misses editable installs).
        config = os.path.join(PACKAGE_CONFIGS, config.split('::', 1)[1])
    if isinstance(config, Config):
        cfg = config.copy()
    elif '::' in config:  # mmengine resolves the pkg:: form only inside _base_
        cfg = Config.fromstring(f'_base_ = {config!r}', '.py')
    else:
        if not os.path.isfile(config):
            raise FileNotFoundError(f'config not found: {config}')
        cfg = Config.fromfile(config)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    sync_num_classes(cfg)
    return cfg


# What a head's num_classes is when a config leaves it as the toolbox's base config
# set it (COCO, ADE20K, ImageNet), and where heads sit in the toolbox's models.
_TOOLBOX_HEADS = {
    'mmdet': (80, ('bbox_head', 'roi_head.bbox_head', 'roi_head.mask_head')),
    'mmseg': (150, ('decode_head', 'auxiliary_head')),
    'mmpretrain': (1000, ('head', )),
}


def _datasets(dataset, where: str):
    """(where, config) of each data set a data loader reads, looking inside
    wrappers (RepeatDataset & co.: ``dataset``; ConcatDataset: ``datasets``)."""
    if not isinstance(dataset, dict):
        return
    if isinstance(dataset.get('dataset'), dict) and 'metainfo' not in dataset:
        yield from _datasets(dataset['dataset'], f'{where}.dataset')
    elif isinstance(dataset.get('datasets'), (list, tuple)):
        for i, part in enumerate(dataset['datasets']):
            yield from _datasets(part, f'{where}.datasets.{i}')
    else:
        yield where, dataset


def _dataset_classes(cfg: Config) -> Optional[Tuple[str, tuple]]:
    """(where, classes) as the data sets' ``metainfo`` declares them, or None;
    a ConfigError when the data sets disagree (or only some declare them)."""
    declared = []
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        for where, dataset in _datasets((cfg.get(loader) or {}).get('dataset'),
                                        f'{loader}.dataset'):
            classes = (dataset.get('metainfo') or {}).get('classes')
            declared.append((f'{where}.metainfo.classes',
                             tuple(classes) if isinstance(classes, (list, tuple)) else None))
    named = [(where, classes) for where, classes in declared if classes is not None]
    if not named:
        return None
    where, classes = named[0]
    for other, other_classes in declared:
        if other_classes != classes:
            got = 'is not set' if other_classes is None else f'is {list(other_classes)}'
            raise ConfigError(f'{other} {got}, but {where} is {list(classes)}; '
                              'give every data set the same classes')
    return where, classes


def _folder_classes(cfg: Config) -> Optional[Tuple[str, tuple]]:
    """(where, classes) of a classifier's training image folder, whose classes are
    its sub-folders (as mmpretrain's CustomDataset numbers them), or None."""
    dataset = (cfg.get('train_dataloader') or {}).get('dataset') or {}
    if dataset.get('type') not in ('mmpoolformer.ValidatedImageFolder', 'CustomDataset') \
            or dataset.get('ann_file') or not isinstance(dataset.get('data_prefix', ''), str):
        return None
    folder = os.path.join(dataset.get('data_root', ''),
                          dataset.get('data_prefix') or dataset.get('split', ''))
    classes = sorted(entry.name for entry in os.scandir(folder) if entry.is_dir()) \
        if os.path.isdir(folder) else None
    # None for no folders: the data set says that it is empty.
    return (f'{folder} (a class per sub-folder)', tuple(classes)) if classes else None


def _follow(part: dict, where: str, count: int, default: int, source: str) -> list:
    """Set ``part['num_classes']`` to ``count`` if it is still ``default``;
    a ConfigError naming both numbers if it is anything else that differs."""
    key, value = f'{where}.num_classes', part['num_classes']
    if value == count:
        return []
    if value != default:
        raise ConfigError(f'{key} is {value}, but {source} has {count} classes; '
                          f'set it to {count}, or remove the setting to let it follow')
    part['num_classes'] = count
    return [f'{key} {value} -> {count}']


def model_heads(model: dict) -> list:
    """(config key, head dict) of every head with a ``num_classes`` in a model
    config of any of the three toolboxes."""
    return [found for _, paths in _TOOLBOX_HEADS.values() for path in paths
            for found in _heads(model, path)]


def _heads(model: dict, path: str):
    """(config key, head dict) for the head(s) at a dotted path in ``model``;
    a list there (Cascade R-CNN's stages) gives one entry per stage."""
    part = model
    for name in path.split('.'):
        part = part.get(name) if isinstance(part, dict) else None
    parts = part if isinstance(part, (list, tuple)) else [part]
    return [(f'model.{path}' + (f'.{i}' if len(parts) > 1 else ''), head)
            for i, head in enumerate(parts)
            if isinstance(head, dict) and 'num_classes' in head]


def sync_num_classes(cfg: Config):
    """Make the heads' ``num_classes`` follow the data set's class list.

    The rule (docs/finetune.md): when the data sets' ``metainfo`` declares
    ``classes`` (or, for a classifier, its training image folder has them as
    sub-folders), each head's ``num_classes`` (detection: ``bbox_head``,
    ``roi_head.bbox_head``, ``roi_head.mask_head``; segmentation: ``decode_head``,
    ``auxiliary_head``; classification: ``head``) that still has the toolbox's
    default (80 COCO, 150 ADE20K, 1000 ImageNet) is set to the number of classes,
    and any other value that differs is a ConfigError naming both numbers. A
    classifier's ``data_preprocessor.num_classes`` (one-hot labels for Mixup /
    CutMix) follows ``model.head.num_classes`` the same way. Changes are logged
    in one line.
    """
    scope, model = cfg.get('default_scope'), cfg.get('model')
    if scope not in _TOOLBOX_HEADS or not isinstance(model, dict):
        return
    default, paths = _TOOLBOX_HEADS[scope]
    changes = []
    found = _dataset_classes(cfg) or (scope == 'mmpretrain' and _folder_classes(cfg))
    if found:
        source, classes = found
        for path in paths:
            for key, head in _heads(model, path):
                changes += _follow(head, key, len(classes), default, source)
    head = model.get('head')
    if scope == 'mmpretrain' and isinstance(head, dict) and 'num_classes' in head:
        for key, part in (('data_preprocessor', cfg.get('data_preprocessor')),
                          ('model.data_preprocessor', model.get('data_preprocessor'))):
            if isinstance(part, dict) and 'num_classes' in part:
                changes += _follow(part, key, head['num_classes'], default,
                                   'model.head.num_classes')
    if changes:
        from mmengine.logging import print_log
        print_log('num_classes follows the classes: ' + ', '.join(changes), logger='current')


def _registered_names(registry) -> list:
    """Every name a config could use for a model in this registry's scope."""
    root = registry
    while root.parent is not None:
        root = root.parent
    names, stack = set(registry.module_dict), [root]
    while stack:
        reg = stack.pop()
        names.update(f'{reg.scope}.{n}' for n in reg.module_dict)
        stack.extend(reg.children.values())
    return sorted(names)


def _accepted_keys(cls) -> Optional[set]:
    """Constructor arguments of cls, following **kwargs up the class tree;
    None when some class takes arbitrary keywords."""
    keys = set()
    for klass in cls.__mro__:
        if '__init__' not in vars(klass):
            continue
        params = inspect.signature(klass.__init__).parameters.values()
        keys.update(p.name for p in params if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL))
        if not any(p.kind == p.VAR_KEYWORD for p in params):
            return keys - {'self'}
    return None


def check_model_config(cfg: Config):
    """Name an unknown model type or argument in ``cfg.model`` and its direct
    parts (backbone, neck, heads), with the closest valid name, before anything
    is built; mmengine would otherwise fail deep in a registry or a TypeError."""
    with MODELS.switch_scope_and_registry(cfg.get('default_scope', 'mmengine')) as registry:
        parts = [('model', cfg.get('model'))] + [
            (f'model.{key}', value) for key, value in (cfg.get('model') or {}).items()
            if isinstance(value, dict) and isinstance(value.get('type'), str)]
        for where, part in parts:
            if not isinstance(part, dict) or not isinstance(part.get('type'), str):
                continue
            cls = registry.get(part['type'])
            if cls is None:
                raise ConfigError(f'{where}.type: unknown model type {part["type"]!r}'
                                  f'{closest_name_hint(part["type"], _registered_names(registry))}')
            accepted = _accepted_keys(cls) if inspect.isclass(cls) else None
            if accepted is None:
                continue
            for key in part:
                if key not in accepted and key not in ('type', '_scope_'):
                    raise ConfigError(f'{where}: {cls.__name__} has no argument {key!r}'
                                      f'{closest_name_hint(key, sorted(accepted))}')


def build_model(config: Union[str, Config], cfg_options: Optional[dict] = None):
    """Build ``cfg.model`` in the scope of the toolbox the config comes from
    (mmpretrain, mmdet or mmseg), without loading weights."""
    cfg = load_config(config, cfg_options)
    check_model_config(cfg)
    init_default_scope(cfg.get('default_scope', 'mmengine'))
    model_cfg = cfg.model.copy()
    if cfg.get('data_preprocessor'):  # mmpretrain keeps it at the top level
        model_cfg.setdefault('data_preprocessor', cfg.data_preprocessor)
    model = MODELS.build(model_cfg)
    model.cfg = cfg
    return model


def init_model(config: Union[str, Config], checkpoint: Optional[str] = None,
               device: str = 'cpu', cfg_options: Optional[dict] = None):
    """Build a model and load a checkpoint of any supported layout, ready for
    inference (eval mode, on ``device``)."""
    model = build_model(config, cfg_options)
    if checkpoint:
        load_model_weights(model, checkpoint)
    else:
        model.init_weights()
    return model.to(device).eval()


# The toolboxes' own inferencers do the pre-processing, batching and drawing.
_INFERENCERS = {
    'mmpretrain': ('mmpretrain.apis', 'ImageClassificationInferencer'),
    'mmdet': ('mmdet.apis', 'DetInferencer'),
    'mmseg': ('mmseg.apis', 'MMSegInferencer'),
}


def build_inferencer(config: Union[str, Config], checkpoint: Optional[str] = None,
                     device: str = 'cpu'):
    """The toolbox inferencer for a config, with weights of any layout loaded.

    Class names come from the checkpoint's meta when it has them (a checkpoint
    trained here), else from the config's test set.
    """
    import importlib
    import warnings
    cfg = load_config(config)
    scope = cfg.get('default_scope', 'mmengine')
    if scope not in _INFERENCERS:
        raise ConfigError(f'{config}: no inferencer for default_scope {scope!r}')
    cfg = _with_inferencer_loader(cfg)
    module, name = _INFERENCERS[scope]
    inferencer_cls = getattr(importlib.import_module(module), name)
    with warnings.catch_warnings():  # "weights is None": we load them below
        warnings.simplefilter('ignore')
        if scope == 'mmpretrain':
            inferencer = inferencer_cls(cfg, pretrained=False, device=device)
        else:
            inferencer = inferencer_cls(cfg, weights=None, device=device)
    model = inferencer.model
    if checkpoint:
        load_model_weights(model, checkpoint)
    meta = getattr(model, 'checkpoint_meta', {}).get('dataset_meta') or _dataset_meta(cfg)
    # Class names and colours are what the inferencers and visualizers take.
    model.dataset_meta = {k.lower(): v for k, v in meta.items()
                          if k.lower() in ('classes', 'palette')}
    if getattr(inferencer, 'visualizer', None) is not None:
        inferencer.visualizer.dataset_meta = model.dataset_meta
    if scope == 'mmpretrain':
        inferencer.classes = model.dataset_meta.get('classes')
    return inferencer


def _with_inferencer_loader(cfg: Config) -> Config:
    """The config with ``LoadImageFromFile`` for ``mmpoolformer.LoadImageChecked``
    in its test pipeline: the toolboxes' inferencers find the loader by that name
    to put their own in its place (inputs are checked by :func:`check_image`)."""
    import copy
    cfg = copy.deepcopy(cfg)
    pipeline = ((cfg.get('test_dataloader') or {}).get('dataset') or {}).get('pipeline') or []
    for i, transform in enumerate(pipeline):
        if transform.get('type') == 'mmpoolformer.LoadImageChecked':
            pipeline[i] = {k: v for k, v in transform.items() if k != 'on_error'}
            pipeline[i]['type'] = 'LoadImageFromFile'
    return cfg


def _dataset_meta(cfg: Config) -> dict:
    from mmengine.registry import DATASETS
    dataset_cfg = cfg.test_dataloader.dataset.copy()
    dataset_cfg['lazy_init'] = True
    return dict(DATASETS.build(dataset_cfg).metainfo)


# Larger inputs are refused (a 16-megapixel photo passes): decoding and running
# a detector on a decompression bomb would take the server's memory with it.
DEFAULT_MAX_PIXELS = 4096 * 4096
IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.tif', '.tiff', '.webp')


def check_image(image, max_pixels: int = DEFAULT_MAX_PIXELS, name: str = 'input'):
    """Refuse what is not an image, or an image above ``max_pixels``, with a
    UsageError that says which and why. Accepts an array (H, W[, C]) or a file
    path, whose size is read from its header without decoding it."""
    import numpy as np
    if isinstance(image, (str, os.PathLike)):
        from PIL import Image, UnidentifiedImageError
        name = str(image)
        if not os.path.isfile(image):
            raise FileNotFoundError(f'image not found: {image}')
        try:
            with Image.open(image) as img:
                width, height = img.size
        except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as err:
            raise UsageError(f'{name} is not an image this demo can read '
                             f'({str(err).splitlines()[0]})') from None
    elif isinstance(image, np.ndarray) and image.size and (
            image.ndim == 2 or (image.ndim == 3 and image.shape[2] in (1, 3, 4))):
        height, width = image.shape[:2]
    else:
        got = (f'array of shape {image.shape}' if isinstance(image, np.ndarray)
               else type(image).__name__)
        raise UsageError(f'{name} is not an image (got {got})')
    if width * height > max_pixels:
        raise UsageError(f'{name} is {width}x{height} = {width * height} pixels, above the '
                         f'limit of {max_pixels} (max_pixels); downscale it or raise the limit')


def _checked_inputs(inputs, max_pixels) -> list:
    """The inputs as the list the inferencer will run on, each checked: a folder
    becomes its files (what the toolboxes' inferencers would list themselves), so
    that nothing in it escapes the check."""
    if isinstance(inputs, (str, os.PathLike)) and os.path.isdir(inputs):
        inputs = [os.path.join(inputs, name) for name in sorted(os.listdir(inputs))
                  if os.path.isfile(os.path.join(inputs, name))]
    inputs = list(inputs) if isinstance(inputs, (list, tuple)) else [inputs]
    for item in inputs:
        check_image(item, max_pixels)
    return inputs


def inference(config: Union[str, Config], checkpoint: Optional[str], inputs,
              out_dir: Optional[str] = None, device: str = 'cpu',
              score_thr: float = 0.3, max_pixels: int = DEFAULT_MAX_PIXELS, **kwargs):
    """Run a model on an image path, a folder or an array; with ``out_dir``,
    drawn results go to ``out_dir/vis`` (predictions as JSON to ``out_dir/preds``
    for detection, drawn from ``score_thr`` up). Inputs that are not images or
    exceed ``max_pixels`` are refused (UsageError) before anything runs.
    Returns the toolbox inferencer's result dict."""
    inputs = _checked_inputs(inputs, max_pixels)
    cfg = load_config(config)
    inferencer = build_inferencer(cfg, checkpoint, device)
    scope = cfg.get('default_scope')
    if scope == 'mmpretrain':
        return inferencer(inputs, show_dir=out_dir and os.path.join(out_dir, 'vis'), **kwargs)
    if scope == 'mmdet':
        return inferencer(inputs, out_dir=out_dir or '', no_save_vis=out_dir is None,
                          no_save_pred=out_dir is None, pred_score_thr=score_thr, **kwargs)
    return inferencer(inputs, out_dir=out_dir or '', **kwargs)
