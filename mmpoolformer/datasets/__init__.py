from .ade20k import (LoadSegAnnotationsChecked, ValidatedADE20KDataset,  # noqa: F401
                     ValidatedSegDataset)
from .coco import ValidatedCocoDataset  # noqa: F401
from .folder import ValidatedImageFolder  # noqa: F401
from .transforms import LoadImageChecked  # noqa: F401
