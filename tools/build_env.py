"""How mmcv is built for this machine, and whether the installed one fits.

``tools/setup_env.sh`` runs this file by path, before mmcv and the toolboxes are
installed (so it imports nothing but the standard library and torch), to choose the
mmcv build:

    python tools/build_env.py choose 2.1.0      # NAME=VALUE lines
    python tools/build_env.py installed 2.1.0 1  # exit 0: mmcv 2.1.0 with CUDA ops is installed
    python tools/build_env.py check-cuda        # CUDA ops? else one line, exit 1

mmcv's CUDA ops are built when torch has CUDA, ``nvcc`` is found, and a GPU is
visible (or ``MMPOOLFORMER_FORCE_CUDA=1``, e.g. on a login node without GPUs);
the architectures are those of the visible GPUs unless ``TORCH_CUDA_ARCH_LIST``
is set. The wheel cache key names the CUDA version and architectures, or
``cpu``, so that a CPU-only wheel is never reused where CUDA ops are wanted.
``check-cuda`` (tools/gpu_check.sh) runs after the set-up and asks the package's
:func:`mmpoolformer.utils.openmmlab.mmcv_ops_problem`, which the tools call before a run.
"""
import glob
import os
import os.path as osp
import shutil
import sys
from typing import Optional


def find_cuda_home(env=os.environ) -> Optional[str]:
    """The CUDA toolkit to build with: $CUDA_HOME (or $CUDA_PATH), else the one
    holding the nvcc found on PATH, else /usr/local/cuda; None without nvcc.

    torch's extension builder takes the folder above PATH's nvcc, which is wrong
    when that nvcc is a wrapper script (here /usr/local/bin/nvcc), so the choice is
    passed to the build as CUDA_HOME.
    """
    def has_toolkit(home):
        return os.access(osp.join(home, 'bin', 'nvcc'), os.X_OK) and osp.isfile(
            osp.join(home, 'include', 'cuda_runtime.h'))

    home = env.get('CUDA_HOME') or env.get('CUDA_PATH')
    if home:
        return home if has_toolkit(home) else None
    nvcc = shutil.which('nvcc', path=env.get('PATH', os.defpath))
    if nvcc is None:
        return None
    for home in (osp.dirname(osp.dirname(osp.realpath(nvcc))), '/usr/local/cuda'):
        if has_toolkit(home):
            return home
    return None


def visible_arch_list(torch) -> list:
    """Compute capabilities of the visible GPUs, e.g. ['8.0', '9.0']."""
    if not torch.cuda.is_available():
        return []
    caps = {torch.cuda.get_device_capability(i) for i in range(torch.cuda.device_count())}
    return [f'{major}.{minor}' for major, minor in sorted(caps)]


def pip_cuda_includes(torch) -> str:
    """Header folders of the nvidia-* wheels that torch installs (cuBLAS, cuSPARSE...),
    for toolkits without those headers (nvcc alone): put on CPATH, after any -I."""
    site = osp.dirname(osp.dirname(torch.__file__))
    return ':'.join(sorted(glob.glob(osp.join(site, 'nvidia', '*', 'include'))))


