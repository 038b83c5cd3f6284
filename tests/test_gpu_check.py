"""The CPU side of tools/gpu_check.sh: the commands it plans (--dry-run) are the right
ones and their arguments parse; the gpu-marked tests are selected (and skip here); the
benchmark's CUDA options. The script itself needs a GPU to run."""
import json
import os
import shlex
import subprocess
import sys

import pytest

from helpers import ROOT, import_tool, run_tool, succeeded


def planned_commands(tmp_path, gpus):
    proc = run_tool('tools/gpu_check.sh', '--dry-run', str(tmp_path / 'work'),
                    env=dict(GPU_CHECK_GPUS=str(gpus)), timeout=60)
    out = succeeded(proc)
    assert 'dry run, nothing was run' in out
    assert not (tmp_path / 'work').exists()
    return [shlex.split(line[2:]) for line in proc.stdout.splitlines() if line.startswith('+ ')]


def test_script_parses():
    assert subprocess.run(['bash', '-n', os.path.join(ROOT, 'tools/gpu_check.sh')]
                          ).returncode == 0


@pytest.mark.parametrize('gpus, procs', [(1, '1'), (2, '2'), (8, '2')])
def test_dry_run_plans_tests_maskrcnn_with_and_without_amp_and_benchmark(tmp_path, gpus,
                                                                        procs):
    commands = planned_commands(tmp_path, gpus)
    pytest_cmd = next(c for c in commands if c[1:3] == ['-m', 'pytest'])
    assert pytest_cmd[pytest_cmd.index('-m', 2) + 1] == 'gpu'
    trains = [c for c in commands if c[:2] == ['bash', 'tools/dist_train.sh']]
    assert len(trains) == 2
    plain, amp = trains
    assert plain[2] == 'configs/detection/maskrcnn_poolformer_s12_builtin.py'
    assert plain[3] == amp[3] == procs  # NCCL: one process per GPU, at most 2
    assert '--amp' not in plain and plain == [
        a.replace('maskrcnn_amp', 'maskrcnn') for a in amp if a != '--amp']
    # The arguments after "dist_train.sh CONFIG N" are train.py's: they must parse.
    train = import_tool('tools/train.py')
    old_argv = sys.argv
    try:
        sys.argv = ['train.py', amp[2], *amp[4:]]
        args = train.parse_args()
    finally:
        sys.argv = old_argv
    assert args.amp and args.cfg_options['train_dataloader.dataset.indices'] == 32
    assert args.cfg_options['model.backbone.init_cfg'] is None
    bench = next(c for c in commands if c[1] == 'tools/analysis/benchmark.py')
    assert {'--fp16', '--bf16'} <= set(bench) and bench[bench.index('--device') + 1] == 'cuda'


def test_gpu_marked_tests_are_selected_and_skip_without_cuda():
    proc = subprocess.run([sys.executable, '-m', 'pytest', '-p', 'no:cacheprovider', '-q',
                           '-m', 'gpu', 'tests/test_gpu.py'], cwd=ROOT, capture_output=True,
                          text=True, timeout=300, env=dict(os.environ, PYTHONPATH=ROOT))
    assert proc.returncode == 0, proc.stdout[-2000:]
    assert '9 skipped' in proc.stdout and 'passed' not in proc.stdout


def test_benchmark_refuses_cuda_without_a_gpu():
    import torch
    if torch.cuda.is_available():
        pytest.skip('a CUDA device is visible')
    proc = run_tool('tools/analysis/benchmark.py', '--device', 'cuda', timeout=300)
    assert proc.returncode == 1
    assert proc.stderr.strip() == 'error: --device cuda: torch sees no CUDA device here'


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


@pytest.mark.slow
def test_planned_maskrcnn_run_trains_on_the_cpu(tmp_path, builtin_coco):
    """The planned Mask R-CNN command, run as it is with 2 processes on the CPU (gloo):
    its options give a short run that trains and validates. Only --amp needs CUDA.
    (2 minutes on this session's loaded 2-core machine.)"""
    plain = next(c for c in planned_commands(tmp_path, 2) if 'tools/dist_train.sh' in c)
    data = plain[plain.index(next(a for a in plain if a.startswith(
        'train_dataloader.dataset.data_root=')))].split('=', 1)[1]
    plain = [a.replace(data, builtin_coco) for a in plain]
    work = tmp_path / 'cpu_run'
    plain[plain.index('--work-dir') + 1] = str(work)
    proc = run_tool(*plain[1:], timeout=900, env=dict(PORT='29561', PYTHON=sys.executable))
    out = succeeded(proc)
    assert 'coco/bbox_mAP' in out
