"""ONNX export (tools/deployment/pytorch2onnx.py, mmpoolformer.deployment) checked
against PyTorch with ONNX Runtime: classifiers (PoolFormer-S12, ConvFormer-S18),
the whole Semantic FPN segmentor, Mask R-CNN's backbone + neck, a folded model."""
import os

import pytest
import torch

from helpers import random_model, run_tool, succeeded
from mmpoolformer.deployment import RTOL, check_onnx, check_tolerance, export_onnx
from mmpoolformer.deployment.onnx import ExportReport, export_wrapper
from mmpoolformer.utils.errors import UsageError

S12 = 'configs/classification/poolformer_s12_in1k.py'


@pytest.fixture(scope='module')
def s12_checkpoint(tmp_path_factory):
    path = str(tmp_path_factory.mktemp('onnx') / 's12.pth')
    torch.save({'state_dict': random_model(S12).state_dict()}, path)
    return path


@pytest.fixture(scope='module')
def s12_onnx(s12_checkpoint):
    """The tool's export of the S12 classifier at 64x64: (file, tool output)."""
    out = os.path.join(os.path.dirname(s12_checkpoint), 's12.onnx')
    proc = run_tool('tools/deployment/pytorch2onnx.py', S12, s12_checkpoint,
                    '--shape', '64', '64', '--out', out)
    return out, succeeded(proc)


def test_tool_exports_classifier(s12_onnx):
    import onnx
    path, output = s12_onnx
    assert 'dynamic axes: batch, height, width' in output
    # the second checked input differs in batch and size
    assert 'input (2, 3, 64, 64)' in output and 'input (3, 3, 96, 96)' in output
    proto = onnx.load(path)
    ops = {node.op_type for node in proto.graph.node}
    # 1-group GroupNorm as InstanceNormalization + per-channel affine, not the
    # per-group GroupNormalization-18
    assert 'InstanceNormalization' in ops and 'GroupNormalization' not in ops
    assert proto.opset_import[0].version == 18
    meta = {p.key: p.value for p in proto.metadata_props}
    assert meta['mean'] == '123.675 116.28 103.53'


def test_check_detects_a_wrong_graph(s12_onnx, tmp_path):
    """The parity check can fail: one weight changed by 1% in the file."""
    import onnx
    from onnx import numpy_helper
    path, _ = s12_onnx
    proto = onnx.load(path)
    init = next(i for i in proto.graph.initializer if len(i.dims) == 4)
    init.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(init) * 1.01, init.name))
    bad = str(tmp_path / 'bad.onnx')
    onnx.save(proto, bad)
    _, wrapper = export_wrapper(random_model(S12))  # the weights the file was made from
    report = ExportReport(bad, 'mmpretrain', [])
    report.checks = check_onnx(wrapper, bad, [torch.randn(2, 3, 64, 64)])
    with pytest.raises(UsageError, match='above the tolerance'):
        check_tolerance(report)
    report.checks = check_onnx(wrapper, path, [torch.randn(2, 3, 64, 64)])
    check_tolerance(report)


def test_tool_exports_deployed_model(s12_checkpoint, tmp_path):
    out = str(tmp_path / 'deploy.onnx')
    output = succeeded(run_tool('tools/deployment/pytorch2onnx.py', S12, s12_checkpoint,
                                '--deploy', '--shape', '64', '64', '--out', out))
    assert 'folded 12 blocks' in output and 'dynamic axes: batch, height, width' in output


def test_other_mixer_classifier(tmp_path):
    """ConvFormer-S18: separable-conv mixer, LayerNorm2d, StarReLU, MLP head."""
    report = export_onnx(random_model('configs/classification/convformer_s18_in1k.py'),
                         str(tmp_path / 'convformer.onnx'), shape=(64, 64))
    assert report.dynamic_axes == ['batch', 'height', 'width']
    assert report.rel_diff <= RTOL and len(report.checks) == 2


def test_segmentor_whole(tmp_path):
    """Semantic FPN S12, image -> logits at the input size. mmseg's Upsample takes
    int() of its size, so height and width are exported static; batch is dynamic."""
    import onnxruntime as ort
    path = str(tmp_path / 'fpn.onnx')
    report = export_onnx(random_model('configs/segmentation/fpn_poolformer_s12_ade20k.py'),
                         path, shape=(64, 96))
    assert report.dynamic_axes == ['batch'] and report.rel_diff <= RTOL
    assert [c['shape'] for c in report.checks] == [(2, 3, 64, 96), (3, 3, 64, 96)]
    logits = ort.InferenceSession(path).run(None, {'image': torch.randn(1, 3, 64, 96).numpy()})
    assert logits[0].shape == (1, 150, 64, 96)


def test_detector_backbone_and_neck(tmp_path):
    # 128 high: the FPN's stride-64 level is 2 rows, not 1 (torch.export fixes
    # sizes of 1, and with them the height)
    report = export_onnx(random_model('configs/detection/maskrcnn_poolformer_s12.py'),
                         str(tmp_path / 'maskrcnn.onnx'), shape=(128, 96))
    assert report.dynamic_axes == ['batch', 'height', 'width'] and report.rel_diff <= RTOL
    import onnx
    outputs = [o.name for o in onnx.load(report.path).graph.output]
    assert outputs == [f'feature{i}' for i in range(5)]  # FPN, 5 levels
