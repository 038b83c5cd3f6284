from .backbones import *  # noqa: F401,F403  (the backbones' __all__)
from .heads import MetaFormerClsHead  # noqa: F401
from .roi_extractors import NCHWRoIExtractor  # noqa: F401
from .weight_init import PretrainedAnyLayout  # noqa: F401
