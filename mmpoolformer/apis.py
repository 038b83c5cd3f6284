"""Python API: build a model from any mmpoolformer config and load weights."""
import os
from typing import Optional, Union

import torch
from mmengine.config import Config
from mmengine.registry import MODELS, init_default_scope

from mmpoolformer.checkpoint import load_model_weights


def load_config(config: Union[str, Config], cfg_options: Optional[dict] = None) -> Config:
    """Read a config, with a one-line error for a path that does not exist."""
    if isinstance(config, Config):
        cfg = config.copy()
    else:
        if not os.path.isfile(config):
            raise FileNotFoundError(f'config not found: {config}')
        cfg = Config.fromfile(config)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    return cfg


def build_model(config: Union[str, Config], cfg_options: Optional[dict] = None):
    """Build ``cfg.model`` in the scope of the toolbox the config comes from
    (mmpretrain, mmdet or mmseg), without loading weights."""
    cfg = load_config(config, cfg_options)
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
