"""A RoI extractor for features in any memory layout.

mmcv's CPU RoIAlign reads raw NCHW memory and ignores strides
(``tests/test_deploy.py`` pins this), so channels_last features, which let the
neck and RPN run their convolutions in channels_last at inference, must be made
NCHW before it. This project's detection configs use it with
``PoolFormer(nchw_outputs=False)``.
"""
from mmdet.models.roi_heads.roi_extractors import SingleRoIExtractor

from mmpoolformer.registry import MODELS


@MODELS.register_module()
class NCHWRoIExtractor(SingleRoIExtractor):
    """mmdet's SingleRoIExtractor on NCHW copies of the features (a no-op for
    NCHW features)."""

    def forward(self, feats, rois, roi_scale_factor=None):
        return super().forward(tuple(f.contiguous() for f in feats), rois, roi_scale_factor)
