from .metaformer import MetaFormer, PoolFormer  # noqa: F401
