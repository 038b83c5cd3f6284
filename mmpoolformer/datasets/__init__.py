from .ade20k import (  # noqa: F401
    LoadSegAnnotationsChecked,
    ValidatedADE20KDataset,
    ValidatedSegDataset,
)
from .coco import ValidatedCocoDataset  # noqa: F401
from .folder import ValidatedImageFolder, ValidatedImageNet  # noqa: F401
from .transforms import LoadImageChecked  # noqa: F401
