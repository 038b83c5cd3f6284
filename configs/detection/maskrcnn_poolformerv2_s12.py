# Mask R-CNN (COCO) + PoolFormerV2-S12: PoolFormer-S12's recipe with the backbone
# swapped; ImageNet weights from sail-sg/metaformer (converted on loading).
_base_ = './maskrcnn_poolformer_s12.py'
model = dict(backbone=dict(
    type='mmpoolformer.PoolFormerV2',
    init_cfg=dict(checkpoint={{_base_.pretrained_weights.poolformerv2_s12}})))
