_base_ = './retinanet_poolformer_s12.py'
model = dict(
    backbone=dict(arch='m48', init_cfg=dict(checkpoint='https://github.com/sail-sg/poolformer/releases/download/v1.0/poolformer_m48.pth.tar')),
    neck=dict(in_channels=[192, 384, 768]))
