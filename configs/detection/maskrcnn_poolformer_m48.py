_base_ = './maskrcnn_poolformer_s12.py'
model = dict(
    backbone=dict(arch='m48',
                  init_cfg=dict(checkpoint={{_base_.pretrained_weights.poolformer_m48}})),
    neck=dict(in_channels=[96, 192, 384, 768]))
