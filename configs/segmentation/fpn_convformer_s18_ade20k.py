# Semantic FPN (ADE20K) + ConvFormer-S18: PoolFormer-S12's recipe with the backbone
# swapped; ImageNet weights from sail-sg/metaformer (converted on loading).
_base_ = './fpn_poolformer_s12_ade20k.py'
model = dict(backbone=dict(
    type='mmpoolformer.ConvFormer', arch='s18',
    init_cfg=dict(checkpoint={{_base_.pretrained_weights.convformer_s18}})))
