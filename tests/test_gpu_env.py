"""Never silently on the CPU: the GPU checks of mmpoolformer/utils/gpu.py, driven with a
faked nvidia-smi on PATH (and this machine's real torch, a CUDA build that sees no GPU)."""
import os
import subprocess
import sys
import types

import pytest

from helpers import ROOT

GPU_PY = os.path.join(ROOT, 'mmpoolformer', 'utils', 'gpu.py')

NVIDIA_SMI = '''#!/bin/sh
if [ "$1" = "-L" ]; then
  echo "GPU 0: NVIDIA A100-SXM4-80GB (UUID: GPU-1)"
  echo "GPU 1: NVIDIA A100-SXM4-80GB (UUID: GPU-2)"
  exit 0
fi
echo "| NVIDIA-SMI 550.54.15   Driver Version: 550.54.15   CUDA Version: {cuda}  |"
'''


def sandbox_env(tmp_path, smi_cuda=None, **extra):
    """PATH with only a fake nvidia-smi (when smi_cuda is given) and the system tools;
    no CUDA_VISIBLE_DEVICES unless given."""
    bin_dir = tmp_path / 'bin'
    bin_dir.mkdir(exist_ok=True)
    if smi_cuda is not None:
        smi = bin_dir / 'nvidia-smi'
        smi.write_text(NVIDIA_SMI.format(cuda=smi_cuda))
        smi.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if k != 'CUDA_VISIBLE_DEVICES'}
    env.update(PATH=f'{bin_dir}:/usr/bin:/bin', **extra)
    return env


def run_check(env):
    return subprocess.run([sys.executable, GPU_PY, 'check'], env=env, capture_output=True,
                          text=True, timeout=120)


@pytest.fixture(autouse=True)
def no_real_gpu():
    import torch
    if torch.cuda.is_available() or any(os.path.exists(f'/dev/nvidia{i}') for i in range(8)):
        pytest.skip('a real GPU is here: these tests fake one where torch cannot use it')


def test_gpus_listed_by_nvidia_smi_but_unusable_stop_with_one_line(tmp_path):
    import torch
    proc = run_check(sandbox_env(tmp_path, smi_cuda='12.4'))
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith('error: '), proc.stderr
    line = lines[0]
    assert 'nvidia-smi lists 2 GPU(s)' in line
    assert f'CUDA {torch.version.cuda} build' in line  # torch's build, as torch says it
    assert 'the driver supports CUDA 12.4' in line
    # the fix: a 12.x driver runs the cu126 build (the table in docs/gpu.md)
    assert 'TORCH_INDEX_URL=https://download.pytorch.org/whl/cu126 bash tools/setup_env.sh' in line
    assert 'CUDA_VISIBLE_DEVICES=' in line


def test_cuda_visible_devices_alone_counts_as_gpus(tmp_path):
    proc = run_check(sandbox_env(tmp_path, CUDA_VISIBLE_DEVICES='0,1'))
    assert proc.returncode == 1
    assert 'CUDA_VISIBLE_DEVICES=0,1' in proc.stderr
    assert "driver's CUDA version is unknown" in proc.stderr


@pytest.mark.parametrize('visible', ['', '-1'])
def test_empty_cuda_visible_devices_is_the_explicit_cpu_choice(tmp_path, visible):
    proc = run_check(sandbox_env(tmp_path, smi_cuda='12.4', CUDA_VISIBLE_DEVICES=visible))
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ''


def test_a_machine_without_gpus_passes(tmp_path):
    proc = run_check(sandbox_env(tmp_path))
    assert proc.returncode == 0, proc.stderr


# The documented table (docs/gpu.md): the driver's CUDA version -> torch variant.
@pytest.mark.parametrize('driver, variant', [
    ('13.0', 'cu130'), ('13.1', 'cu130'), ('12.9', 'cu128'), ('12.8', 'cu128'),
    ('12.7', 'cu126'), ('12.6', 'cu126'), ('12.4', 'cu126'), ('12.2', 'cu126'),
    ('11.8', None)])
def test_torch_variant_for_driver(driver, variant):
    from mmpoolformer.utils.gpu import torch_variant_for_driver
    assert torch_variant_for_driver(driver) == variant


def test_which_torch_build_runs_on_which_driver():
    """What tools/build_env.py decides with (torch's CUDA version, the driver's)."""
    from mmpoolformer.utils.gpu import torch_fits_driver, torch_variant_for_driver

    def variant(driver, torch_cuda):
        if torch_fits_driver(torch_cuda, driver):
            return ''
        return torch_variant_for_driver(driver) or 'none'
    assert variant('12.4', '13.0') == 'cu126'  # the default wheel can't run: install cu126
    assert variant('12.8', '13.0') == 'cu128'
    assert variant('13.0', '13.0') == ''       # the default wheel runs
    assert variant('12.4', '12.8') == ''       # minor-version compatibility within 12
    assert variant('11.8', '13.0') == 'none'   # no build: upgrade the driver


@pytest.mark.parametrize('arch_list, capability, expected', [
    (['8.0', '9.0+PTX'], (9, 0), True),
    (['8.0', '9.0+PTX'], (8, 6), True),    # sm_80 SASS runs on 8.6
    (['8.0', '9.0+PTX'], (10, 0), True),   # PTX of 9.0, JIT-compiled on 10.0
    (['8.0', '9.0'], (10, 0), False),      # no PTX: nothing for 10.0
    (['9.0'], (8, 0), False),
    (['sm_75', 'sm_80', 'sm_90', 'compute_90'], (7, 0), False),  # V100 on a CUDA 13 torch
    (['sm_75', 'sm_80', 'sm_90', 'compute_90'], (12, 0), True),
])
def test_arch_list_covers(arch_list, capability, expected):
    from mmpoolformer.utils.gpu import covers
    assert covers(arch_list, capability) is expected


def fake_cuda_torch(capability, torch_archs):
    cuda = types.SimpleNamespace(
        is_available=lambda: True, device_count=lambda: 1,
        get_device_capability=lambda i: capability, get_device_name=lambda i: 'Fake GPU',
        get_arch_list=lambda: torch_archs)
    return types.SimpleNamespace(cuda=cuda, __version__='2.14.1+cu130')


def test_gpu_missing_from_the_mmcv_build_is_named(tmp_path):
    from mmpoolformer.utils.gpu import MMCV_BUILD_RECORD, arch_problem
    record = tmp_path / MMCV_BUILD_RECORD
    record.parent.mkdir(parents=True)
    record.write_text('{"cuda": "13.0", "arch_list": "9.0"}')
    torch_archs = ['sm_75', 'sm_80', 'sm_90']
    problem = arch_problem(fake_cuda_torch((8, 0), torch_archs), prefix=str(tmp_path))
    assert problem is not None and '\n' not in problem
    assert 'GPU 0 (Fake GPU, compute capability 8.0)' in problem
    assert "mmcv's ops were built for (9.0)" in problem
    assert 'TORCH_CUDA_ARCH_LIST="8.0+PTX"' in problem
    assert arch_problem(fake_cuda_torch((9, 0), torch_archs), prefix=str(tmp_path)) is None
    old = arch_problem(fake_cuda_torch((7, 0), torch_archs), prefix=str(tmp_path))
    assert "not among torch 2.14.1+cu130's architectures" in old
