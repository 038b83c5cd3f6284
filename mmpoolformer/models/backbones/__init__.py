from .metaformer import (CAFormer, ConvFormer, IdentityFormer, MetaFormer,  # noqa: F401
                         PoolFormer, PoolFormerV2, RandFormer)
