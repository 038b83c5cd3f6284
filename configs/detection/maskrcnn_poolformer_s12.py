# Mask R-CNN + PoolFormer-S12 on COCO, the original recipe: 1x schedule (12 epochs,
# lr steps at 8 and 11, linear warmup), 8 GPUs x 2 images, AdamW lr 2e-4, wd 1e-4,
# FPN 256 channels / 5 outputs, ImageNet-pretrained backbone (official weights).
_base_ = ['mmdet::mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py',
          '../_base_/default_runtime.py', '../_base_/pretrained.py']
custom_imports = dict(imports=['mmpoolformer'], allow_failed_imports=False)

model = dict(
    backbone=dict(
        _delete_=True,
        type='mmpoolformer.PoolFormer',
        arch='s12',
        out_indices=(0, 1, 2, 3),
        # Inference on CPU: channels_last features, so that the neck and the RPN
        # run in channels_last too; the RoI extractors make them NCHW for mmcv's
        # RoIAlign, which reads raw NCHW memory.
        nchw_outputs=False,
        init_cfg=dict(type='mmpoolformer.PretrainedAnyLayout',
                      checkpoint={{_base_.pretrained_weights.poolformer_s12}})),
    neck=dict(in_channels=[64, 128, 320, 512]),
    roi_head=dict(bbox_roi_extractor=dict(type='mmpoolformer.NCHWRoIExtractor'),
                  mask_roi_extractor=dict(type='mmpoolformer.NCHWRoIExtractor')))

optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=2e-4, weight_decay=1e-4))
# mmdet's pipelines and data; the data set checks the annotation file while loading
# (a bad image id or category id, or a missing image file, is reported by name) and
# each image as it loads (a corrupt one is named, or with bad_images='skip' dropped).
train_dataloader = dict(dataset=dict(type='mmpoolformer.ValidatedCocoDataset'))
val_dataloader = dict(dataset=dict(type='mmpoolformer.ValidatedCocoDataset'))
test_dataloader = val_dataloader
# Checkpoint conversion, atomic checkpoints, a stop at a NaN loss (../_base_/default_runtime.py).
default_hooks = {{_base_.mmpoolformer_default_hooks}}
