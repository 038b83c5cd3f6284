"""Weights of all public layouts load, with numerical parity to timm and mmpretrain."""
import logging
import re

import pytest
import timm
import torch
from timm.models.metaformer import checkpoint_filter_fn

from helpers import build_from_config, mmpretrain_classifier, official_from_mmpretrain, randomize_
from mmpoolformer.checkpoint import CheckpointError, detect_layout, load_model_weights
from mmpoolformer.models import PoolFormer

ARCHS = ['s12', 's24', 's36', 'm36', 'm48']
# Relative to the largest reference value: the block adds its branches with addcmul (one
# rounding, fused multiply-add) where the references multiply and then add, so outputs of up
# to about 20 differ by up to 3.8e-5 (m48, 2026-12-02); a weight loaded wrongly is off by
# the order of the values themselves.
TOL = 1e-5


def _stage_outputs(stages, model, x):
    feats = []
    handles = [s.register_forward_hook(lambda m, i, o: feats.append(o)) for s in stages]
    with torch.no_grad():
        logits = model(x)
    for h in handles:
        h.remove()
    return feats, logits


def _ours(arch):
    # Parity is about weights and semantics, so compare the NCHW eager path, the
    # same op sequence as the references; the faster channels_last default path
    # is checked against this one in test_deploy.py (~2e-6 relative).
    return build_from_config(f'configs/classification/poolformer_{arch}_in1k.py',
                             **{'model.backbone.channels_last_eval': False})


@pytest.mark.parametrize('arch', ARCHS)
def test_parity_with_mmpretrain_and_official_layout(arch, tmp_path):
    reference = randomize_(mmpretrain_classifier(arch), seed=1)
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        expected = reference(x, mode='tensor')

    files = {'mmpretrain': reference.state_dict(),
             'official': official_from_mmpretrain(reference.state_dict())}
    for layout, state_dict in files.items():
        path = tmp_path / f'{layout}.pth'
        torch.save({'state_dict': state_dict} if layout == 'mmpretrain' else state_dict, path)
        assert detect_layout(state_dict) == layout
        ours = _ours(arch)
        missing, unexpected = load_model_weights(ours, str(path))
        assert not missing and not unexpected, (missing, unexpected)
        with torch.no_grad():
            logits = ours(x, mode='tensor')
        assert (logits - expected).abs().max() <= TOL * expected.abs().max(), layout


@pytest.mark.parametrize('arch', ARCHS)
def test_parity_with_timm(arch, tmp_path):
    reference = randomize_(timm.create_model(f'poolformer_{arch}'), seed=2).eval()
    x = torch.randn(2, 3, 224, 224)
    expected_feats, _ = _stage_outputs(reference.stages, reference, x)

    path = tmp_path / 'timm.pth'
    torch.save(reference.state_dict(), path)
    ours = _ours(arch)
    missing, unexpected = load_model_weights(ours, str(path))
    assert not missing and not unexpected
    feats, _ = _stage_outputs(ours.backbone.stages, lambda t: ours(t, mode='tensor'), x)
    for got, want in zip(feats, expected_feats, strict=True):
        assert (got - want).abs().max() <= TOL * want.abs().max()
    # Logits differ by design (timm normalises after pooling), but the final norm
    # and classifier weights must be the ones timm holds.
    assert torch.equal(ours.backbone.norm3.weight, reference.head.norm.weight)
    assert torch.equal(ours.head.fc.weight, reference.head.fc.weight)


def test_official_layout_is_the_one_timm_defines():
    """Our writer of the official layout agrees with timm's own converter."""
    reference = randomize_(mmpretrain_classifier('s12'), seed=3)
    official = official_from_mmpretrain(reference.state_dict())
    model = timm.create_model('poolformer_s12')
    model.load_state_dict(checkpoint_filter_fn(official, model), strict=True)


