"""The MetaFormer v2 family (PoolFormerV2, IdentityFormer, RandFormer, ConvFormer,
CAFormer): sizes, timm parity, the sail-sg/metaformer layout, backbone options,
RandFormer at other resolutions, and the dense configs."""
import math

import numpy as np
import pytest
import timm
import torch
from mmengine.registry import DefaultScope
from timm.models.metaformer import checkpoint_filter_fn

from helpers import build_from_config, count_macs, count_parameters, randomize_
from mmpoolformer.checkpoint import (
    V2_LAYOUTS,
    convert_from_mmpoolformer,
    convert_to_mmpoolformer,
    detect_layout,
    load_model_weights,
)
from mmpoolformer.models import CAFormer, ConvFormer, IdentityFormer, PoolFormerV2, RandFormer
from mmpoolformer.models.layers import RandomMixing
from mmpoolformer.utils.errors import ConfigError

# Yu et al., "MetaFormer Baselines for Vision" (arXiv 2210.13452), Table 1, and the
# model table of sail-sg/metaformer's README: params in M (RandFormer: + its fixed random
# matrices), MACs in G. The paper's MACs are truncated to one decimal, not
# rounded: we measure e.g. poolformerv2_m48 11.59 (paper 11.5), randformer_s24
# 3.57 (3.5), convformer_m36 12.89 (12.8), caformer_m36 13.29 (13.2).
TARGETS = {
    'identityformer': dict(s12=(11.9, 1.8), s24=(21.3, 3.4), s36=(30.8, 5.0),
                           m36=(56.1, 8.8), m48=(73.3, 11.5)),
    'randformer': dict(s12=(11.9, 1.9), s24=(21.3, 3.5), s36=(30.8, 5.2),
                       m36=(56.1, 9.0), m48=(73.3, 11.9)),
    'poolformerv2': dict(s12=(11.9, 1.8), s24=(21.3, 3.4), s36=(30.8, 5.0),
                         m36=(56.1, 8.8), m48=(73.3, 11.5)),
    'convformer': dict(s18=(27, 3.9), s36=(40, 7.6), m36=(57, 12.8), b36=(100, 22.6)),
    'caformer': dict(s18=(26, 4.1), s36=(39, 8.0), m36=(56, 13.2), b36=(99, 23.2)),
}
RANDOM_MATRIX_M = dict(s12=0.2, s24=0.5, s36=0.7, m36=0.7, m48=0.9)
MODELS = [(family, arch) for family, sizes in TARGETS.items() for arch in sizes]
TIMM_MODELS = [(f, a) for f, a in MODELS if f in ('poolformerv2', 'convformer', 'caformer')]
CLASSES = dict(poolformerv2=PoolFormerV2, identityformer=IdentityFormer,
               randformer=RandFormer, convformer=ConvFormer, caformer=CAFormer)
S_MEMBERS = [('poolformerv2', 's12'), ('identityformer', 's12'), ('randformer', 's12'),
             ('convformer', 's18'), ('caformer', 's18')]


def _classifier(family, arch):
    return build_from_config(f'configs/classification/{family}_{arch}_in1k.py')


@pytest.mark.parametrize('family,arch', MODELS)
def test_sizes_equal_reference(family, arch):
    params_m, gmacs = TARGETS[family][arch]
    model = _classifier(family, arch)
    digits = 0 if family in ('convformer', 'caformer') else 1
    assert round(count_parameters(model) / 1e6, digits) == params_m
    buffers = sum(b.numel() for b in model.buffers()) - 6  # data preprocessor mean/std
    assert round(buffers / 1e6, 1) == (RANDOM_MATRIX_M[arch] if family == 'randformer' else 0)
    assert math.floor(count_macs(model) / 1e8) / 10 == gmacs
    if (family, arch) in TIMM_MODELS:
        reference = timm.create_model(f'{family}_{arch}')
        assert count_parameters(model) == count_parameters(reference)


