"""The PoolFormer backbone: sizes, options and bad input."""
import pytest
import torch

from helpers import build_from_config, count_macs, count_parameters, randomize_
from mmpoolformer.models import PoolFormer

# Exact classifier parameter counts (timm's and mmpretrain's PoolFormer agree; the
# parity tests build both), and MACs at 1x3x224x224 counted by fvcore 0.1.5's
# FlopCountAnalysis run directly on mmpretrain 1.2.0's PoolFormer classifier
# (ImageClassifier in tensor mode; timm's model counts 122,880-184,320 fewer, as its
# head normalises the pooled vector instead of the last feature map). The PoolFormer
# paper, Yu et al., "MetaFormer Is Actually What You Need for Vision" (arXiv
# 2111.11418), Table 1, prints the MACs (fvcore) to one decimal, in G: last column.
SIZES = {
    's12': (11_915_176, 1_822_703_616, 1.8), 's24': (21_388_968, 3_412_931_584, 3.4),
    's36': (30_862_760, 5_003_159_552, 5.0), 'm36': (56_172_520, 8_801_914_368, 8.8),
    'm48': (73_473_448, 11_590_746_624, 11.6),
}


@pytest.mark.parametrize('arch', list(SIZES))
def test_classifier_size_equals_paper(arch):
    """Counted by tools/analysis/complexity.py, which get_flops.py and the metafiles use."""
    params, macs, paper_gmacs = SIZES[arch]
    model = build_from_config(f'configs/classification/poolformer_{arch}_in1k.py')
    assert count_parameters(model) == params
    assert count_macs(model) == macs
    assert round(macs / 1e9, 1) == paper_gmacs


@pytest.mark.parametrize('out_indices', [(0, 1, 2, 3), (1, 2, 3), (2, ), (-1, )])
def test_out_indices_shapes_and_norms(out_indices):
    model = PoolFormer('s12', out_indices=out_indices).eval()
    outs = model(torch.randn(1, 3, 64, 96))
    stages = sorted(i % 4 for i in out_indices)
    assert len(outs) == len(stages)
    for out, i in zip(outs, stages, strict=True):
        assert out.shape == (1, model.embed_dims[i], 64 // 4 // 2**i, 96 // 4 // 2**i)
        assert hasattr(model, f'norm{i}')
    # Stages without an output get no norm, so unused weights are never created.
    assert not any(hasattr(model, f'norm{i}') for i in set(range(4)) - set(stages))


def test_later_stages_are_not_computed():
    model = PoolFormer('s12', out_indices=(1, )).eval()
    calls = []
    model.stages[2].register_forward_hook(lambda *a: calls.append(1))
    model(torch.randn(1, 3, 64, 64))
    assert not calls


def test_odd_input_sizes():
    model = PoolFormer('s12', out_indices=(0, 1, 2, 3)).eval()
    outs = model(torch.randn(1, 3, 75, 101))
    assert [o.shape[-2:] for o in outs] == [(19, 25), (10, 13), (5, 7), (3, 4)]


def test_norm_eval_keeps_batchnorm_in_eval():
    model = PoolFormer('s12', norm_cfg=dict(type='BN'), norm_eval=True)
    model.train()
    bns = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert bns and all(not m.training for m in bns)
    assert model.stages[0].blocks[0].mlp.training


def test_with_cp_checkpoints_every_block_and_gives_the_same_gradients(checkpoint_calls):
    x = torch.randn(2, 3, 64, 64)
    grads, checkpointed = [], []
    for with_cp in (False, True):
        torch.manual_seed(0)
        model = randomize_(PoolFormer('s12', with_cp=with_cp), seed=0).train()
        model(x)[0].square().mean().backward()
        grads.append(model.stages[1].blocks[0].mlp.fc1.weight.grad.clone())
        checkpointed.append(len(checkpoint_calls))
    assert checkpointed == [0, 12]  # S12 has 2 + 2 + 6 + 2 blocks
    assert torch.allclose(grads[0], grads[1], atol=1e-6)


def test_training_on_the_cpu_runs_channels_last_with_the_nchw_results():
    """channels_last_train (the default) trains in channels_last on the CPU; the
    outputs and gradients are those of NCHW training, to float rounding."""
    x = torch.randn(2, 3, 64, 64)
    model = randomize_(PoolFormer('s12', out_indices=(0, 3)), seed=0).train()
    layouts = []
    model.stages[1].register_forward_pre_hook(
        lambda module, args: layouts.append(args[0].is_contiguous(
            memory_format=torch.channels_last) and not args[0].is_contiguous()))
    results = []
    for channels_last in (True, False):
        model.channels_last_train = channels_last
        model.zero_grad()
        outs = model(x)
        sum(out.square().mean() for out in outs).backward()
        results.append([*outs, *(p.grad.clone() for p in model.parameters())])
    assert layouts == [True, False]
    for cl, nchw in zip(*results):
        assert torch.allclose(cl, nchw, rtol=1e-4, atol=1e-5)


def test_drop_path_rises_linearly():
    model = PoolFormer('s12', drop_path_rate=0.1)
    rates = [b.drop_path_rate for s in model.stages for b in s.blocks]
    assert rates[0] == 0 and rates[-1] == pytest.approx(0.1) and rates == sorted(rates)


@pytest.mark.parametrize('family, training', [('PoolFormer', True), ('PoolFormer', False),
                                              ('PoolFormerV2', True)])
def test_block_adds_its_branches_as_mmcv_droppath_and_layer_scale_would(family, training):
    """The block's one-addcmul residual against the plain composition, with
    mmcv's DropPath drawing its per-sample mask from the same random state
    (PoolFormer: layer scales; PoolFormerV2: residual scales, no layer scales)."""
    from mmcv.cnn.bricks import DropPath

    import mmpoolformer.models
    model = getattr(mmpoolformer.models, family)('s12')
    block = randomize_(model, seed=0).stages[0].blocks[0]
    block.drop_path_rate = 0.5
    block.train(training)
    x = torch.randn(8, 64, 14, 14)
    drop_path = DropPath(0.5).train(training)

    def plain(x):
        x = block.res_scale1(x) + drop_path(block.layer_scale1(block.token_mixer(block.norm1(x))))
        return block.res_scale2(x) + drop_path(block.layer_scale2(block.mlp(block.norm2(x))))

    torch.manual_seed(1)
    expected = plain(x)
    torch.manual_seed(1)
    out = block(x)
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-6)