@pytest.mark.parametrize('layout', ['official', 'mmpretrain', 'timm'])
def test_init_cfg_loads_every_layout_into_a_dense_backbone(layout, tmp_path):
    if layout == 'timm':
        source = randomize_(timm.create_model('poolformer_s12'), seed=4).eval()
        state_dict = source.state_dict()
    else:
        source = randomize_(mmpretrain_classifier('s12'), seed=4)
        state_dict = source.state_dict()
        if layout == 'official':
            state_dict = official_from_mmpretrain(state_dict)
    path = tmp_path / 'weights.pth'
    torch.save(state_dict, path)

    backbone = PoolFormer('s12', out_indices=(0, 1, 2, 3), channels_last_eval=False,
                          init_cfg=dict(type='mmpoolformer.PretrainedAnyLayout',
                                        checkpoint=str(path)))
    backbone.init_weights()
    backbone.eval()
    x = torch.randn(1, 3, 96, 128)
    expected = []
    with torch.no_grad():
        if layout == 'timm':
            expected, _ = _stage_outputs(source.stages, source, x)
        else:
            h = source.backbone.patch_embed(x)
            for k, module in enumerate(source.backbone.network):
                h = module(h)
                if k % 2 == 0:
                    expected.append(h)
        feats, _ = _stage_outputs(backbone.stages, backbone, x)
    for got, want in zip(feats, expected, strict=True):
        assert (got - want).abs().max() <= TOL * want.abs().max()


def test_partial_load_lists_missing_and_unexpected(tmp_path):
    from mmengine.logging import MMLogger
    state_dict = _ours('s12').state_dict()
    state_dict.pop('head.fc.weight')
    state_dict['backbone.extra.weight'] = torch.zeros(3)
    path = tmp_path / 'partial.pth'
    torch.save(state_dict, path)
    # mmengine's logger does not propagate and keeps the stdout it was made with, so
    # listen on it directly.
    logger, records = MMLogger.get_current_instance(), []
    handler = logging.Handler()
    handler.emit = records.append
    logger.addHandler(handler)
    try:
        missing, unexpected = load_model_weights(_ours('s12'), str(path))
    finally:
        logger.removeHandler(handler)
    assert missing == ['head.fc.weight']
    assert unexpected == ['backbone.extra.weight']
    logged = '\n'.join(record.getMessage() for record in records)
    assert f'loaded {len(state_dict) - 1} tensors from {path} (mmpoolformer layout)' in logged
    assert 'missing keys (1): head.fc.weight' in logged
    assert 'unexpected keys (1): backbone.extra.weight' in logged


def test_wrong_arch_names_key_and_shapes(tmp_path):
    path = tmp_path / 's12.pth'
    torch.save(_ours('s12').state_dict(), path)
    with pytest.raises(CheckpointError, match=r"'backbone\.stem\.conv\.weight'.*"
                                              r"\(64, 3, 7, 7\).*\(96, 3, 7, 7\)"):
        load_model_weights(_ours('m36'), str(path))


def test_missing_checkpoint_is_one_line():
    with pytest.raises(FileNotFoundError, match='checkpoint not found: /no/such.pth'):
        load_model_weights(_ours('s12'), '/no/such.pth')


# The classifier's final GroupNorm under each layout's own name (docs/models.md;
# sail-sg/poolformer's ``norm``, mmpretrain's ``norm6`` after stage 6 of its network
# list, timm's ``head.norm``).
FINAL_NORM_KEYS = {'official': 'norm', 'mmpretrain': 'backbone.norm6', 'timm': 'head.norm'}


@pytest.mark.parametrize('layout', sorted(FINAL_NORM_KEYS))
def test_dense_backbone_takes_the_classifiers_final_norm_into_its_last_output_norm(
        layout, tmp_path):
    """The last output norm (norm3) of a four-output backbone gets the classifier's
    final GroupNorm; norm0..norm2 have no counterpart and keep GroupNorm's
    initialisation (weight 1, bias 0, torch.nn.GroupNorm.reset_parameters)."""
    if layout == 'timm':
        state_dict = timm.create_model('poolformer_s12').state_dict()
    else:
        state_dict = mmpretrain_classifier('s12').state_dict()
        if layout == 'official':
            state_dict = official_from_mmpretrain(state_dict)
    gen = torch.Generator().manual_seed(0)
    weight, bias = 0.5 + torch.rand(512, generator=gen), torch.randn(512, generator=gen)
    key = FINAL_NORM_KEYS[layout]
    assert state_dict[f'{key}.weight'].shape == (512, )  # the name is the layout's
    state_dict[f'{key}.weight'], state_dict[f'{key}.bias'] = weight, bias
    path = tmp_path / 'classifier.pth'
    torch.save(state_dict, path)

    backbone = PoolFormer('s12', out_indices=(0, 1, 2, 3),
                          init_cfg=dict(type='mmpoolformer.PretrainedAnyLayout',
                                        checkpoint=str(path)))
    backbone.init_weights()
    assert torch.equal(backbone.norm3.weight, weight)
    assert torch.equal(backbone.norm3.bias, bias)
    for i in range(3):
        norm = getattr(backbone, f'norm{i}')
        assert torch.equal(norm.weight, torch.ones_like(norm.weight)), i
        assert torch.equal(norm.bias, torch.zeros_like(norm.bias)), i