def _timm_model(name, seed):
    """timm's model with its own random init (trunc-normal weights at the scale
    training starts from) and every 1-d parameter (norm weights, residual
    scales, StarReLU scalars, biases) randomised too, so nothing is left at a
    default value that could hide a swapped tensor. (With randomize_'s 0.1-std
    weights everywhere, activations grow about tenfold per stage and CAFormer's
    logits, around 18 in size, differ by 9e-5 from float rounding alone: conv
    1x1 and nn.Linear sum in different orders.)"""
    torch.manual_seed(seed)
    model = timm.create_model(name)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in model.parameters():
            if param.dim() == 1:
                param.add_(torch.randn(param.shape, generator=gen) * 0.1)
    return model.eval()


@pytest.mark.parametrize('family,arch', TIMM_MODELS)
def test_timm_parity(family, arch):
    reference = _timm_model(f'{family}_{arch}', seed=1)
    model = _classifier(family, arch)
    state_dict, layout = convert_to_mmpoolformer(reference.state_dict())
    assert layout == 'timm'
    model.load_state_dict(state_dict, strict=True)
    x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        diff = (model(x, mode='tensor') - reference(x)).abs().max().item()
    assert diff <= 1e-5, diff


@pytest.mark.parametrize('family,arch', S_MEMBERS)
def test_metaformer_layout_matches_timms_reading_of_it(family, arch, tmp_path):
    """Our writer of the sail-sg/metaformer layout, read back by timm's own filter
    (independent of our key maps), gives timm exactly the tensors of our timm
    layout, and our reader gives us the same model."""
    model = randomize_(_classifier(family, arch), seed=2)
    ours = model.state_dict()
    for target in V2_LAYOUTS:
        written = convert_from_mmpoolformer(ours, target)
        assert detect_layout(written) == target
        again, _ = convert_to_mmpoolformer(written)
        assert all(torch.equal(again[k], v) for k, v in ours.items()
                   if 'data_preprocessor' not in k)
    official = convert_from_mmpoolformer(ours, 'metaformer')
    assert 'downsample_layers.0.conv.weight' in official and 'norm.weight' in official
    if (family, arch) in TIMM_MODELS:
        reference = timm.create_model(f'{family}_{arch}')
        read_by_timm = checkpoint_filter_fn(official, reference)
        reference.load_state_dict(read_by_timm, strict=True)
        assert all(torch.equal(read_by_timm[k], v)
                   for k, v in convert_from_mmpoolformer(ours, 'timm').items())
    # And through a file, the way configs and tools load it.
    path = tmp_path / f'{family}_{arch}.pth'
    torch.save(official, path)
    fresh = _classifier(family, arch)
    missing, unexpected = load_model_weights(fresh, str(path))
    assert not unexpected and not [k for k in missing if 'data_preprocessor' not in k]
    assert all(torch.equal(fresh.state_dict()[k], v) for k, v in ours.items())


def test_v1_layouts_refuse_v2_models():
    ours = _classifier('poolformerv2', 's12').state_dict()
    with pytest.raises(Exception, match='PoolFormer v1 only'):
        convert_from_mmpoolformer(ours, 'official')


@pytest.mark.parametrize('family', list(CLASSES))
def test_backbone_options(family, checkpoint_calls):
    cls = CLASSES[family]
    model = cls(out_indices=(0, 1, 2, 3), drop_path_rate=0.1).train()
    outs = model(torch.randn(2, 3, 224, 224))  # RandFormer's stored grids
    assert [o.shape[1] for o in outs] == model.embed_dims
    assert [o.shape[-1] for o in outs] == [56, 28, 14, 7]
    # Gradient checkpointing recomputes, so the gradients are the same.
    grads = []
    for with_cp in (False, True):
        torch.manual_seed(0)
        m = cls(out_indices=(2, 3), with_cp=with_cp).train()
        randomize_(m, seed=3)
        sum(o.square().mean() for o in m(torch.randn(1, 3, 64, 64,
                                                      generator=torch.Generator().manual_seed(4)))).backward()
        grads.append(m.stages[2].blocks[0].mlp.fc1.weight.grad.clone())
        assert len(checkpoint_calls) == (sum(m.arch['layers']) if with_cp else 0)
    assert torch.allclose(grads[0], grads[1], atol=1e-6)


