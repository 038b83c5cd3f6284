# Medium models: wider stages, drop path 0.3, test crop 0.95 (short edge 236 -> 224).
_base_ = './poolformer_s12_in1k.py'
model = dict(backbone=dict(arch='m36', drop_path_rate=0.3), head=dict(in_channels=768))

test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='ResizeEdge', scale=236, edge='short', backend='pillow', interpolation='bicubic'),
    dict(type='CenterCrop', crop_size=224),
    dict(type='PackInputs'),
]
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
