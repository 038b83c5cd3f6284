# PoolFormer-S12 trained from scratch on the built-in shapes data (4 classes, 64x64,
# ImageNet folder layout): `python tools/data/make_builtin_data.py imagenet`.
# Same model and optimiser as ImageNet; a short schedule and no batch mixing.
_base_ = './poolformer_s12_in1k.py'

data_root = 'data/builtin/imagenet'
num_classes = 4
data_preprocessor = dict(num_classes=num_classes)
model = dict(
    backbone=dict(drop_path_rate=0.0),
    head=dict(num_classes=num_classes, loss=dict(label_smooth_val=0.0)),
    train_cfg=dict(_delete_=True))

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs'),
]
test_pipeline = [dict(type='LoadImageFromFile'), dict(type='PackInputs')]
# A CPU job: no pinned memory (the ImageNet config pins it for the copy to a GPU).
train_dataloader = dict(
    batch_size=32, num_workers=2, persistent_workers=True, pin_memory=False,
    dataset=dict(_delete_=True, type='mmpoolformer.ValidatedImageFolder', data_root=data_root,
                 data_prefix='train', pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=32, num_workers=2, persistent_workers=True, pin_memory=False,
    dataset=dict(_delete_=True, type='mmpoolformer.ValidatedImageFolder', data_root=data_root,
                 data_prefix='val', pipeline=test_pipeline, test_mode=True))
test_dataloader = val_dataloader
val_evaluator = dict(topk=(1, ))
test_evaluator = val_evaluator

max_epochs = 15
optim_wrapper = dict(optimizer=dict(lr=2e-3))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-2, by_epoch=True, end=1, convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', eta_min=1e-5, by_epoch=True, begin=1, end=max_epochs,
         convert_to_iter_based=True),
]
train_cfg = dict(max_epochs=max_epochs, val_interval=5)
auto_scale_lr = dict(base_batch_size=32)
default_hooks = dict(logger=dict(interval=5), checkpoint=dict(interval=5, max_keep_ckpts=2))
randomness = dict(seed=0)
