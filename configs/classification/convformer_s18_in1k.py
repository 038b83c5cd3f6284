# ConvFormer-S18 on ImageNet-1K: scripts/convformer/train_convformer_s18.sh of
# sail-sg/metaformer (AdamW lr 4e-3 per 4096 images, 20 warmup epochs, drop path
# 0.2, MLP head without dropout); the rest as for PoolFormerV2.
_base_ = './poolformerv2_s12_in1k.py'

model = dict(
    backbone=dict(type='mmpoolformer.ConvFormer', arch='s18', drop_path_rate=0.2),
    head=dict(mlp_ratio=4, dropout=0.0))

warmup_epochs, cosine_epochs = 20, 300
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-6 / 4e-3, by_epoch=True, end=warmup_epochs,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', eta_min=1e-5, by_epoch=True, begin=warmup_epochs,
         end=cosine_epochs, convert_to_iter_based=True),
]
