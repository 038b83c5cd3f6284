"""Checkpoints: ``loading`` reads files safely and loads them into models;
``layouts`` detects the public layouts and converts between them."""
from mmpoolformer.utils.errors import CheckpointError  # noqa: F401

from .layouts import (LAYOUTS, V1_LAYOUTS, V2_LAYOUTS, convert_from_mmpoolformer,  # noqa: F401
                      convert_to_mmpoolformer, detect_layout)
from .loading import (check_shapes, get_state_dict, load_backbone_weights,  # noqa: F401
                      load_file, load_model_weights, skipped_message, trust_checkpoint)
