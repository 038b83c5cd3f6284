"""mmpoolformer: PoolFormer / MetaFormer backbones for the OpenMMLab 2.x stack."""
__version__ = '0.1.0'

from .utils.openmmlab import check_toolbox_versions  # noqa: E402

# Before the toolboxes are imported: an unsupported one fails here in one line.
check_toolbox_versions()

from . import datasets, engine, models  # noqa: F401,E402  (registers modules)
