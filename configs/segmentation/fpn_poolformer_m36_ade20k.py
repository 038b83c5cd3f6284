_base_ = './fpn_poolformer_s12_ade20k.py'
model = dict(
    neck=dict(in_channels=[96, 192, 384, 768]),
    backbone=dict(arch='m36', init_cfg=dict(checkpoint='https://github.com/sail-sg/poolformer/releases/download/v1.0/poolformer_m36.pth.tar')))
