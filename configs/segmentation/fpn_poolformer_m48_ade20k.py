_base_ = './fpn_poolformer_s12_ade20k.py'
model = dict(
    neck=dict(in_channels=[96, 192, 384, 768]),
    backbone=dict(arch='m48',
                  init_cfg=dict(checkpoint={{_base_.pretrained_weights.poolformer_m48}})))