# mmsegmentation's Semantic FPN + PoolFormer checkpoints
# (fpn_poolformer_{s12,...}_8x4_512x512_40k_ade20k_*.pth, mmseg's poolformer metafile):
# mmpretrain's PoolFormer with out_indices (0, 2, 4, 6), so output norms norm0, norm2,
# norm4, norm6, then mmseg's FPN neck and FPNHead (scale heads of 1, 1, 2 and 3 conv
# modules, every second entry of the deeper ones an upsampling without weights).
MMSEG_FPN_S12 = 'mmseg::poolformer/fpn_poolformer_s12_8xb4-40k_ade20k-512x512.py'
MMSEG_FPN_OUTSIDE_BACKBONE = (
    [f'neck.{kind}.{i}.conv.{p}' for kind in ('lateral_convs', 'fpn_convs') for i in range(4)
     for p in ('weight', 'bias')]
    + ['decode_head.conv_seg.weight', 'decode_head.conv_seg.bias']
    + [f'decode_head.scale_heads.{i}.{j}.{p}'
       for i, j in [(0, 0), (1, 0), (2, 0), (2, 2), (3, 0), (3, 2), (3, 4)]
       for p in ('conv.weight', 'bn.weight', 'bn.bias', 'bn.running_mean', 'bn.running_var',
                 'bn.num_batches_tracked')])


def test_mmsegmentation_fpn_checkpoint_loads_every_tensor(tmp_path):
    """A checkpoint of mmseg's own Semantic FPN + PoolFormer-S12 model (built from
    mmseg's config, random weights and BN statistics) loads into our FPN config with
    no key missing or left over, and both models give the same logits: a tensor
    that did not land, or landed in the wrong place, would change them."""
    from mmpoolformer.apis import build_model
    theirs = randomize_(build_model(MMSEG_FPN_S12), seed=5).eval()
    gen = torch.Generator().manual_seed(6)
    for name, buffer in theirs.named_buffers():
        if name.endswith(('running_mean', 'running_var')):
            buffer.copy_(torch.rand(buffer.shape, generator=gen) + 0.5)
    state_dict = theirs.state_dict()
    backbone_norms = sorted(k for k in state_dict if re.match(r'backbone\.norm\d', k))
    assert backbone_norms == [f'backbone.norm{i}.{p}' for i in (0, 2, 4, 6)
                              for p in ('bias', 'weight')]
    assert 'backbone.patch_embed.proj.weight' in state_dict
    assert 'backbone.network.6.1.mlp.fc2.weight' in state_dict
    assert sorted(k for k in state_dict if not k.startswith('backbone.')) == sorted(
        MMSEG_FPN_OUTSIDE_BACKBONE)
    path = tmp_path / 'fpn_poolformer_s12_8x4_512x512_40k_ade20k.pth'
    torch.save({'meta': {'mmseg_version': '0.24.0'}, 'state_dict': state_dict}, path)

    ours = build_from_config('configs/segmentation/fpn_poolformer_s12_ade20k.py')
    missing, unexpected = load_model_weights(ours, str(path))
    assert (missing, unexpected) == ([], [])
    assert len(ours.state_dict()) == len(state_dict)
    x = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        expected, got = theirs(x, mode='tensor'), ours(x, mode='tensor')
    assert got.shape == expected.shape == (1, 150, 16, 24)
    assert (got - expected).abs().max() <= 1e-4 * expected.abs().max()
