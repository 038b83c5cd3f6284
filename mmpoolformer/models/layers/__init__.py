"""The layers of the MetaFormer family, below the blocks and backbones
(``models/backbones/``) that are built from them."""
from .activations import SquaredReLU, StarReLU, build_act
from .downsampling import Downsampling
from .mlp import ConvMlp, OneDNNConvMlp, onednn_supports, use_onednn_mlps
from .norms import GroupNorm1, LayerNorm2d, build_norm
from .scale import LayerScale, scale_or_identity
from .token_mixers import Attention, IdentityMixer, Pooling, RandomMixing, SepConv

__all__ = ['Attention', 'ConvMlp', 'Downsampling', 'GroupNorm1', 'IdentityMixer', 'LayerNorm2d',
           'LayerScale', 'OneDNNConvMlp', 'Pooling', 'RandomMixing', 'SepConv', 'SquaredReLU',
           'StarReLU', 'build_act', 'build_norm', 'onednn_supports', 'scale_or_identity',
           'use_onednn_mlps']
