"""ONNX export of this project's models, checked against PyTorch with ONNX Runtime.

What is exported, per toolbox (``tools/deployment/pytorch2onnx.py`` is the front):

- classifier (mmpretrain): preprocessed image -> logits;
- segmentor (mmseg EncoderDecoder): preprocessed image -> seg logits at the input's
  size (backbone, neck, decode head and the final resize, as ``encode_decode``);
- detector (mmdet): preprocessed image -> the neck's (FPN) features. The heads'
  post-processing (NMS, RoI ops) is mmdeploy's business.

The exporter is torch's default one (``torch.onnx.export(dynamo=True)``: torch.export
then onnxscript); the TorchScript exporter is deprecated since torch 2.9. Opset 18:
the exporter's lowest, the widest runtime support. GroupNorm goes out as
InstanceNormalization plus a per-channel Mul/Add, which is exact at any opset,
not as GroupNormalization-18, whose scale and bias are per group (a 1-group
PoolFormer norm would lose its per-channel affine).
"""
import copy
import os.path as osp
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np
import torch
import torch.nn as nn

from mmpoolformer.utils.errors import UsageError

OPSET = 18
# max |ONNX Runtime - PyTorch| / max |PyTorch| over every output, fp32. Measured
# 1e-7 .. 2e-6 (docs/deployment.md); 1e-4 is the tolerance of the deploy folding.
RTOL = 1e-4
DEFAULT_SHAPES = {'mmpretrain': (224, 224), 'mmseg': (512, 512), 'mmdet': (800, 1344)}


class ClassifierLogits(nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, image):
        return self.model(image, mode='tensor')