def test_layer_scale_init_per_arch():
    assert PoolFormer('s12').stages[0].blocks[0].layer_scale1.scale[0].item() == pytest.approx(1e-5)
    assert PoolFormer('s36').stages[0].blocks[0].layer_scale1.scale[0].item() == pytest.approx(1e-6)


def test_token_mixer_is_pluggable():
    model = PoolFormer('s12', token_mixers=dict(type='IdentityMixer'))
    assert type(model.stages[0].blocks[0].token_mixer).__name__ == 'IdentityMixer'


def test_arch_dict():
    model = PoolFormer(dict(layers=[1, 1, 1, 1], embed_dims=[8, 16, 32, 64], mlp_ratios=2))
    assert model.stages[3].blocks[0].mlp.fc1.out_channels == 128


def test_unknown_arch_lists_valid_ones():
    with pytest.raises(ValueError, match=r"'s13'.*\['m36', 'm48', 's12', 's24', 's36'\]"):
        PoolFormer('s13')


def test_arch_dict_without_required_keys():
    with pytest.raises(ValueError, match='embed_dims'):
        PoolFormer(dict(layers=[1, 1, 1, 1]))


@pytest.mark.parametrize('out_indices', [(4, ), (0, -5)])
def test_out_indices_out_of_range(out_indices):
    with pytest.raises(ValueError, match='out_indices entry .* out of range'):
        PoolFormer('s12', out_indices=out_indices)


def test_frozen_stages_beyond_the_stages():
    with pytest.raises(ValueError, match=r'frozen_stages must be in \[-1, 4\].*got 5'):
        PoolFormer('s12', frozen_stages=5)


def _std_and_bias(layer):
    bias = layer.bias.abs().max().item() if layer.bias is not None else 0.0
    return layer.weight.std().item(), bias


def test_default_init_is_the_original_poolformers():
    """sail-sg/poolformer: trunc_normal_(std=.02) and zero bias on the MLP's
    1x1 convolutions; the stem and downsampling keep PyTorch's default init
    (kaiming-uniform: std 1/sqrt(3 * fan_in), 0.048 for the 7x7x3 stem)."""
    torch.manual_seed(0)
    model = PoolFormer('s12')
    model.init_weights()
    for block in (model.stages[0].blocks[0], model.stages[3].blocks[1]):
        for fc in (block.mlp.fc1, block.mlp.fc2):
            std, bias = _std_and_bias(fc)
            assert std == pytest.approx(0.02, rel=0.05) and bias == 0.0
    std, bias = _std_and_bias(model.stem.conv)
    assert std == pytest.approx((3 * 3 * 7 * 7) ** -0.5, rel=0.1)  # 1/sqrt(3 * fan_in)
    assert bias > 0


@pytest.mark.parametrize('family', ['PoolFormerV2', 'CAFormer'])
def test_default_init_of_metaformer_v2_covers_every_conv_and_linear(family):
    """sail-sg/metaformer: trunc_normal_(std=.02), zero bias on every Conv2d and Linear."""
    from mmpoolformer import models
    torch.manual_seed(0)
    model = getattr(models, family)()
    model.init_weights()
    layers = [m for m in model.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    assert any(isinstance(m, torch.nn.Linear) for m in layers) == (family == 'CAFormer')
    for layer in layers:
        if layer.weight.numel() >= 1000:  # enough samples for a 5% std estimate
            std, bias = _std_and_bias(layer)
            assert std == pytest.approx(0.02, rel=0.05) and bias == 0.0


def test_an_explicit_init_cfg_replaces_the_original_init():
    torch.manual_seed(0)
    model = PoolFormer('s12', init_cfg=dict(type='Constant', layer='Conv2d', val=0.5, bias=0.))
    model.init_weights()
    assert model.stages[0].blocks[0].mlp.fc1.weight.unique().tolist() == [0.5]


def test_classifier_head_starts_as_the_originals():
    torch.manual_seed(0)
    model = build_from_config('configs/classification/poolformer_s12_in1k.py')
    model.init_weights()
    std, bias = _std_and_bias(model.head.fc)
    assert std == pytest.approx(0.02, rel=0.05) and bias == 0.0
