# Mask R-CNN (COCO) + RandFormer-S12: PoolFormer-S12's recipe with the backbone
# swapped; ImageNet weights from sail-sg/metaformer (converted on loading).
# RandFormer's random mixing matrices are sized for 224x224; on detection and
# segmentation inputs they are resampled to each image's token grid (README).
_base_ = './maskrcnn_poolformer_s12.py'
model = dict(backbone=dict(
    type='mmpoolformer.RandFormer',
    init_cfg=dict(checkpoint={{_base_.pretrained_weights.randformer_s12}})))