def mmcv_build_choices(mmcv_version: str, env=os.environ) -> dict[str, str]:
    """The environment of the mmcv build and the wheel cache key for this machine.

    Returns FORCE_CUDA ('1' or '0'), TORCH_CUDA_ARCH_LIST, CUDA_HOME and
    CUDA_INCLUDES ('' for CPU builds), WHEEL_KEY, LEGACY_KEY (the key before CUDA
    builds existed: accepted for CPU builds only, so that cached CPU wheels stay
    valid) and REASON.
    Raises ValueError (one line) for a forced CUDA build that cannot be done.
    """
    import torch
    torch_version = torch.__version__.split('+')[0]
    python = f'py{sys.version_info[0]}{sys.version_info[1]}'
    legacy = f'mmcv-{mmcv_version}-torch{torch_version}-{python}'
    cuda = torch.version.cuda
    cuda_home = find_cuda_home(env)
    forced = env.get('MMPOOLFORMER_FORCE_CUDA') == '1'
    gpus = visible_arch_list(torch) if cuda else []
    if not cuda:
        reason = f'torch {torch.__version__} has no CUDA'
    elif not cuda_home:
        reason = 'no CUDA toolkit (nvcc on PATH or in $CUDA_HOME/bin)'
    elif not gpus and not forced:
        reason = 'no GPU visible (MMPOOLFORMER_FORCE_CUDA=1 builds the CUDA ops anyway)'
    else:
        reason = None
    if reason is None:
        archs = env.get('TORCH_CUDA_ARCH_LIST', '').replace(';', ' ').split() or gpus
        if not archs:
            raise ValueError('MMPOOLFORMER_FORCE_CUDA=1 without a visible GPU needs '
                             'TORCH_CUDA_ARCH_LIST, e.g. TORCH_CUDA_ARCH_LIST=9.0')
        tag = 'sm' + '_'.join(a.replace('.', '').replace('+PTX', 'ptx') for a in archs)
        return dict(FORCE_CUDA='1', TORCH_CUDA_ARCH_LIST=';'.join(archs),
                    CUDA_HOME=cuda_home, CUDA_INCLUDES=pip_cuda_includes(torch),
                    WHEEL_KEY=f'mmcv-{mmcv_version}-torch{torch_version}-'
                              f'cu{cuda.replace(".", "")}-{tag}-{python}',
                    LEGACY_KEY='', REASON=f'CUDA {cuda} ops for {" ".join(archs)} ({cuda_home})')
    if forced:
        raise ValueError(f'MMPOOLFORMER_FORCE_CUDA=1 but {reason}')
    return dict(FORCE_CUDA='0', TORCH_CUDA_ARCH_LIST='', CUDA_HOME='', CUDA_INCLUDES='',
                WHEEL_KEY=f'mmcv-{mmcv_version}-torch{torch_version}-cpu-{python}',
                LEGACY_KEY=legacy, REASON=f'CPU ops only: {reason}')


def installed_mmcv_fits(mmcv_version: str, need_cuda: bool) -> bool:
    """Whether mmcv ``mmcv_version`` is installed with its compiled ops (and its CUDA ops
    when ``need_cuda``). The set-up asks before the toolboxes are installed, when the
    package cannot be imported; its mmcv_ops_problem says the same to users, in words."""
    try:
        import mmcv
        import mmcv.ops
    except (ImportError, OSError):
        return False
    return mmcv.__version__ == mmcv_version and not (
        need_cuda and mmcv.ops.get_compiling_cuda_version() == 'not available')


def cuda_ops_problem() -> Optional[str]:
    """After the set-up: the installed package's one-line message for an mmcv without
    CUDA ops, or None. Importing the package refuses an mmcv without any compiled ops."""
    try:
        from mmpoolformer.utils.openmmlab import mmcv_ops_problem
    except ImportError as err:
        return str(err)
    return mmcv_ops_problem(cuda_run=True)


def main(argv) -> int:
    command = argv[0]
    if command == 'choose':
        try:
            choices = mmcv_build_choices(argv[1])
        except ValueError as err:
            print(f'error: {err}', file=sys.stderr)
            return 2
        print('\n'.join(f'{k}={v}' for k, v in choices.items()))
        return 0
    if command == 'installed':
        return 0 if installed_mmcv_fits(argv[1], argv[2] == '1') else 1
    if command == 'check-cuda':
        problem = cuda_ops_problem()
        if problem is not None:
            print(f'error: {problem}', file=sys.stderr)
        return 0 if problem is None else 1
    print(f'error: unknown command {command!r} (choose, installed, check-cuda)',
          file=sys.stderr)
    return 2


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
