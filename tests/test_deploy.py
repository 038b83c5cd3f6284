"""Inference paths: channels_last default eval and the folded (deployed) backbone
give the trained model's outputs; the fused MLP kernel runs only where it can, and
dropout still runs in train mode under no_grad."""
import pytest
import torch

from helpers import build_from_config, dense_batch, max_rel_diff, randomize_, trained_like
from mmpoolformer.models import PoolFormer
from mmpoolformer.models.backbones.deploy import DeployedPoolFormerBlock, switch_to_deploy
from mmpoolformer.models.layers import ConvMlp, OneDNNConvMlp
from mmpoolformer.models.layers import mlp as mlp_layer

TINY = dict(layers=[1, 1, 1, 1], embed_dims=[8, 16, 24, 32], mlp_ratios=4)


@pytest.mark.parametrize('arch', ['s12', 's24', 's36', 'm36', 'm48'])
def test_deployed_backbone_matches_trained(arch):
    model = trained_like(PoolFormer(arch, out_indices=(0, 1, 2, 3)))
    x = torch.randn(2, 3, 96, 128, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        model.channels_last_eval = False
        reference = model(x)
        model.channels_last_eval = True
        default = model(x)
        assert all(o.is_contiguous() for o in default)  # NCHW for the heads
        assert sum(len(s.blocks) for s in model.stages) == switch_to_deploy(model)
        deployed = model(x)
        model.channels_last_eval = False
        deployed_nchw = model(x)  # the folded math without oneDNN's fused ops
    assert max_rel_diff(default, reference) <= 1e-4   # measured ~2e-6
    assert max_rel_diff(deployed, reference) <= 1e-4  # measured ~2e-6
    assert max_rel_diff(deployed_nchw, reference) <= 1e-4
    assert all(isinstance(b, DeployedPoolFormerBlock) for s in model.stages for b in s.blocks)


@pytest.mark.parametrize('config', ['configs/detection/maskrcnn_poolformer_s12.py',
                                    'configs/segmentation/fpn_poolformer_s12_ade20k.py'])
def test_deployed_dense_backbone_matches_trained(config):
    model = build_from_config(config)
    backbone = trained_like(model.backbone)
    x = torch.randn(1, 3, 200, 264)  # sides not multiples of 32
    with torch.no_grad():
        reference = model.neck(backbone(x))
        switch_to_deploy(backbone)
        deployed = model.neck(backbone(x))
    assert max_rel_diff(deployed, reference) <= 1e-4


def test_other_mixers_are_left_unfolded():
    model = PoolFormer('s12', token_mixers=dict(type='IdentityMixer')).eval()
    assert switch_to_deploy(model) == 0


@pytest.mark.parametrize('config', ['configs/detection/maskrcnn_poolformer_s12_builtin.py',
                                    'configs/segmentation/fpn_poolformer_s12_builtin.py'])
def test_whole_dense_model_predicts_the_same_in_the_default_eval_path(config):
    """The channels_last fast path must not change what the heads see or
    predict. Our dense configs hand channels_last features to the neck
    (``nchw_outputs=False``); evaluating the trained built-in Mask R-CNN that
    way with mmdet's own RoI extractor dropped box mAP from 0.829 to 0.018:
    mmcv's CPU RoIAlign reads raw NCHW memory and ignores strides (see the test
    below), hence NCHWRoIExtractor. With random head weights the predictions
    barely depend on the RoI features, so the RoI features of fixed boxes are
    compared as well."""
    model = build_from_config(config, **{'model.backbone.init_cfg': None})
    assert not model.backbone.nchw_outputs
    trained_like(model)
    # evaluation sizes; a padded batch for the detector
    sizes = [(800, 1013), (800, 1000)] if 'detection' in config else [(512, 512)] * 2
    data = dense_batch(model, sizes)
    if 'detection' in config:
        model.test_cfg.rcnn.score_thr = 0.0
    results, roi_feats = [], []
    rois = torch.tensor([[0, 10., 20., 300., 410.], [1, 500., 100., 990., 700.]])
    for channels_last in (False, True):
        model.backbone.channels_last_eval = channels_last
        with torch.no_grad():
            results.append(model(**data, mode='predict')[-1])
            if 'detection' in config:  # the same boxes for both (proposals may swap ties)
                neck_feats = model.extract_feat(data['inputs'])
                roi_feats.append(model.roi_head.bbox_roi_extractor(neck_feats, rois))
    if 'detection' in config:
        # measured 5.1e-5 with NCHW outputs (features up to 12.6); ~3 with channels_last ones
        assert torch.allclose(roi_feats[0], roi_feats[1], atol=1e-3)
        a, b = results[0].pred_instances, results[1].pred_instances
        assert len(a) > 0 and len(a) == len(b)
        assert torch.allclose(a.bboxes, b.bboxes, atol=1e-2)
        assert torch.allclose(a.scores, b.scores, atol=1e-4)
    else:
        assert torch.allclose(results[0].seg_logits.data, results[1].seg_logits.data, atol=1e-4)


def test_mmcv_roi_align_still_misreads_channels_last():
    """Why the backbone hands NCHW to the heads by default, and why our
    detection configs use NCHWRoIExtractor. If mmcv fixes its CPU RoIAlign this
    fails, and both can go."""
    from mmcv.ops import RoIAlign
    features = torch.randn(1, 8, 32, 32, generator=torch.Generator().manual_seed(0))
    rois = torch.tensor([[0, 1., 2., 20., 25.]])
    roi_align = RoIAlign((7, 7), spatial_scale=0.25, sampling_ratio=0, aligned=True)
    nchw = roi_align(features, rois)
    nhwc = roi_align(features.contiguous(memory_format=torch.channels_last), rois)
    assert (nchw - nhwc).abs().max() > 0.1  # measured 3.2 (same values, other layout)


class _OneDNNWithoutBF16:
    """oneDNN's fused convolution as on an AVX2-only CPU: fp32 runs, bf16 raises
    the error that CPU gives. Counts the calls by dtype."""

    def __init__(self, real):
        self.real, self.calls = real, []

    def _check(self, x):
        self.calls.append(x.dtype)
        if x.dtype == torch.bfloat16:
            raise RuntimeError('mkldnn_convolution: bf16 path needs the cpu support '
                               'avx_ne_convert or avx512bw, avx512vl and avx512dq')

    def __call__(self, x, *args):
        self._check(x)
        return self.real(x, *args)

    def binary(self, x, *args):
        self._check(x)
        return self.real.binary(x, *args)


@pytest.mark.parametrize('bf16_supported', [False, True])
def test_every_path_runs_where_onednn_lacks_bf16(monkeypatch, bf16_supported):
    """On a CPU without oneDNN bf16 (AVX2 only) the bf16 default and deploy
    paths take the plain convolutions, and fp32 still fuses. The ISA check is
    faked, so this runs on every machine; with the check saying 'supported' the
    faked AVX2 op raises, which shows that the check is what keeps bf16 off it. The
    outputs of both, default eval and deployed, are the fp32 model's within bf16's
    rounding."""
    fake = _OneDNNWithoutBF16(mlp_layer._ONEDNN)
    monkeypatch.setattr(mlp_layer, '_ONEDNN', fake)
    real_supports = mlp_layer.onednn_supports
    monkeypatch.setattr(mlp_layer, 'onednn_supports',
                        lambda dtype: bf16_supported if dtype == torch.bfloat16
                        else real_supports(dtype))
    model = trained_like(PoolFormer('s12', out_indices=(0, 3)))
    deployed = trained_like(PoolFormer('s12', out_indices=(0, 3)))
    switch_to_deploy(deployed)
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        model(x)
        assert set(fake.calls) == {torch.float32}  # fp32 fuses on any CPU
        fake.calls.clear()
        # The same weights in fp32 on the NCHW path, which never calls oneDNN's fused op.
        reference = trained_like(PoolFormer('s12', out_indices=(0, 3),
                                            channels_last_eval=False))(x)
        assert fake.calls == []
        for net in (model, deployed):
            net.to(torch.bfloat16)
            if bf16_supported:
                with pytest.raises(RuntimeError, match='bf16 path needs'):
                    net(x.bfloat16())
                continue
            outs = net(x.bfloat16())
            assert all(o.dtype == torch.bfloat16 for o in outs)
            # bf16 rounding (8-bit mantissa) over 12 blocks: measured 1.3e-2 (default eval)
            # and 1.1e-2 (deployed) against fp32; 4e-2 leaves a margin of 3x.
            assert max_rel_diff([o.float() for o in outs], reference) <= 4e-2, net
    if not bf16_supported:
        assert fake.calls == []


def _mlp_kernels(model):
    return {type(m) for m in model.modules() if isinstance(m, ConvMlp)}


@pytest.mark.skipif(mlp_layer._ONEDNN is None, reason='this PyTorch has no oneDNN')
def test_the_mlp_kernel_is_chosen_by_mode_layout_and_device():
    """eval() on the CPU with channels_last_eval picks the fused kernel once; train(),
    channels_last_eval=False or a model elsewhere than the CPU keep the plain one.
    The modules themselves, their hooks and the state dict stay as they are."""
    model = PoolFormer('s12')
    assert _mlp_kernels(model) == {ConvMlp}  # built in training mode
    mlp = model.stages[0].blocks[0].mlp
    keys = list(model.state_dict())
    calls = []
    mlp.register_forward_hook(lambda *args: calls.append(1))
    model.eval()
    assert _mlp_kernels(model) == {OneDNNConvMlp}
    assert model.stages[0].blocks[0].mlp is mlp and list(model.state_dict()) == keys
    with torch.no_grad():
        model(torch.randn(1, 3, 64, 64))
    assert calls == [1]
    model.channels_last_eval = False
    assert _mlp_kernels(model) == {ConvMlp}
    model.channels_last_eval = True
    assert _mlp_kernels(model) == {OneDNNConvMlp}
    model.train()
    assert _mlp_kernels(model) == {ConvMlp}
    assert _mlp_kernels(model.to('meta').eval()) == {ConvMlp}
    assert _mlp_kernels(PoolFormer('s12', channels_last_eval=False).eval()) == {ConvMlp}


class _CountingOneDNN:
    """oneDNN's fused convolution, counting its calls."""

    def __init__(self, real):
        self.real, self.calls = real, 0

    def __call__(self, *args):
        self.calls += 1
        return self.real(*args)

    def binary(self, *args):
        self.calls += 1
        return self.real.binary(*args)


@pytest.mark.skipif(mlp_layer._ONEDNN is None, reason='this PyTorch has no oneDNN')
def test_the_fused_kernel_runs_only_where_it_can(monkeypatch):
    """In eval mode the fused kernel runs without autograd in fp32, and steps
    aside for autograd (Grad-CAM), autocast and a model moved off the CPU after
    eval(), each of which can change without a train() / eval() call."""
    fake = _CountingOneDNN(mlp_layer._ONEDNN)
    monkeypatch.setattr(mlp_layer, '_ONEDNN', fake)
    model = trained_like(PoolFormer('s12'))
    x = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        model(x)
    assert fake.calls == 12  # fc1 and GELU as one op in each of S12's 12 blocks
    fake.calls = 0
    x.requires_grad_(True)
    model(x)[0].sum().backward()  # Grad-CAM's way: eval mode, autograd on
    assert fake.calls == 0 and x.grad.abs().sum() > 0
    with torch.no_grad(), torch.autocast('cpu', dtype=torch.bfloat16):
        model(x)
    assert fake.calls == 0
    mlp = model.stages[0].blocks[0].mlp
    assert type(mlp) is OneDNNConvMlp
    mlp.to('meta')  # as a model moved to a GPU after eval() keeps its kernel choice
    with torch.no_grad():
        mlp(torch.randn(1, 64, 8, 8, device='meta').contiguous(memory_format=torch.channels_last))
    assert fake.calls == 0


def test_channels_last_outputs_reach_roi_align_as_nchw():
    from mmpoolformer.models.roi_extractors import NCHWRoIExtractor
    backbone = PoolFormer('s12', out_indices=(0, 1, 2, 3), nchw_outputs=False).eval()
    with torch.no_grad():
        feats = backbone(torch.randn(1, 3, 128, 160))
    assert all(f.is_contiguous(memory_format=torch.channels_last) for f in feats)
    extractor = NCHWRoIExtractor(
        roi_layer=dict(type='RoIAlign', output_size=7, sampling_ratio=0),
        out_channels=64, featmap_strides=[4])
    rois = torch.tensor([[0, 3., 5., 90., 70.]])
    nchw = extractor(feats[:1], rois)
    assert torch.equal(nchw, extractor((feats[0].contiguous(), ), rois))
    # mmdet's own extractor misreads them (the bug worked around)
    assert (nchw - super(NCHWRoIExtractor, extractor).forward(feats[:1], rois)).abs().max() > 0.1


def test_dropout_runs_in_train_mode_under_no_grad():
    """The fused CPU path once ran in train mode under no_grad and skipped dropout."""
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
