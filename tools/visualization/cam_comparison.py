"""The models tools/visualization/gradcam.py compares PoolFormer with, as the paper
does: PoolFormer, DeiT, ResNet and Swin from configs (ours and mmpretrain's own),
ResMLP, which mmpretrain does not have, from timm; and the side-by-side picture."""
from collections.abc import Sequence
from typing import Optional

import cv2
import numpy as np
import torch

from mmpoolformer.apis import build_model as build_from_config
from mmpoolformer.checkpoint import CheckpointError, get_state_dict, load_file, load_model_weights

# name -> (where the model comes from, target layer inside it, tokens to drop)
COMPARISON_MODELS = {
    'poolformer': ('mmpoolformer::classification/poolformer_s12_in1k.py',
                   'backbone.stages.-1', 0),
    'deit': ('mmpretrain::deit/deit-small_4xb256_in1k.py', 'backbone.layers.-1.ln1', 1),
    'resnet': ('mmpretrain::resnet/resnet50_8xb32_in1k.py', 'backbone.layer4.-1', 0),
    'swin': ('mmpretrain::swin_transformer/swin-tiny_16xb64_in1k.py',
             'backbone.stages.-1.blocks.-1.ffn', 0),
    'resmlp': ('timm::resmlp_12_224', 'blocks.-1', 0),
}


def build_model(source: str, checkpoint: Optional[str] = None) -> torch.nn.Module:
    """A classifier from a config (a path, ``mmpoolformer::...`` or ``mmpretrain::...``)
    or from timm (``timm::name``), in eval mode with the checkpoint's weights if given."""
    if source.startswith('timm::'):
        import timm
        model = timm.create_model(source[len('timm::'):], pretrained=False)
    else:
        model = build_from_config(source)
    if checkpoint:
        try:
            load_model_weights(model, checkpoint)
        except CheckpointError:  # not a PoolFormer layout: load the names as they are
            model.load_state_dict(get_state_dict(load_file(checkpoint)), strict=False)
    return model.eval()


def side_by_side(panels: Sequence[np.ndarray], titles: Sequence[str]) -> np.ndarray:
    """One RGB row of equally sized panels, each with its title above it."""
    framed = []
    for panel, title in zip(panels, titles):
        bar = np.full((28, panel.shape[1], 3), 255, np.uint8)
        cv2.putText(bar, title, (6, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 0, 0), 1, cv2.LINE_AA)
        framed.append(np.vstack([bar, panel]))
    return np.hstack(framed)
