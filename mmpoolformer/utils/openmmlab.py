"""How the package fits into an OpenMMLab environment: the toolbox versions it
supports and the compiled ops of mmcv (both checked when it is imported), and the
``mmpoolformer::`` config prefix.

The ranges are pyproject.toml's, which are the toolboxes' own (mmdet 3.3 and
mmsegmentation 1.2 assert mmcv < 2.2.0 at import, in the same way).
"""
import os.path as osp
from importlib import metadata
from typing import Optional

from packaging.specifiers import SpecifierSet
from packaging.version import Version

from mmpoolformer.utils.errors import UsageError

SUPPORTED = {
    'mmengine': '>=0.8.3,<1.0.0',
    'mmcv': '>=2.0.0rc4,<2.2.0',
    'mmdet': '>=3.0.0,<4.0.0',
    'mmsegmentation': '>=1.0.0,<2.0.0',
    'mmpretrain': '>=1.0.0,<2.0.0',
}


class UnsupportedVersionError(UsageError):
    """An installed toolbox outside the supported range; the message names it."""


def check_toolbox_versions():
    """Raise UnsupportedVersionError naming the first installed toolbox whose version
    is outside ``SUPPORTED`` (package, version, range), in one line."""
    for package, supported in SUPPORTED.items():
        try:
            installed = metadata.version(package)
        except metadata.PackageNotFoundError:
            raise UnsupportedVersionError(
                f'{package} is not installed; mmpoolformer needs {package}{supported}') from None
        if not SpecifierSet(supported).contains(Version(installed), prereleases=True):
            raise UnsupportedVersionError(
                f'{package} {installed} is installed, but mmpoolformer supports '
                f'{package}{supported}; install a version in that range')


def mmcv_ops_problem(cuda_run: bool) -> Optional[str]:
    """One line saying how the installed mmcv fails this run, or None if it fits:
    no compiled ops at all (mmcv-lite, or built with MMCV_WITH_OPS=0), or only CPU
    ops on a run that uses CUDA (RoIAlign and NMS would fail mid-training)."""
    import mmcv
    try:
        import mmcv.ops
    except (ImportError, OSError) as err:
        return (f'mmcv {mmcv.__version__} ({osp.dirname(mmcv.__file__)}) has no usable '
                f'compiled ops ({err}): reinstall mmcv with its ops (tools/setup_env.sh, or '
                '`mim install "mmcv>=2.0.0rc4,<2.2.0"` where a prebuilt wheel exists; '
                'mmcv-lite has none)')
    if cuda_run and mmcv.ops.get_compiling_cuda_version() == 'not available':
        return (f'mmcv {mmcv.__version__} ({osp.dirname(mmcv.__file__)}) was built without '
                'CUDA ops but this run uses CUDA: rebuild it where torch has CUDA and nvcc '
                'is found (tools/setup_env.sh on a GPU node, or MMPOOLFORMER_FORCE_CUDA=1 '
                'TORCH_CUDA_ARCH_LIST=<arch>), or run on the CPU with CUDA_VISIBLE_DEVICES=')
    return None


def register_config_package():
    """Let mmengine resolve ``_base_ = 'mmpoolformer::detection/...py'``.

    mmengine 0.10 accepts ``pkg::`` only for the packages in its table
    ``mmengine.config.utils.MODULE2PACKAGE`` and reads the configs from the
    installed package's ``.mim/configs``. This adds the package to that table; it
    is not done on import (importing changes nothing global), but by
    :func:`mmpoolformer.apis.load_config` and the tools, and by any other project
    that calls it before ``Config.fromfile``.
    """
    from mmengine.config.utils import MODULE2PACKAGE
    MODULE2PACKAGE.setdefault('mmpoolformer', 'mmpoolformer')
