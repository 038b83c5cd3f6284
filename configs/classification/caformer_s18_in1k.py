# CAFormer-S18 on ImageNet-1K: scripts/caformer/train_caformer_s18.sh of
# sail-sg/metaformer (LAMB lr 8e-3 per 4096 images, 20 warmup epochs, drop path
# 0.15, MLP head without dropout); the rest as for ConvFormer.
_base_ = './convformer_s18_in1k.py'

model = dict(
    backbone=dict(type='mmpoolformer.CAFormer', drop_path_rate=0.15))
optim_wrapper = dict(optimizer=dict(_delete_=True, type='Lamb', lr=8e-3, weight_decay=0.05))

param_scheduler = [
    dict(type='LinearLR', start_factor=1e-6 / 8e-3, by_epoch=True, end=20,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', eta_min=1e-5, by_epoch=True, begin=20, end=300,
         convert_to_iter_based=True),
]
