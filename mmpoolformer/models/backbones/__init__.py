from .metaformer import (
    CAFormer,
    ConvFormer,
    IdentityFormer,
    MetaFormer,
    PoolFormer,
    PoolFormerV2,
    RandFormer,
)

__all__ = ['CAFormer', 'ConvFormer', 'IdentityFormer', 'MetaFormer', 'PoolFormer',
           'PoolFormerV2', 'RandFormer']
