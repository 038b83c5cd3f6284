"""Grad-CAM for PoolFormer and the models the paper compares it with.

pytorch-grad-cam does the CAM; this module only builds each model, names the
layer to look at and turns token outputs back into maps. PoolFormer, DeiT,
ResNet and Swin come from configs (ours and mmpretrain's own); ResMLP, which
mmpretrain does not have, from timm.
"""
import math
from typing import Optional, Sequence

import cv2
import numpy as np
import torch

from mmpoolformer.analysis.inputs import TensorForward
from mmpoolformer.apis import repo_config

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406])
IMAGENET_STD = np.array([0.229, 0.224, 0.225])

# name -> (where the model comes from, target layer inside it, tokens to drop)
COMPARISON_MODELS = {
    'poolformer': (repo_config('configs/classification/poolformer_s12_in1k.py'),
                   'backbone.stages.-1', 0),
    'deit': ('mmpretrain::deit/deit-small_4xb256_in1k.py', 'backbone.layers.-1.ln1', 1),
    'resnet': ('mmpretrain::resnet/resnet50_8xb32_in1k.py', 'backbone.layer4.-1', 0),
    'swin': ('mmpretrain::swin_transformer/swin-tiny_16xb64_in1k.py',
             'backbone.stages.-1.blocks.-1.ffn', 0),
    'resmlp': ('timm::resmlp_12_224', 'blocks.-1', 0),
}


def build_model(source: str, checkpoint: Optional[str] = None) -> torch.nn.Module:
    """A classifier from our config path, an ``mmpretrain::`` config or ``timm::name``."""
    if source.startswith('timm::'):
        import timm
        model = timm.create_model(source[len('timm::'):], pretrained=False)
    else:
        from mmpoolformer.apis import build_model as build_from_config
        model = build_from_config(source)
    if checkpoint:
        from mmpoolformer.checkpoint import (CheckpointError, get_state_dict, load_file,
                                             load_model_weights)
        try:
            load_model_weights(model, checkpoint)
        except CheckpointError:  # not a PoolFormer layout: load the names as they are
            model.load_state_dict(get_state_dict(load_file(checkpoint)), strict=False)
    return model.eval()


def find_layer(model: torch.nn.Module, path: str) -> torch.nn.Module:
    """``'backbone.stages.-1'`` -> the module; negative numbers index from the end."""
    module = model
    for part in path.split('.'):
        module = module[int(part)] if part.lstrip('-').isdigit() else getattr(module, part)
    return module


def _tokens_to_map(drop_tokens: int):
    """Reshape (B, N, C) token outputs to (B, C, H, W) for CAM; maps pass through."""

    def reshape(x):
        if x.dim() == 4:
            return x
        x = x[:, drop_tokens:]
        side = int(math.isqrt(x.shape[1]))
        return x.reshape(x.shape[0], side, side, x.shape[2]).permute(0, 3, 1, 2)

    return reshape


def load_image(path_or_array, size: int = 224):
    """(float RGB image in [0, 1] at size x size, normalised 1x3xHxW tensor)."""
    if isinstance(path_or_array, str):
        image = cv2.imread(path_or_array, cv2.IMREAD_COLOR)
        if image is None:
            raise FileNotFoundError(f'cannot read image: {path_or_array}')
        image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    else:
        image = np.asarray(path_or_array)
    rgb = cv2.resize(image, (size, size), interpolation=cv2.INTER_CUBIC).astype(np.float32) / 255
    tensor = torch.from_numpy((rgb - IMAGENET_MEAN) / IMAGENET_STD).permute(2, 0, 1)[None]
    return rgb, tensor.float()


def grad_cam(model: torch.nn.Module, image, target_layer: str, drop_tokens: int = 0,
             target_class: Optional[int] = None):
    """(overlay RGB uint8, cam HxW in [0, 1], predicted class) for one image."""
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.image import show_cam_on_image
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
    rgb, tensor = load_image(image)
    wrapped = TensorForward(model)
    with torch.no_grad():
        predicted = int(wrapped(tensor).argmax(1))
    target = ClassifierOutputTarget(predicted if target_class is None else target_class)
    with GradCAM(model=wrapped, target_layers=[find_layer(model, target_layer)],
                 reshape_transform=_tokens_to_map(drop_tokens)) as cam:
        heat = cam(input_tensor=tensor, targets=[target])[0]
    return show_cam_on_image(rgb, heat, use_rgb=True), heat, predicted


def side_by_side(panels: Sequence[np.ndarray], titles: Sequence[str]) -> np.ndarray:
    """One RGB row of equally sized panels, each with its title above it."""
    framed = []
    for panel, title in zip(panels, titles):
        bar = np.full((28, panel.shape[1], 3), 255, np.uint8)
        cv2.putText(bar, title, (6, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 0, 0), 1, cv2.LINE_AA)
        framed.append(np.vstack([bar, panel]))
    return np.hstack(framed)
