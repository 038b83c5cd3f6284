# Semantic FPN (ADE20K) + CAFormer-S18: PoolFormer-S12's recipe with the backbone
# swapped; ImageNet weights from sail-sg/metaformer (converted on loading).
# Attention in stages 3-4 is global: its memory grows with the square of the
# token count (about 4200 tokens at stride 16 for a 1333x800 image).
_base_ = './fpn_poolformer_s12_ade20k.py'
model = dict(backbone=dict(
    type='mmpoolformer.CAFormer', arch='s18',
    init_cfg=dict(checkpoint={{_base_.pretrained_weights.caformer_s18}})))
