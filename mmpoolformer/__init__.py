"""mmpoolformer: PoolFormer / MetaFormer backbones for the OpenMMLab 2.x stack."""
__version__ = '0.1.0'

from . import datasets, engine, models  # noqa: F401,E402  (registers modules)
