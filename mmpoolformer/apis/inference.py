"""Building models from configs and running them: build_model, init_model, the
toolboxes' inferencers with weights of any layout, and inference on images."""
import os
from typing import Optional, Union

from mmengine.config import Config
from mmengine.registry import MODELS, init_default_scope

from mmpoolformer.checkpoint import load_model_weights
from mmpoolformer.utils.errors import ConfigError

from .config import check_model_config, load_config
from .images import DEFAULT_MAX_PIXELS, checked_inputs


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


def _dataset_meta(cfg: Config) -> dict:
    from mmengine.registry import DATASETS
    dataset_cfg = cfg.test_dataloader.dataset.copy()
    dataset_cfg['lazy_init'] = True
    return dict(DATASETS.build(dataset_cfg).metainfo)


def inference(config: Union[str, Config], checkpoint: Optional[str], inputs,
              out_dir: Optional[str] = None, device: str = 'cpu',
              score_thr: float = 0.3, max_pixels: int = DEFAULT_MAX_PIXELS, **kwargs):
    """Run a model on an image path, a folder or an array; with ``out_dir``,
    drawn results go to ``out_dir/vis`` (predictions as JSON to ``out_dir/preds``
    for detection, drawn from ``score_thr`` up). Inputs that are not images or
    exceed ``max_pixels`` are refused (UsageError) before anything runs.
    Returns the toolbox inferencer's result dict."""
    inputs = checked_inputs(inputs, max_pixels)
    cfg = load_config(config)
    inferencer = build_inferencer(cfg, checkpoint, device)
    scope = cfg.get('default_scope')
    if scope == 'mmpretrain':
        return inferencer(inputs, show_dir=out_dir and os.path.join(out_dir, 'vis'), **kwargs)
    if scope == 'mmdet':
        return inferencer(inputs, out_dir=out_dir or '', no_save_vis=out_dir is None,
                          no_save_pred=out_dir is None, pred_score_thr=score_thr, **kwargs)
    return inferencer(inputs, out_dir=out_dir or '', **kwargs)
