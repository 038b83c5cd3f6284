# PoolFormerV2-S12 on ImageNet-1K with the sail-sg/metaformer recipe
# (scripts/poolformerv2/train_poolformerv2_s12.sh): AdamW lr 4e-3 per 4096 images,
# 5 warmup epochs, drop path 0.1, test crop 1.0 (resize 224 -> 224); the rest
# (300 + 10 epochs, cosine to 1e-5, wd 0.05 without decay on 1-d parameters,
# RandAugment, random erasing 0.25, Mixup 0.8 / CutMix 1.0, label smoothing 0.1)
# as in PoolFormer's recipe, which this config inherits.
# The v2 classifier norms the pooled feature in its head (LayerNorm), not the
# last feature map, so the backbone has no output norm here.
_base_ = './poolformer_s12_in1k.py'

model = dict(
    backbone=dict(
        _delete_=True, type='mmpoolformer.PoolFormerV2', arch='s12',
        drop_path_rate=0.1, out_norms=False),
    head=dict(
        _delete_=True,
        type='mmpoolformer.MetaFormerClsHead',
        num_classes=1000,
        in_channels=512,
        loss=dict(type='LabelSmoothLoss', label_smooth_val=0.1, mode='original'),
        init_cfg=dict(type='TruncNormal', layer='Linear', std=.02, bias=0.)))

# 8 GPUs x 128 images x 4 accumulation steps = 4096 -> lr 4e-3.
optim_wrapper = dict(optimizer=dict(lr=4e-3), accumulative_counts=4)
auto_scale_lr = dict(base_batch_size=4096)

warmup_epochs, cosine_epochs = 5, 300
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-6 / 4e-3, by_epoch=True, end=warmup_epochs,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', eta_min=1e-5, by_epoch=True, begin=warmup_epochs,
         end=cosine_epochs, convert_to_iter_based=True),
]

test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='ResizeEdge', scale=224, edge='short', backend='pillow', interpolation='bicubic'),
    dict(type='CenterCrop', crop_size=224),
    dict(type='PackInputs'),
]
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
