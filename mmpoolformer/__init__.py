"""mmpoolformer: PoolFormer / MetaFormer backbones for the OpenMMLab 2.x stack."""
__version__ = '0.1.0'

from .utils.openmmlab import check_toolbox_versions  # noqa: E402
from .utils.openmmlab import mmcv_ops_problem as _mmcv_ops_problem  # noqa: E402

# Before the toolboxes are imported: an unsupported one fails here in one line.
check_toolbox_versions()

# mmseg and mmdet import mmcv.ops: without compiled ops, say what to reinstall in one
# line instead of their traceback.
if (_problem := _mmcv_ops_problem(cuda_run=False)) is not None:
    raise ImportError(_problem)

from . import datasets, engine, models  # noqa: F401,E402  (registers modules)
