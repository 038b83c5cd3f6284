# Mask R-CNN (COCO) + ConvFormer-S18: PoolFormer-S12's recipe with the backbone
# swapped; ImageNet weights from sail-sg/metaformer (converted on loading).
_base_ = './maskrcnn_poolformer_s12.py'
model = dict(backbone=dict(
    type='mmpoolformer.ConvFormer', arch='s18',
    init_cfg=dict(checkpoint={{_base_.pretrained_weights.convformer_s18}})))
