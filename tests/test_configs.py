"""Every config builds in its toolbox, with the backbone from this project; the dense
ones predict at sizes that are not multiples of 32; config mistakes are named with a
suggestion."""
import glob
import os
import re

import pytest
import torch

from helpers import ROOT, build_from_config, count_parameters, dense_batch, one_line_error, run_tool
from mmpoolformer.models import MetaFormer, PoolFormer

TASK_DIRS = ('classification', 'detection', 'segmentation')
CONFIGS = sorted(os.path.relpath(p, ROOT) for task in TASK_DIRS
                 for p in glob.glob(f'{ROOT}/configs/{task}/*.py'))
PRETRAINED_TABLE = os.path.join(ROOT, 'configs', '_base_', 'pretrained.py')
CLS = 'configs/classification/poolformer_s12_builtin.py'
MASKRCNN = 'configs/detection/maskrcnn_poolformer_s12_builtin.py'

# Whole-model parameters in M (80 COCO classes / 150 ADE20K classes): the PoolFormer
# paper (arXiv 2111.11418), Tables 3 (COCO) and 4 (ADE20K).
# The paper has no M36/M48 detectors; their figures are this project's (README).
PAPER_PARAMS = {
    'detection/retinanet_poolformer_s12.py': 21.7,
    'detection/retinanet_poolformer_s24.py': 31.1,
    'detection/retinanet_poolformer_s36.py': 40.6,
    'detection/maskrcnn_poolformer_s12.py': 31.6,
    'detection/maskrcnn_poolformer_s24.py': 41.0,
    'detection/maskrcnn_poolformer_s36.py': 50.5,
    'segmentation/fpn_poolformer_s12_ade20k.py': 15.7,
    # S24: see test_fpn_s24_is_fpn_s12_with_the_blocks_s24_adds.
    'segmentation/fpn_poolformer_s36_ade20k.py': 34.6,
    'segmentation/fpn_poolformer_m36_ade20k.py': 59.8,
    'segmentation/fpn_poolformer_m48_ade20k.py': 77.1,
}


@pytest.mark.parametrize('config', CONFIGS)
def test_config_builds_our_backbone(config):
    model = build_from_config(config)
    assert isinstance(model.backbone, MetaFormer)
    assert model.backbone.init_cfg is None or 'checkpoint' in model.backbone.init_cfg
    name = config.split('/', 1)[1]
    if name in PAPER_PARAMS:
        assert abs(count_parameters(model) / 1e6 - PAPER_PARAMS[name]) <= 0.1 + 1e-9


# The same Semantic FPN with mmpretrain 1.2.0's PoolFormer as its backbone
# (out_indices 0, 2, 4, 6: its output norms are ours), built by mmsegmentation 1.2.2 and
# counted with sum(p.numel()); the FLOPs of these two are in test_openmmlab.py.
FPN_PARAMS = {'s12': 15_669_846, 's24': 25_143_638}


def test_fpn_s24_is_fpn_s12_with_the_blocks_s24_adds():
    """The paper prints 23.2M for FPN-S24 (Table 4), less than its own FPN-S12 (15.7M,
    checked above) plus the blocks S24 adds to S12, which timm's and mmpretrain's
    classifiers count as 21,388,968 - 11,915,176 = 9,473,792 parameters (25.2M in all).
    Everything else (stem, downsampling, output norms, FPN, head) is the same. Both
    sizes are the ones the same segmentor with mmpretrain's backbone has."""
    fpn = {arch: count_parameters(build_from_config(
        f'configs/segmentation/fpn_poolformer_{arch}_ade20k.py')) for arch in ('s12', 's24')}
    assert fpn == FPN_PARAMS
    assert FPN_PARAMS['s24'] - FPN_PARAMS['s12'] == 21_388_968 - 11_915_176


def test_dense_configs_use_official_weights():
    for config in CONFIGS:
        dense = config.startswith(('configs/detection', 'configs/segmentation'))
        if dense and '_poolformer_' in config and 'builtin' not in config:
            model = build_from_config(config)
            url = model.backbone.init_cfg['checkpoint']
            arch = [a for a in PoolFormer.arch_settings if f'_{a}' in config][0]
            assert url == ('https://github.com/sail-sg/poolformer/releases/download/'
                           f'v1.0/poolformer_{arch}.pth.tar')


def test_retinanet_skips_the_stride4_output():
    model = build_from_config('configs/detection/retinanet_poolformer_s12.py')
    assert model.backbone.out_indices == (1, 2, 3)
    assert not hasattr(model.backbone, 'norm0')


