# RetinaNet + PoolFormer-S12 on COCO, the original recipe: 1x schedule, 8 GPUs x 2
# images, AdamW lr 1e-4, wd 1e-4. The FPN starts at stride 8 with extra convs on
# its input, so the backbone emits (and normalises) only stages 1-3.
_base_ = ['mmdet::retinanet/retinanet_r50_fpn_1x_coco.py',
          '../_base_/default_runtime.py', '../_base_/pretrained.py']
custom_imports = dict(imports=['mmpoolformer'], allow_failed_imports=False)

model = dict(
    backbone=dict(
        _delete_=True,
        type='mmpoolformer.PoolFormer',
        arch='s12',
        out_indices=(1, 2, 3),
        init_cfg=dict(type='mmpoolformer.PretrainedAnyLayout',
                      checkpoint={{_base_.pretrained_weights.poolformer_s12}})),
    neck=dict(in_channels=[128, 320, 512], start_level=0))

optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-4, weight_decay=1e-4))
# mmdet's pipelines and data; the data set checks the annotation file while loading
# (a bad image id or category id, or a missing image file, is reported by name) and
# each image as it loads (a corrupt one is named, or with bad_images='skip' dropped).
train_dataloader = dict(dataset=dict(type='mmpoolformer.ValidatedCocoDataset'))
val_dataloader = dict(dataset=dict(type='mmpoolformer.ValidatedCocoDataset'))
test_dataloader = val_dataloader
# tools/test.py --tta: mmdet's flip test at the test scale; tta_model, mmdet's DetTTAModel
# merging the boxes of both views by NMS, comes from mmdet's retinanet_tta.py.
tta_pipeline = [
    dict(type='LoadImageFromFile'),  # the data set checks the image
    dict(type='TestTimeAug', transforms=[
        [dict(type='Resize', scale=(1333, 800), keep_ratio=True)],
        [dict(type='RandomFlip', prob=1.), dict(type='RandomFlip', prob=0.)],
        [dict(type='LoadAnnotations', with_bbox=True)],
        [dict(type='PackDetInputs', meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                                               'scale_factor', 'flip', 'flip_direction'))]]),
]
# Checkpoint conversion, atomic checkpoints, a stop at a NaN loss (../_base_/default_runtime.py).
default_hooks = {{_base_.mmpoolformer_default_hooks}}
