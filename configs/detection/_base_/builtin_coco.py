# The built-in shapes data in the COCO layout (4 classes, 190x150 images, sides not
# multiples of 32), shared by the *_builtin.py detection configs, which pick these
# settings up by name. Write the data with `python tools/data/make_builtin_data.py coco`.
# The names carry a builtin_ prefix so as not to collide with mmdet's base configs.
builtin_data_root = 'data/builtin/coco/'
builtin_metainfo = dict(classes=('circle', 'square', 'triangle', 'cross'))
builtin_image_scale = (192, 160)

builtin_train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='Resize', scale=builtin_image_scale, keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs'),
]
builtin_test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=builtin_image_scale, keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor')),
]
builtin_tta_pipeline = [  # flip test (tools/test.py --tta) at the same scale
    dict(type='LoadImageFromFile'),  # the data set checks the image
    dict(type='TestTimeAug', transforms=[
        [dict(type='Resize', scale=builtin_image_scale, keep_ratio=True)],
        [dict(type='RandomFlip', prob=1.), dict(type='RandomFlip', prob=0.)],
        [dict(type='LoadAnnotations', with_bbox=True)],
        [dict(type='PackDetInputs', meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                                               'scale_factor', 'flip', 'flip_direction'))]]),
]
# Loaded in the training process: these small images decode in milliseconds, and on a
# 2-core machine two worker processes slowed the Mask R-CNN step from 1.47 to 1.87 s
# (CHANGELOG, 2026-12-02).
builtin_train_dataloader = dict(
    batch_size=4, num_workers=0, persistent_workers=False,
    dataset=dict(data_root=builtin_data_root, metainfo=builtin_metainfo,
                 pipeline=builtin_train_pipeline,
                 ann_file='annotations/instances_train2017.json',
                 data_prefix=dict(img='train2017/')))
builtin_val_dataloader = dict(
    batch_size=4, num_workers=2,
    dataset=dict(data_root=builtin_data_root, metainfo=builtin_metainfo,
                 pipeline=builtin_test_pipeline,
                 ann_file='annotations/instances_val2017.json',
                 data_prefix=dict(img='val2017/')))
builtin_val_evaluator = dict(ann_file=builtin_data_root + 'annotations/instances_val2017.json')
