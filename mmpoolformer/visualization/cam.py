"""Grad-CAM of a classifier, PoolFormer or another (tools/visualization/gradcam.py
draws several side by side).

pytorch-grad-cam does the CAM (imported when a map is drawn); this module finds
the layer to look at and turns token outputs back into maps.
"""
import math
from typing import Optional

import cv2
import numpy as np
import torch

from mmpoolformer.utils.tensor_forward import TensorForward

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406])
IMAGENET_STD = np.array([0.229, 0.224, 0.225])


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
             target_class: Optional[int] = None, size: int = 224):
    """(overlay RGB uint8, cam HxW in [0, 1], predicted class) for one image, resized
    to ``size`` x ``size``: the input size the model was trained at."""
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.image import show_cam_on_image
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
    rgb, tensor = load_image(image, size)
    wrapped = TensorForward(model)
    with torch.no_grad():
        predicted = int(wrapped(tensor).argmax(1))
    target = ClassifierOutputTarget(predicted if target_class is None else target_class)
    with GradCAM(model=wrapped, target_layers=[find_layer(model, target_layer)],
                 reshape_transform=_tokens_to_map(drop_tokens)) as cam:
        heat = cam(input_tensor=tensor, targets=[target])[0]
    return show_cam_on_image(rgb, heat, use_rgb=True), heat, predicted