# The toolbox whose Runner initialises each member below: the initializer's scoped
# name must resolve from the default scope of any of them.
INIT_SCOPES = ['mmpretrain', 'mmdet', 'mmseg', 'mmdet', 'mmseg']


@pytest.mark.parametrize('family,arch,scope', [
    (family, arch, scope) for (family, arch), scope in zip(S_MEMBERS, INIT_SCOPES, strict=True)])
def test_init_cfg_loads_a_classifier_checkpoint_into_a_dense_backbone(family, arch, scope,
                                                                      tmp_path):
    classifier = randomize_(_classifier(family, arch), seed=7)
    path = tmp_path / 'cls.pth'
    torch.save(convert_from_mmpoolformer(classifier.state_dict(), 'metaformer'), path)
    backbone = CLASSES[family](arch, out_indices=(0, 1, 2, 3), init_cfg=dict(
        type='mmpoolformer.PretrainedAnyLayout', checkpoint=str(path)))
    with DefaultScope.overwrite_default_scope(scope):
        backbone.init_weights()
    theirs = {k[len('backbone.'):]: v for k, v in classifier.state_dict().items()
              if k.startswith('backbone.')}
    assert all(torch.equal(backbone.state_dict()[k], v) for k, v in theirs.items())


def test_unknown_arch_key_suggests_the_closest():
    with pytest.raises(ConfigError, match="'embed_dim'.*did you mean 'embed_dims'"):
        ConvFormer(arch=dict(layers=[1, 1, 1, 1], embed_dim=[8, 8, 8, 8]))
    with pytest.raises(ConfigError, match="'s19'.*did you mean 's18'"):
        CAFormer('s19')


# --------------------------------------------------------------------------- #
# RandFormer at resolutions other than 224x224
# --------------------------------------------------------------------------- #
def test_random_mixing_on_its_own_grid_uses_the_stored_matrix():
    mixer = RandomMixing(dim=8, num_tokens=196)
    assert mixer.mixing_matrix(14, 14) is mixer.random_matrix
    x = torch.randn(2, 8, 14, 14)
    expected = torch.einsum('mn,bcn->bcm', mixer.random_matrix, x.flatten(2)).reshape(x.shape)
    assert torch.allclose(mixer(x), expected, atol=1e-6)


def _linear_resampling(n_out, n_in):
    """The n_out x n_in matrix of 1-D linear interpolation with half-pixel centres
    (PyTorch's align_corners=False, no antialiasing): output i samples the input at
    (i + 0.5) * n_in / n_out - 0.5, clamped at 0, between its two neighbours."""
    weights = np.zeros((n_out, n_in))
    for i in range(n_out):
        x = max((i + 0.5) * n_in / n_out - 0.5, 0.0)
        left = int(x)
        right = min(left + 1, n_in - 1)
        weights[i, left] += 1 - (x - left)
        weights[i, right] += x - left
    return weights


@pytest.mark.parametrize('size', [(7, 7), (20, 31), (64, 40)])
def test_random_mixing_resampled_to_other_grids_is_the_bilinear_resampling(size):
    """Token (i, j) of an HxW grid mixes token (k, l) with the stored weight between
    their positions on the 14x14 grid, bilinearly interpolated on both axes of both
    the target and the source token, each row then renormalised. Computed here with
    numpy, independently of the mixer's use of F.interpolate."""
    mixer = RandomMixing(dim=4, num_tokens=196)
    height, width = size
    matrix = mixer.mixing_matrix(height, width)
    # Bilinear = linear along rows times linear along columns; the token index is
    # i * width + j, so the resampling of a flattened grid is a Kronecker product.
    grid = np.kron(_linear_resampling(height, 14), _linear_resampling(width, 14))
    expected = grid @ mixer.random_matrix.double().numpy() @ grid.T
    expected /= expected.sum(axis=1, keepdims=True)
    assert matrix.shape == expected.shape == (height * width, height * width)
    np.testing.assert_allclose(matrix.double().numpy(), expected, rtol=1e-5, atol=1e-9)
    x = torch.randn(1, 4, *size)
    mixed = np.einsum('mn,bcn->bcm', expected, x.flatten(2).double().numpy())
    np.testing.assert_allclose(mixer(x).flatten(2).numpy(), mixed, rtol=1e-4, atol=1e-5)


