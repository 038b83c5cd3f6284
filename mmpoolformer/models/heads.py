"""Classifier head of the MetaFormer v2 models (PoolFormerV2 ... CAFormer).

They norm the globally pooled feature (LayerNorm) and then classify with a
linear layer, or, for ConvFormer and CAFormer, with a two-layer MLP head
(``fc1 -> SquaredReLU -> LayerNorm -> dropout -> fc2``). Keys follow timm:
``head.norm``, ``head.fc`` or ``head.fc.{fc1,norm,fc2}``.
"""
from typing import Optional

import torch
import torch.nn as nn
from mmpretrain.models.heads import ClsHead

from mmpoolformer.models.layers import SquaredReLU
from mmpoolformer.registry import MODELS


class MlpHead(nn.Module):

    def __init__(self, in_channels: int, num_classes: int, mlp_ratio: float,
                 dropout: float, eps: float):
        super().__init__()
        hidden = int(mlp_ratio * in_channels)
        self.fc1 = nn.Linear(in_channels, hidden)
        self.act = SquaredReLU()
        self.norm = nn.LayerNorm(hidden, eps=eps)
        self.drop = nn.Dropout(dropout)
        self.fc2 = nn.Linear(hidden, num_classes)

    def forward(self, x):
        return self.fc2(self.drop(self.norm(self.act(self.fc1(x)))))


@MODELS.register_module()
class MetaFormerClsHead(ClsHead):
    """LayerNorm on the pooled feature, then a linear or an MLP classifier.

    Args:
        num_classes (int): Number of classes.
        in_channels (int): Channels of the pooled feature.
        mlp_ratio (float, optional): Hidden width of an MLP head as a multiple
            of ``in_channels`` (4 for ConvFormer / CAFormer); None for a
            linear head. Defaults to None.
        dropout (float): Dropout before the MLP head's last layer (the
            metaformer recipes' ``--head-dropout``). Defaults to 0.
        eps (float): LayerNorm epsilon. Defaults to 1e-6.
        **kwargs: ``loss``, ``topk``, ``cal_acc``, ``init_cfg`` of ClsHead.
    """

    def __init__(self, num_classes: int, in_channels: int,
                 mlp_ratio: Optional[float] = None, dropout: float = 0.,
                 eps: float = 1e-6, **kwargs):
        super().__init__(**kwargs)
        self.norm = nn.LayerNorm(in_channels, eps=eps)
        self.fc = (MlpHead(in_channels, num_classes, mlp_ratio, dropout, eps)
                   if mlp_ratio else nn.Linear(in_channels, num_classes))

    def pre_logits(self, feats: tuple[torch.Tensor]) -> torch.Tensor:
        return self.norm(feats[-1])

    def forward(self, feats: tuple[torch.Tensor]) -> torch.Tensor:
        return self.fc(self.pre_logits(feats))