@pytest.mark.parametrize('config', CONFIGS)
def test_configs_check_images_write_atomically_and_stop_on_nan(config):
    """docs/reliability.md: every config's data sets check images as they load (the
    toolbox's LoadImageFromFile at the head of the test pipeline, --tta's too, which the
    data set builds as LoadImageChecked), writes checkpoints through the atomic backend
    that plain torch.load reads, and stops at a NaN loss."""
    from mmpoolformer.apis import load_config
    cfg = load_config(os.path.join(ROOT, config))
    assert cfg.default_hooks.checkpoint.type == 'mmpoolformer.AtomicCheckpointHook'
    assert cfg.default_hooks.checkpoint.backend_args == dict(backend='atomic_local')
    assert cfg.default_hooks.check_loss.type == 'mmpoolformer.NonFiniteLossHook'
    assert (cfg.default_hooks.weights_only_checkpoint.type
            == 'mmpoolformer.WeightsOnlyCheckpointHook')
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        dataset = cfg[loader].dataset
        while 'dataset' in dataset:  # mmseg's and mmdet's RepeatDataset wrappers
            dataset = dataset.dataset
        assert dataset.type.startswith('mmpoolformer.Validated'), (config, loader)
        assert dataset.pipeline[0].type == 'LoadImageFromFile', (config, loader)
        assert loader == 'train_dataloader' or dataset.test_mode
    if cfg.get('tta_pipeline'):  # tools/test.py --tta puts it in test_dataloader's place
        assert cfg.tta_pipeline[0].type == 'LoadImageFromFile', config


@pytest.mark.parametrize('config', CONFIGS)
def test_backbone_weights_come_from_the_table(config):
    """A backbone that loads weights names the initializer that reads every layout
    (mmpoolformer.PretrainedAnyLayout), and its checkpoint is one of
    configs/_base_/pretrained.py's."""
    from mmengine.config import Config

    from mmpoolformer.apis import load_config
    table = Config.fromfile(PRETRAINED_TABLE).pretrained_weights
    init_cfg = load_config(os.path.join(ROOT, config)).model.backbone.get('init_cfg')
    if config.startswith(('configs/detection/', 'configs/segmentation/')):
        assert init_cfg is not None, f'{config}: the backbone starts from no weights'
    if init_cfg is not None:
        assert init_cfg.type == 'mmpoolformer.PretrainedAnyLayout', config
        assert init_cfg.checkpoint in table.values(), config


def test_each_url_is_written_once():
    """Weights URLs live in configs/_base_/pretrained.py only, each once."""
    table_text = open(PRETRAINED_TABLE).read()
    urls = re.findall(r"'(https://[^']+)'", table_text)
    assert urls and len(urls) == len(set(urls))
    for path in glob.glob(f'{ROOT}/configs/**/*.py', recursive=True):
        if path != PRETRAINED_TABLE:
            assert 'https://' not in open(path).read(), path


@pytest.mark.parametrize('config', [MASKRCNN, 'configs/segmentation/fpn_poolformer_s12_builtin.py'])
def test_dense_models_predict_on_odd_sizes(config):
    model = build_from_config(config, **{'model.backbone.init_cfg': None})
    h, w = 157, 203
    data = dense_batch(model, [(h, w)])
    with torch.no_grad():
        result = model(**data, mode='predict')[0]
    if 'detection' in config:
        assert result.pred_instances.masks.shape[-2:] == (h, w)
    else:
        assert result.pred_sem_seg.data.shape[-2:] == (h, w)



@pytest.mark.parametrize('option, message', [
    ('model.backbone.type=mmpoolformer.PoolFormr',
     r"model\.backbone\.type: unknown model type 'mmpoolformer\.PoolFormr' "
     r"\(did you mean 'mmpoolformer\.PoolFormer'\?\)"),
    ('model.backbone.drop_path_rat=0.1',
     r"model\.backbone: PoolFormer has no argument 'drop_path_rat' "
     r"\(did you mean 'drop_path_rate'\?\)"),
    ('model.backbone.arch=s122', r"Unknown PoolFormer arch 's122' \(did you mean 's12'\?\)"),
])
def test_config_mistakes_are_named_with_a_suggestion(tmp_path, option, message):
    proc = run_tool('tools/train.py', CLS, '--work-dir', str(tmp_path), '--cfg-options', option)
    one_line_error(proc, message)