def test_random_mixing_resampled_by_hand():
    """A 2x2 stored grid (tokens (0, 0), (0, 1), (1, 0), (1, 1)) resampled to 1x2:
    the two grid rows merge with weights 1/2 each, the columns stay. Target (0, j)
    averages stored rows (0, j) and (1, j); its weight on source (0, l) adds their
    weights on stored tokens (0, l) and (1, l):
    (0, 0) -> [(1 + 0) + (0 + 1), 0] / 2 = [1, 0];
    (0, 1) -> [(0.5 + 0) + (0 + 0.25), (0.5 + 0) + (0 + 0.75)] / 2 = [0.375, 0.625]."""
    mixer = RandomMixing(dim=1, num_tokens=4)
    with torch.no_grad():
        mixer.random_matrix.copy_(torch.tensor([[1.0, 0.0, 0.0, 0.0],
                                                [0.5, 0.5, 0.0, 0.0],
                                                [0.0, 0.0, 1.0, 0.0],
                                                [0.0, 0.0, 0.25, 0.75]]))
    assert torch.allclose(mixer.mixing_matrix(1, 2), torch.tensor([[1.0, 0.0], [0.375, 0.625]]))


def test_random_mixing_resampled_rows_follow_positions():
    """Rows follow token positions: with the identity stored (every token keeps only
    itself), halving the grid (14x14 -> 7x7, each new token the mean of a 2x2 block)
    gives the identity again, and on a 28x20 grid each token mixes only tokens whose
    positions on the 14x14 grid lie less than 2 stored cells from its own (both
    interpolate from a stored cell they share), itself included. Any other
    row-stochastic resampling (uniform, random, rows in the wrong order) mixes far
    tokens."""
    mixer = RandomMixing(dim=1, num_tokens=196)
    with torch.no_grad():
        mixer.random_matrix.copy_(torch.eye(196))
    assert torch.allclose(mixer.mixing_matrix(7, 7), torch.eye(49), atol=1e-6)
    height, width = 28, 20
    matrix = mixer.mixing_matrix(height, width)
    # Token centres on the stored grid (half-pixel centres, align_corners=False).
    rows = (torch.arange(height) + 0.5) * 14 / height - 0.5
    cols = (torch.arange(width) + 0.5) * 14 / width - 0.5
    row_of, col_of = rows.repeat_interleave(width), cols.repeat(height)
    far = (((row_of[:, None] - row_of[None]).abs() >= 2)
           | ((col_of[:, None] - col_of[None]).abs() >= 2))
    assert matrix[far].abs().max() < 1e-6
    assert (matrix.diagonal() > 0.05).all()


@pytest.mark.parametrize('family,arch', S_MEMBERS)
@pytest.mark.parametrize('task', ['detection', 'segmentation'])
def test_dense_configs_run(family, arch, task):
    name = (f'detection/maskrcnn_{family}_{arch}.py' if task == 'detection'
            else f'segmentation/fpn_{family}_{arch}_ade20k.py')
    model = build_from_config(f'configs/{name}')
    assert type(model.backbone) is CLASSES[family]
    assert model.backbone.init_cfg['checkpoint'] == (
        f'https://huggingface.co/sail/dl/resolve/main/{family}/{family}_{arch}.pth')
    # Sides that are not multiples of 32, as after mmdet / mmseg resizing.
    outs = model.extract_feat(torch.randn(1, 3, 200, 296))
    assert all(torch.isfinite(o).all() for o in outs)
    assert outs[0].shape[-2:] == (50, 74)
