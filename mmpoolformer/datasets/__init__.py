from .ade20k import ValidatedADE20KDataset, ValidatedSegDataset  # noqa: F401
from .coco import ValidatedCocoDataset  # noqa: F401
from .folder import ValidatedImageFolder  # noqa: F401
from .transforms import LoadImageChecked  # noqa: F401
