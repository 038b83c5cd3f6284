from .coco import ValidatedCocoDataset  # noqa: F401
