from .backbones import (CAFormer, ConvFormer, IdentityFormer, MetaFormer,  # noqa: F401
                        PoolFormer, PoolFormerV2, RandFormer)
from .heads import MetaFormerClsHead  # noqa: F401