class SegmentorLogits(nn.Module):
    """mmseg's own whole inference (``encode_decode``): logits resized to the input."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, image):
        return self.model.encode_decode(image, [dict(img_shape=image.shape[2:])])


class DetectorFeatures(nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, image):
        return tuple(self.model.extract_feat(image))


WRAPPERS = {'mmpretrain': ClassifierLogits, 'mmseg': SegmentorLogits, 'mmdet': DetectorFeatures}
OUTPUTS = {'mmpretrain': 'logits', 'mmseg': 'seg_logits', 'mmdet': 'feature'}
WHAT = {'mmpretrain': 'classifier (image -> logits)',
        'mmseg': 'segmentor (image -> seg logits at the input size)',
        'mmdet': 'detector backbone + neck (image -> FPN features)'}


@dataclass
class ExportReport:
    path: str
    kind: str
    dynamic_axes: list[str]
    checks: list[dict] = field(default_factory=list)   # one per checked input

    @property
    def max_abs_diff(self) -> float:
        return max(c['max_abs_diff'] for c in self.checks)

    @property
    def rel_diff(self) -> float:
        return max(c['rel_diff'] for c in self.checks)

    def lines(self) -> list[str]:
        out = [f'exported {WHAT[self.kind]} to {self.path} (opset {OPSET}; dynamic axes: '
               f'{", ".join(self.dynamic_axes) or "none"})']
        out += [f'ONNX Runtime vs PyTorch, input {c["shape"]}: max abs diff '
                f'{c["max_abs_diff"]:.2e}, relative {c["rel_diff"]:.2e}' for c in self.checks]
        return out


def export_wrapper(model: nn.Module) -> tuple[str, nn.Module]:
    """(toolbox, the module to export) for a built OpenMMLab model in eval mode.
    The backbone runs its plain NCHW path (the fused oneDNN ops are CPU kernels,
    not ONNX)."""
    scope = model.cfg.get('default_scope') if hasattr(model, 'cfg') else None
    if scope not in WRAPPERS:
        raise UsageError(f'ONNX export handles mmpretrain classifiers, mmseg segmentors and '
                         f'mmdet detectors; this config\'s default_scope is {scope!r}')
    model = copy.deepcopy(model).cpu().eval()
    if hasattr(model.backbone, 'channels_last_eval'):
        model.backbone.channels_last_eval = False
    return scope, WRAPPERS[scope](model).eval()


def export_onnx(model: nn.Module, path: str, shape: Optional[Sequence[int]] = None,
                batch: int = 2, check_shape: Optional[Sequence[int]] = None,
                rtol: float = RTOL, seed: int = 0, log: Callable = print) -> ExportReport:
    """Export ``model`` (built from a config, weights loaded) to ``path`` and check it.

    The batch and spatial axes are exported dynamic where torch.export finds the
    model allows it. ONNX Runtime then runs the export input and a second one
    (batch + 1, ``check_shape`` or each dynamic side + 32) next to PyTorch;
    a relative difference above ``rtol`` raises UsageError.
    """
    kind, wrapper = export_wrapper(model)
    h, w = shape or DEFAULT_SHAPES[kind]
    gen = torch.Generator().manual_seed(seed)
    image = torch.randn(batch, 3, h, w, generator=gen)
    log(f'exporting the {WHAT[kind]} at {batch}x3x{h}x{w} (torch.onnx.export, dynamo, '
        f'opset {OPSET}) ...')
    side = check_shape or (h + 32, w + 32)
    probes = {0: torch.randn(batch + 1, 3, h, w, generator=gen),
              2: torch.randn(batch, 3, side[0], w, generator=gen),
              3: torch.randn(batch, 3, h, side[1], generator=gen)}
    program, dynamic = _export_program(wrapper, image, probes, log)
    with torch.no_grad():
        onnx_program = torch.onnx.export(
            program, (image, ), dynamo=True, opset_version=OPSET, verbose=False,
            input_names=['image'], output_names=_output_names(wrapper, image, kind))
    onnx_program.save(path)
    _add_metadata(path, model, kind)
    report = ExportReport(path, kind, [AXES[a] for a in _dynamic_input_axes(path)])
    second = [batch + 1 if 0 in dynamic else batch, 3,
              side[0] if 2 in dynamic else h, side[1] if 3 in dynamic else w]
    inputs = [image, torch.randn(*second, generator=gen)]
    report.checks = check_onnx(wrapper, path, inputs)
    for line in report.lines():
        log(line)
    check_tolerance(report, rtol)
    return report


def check_tolerance(report: ExportReport, rtol: float = RTOL):
    if not report.rel_diff <= rtol:  # also catches NaN
        raise UsageError(f'{report.path}: ONNX Runtime differs from PyTorch by '
                         f'{report.rel_diff:.2e} relative (max abs {report.max_abs_diff:.2e}), '
                         f'above the tolerance {rtol:.0e}')


AXES = {0: 'batch', 2: 'height', 3: 'width'}


def _export_program(wrapper, image, probes, log):
    """torch.export with the batch and spatial axes dynamic where the model
    allows: an axis is kept dynamic when the exported program accepts a probe
    input that differs in that axis (the guards torch.export records fail on
    shapes the model specialised, e.g. mmseg's ``Upsample`` takes ``int()``
    of its output size)."""
    axes = list(probes)
    while True:
        program = torch.export.export(
            wrapper, (image, ), dynamic_shapes=({a: torch.export.Dim.AUTO for a in axes}, ))
        refused = []
        for axis in axes:
            try:
                with torch.no_grad():
                    program.module()(probes[axis])
            except (AssertionError, RuntimeError) as err:
                refused.append(axis)
                log(f'{AXES[axis]} exported static: the model fixes it '
                    f'({str(err).strip().splitlines()[-1][:120]})')
        if not refused:
            return program, axes
        axes = [a for a in axes if a not in refused]


def _output_names(wrapper, image, kind) -> list[str]:
    if kind != 'mmdet':
        return [OUTPUTS[kind]]
    with torch.no_grad():
        count = len(wrapper(image[:1]))
    return [f'{OUTPUTS[kind]}{i}' for i in range(count)]


def _add_metadata(path: str, model, kind: str):
    """What a runtime needs to feed the graph: the preprocessing it leaves out."""
    import onnx
    proto = onnx.load(path)
    pre = model.data_preprocessor
    meta = {'mmpoolformer_task': kind,
            'input': 'preprocessed image, NCHW float32: (RGB - mean) / std',
            'mean': _values(getattr(pre, 'mean', None)), 'std': _values(getattr(pre, 'std', None))}
    for key, value in meta.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(proto, path)


def _values(tensor) -> str:
    return '' if tensor is None else ' '.join(f'{v:g}' for v in tensor.flatten().tolist())


def _dynamic_input_axes(path: str) -> list[int]:
    import onnx
    dims = onnx.load(path).graph.input[0].type.tensor_type.shape.dim
    return [i for i, d in enumerate(dims) if d.dim_param]


def check_onnx(wrapper: nn.Module, path: str, inputs: Sequence[torch.Tensor]) -> list[dict]:
    """Run the ONNX file with ONNX Runtime (CPU) and ``wrapper`` on each input;
    the max abs and relative (over the largest |output|) differences."""
    import onnxruntime as ort
    session = ort.InferenceSession(path, providers=['CPUExecutionProvider'])
    name = session.get_inputs()[0].name
    checks = []
    for image in inputs:
        with torch.no_grad():
            expected = wrapper(image)
        expected = [expected] if isinstance(expected, torch.Tensor) else list(expected)
        got = session.run(None, {name: image.numpy()})
        assert len(got) == len(expected), f'{path}: {len(got)} outputs, PyTorch has {len(expected)}'
        abs_diff = max(float(np.abs(g - e.numpy()).max()) for g, e in zip(got, expected))
        scale = max(float(e.abs().max()) for e in expected)
        checks.append(dict(shape=tuple(image.shape), max_abs_diff=abs_diff,
                           rel_diff=abs_diff / max(scale, 1e-12)))
    return checks


def default_output(config: str, deploy: bool) -> str:
    name = osp.splitext(osp.basename(config))[0]
    return f'{name}{"_deploy" if deploy else ""}.onnx'
