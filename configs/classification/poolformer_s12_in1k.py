# PoolFormer-S12 on ImageNet-1K with the original recipe (sail-sg/poolformer train.py):
# AdamW lr 1e-3 per 1024 images, wd 0.05 (none on norms, biases, layer scales),
# 5 warmup epochs from 1e-6, cosine to 1e-5 over 300 epochs + 10 cooldown epochs,
# RandAugment m9-mstd0.5-inc1, random erasing 0.25, Mixup 0.8 / CutMix 1.0,
# label smoothing 0.1, bicubic, drop path 0.1, test crop 0.9 (resize 248 -> 224).
# mmpretrain's own PoolFormer config supplies the data pipeline and runtime.
#   ImageNet layout: data/imagenet/{train,val}/<class>/<image>.JPEG
_base_ = ['mmpretrain::poolformer/poolformer-s12_32xb128_in1k.py',
          '../_base_/default_runtime.py']
custom_imports = dict(imports=['mmpoolformer'], allow_failed_imports=False)

model = dict(
    backbone=dict(
        _delete_=True, type='mmpoolformer.PoolFormer', arch='s12', drop_path_rate=0.1),
    head=dict(
        loss=dict(type='LabelSmoothLoss', label_smooth_val=0.1, mode='original'),
        init_cfg=dict(type='TruncNormal', layer='Linear', std=.02, bias=0.)),
    train_cfg=dict(augments=[dict(type='Mixup', alpha=0.8), dict(type='CutMix', alpha=1.0)]),
)

# mmpretrain's pipelines (test: resize 248, crop 224). The data set checks each image
# as it loads: a corrupt one is named, or with bad_images='skip' dropped.
# Workers per GPU: docs/performance.md#data-loading-workers-per-gpu. 8 feed a GPU training
# S12 at 1,343 img/s down to 168 img/s per worker, about half the rate measured there for
# this pipeline: room for slower or busier cores. Workers live across epochs; batches go
# to page-locked memory so that the copy to the GPU overlaps the step.
train_dataloader = dict(num_workers=8, persistent_workers=True, pin_memory=True,
                        dataset=dict(type='mmpoolformer.ValidatedImageNet'))
val_dataloader = dict(dataset=dict(type='mmpoolformer.ValidatedImageNet', test_mode=True),
                      persistent_workers=True, pin_memory=True)
test_dataloader = val_dataloader
# 8 GPUs x 128 images (the base's batch) = 1024 -> lr 1e-3; --auto-scale-lr rescales
# for other batches.
optim_wrapper = dict(optimizer=dict(lr=1e-3), clip_grad=None)
auto_scale_lr = dict(base_batch_size=1024)

warmup_epochs, cosine_epochs, cooldown_epochs = 5, 300, 10
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=True, end=warmup_epochs,
         convert_to_iter_based=True),
    # After the cosine ends the lr stays at eta_min for the cooldown epochs.
    dict(type='CosineAnnealingLR', eta_min=1e-5, by_epoch=True, begin=warmup_epochs,
         end=cosine_epochs, convert_to_iter_based=True),
]
train_cfg = dict(max_epochs=cosine_epochs + cooldown_epochs)

# Checkpoint conversion, atomic checkpoints, a stop at a NaN loss (../_base_/default_runtime.py).
default_hooks = {{_base_.mmpoolformer_default_hooks}}
