"""Registries of the ``mmpoolformer`` scope.

They are children of mmengine's root registries, so any OpenMMLab toolbox finds
our modules by the scoped name, e.g. ``type='mmpoolformer.PoolFormer'`` inside an
mmdet, mmseg or mmpretrain config (``custom_imports=dict(imports=['mmpoolformer'])``).
The scope prefix also keeps ours apart from mmpretrain's own ``PoolFormer``.
"""
from mmengine.registry import DATASETS as MMENGINE_DATASETS
from mmengine.registry import HOOKS as MMENGINE_HOOKS
from mmengine.registry import LOOPS as MMENGINE_LOOPS
from mmengine.registry import MODELS as MMENGINE_MODELS
from mmengine.registry import OPTIM_WRAPPERS as MMENGINE_OPTIM_WRAPPERS
from mmengine.registry import TRANSFORMS as MMENGINE_TRANSFORMS
from mmengine.registry import WEIGHT_INITIALIZERS as MMENGINE_WEIGHT_INITIALIZERS
from mmengine.registry import DefaultScope, Registry

MODELS = Registry('model', parent=MMENGINE_MODELS, scope='mmpoolformer',
                  locations=['mmpoolformer.models'])
HOOKS = Registry('hook', parent=MMENGINE_HOOKS, scope='mmpoolformer',
                 locations=['mmpoolformer.engine'])
LOOPS = Registry('loop', parent=MMENGINE_LOOPS, scope='mmpoolformer',
                 locations=['mmpoolformer.engine'])
OPTIM_WRAPPERS = Registry('optim_wrapper', parent=MMENGINE_OPTIM_WRAPPERS, scope='mmpoolformer',
                          locations=['mmpoolformer.engine'])
DATASETS = Registry('dataset', parent=MMENGINE_DATASETS, scope='mmpoolformer',
                    locations=['mmpoolformer.datasets'])
TRANSFORMS = Registry('transform', parent=MMENGINE_TRANSFORMS, scope='mmpoolformer',
                      locations=['mmpoolformer.datasets'])
# init_cfg types: ``dict(type='mmpoolformer.PretrainedAnyLayout', checkpoint=...)``.
WEIGHT_INITIALIZERS = Registry('weight initializer', parent=MMENGINE_WEIGHT_INITIALIZERS,
                               scope='mmpoolformer', locations=['mmpoolformer.models'])


def build_in_our_scope(build, *args, **kwargs):
    """Run a builder (mmcv's ``build_norm_layer``, ``MODELS.build``, ...) with
    ``mmpoolformer`` as the default scope, so that names resolve in our registries
    first (then mmengine's root, where mmcv's norms and activations are), whichever
    toolbox's Runner is building the model."""
    with DefaultScope.overwrite_default_scope('mmpoolformer'):
        return build(*args, **kwargs)
