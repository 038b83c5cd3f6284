from .backbones import MetaFormer, PoolFormer  # noqa: F401
