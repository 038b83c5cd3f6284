"""The weight initializer that loads pretrained backbones in any public layout."""
from typing import Optional

from mmengine.model import BaseInit

from mmpoolformer.checkpoint import load_backbone_weights
from mmpoolformer.registry import WEIGHT_INITIALIZERS


@WEIGHT_INITIALIZERS.register_module()
class PretrainedAnyLayout(BaseInit):
    """``init_cfg=dict(type='mmpoolformer.PretrainedAnyLayout', checkpoint=...)``:
    sail-sg (poolformer / metaformer), mmpretrain, timm or mmpoolformer weights,
    converted to this project's layout on the fly and read safely
    (:func:`mmpoolformer.checkpoint.load_backbone_weights`). mmengine's
    ``BaseModule.init_weights`` runs it, from a config of any toolbox's scope.

    Args:
        checkpoint (str): A file or URL.
        prefix (str, optional): The sub-module to take from a checkpoint of a
            whole model (classifier, detector, segmentor). Defaults to
            ``backbone.``.
        map_location (str, optional): Accepted for the arguments of mmengine's
            ``Pretrained``; tensors are read to the CPU and copied into the
            module wherever it is.
    """

    def __init__(self, checkpoint: str, prefix: Optional[str] = None,
                 map_location: Optional[str] = None, **kwargs):
        super().__init__(**kwargs)
        self.checkpoint, self.prefix = checkpoint, prefix

    def __call__(self, module):
        load_backbone_weights(module, self.checkpoint, prefix=self.prefix)

    def _get_init_info(self) -> str:
        return f'{self.__class__.__name__}: load from {self.checkpoint}'
