# Semantic FPN + PoolFormer-S12 on ADE20K, the original recipe: 512x512 crops,
# 8 GPUs x 4 images, AdamW lr 2e-4, wd 1e-4, poly (power 0.9) over 40k iterations,
# FPN 256 / FPNHead 128 channels, 150 classes, single-scale test with
# ResizeToMultiple(32). mmseg's own PoolFormer config supplies data and schedule.
#   ADE20K layout: data/ade/ADEChallengeData2016/{images,annotations}/{training,validation}
_base_ = ['mmseg::poolformer/fpn_poolformer_s12_8xb4-40k_ade20k-512x512.py',
          '../_base_/default_runtime.py', '../_base_/pretrained.py']
custom_imports = dict(imports=['mmpoolformer'], allow_failed_imports=False)

model = dict(
    backbone=dict(
        _delete_=True,
        type='mmpoolformer.PoolFormer',
        arch='s12',
        out_indices=(0, 1, 2, 3),
        # Inference on CPU: channels_last features, so that the neck and the
        # head run in channels_last too.
        nchw_outputs=False,
        init_cfg=dict(type='mmpoolformer.PretrainedAnyLayout',
                      checkpoint={{_base_.pretrained_weights.poolformer_s12}})))

# The recipe's total batch (8 GPUs x 4): tools/train.py warns when a run's differs, and
# --auto-scale-lr scales the lr to it.
auto_scale_lr = dict(enable=False, base_batch_size=32)
# The original trained in fp32; use --amp to opt in to mixed precision.
optim_wrapper = dict(type='OptimWrapper')
# mmseg's pipelines, with label maps loaded by mmpoolformer.LoadSegAnnotationsChecked:
# a label value outside the classes is an error naming the file, not silently ignored
# (reduce_zero_label comes from the data set; ADE20K's is True).
crop_size = (512, 512)
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='mmpoolformer.LoadSegAnnotationsChecked'),
    dict(type='RandomResize', scale=(2048, 512), ratio_range=(0.5, 2.0), keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PhotoMetricDistortion'),
    dict(type='PackSegInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(2048, 512), keep_ratio=True),
    dict(type='ResizeToMultiple', size_divisor=32),
    dict(type='mmpoolformer.LoadSegAnnotationsChecked'),
    dict(type='PackSegInputs'),
]
# Every image must have a label map of its size; a culprit is reported by file name.
train_dataloader = dict(dataset=dict(dataset=dict(
    type='mmpoolformer.ValidatedADE20KDataset', pipeline=train_pipeline)))
val_dataloader = dict(dataset=dict(type='mmpoolformer.ValidatedADE20KDataset',
                                   pipeline=test_pipeline, test_mode=True))
test_dataloader = val_dataloader
# tools/test.py --tta: mmseg's multi-scale + flip test (its ADE20K ratios, with the
# ResizeToMultiple(32) of mmseg's PoolFormer results); tta_model, mmseg's
# SegTTAModel, comes from mmseg's runtime config.
img_ratios = [0.5, 0.75, 1.0, 1.25, 1.5, 1.75]
tta_pipeline = [
    dict(type='LoadImageFromFile'),  # the data set checks the image
    dict(type='TestTimeAug', transforms=[
        [dict(type='Resize', scale_factor=r, keep_ratio=True) for r in img_ratios],
        [dict(type='ResizeToMultiple', size_divisor=32)],
        [dict(type='RandomFlip', prob=0., direction='horizontal'),
         dict(type='RandomFlip', prob=1., direction='horizontal')],
        [dict(type='mmpoolformer.LoadSegAnnotationsChecked')],
        [dict(type='PackSegInputs')]]),
]
# Checkpoint conversion, atomic checkpoints, a stop at a NaN loss (../_base_/default_runtime.py).
default_hooks = {{_base_.mmpoolformer_default_hooks}}
