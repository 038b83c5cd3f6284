_base_ = './maskrcnn_poolformer_s12.py'
model = dict(
    backbone=dict(arch='s24', init_cfg=dict(checkpoint='https://github.com/sail-sg/poolformer/releases/download/v1.0/poolformer_s24.pth.tar')),
    neck=dict(in_channels=[64, 128, 320, 512]))
