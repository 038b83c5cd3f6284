"""Config preparation: reading a config (a path, ``mmpretrain::...``, ``mmpoolformer::...``),
the rule that makes the heads' ``num_classes`` follow the data set's classes, and the
check of a model config before anything is built."""
import inspect
import os
from typing import Optional, Union

from mmengine.config import Config
from mmengine.registry import MODELS

from mmpoolformer.utils.config import iter_datasets
from mmpoolformer.utils.errors import ConfigError, closest_name_hint
from mmpoolformer.utils.openmmlab import register_config_package


def package_config(name: str) -> str:
    """The path of ``mmpoolformer::name``: the package's own copy of the configs
    (mmpoolformer/.mim/configs, a link to the repository's configs/ in a checkout),
    found next to this file rather than through mmengine's look-up of the installed
    distribution, which misses editable installs."""
    package = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    return os.path.join(package, '.mim', 'configs', name)


def load_config(config: Union[str, Config], cfg_options: Optional[dict] = None) -> Config:
    """Read a config (a path, a toolbox's own as ``mmpretrain::deit/...py``, or
    one of this package's as ``mmpoolformer::detection/...py``), with a one-line
    error for a path that does not exist; the heads' num_classes then follow the
    data set's classes (:func:`sync_num_classes`)."""
    register_config_package()  # `mmpoolformer::` bases, in this config or its bases
    if isinstance(config, str) and config.startswith('mmpoolformer::'):
        config = package_config(config.split('::', 1)[1])
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


def _dataset_classes(cfg: Config) -> Optional[tuple[str, tuple]]:
    """(where, classes) as the data sets' ``metainfo`` declares them, or None;
    a ConfigError when the data sets disagree (or only some declare them)."""
    declared = []
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        for where, dataset in iter_datasets((cfg.get(loader) or {}).get('dataset'),
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


def _folder_classes(cfg: Config) -> Optional[tuple[str, tuple]]:
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
