"""Never silently on the CPU: does this machine show GPUs that torch cannot use?

A machine shows GPUs when ``nvidia-smi -L`` lists them, a ``/dev/nvidia<N>``
device file exists, or ``CUDA_VISIBLE_DEVICES`` names devices. If it shows GPUs
and torch cannot use them (a CPU build of torch, or a CUDA build newer than the
driver), a run would train on the CPU without a word; the tools and the launch
scripts stop first with one line (:func:`cuda_problem`). Running on the CPU on
purpose stays one explicit choice away: an empty ``CUDA_VISIBLE_DEVICES=``.

The same line covers GPUs that torch or mmcv was not compiled for
(:func:`arch_problem`), which otherwise fail mid-epoch with "no kernel image is
available".

The shell scripts run this file by path, before anything heavy is imported::

    python mmpoolformer/utils/gpu.py check    # exit 1 with one `error:` line

so it imports only the standard library at module level (torch when asked).
"""
import glob
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Sequence
from typing import Optional

# Where tools/setup_env.sh records the CUDA architectures it built mmcv's ops for
# (inside the environment, beside the installed mmcv).
MMCV_BUILD_RECORD = os.path.join('share', 'mmpoolformer', 'mmcv_build.json')


def _nvidia_smi(*args: str) -> Optional[str]:
    """stdout of ``nvidia-smi ARGS``, or None when it is missing or fails."""
    exe = shutil.which('nvidia-smi')
    if exe is None:
        return None
    try:
        proc = subprocess.run([exe, *args], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return proc.stdout if proc.returncode == 0 else None


def gpus_shown(env=os.environ) -> Optional[str]:
    """Why this machine looks like it has GPUs (for the message), or None.

    An empty ``CUDA_VISIBLE_DEVICES`` is the explicit CPU choice: None.
    """
    visible = env.get('CUDA_VISIBLE_DEVICES')
    if visible is not None and visible.strip() in ('', '-1'):
        return None
    listed = [line for line in (_nvidia_smi('-L') or '').splitlines()
              if line.startswith('GPU ')]
    if listed:
        return f'nvidia-smi lists {len(listed)} GPU(s)'
    devices = sorted(glob.glob('/dev/nvidia[0-9]*'))
    if devices:
        return f'{devices[0]} exists'
    if visible is not None:
        return f'CUDA_VISIBLE_DEVICES={visible}'
    return None


def driver_cuda_version() -> Optional[str]:
    """The newest CUDA version the NVIDIA driver supports (``nvidia-smi``'s
    "CUDA Version: 12.4"), or None when unknown."""
    found = re.search(r'CUDA Version\s*:\s*(\d+\.\d+)', _nvidia_smi() or '')
    return found.group(1) if found else None


def gpu_capabilities() -> list:
    """The compute capabilities of the GPUs ``nvidia-smi`` lists, e.g. [(7, 0), (9, 0)]
    ([] when unknown: no nvidia-smi, or a driver older than its compute_cap field)."""
    out = _nvidia_smi('--query-gpu=compute_cap', '--format=csv,noheader') or ''
    return [(int(m.group(1)), int(m.group(2)))
            for m in re.finditer(r'^\s*(\d+)\.(\d+)\s*$', out, re.M)]


# The CUDA variants of torch on the PyTorch index, newest first: (CUDA version,
# wheel tag). A driver runs a build whose CUDA version is at most its own; within
# CUDA 12, minor-version compatibility lets a 12.x build run on any 12.x driver
# (>= 525), so cu126 is the fallback there. docs/gpu.md has the table.
TORCH_CUDA_VARIANTS = (((13, 0), 'cu130'), ((12, 8), 'cu128'), ((12, 6), 'cu126'))
TORCH_INDEX = 'https://download.pytorch.org/whl/'


def _version_tuple(version: str) -> tuple:
    return tuple(int(part) for part in version.split('.')[:2])


def torch_variant_for_driver(driver_cuda: str) -> Optional[str]:
    """The torch wheel tag (``cu128``...) that runs on a driver of this CUDA
    version, or None when no variant does (a driver older than CUDA 12)."""
    driver = _version_tuple(driver_cuda)
    for cuda, tag in TORCH_CUDA_VARIANTS:
        if cuda <= driver:
            return tag
    return 'cu126' if driver[0] == 12 else None


def torch_fits_driver(torch_cuda: Optional[str], driver_cuda: str) -> bool:
    """Whether a torch built for ``torch_cuda`` runs on a driver of ``driver_cuda``
    (same major version, or older: minor-version compatibility within a major)."""
    return bool(torch_cuda) and _version_tuple(torch_cuda)[0] <= _version_tuple(driver_cuda)[0]


def torch_fix(driver_cuda: Optional[str]) -> str:
    """The command that installs a torch this driver runs."""
    tag = torch_variant_for_driver(driver_cuda) if driver_cuda else None
    if driver_cuda and tag is None:
        return (f'the driver supports CUDA {driver_cuda}, older than any torch build: '
                'upgrade the NVIDIA driver to 525 or newer')
    index = f'{TORCH_INDEX}{tag or "cu126"}'
    return f'TORCH_INDEX_URL={index} bash tools/setup_env.sh'


def cuda_problem(env=os.environ) -> Optional[str]:
    """One line when the machine shows GPUs but torch cannot use them, else None."""
    reason = gpus_shown(env)
    if reason is None:
        return None
    import torch
    if torch.cuda.is_available():
        return None
    build = (f'torch {torch.__version__} is a CUDA {torch.version.cuda} build'
             if torch.version.cuda else f'torch {torch.__version__} is a CPU-only build')
    driver = driver_cuda_version()
    driver_text = (f', the driver supports CUDA {driver}' if driver
                   else ', the driver\'s CUDA version is unknown (no nvidia-smi)')
    return (f'this machine shows GPUs ({reason}) but {build}{driver_text}, so torch cannot '
            f'use them; fix: {torch_fix(driver)}; or run on the CPU on purpose with '
            'CUDA_VISIBLE_DEVICES=')


def covers(arch_list: Sequence[str], capability: tuple) -> bool:
    """Whether a build for ``arch_list`` (``['8.0', '9.0+PTX']`` or torch's
    ``['sm_80', 'sm_90', 'compute_90']``) runs on a GPU of ``capability``: SASS of
    the same major version and a minor one at most the GPU's, or PTX of an
    architecture at most the GPU's (JIT-compiled by the driver)."""
    for arch in arch_list:
        arch = arch.strip()
        ptx = arch.endswith('+PTX') or arch.startswith('compute_')
        digits = re.sub(r'[^0-9.]', '', arch.replace('+PTX', ''))
        if not digits:
            continue
        cap = ((int(digits.split('.')[0]), int(digits.split('.')[1])) if '.' in digits
               else (int(digits[:-1]), int(digits[-1])))
        capability = tuple(capability)
        # SASS runs on the same major version at an equal or higher minor one.
        if (cap[0] == capability[0] and cap[1] <= capability[1]) or (ptx and cap <= capability):
            return True
    return False


def mmcv_build_record(prefix: str = sys.prefix) -> Optional[dict]:
    """What tools/setup_env.sh recorded of the mmcv build in this environment
    (``{"cuda": "13.0", "arch_list": "8.0;9.0+PTX"}``), or None."""
    try:
        with open(os.path.join(prefix, MMCV_BUILD_RECORD)) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def arch_problem(torch, prefix: str = sys.prefix) -> Optional[str]:
    """One line naming a visible GPU that torch's build, or mmcv's recorded CUDA
    build, has no kernels for; None when every visible GPU is covered."""
    if not torch.cuda.is_available():
        return None
    record = mmcv_build_record(prefix) or {}
    mmcv_archs = [a for a in record.get('arch_list', '').split(';') if a]
    for index in range(torch.cuda.device_count()):
        capability = tuple(torch.cuda.get_device_capability(index))
        name = f'GPU {index} ({torch.cuda.get_device_name(index)}, compute capability ' \
               f'{capability[0]}.{capability[1]})'
        torch_archs = torch.cuda.get_arch_list()
        if torch_archs and not covers(torch_archs, capability):
            return (f'{name} is not among torch {torch.__version__}\'s architectures '
                    f'({" ".join(torch_archs)}); install a torch build for it '
                    f'(CUDA 13 builds need compute capability 7.5 or more)')
        if mmcv_archs and not covers(mmcv_archs, capability):
            return (f'{name} is not among the architectures mmcv\'s ops were built for '
                    f'({record["arch_list"]}); rebuild them: '
                    f'TORCH_CUDA_ARCH_LIST="{capability[0]}.{capability[1]}+PTX" '
                    'bash tools/setup_env.sh')
    return None


def main(argv: Sequence[str]) -> int:
    if list(argv) != ['check']:
        print('usage: python mmpoolformer/utils/gpu.py check', file=sys.stderr)
        return 2
    problem = cuda_problem()
    if problem is None and gpus_shown() is not None:
        import torch
        problem = arch_problem(torch)
    if problem is not None:
        print(f'error: {problem}', file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
