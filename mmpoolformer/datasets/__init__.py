from .ade20k import ValidatedADE20KDataset, ValidatedSegDataset  # noqa: F401
from .coco import ValidatedCocoDataset  # noqa: F401
