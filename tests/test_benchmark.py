"""The benchmark (tools/analysis/benchmark.py, tools/analysis/speed.py): it runs on a
tiny setting, its dense models share their weights, its rows of bf16 and fp16 steps and
of ONNX Runtime, and its refusal of CUDA without a GPU."""
import json
import re

import pytest
import torch

from helpers import build_from_config, import_tool, randomize_, run_tool, succeeded
from mmpoolformer.engine import cpu_has_native_bf16

S12 = 'configs/classification/poolformer_s12_in1k.py'
needs_bf16 = pytest.mark.skipif(
    torch.cuda.is_available() or not cpu_has_native_bf16(),
    reason='CPU bf16 autocast needs a CPU with AVX-512 BF16 or AMX (and no CUDA, where --amp '
           'is fp16)')


def _max_rel_diff(outs, refs):
    return max(((o - r).abs().max() / r.abs().max()).item()
               for o, r in zip(outs, refs, strict=True))


def random_model(config):
    """A model of the config with distinct random weights (norm affines included,
    so that a GroupNorm exported without its per-channel affine would show)."""
    return randomize_(build_from_config(config, **{'model.backbone.init_cfg': None}), 0, 0.02)


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


@pytest.mark.parametrize('kind', ['fpn', 'maskrcnn'])
def test_dense_benchmark_compares_models_with_the_same_weights(kind):
    """The dense inference table times ours against the same model with
    mmpretrain's PoolFormer backbone: both must compute the same features."""
    build_dense_pair = import_tool('tools/analysis/speed.py').build_dense_pair
    ours, theirs = build_dense_pair(kind)
    assert type(theirs.backbone).__module__.startswith('mmpretrain')
    x = torch.randn(1, 3, 96, 128, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        diff = _max_rel_diff(ours.extract_feat(x), theirs.extract_feat(x))
    assert diff <= 1e-4  # measured 2e-6 (maskrcnn)


@needs_bf16
def test_benchmark_reports_amp_step():
    training_rows = import_tool('tools/analysis/speed.py').training_rows
    rows = training_rows(batch=2, res=32, warmup=0, repeats=1, log=lambda *a: None, bf16=True)
    assert rows[4].name == 'ours: train step NCHW, bf16 autocast (--amp)'
    assert rows[4].ratio == pytest.approx(rows[0].img_per_s / rows[4].img_per_s)


def test_benchmark_half_precision_rows(monkeypatch):
    """fp16 and bf16 rows of ours; the peers' half-precision rows are CUDA-only."""
    benchmark = import_tool('tools/analysis/speed.py')
    monkeypatch.setattr(benchmark, 'matmul_peak_gflops', lambda **kwargs: 1.0)
    rows = benchmark.inference_rows('s12', batch=1, res=32, warmup=0, repeats=1,
                                    bf16=True, fp16=True, log=lambda *a: None)
    names = [r.name for r in rows]
    assert {'ours: default eval, fp16', 'ours: deploy, fp16', 'ours: default eval, bf16',
            'ours: deploy, bf16'} <= set(names)
    assert not any('mmpretrain PoolFormer: fp16' in n or 'channels_last (model' in n
                   for n in names)
    fp16 = [r for r in rows if r.name.endswith('fp16')]
    assert all(r.max_abs_diff < 1e-2 for r in fp16), json.dumps(  # measured 1.7e-3
        [(r.name, r.max_abs_diff) for r in rows])


def test_benchmark_refuses_cuda_without_a_gpu():
    import torch
    if torch.cuda.is_available():
        pytest.skip('a CUDA device is visible')
    proc = run_tool('tools/analysis/benchmark.py', '--device', 'cuda', timeout=300)
    assert proc.returncode == 1
    assert proc.stderr.strip() == 'error: --device cuda: torch sees no CUDA device here'


def test_benchmark_onnxruntime_rows():
    """The benchmark's ONNX Runtime rows run our export and give our logits."""
    onnxruntime_candidates = import_tool('tools/analysis/speed.py').onnxruntime_candidates
    model = random_model(S12)
    x = torch.randn(3, 3, 64, 64)
    candidates = onnxruntime_candidates(model, x, log=lambda *a: None)
    assert [c[0].split(': ')[1] for c in candidates] == ['fp32, ORT_ENABLE_ALL',
                                                         'fp32, ORT_DISABLE_ALL']
    with torch.no_grad():
        expected = model(x, mode='tensor')
    for _, run, inp, kind in candidates:
        assert kind == 'logits' and torch.allclose(run(inp), expected, rtol=0, atol=1e-4)


def test_pipeline_rows_time_each_pipeline_on_generated_images():
    """Each pipeline runs on every generated image and gives what its model takes:
    224x224 crops (ImageNet, timm), 1333x800 at most (COCO: 640x480 scaled by 800/480
    = 1067x800), 512x512 crops at most (ADE20K). The ratio is the rate over timm's.
    Broken by hand: with one_thread() not restoring torch's threads, this failed (1 != 2)."""
    pipelines = import_tool('tools/analysis/pipelines.py')
    threads = torch.get_num_threads()
    rows = pipelines.pipeline_rows(n_images=4, repeats=1, log=lambda *a: None)
    assert [r.name.split(':')[0] for r in rows] == ['timm', 'ImageNet', 'COCO', 'ADE20K']
    notes = [r.note for r in rows]
    assert notes[:3] == ['4 images; output 3x224x224', '4 images; output 3x224x224',
                         '4 images; output 3x800x1067']
    channels, height, width = map(int, re.search(r'(\d+)x(\d+)x(\d+)$', notes[3]).groups())
    assert notes[3].startswith('4 images;') and channels == 3 and max(height, width) <= 512
    assert all(r.img_per_s > 0 and len(r.times_s) == 1 for r in rows)
    assert all(r.ratio == pytest.approx(r.img_per_s / rows[0].img_per_s) for r in rows)
    assert torch.get_num_threads() == threads  # a worker's one thread is given back
