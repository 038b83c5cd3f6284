"""Python API: read configs, build models from them, load weights of any layout,
run inference. Config preparation for mmengine's Runner (what the training and
test tools share) is :mod:`mmpoolformer.apis.run`."""
from .config import (  # noqa: F401
    check_model_config,
    load_config,
    model_heads,
    package_config,
    sync_num_classes,
)
from .images import DEFAULT_MAX_PIXELS, check_image, checked_inputs  # noqa: F401
from .inference import build_inferencer, build_model, inference, init_model  # noqa: F401
