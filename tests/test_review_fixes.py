"""The defects a code review found, one test each (each failed before its fix)."""
import json
import os
import re
import sys

import cv2
import numpy as np
import pytest
import torch

from helpers import ROOT, import_tool, mmpretrain_classifier, official_from_mmpretrain, randomize_
from mmpoolformer.models import PoolFormer
from mmpoolformer.utils.errors import ConfigError, DatasetError, UsageError

TINY = dict(layers=[1, 1, 1, 1], embed_dims=[8, 16, 24, 32], mlp_ratios=4)


def test_token_mixers_of_an_arch_dict_are_kept():
    """(a) PoolFormer passed its own Pooling mixers, overriding an arch dict's."""
    model = PoolFormer(arch=dict(TINY, token_mixers=dict(type='IdentityMixer')))
    mixers = {type(b.token_mixer).__name__ for s in model.stages for b in s.blocks}
    assert mixers == {'IdentityMixer'}
    assert type(PoolFormer(arch=TINY, pool_size=5).stages[0].blocks[0].token_mixer.pool
                ).__name__ == 'AvgPool2d'
    with pytest.raises(ConfigError, match='pool_size'):
        PoolFormer(arch=dict(TINY, token_mixers=dict(type='IdentityMixer')), pool_size=5)


def test_dropout_runs_in_train_mode_under_no_grad():
    """(b) the fused CPU path ran in train mode under no_grad and skipped dropout."""
    model = randomize_(PoolFormer(arch=TINY, drop_rate=0.5)).train()
    x = torch.randn(2, 3, 32, 32).contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        torch.manual_seed(0)
        first = model(x)[0]
        torch.manual_seed(1)
        second = model(x)[0]
        evaluated = model.eval()(x)[0]
    assert not torch.allclose(first, second)
    assert not torch.allclose(first, evaluated)


def test_a_child_config_with_its_own_custom_hooks_still_converts(tmp_path):
    """(c) ConvertCheckpointHook sat in custom_hooks, which a child config replaces."""
    from mmengine.config import Config
    from mmengine.runner import Runner
    child = tmp_path / 'child.py'
    child.write_text(f"_base_ = ['{ROOT}/configs/classification/poolformer_s12_in1k.py']\n"
                     "custom_hooks = [dict(type='EmptyCacheHook')]\n")
    cfg = Config.fromfile(str(child))
    cfg.work_dir = str(tmp_path / 'work')
    cfg.model.backbone.init_cfg = None
    runner = Runner.from_cfg(cfg)
    reference = randomize_(mmpretrain_classifier('s12'))
    path = str(tmp_path / 'official.pth')
    torch.save(official_from_mmpretrain(reference.state_dict()), path)
    runner.load_checkpoint(path)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        ours, theirs = runner.model.eval()(x, mode='tensor'), reference(x, mode='tensor')
    assert torch.allclose(ours, theirs, rtol=1e-4, atol=1e-5)


def test_load_image_checked_reads_each_file_once(tmp_path, monkeypatch):
    """(d) the file was read once for the check and again by mmcv's loader."""
    from mmengine.fileio.backends import LocalBackend

    from mmpoolformer.datasets.transforms import LoadImageChecked
    path = str(tmp_path / 'a.png')
    cv2.imwrite(path, np.full((5, 7, 3), 9, np.uint8))
    reads, real = [], LocalBackend.get
    monkeypatch.setattr(LocalBackend, 'get', lambda self, p: reads.append(p) or real(self, p))
    results = LoadImageChecked(to_float32=True).transform(dict(img_path=path))
    assert reads == [path]
    assert results['img'].shape == (5, 7, 3) and results['img'].dtype == np.float32
    assert results['img_shape'] == results['ori_shape'] == (5, 7)


def test_coco_checks_live_in_a_coco_api_subclass(tmp_path):
    """(e) ValidatedCocoDataset shadowed COCOAPI on the instance during a load."""
    from mmdet.datasets import CocoDataset

    from mmpoolformer.datasets import ValidatedCocoDataset
    api = ValidatedCocoDataset.COCOAPI
    assert api is not CocoDataset.COCOAPI and issubclass(api, CocoDataset.COCOAPI)
    bad = tmp_path / 'bad.json'
    bad.write_text('{"images": [')
    with pytest.raises(DatasetError, match='bad.json: not valid JSON'):
        api(str(bad))
    stray = tmp_path / 'stray.json'
    stray.write_text(json.dumps(dict(images=[dict(id=1, file_name='a.jpg')], categories=[
        dict(id=1, name='cat')], annotations=[dict(id=3, image_id=2, category_id=1)])))
    with pytest.raises(DatasetError, match='annotation 3 points at image_id 2'):
        api(str(stray))


def _tool_main(path, argv, monkeypatch):
    """A tool's main() without its one-line handler, run with these arguments."""
    monkeypatch.setattr(sys, 'argv', [path, *argv])
    return import_tool(path).main.__wrapped__


def test_usage_mistakes_are_usage_errors(tmp_path, monkeypatch):
    """(f) usage mistakes were FileNotFoundError; a plain ValueError escaped the
    tools' handler; a bad constructor argument was a DatasetError."""
    with pytest.raises(UsageError, match='give a CONFIG'):
        _tool_main('tools/visualization/gradcam.py', ['image.png'], monkeypatch)()
    (tmp_path / 'vis_data').mkdir()
    (tmp_path / 'vis_data' / 'scalars.json').write_text('{"loss": 1.0, "step": 1}\n')
    with pytest.raises(UsageError, match='no scalar'):
        _tool_main('tools/analysis/analyze_logs.py', [str(tmp_path), '--keys', 'nope'],
                   monkeypatch)()
    from mmengine.config import Config

    from mmpoolformer.apis import build_inferencer
    with pytest.raises(ConfigError, match='no inferencer'):
        build_inferencer(Config(dict(default_scope='mmengine', model=dict(type='Nope'))))
    from mmpoolformer.datasets.transforms import LoadImageChecked
    with pytest.raises(ConfigError, match='on_error'):
        LoadImageChecked(on_error='ignore')


def test_tests_cite_only_files_in_the_repository():
    """(g) tests cited a list of target figures that the repository did not have."""
    for name in sorted(os.listdir(os.path.join(ROOT, 'tests'))):
        if name.endswith('.py'):
            text = open(os.path.join(ROOT, 'tests', name)).read()
            for cited in re.findall(r'(?<![\w/.])([\w/-]+\.md)\b', text):
                found = [p for p in (cited, os.path.join('docs', cited))
                         if os.path.isfile(os.path.join(ROOT, p))]
                assert found, f'tests/{name} cites {cited}, which is not in the repository'
