"""Inference paths: channels_last default eval and the folded (deployed) backbone
give the trained model's outputs; the benchmark runs."""
import json

import pytest
import torch

from conftest import build_from_config, run_tool, succeeded
from mmpoolformer.models import PoolFormer
from mmpoolformer.models.backbones.metaformer import DeployedPoolFormerBlock


def _trained_like(model, seed=0):
    """Random weights at trained-model scales: norm weights around 1 with
    biases, layer scales well away from their 1e-5 init, so every folded term
    matters."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=gen)
            if name.endswith('scale'):
                p.copy_(0.5 + 0.2 * noise)
            elif 'norm' in name and name.endswith('weight'):
                p.copy_(1 + 0.2 * noise)
            else:
                p.copy_(0.05 * noise)
    return model.eval()


def _max_rel_diff(outs, refs):
    return max(((o - r).abs().max() / r.abs().max()).item() for o, r in zip(outs, refs))


@pytest.mark.parametrize('arch', ['s12', 's24', 's36', 'm36', 'm48'])
def test_deployed_backbone_matches_trained(arch):
    model = _trained_like(PoolFormer(arch, out_indices=(0, 1, 2, 3)))
    x = torch.randn(2, 3, 96, 128, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        model.channels_last_eval = False
        reference = model(x)
        model.channels_last_eval = True
        default = model(x)
        assert default[0].is_contiguous(memory_format=torch.channels_last)
        assert sum(len(s.blocks) for s in model.stages) == model.switch_to_deploy()
        deployed = model(x)
        model.channels_last_eval = False
        deployed_nchw = model(x)  # the folded math without oneDNN's fused ops
    assert _max_rel_diff(default, reference) <= 1e-4   # measured ~2e-6
    assert _max_rel_diff(deployed, reference) <= 1e-4  # measured ~2e-6
    assert _max_rel_diff(deployed_nchw, reference) <= 1e-4
    assert all(isinstance(b, DeployedPoolFormerBlock) for s in model.stages for b in s.blocks)


@pytest.mark.parametrize('config', ['configs/detection/maskrcnn_poolformer_s12.py',
                                    'configs/segmentation/fpn_poolformer_s12_ade20k.py'])
def test_deployed_dense_backbone_matches_trained(config):
    model = build_from_config(config)
    backbone = _trained_like(model.backbone)
    x = torch.randn(1, 3, 200, 264)  # sides not multiples of 32
    with torch.no_grad():
        reference = model.neck(backbone(x))
        backbone.switch_to_deploy()
        deployed = model.neck(backbone(x))
    assert _max_rel_diff(deployed, reference) <= 1e-4


def test_other_mixers_are_left_unfolded():
    model = PoolFormer('s12', token_mixers=dict(type='IdentityMixer')).eval()
    assert model.switch_to_deploy() == 0


def test_benchmark_runs_on_a_tiny_setting(tmp_path):
    out = tmp_path / 'bench.json'
    proc = succeeded(run_tool('tools/analysis/benchmark.py', '--batch', '1', '--res', '64',
                              '--warmup', '0', '--repeats', '1', '--train', '--bf16',
                              '--json', str(out)))
    assert '| ours: deploy (folded) |' in proc and '| timm: channels_last eager |' in proc
    report = json.loads(out.read_text())
    names = [r['name'] for r in report['inference']]
    assert 'mmpretrain PoolFormer: NCHW eager' in names
    assert all(r['img_per_s'] > 0 for r in report['inference'] + report['training'])
    fp32 = [r for r in report['inference'] if 'bf16' not in r['name']]
    assert all(r['max_abs_diff'] <= 1e-4 for r in fp32)
