"""Checkpoints: ``loading`` reads files safely and loads them into models;
``layouts`` detects the public layouts and converts between them."""
from mmpoolformer.utils.errors import CheckpointError

from .layouts import (
    LAYOUTS,
    V1_LAYOUTS,
    V2_LAYOUTS,
    convert_from_mmpoolformer,
    convert_to_mmpoolformer,
    detect_layout,
)
from .loading import (
    check_shapes,
    get_state_dict,
    load_backbone_weights,
    load_file,
    load_model_weights,
    mmengine_loads_through_load_file,
    skipped_message,
    trust_checkpoint,
)

__all__ = ['CheckpointError', 'LAYOUTS', 'V1_LAYOUTS', 'V2_LAYOUTS', 'convert_from_mmpoolformer',
           'convert_to_mmpoolformer', 'detect_layout', 'check_shapes', 'get_state_dict',
           'load_backbone_weights', 'load_file', 'load_model_weights',
           'mmengine_loads_through_load_file', 'skipped_message',
           'trust_checkpoint']
