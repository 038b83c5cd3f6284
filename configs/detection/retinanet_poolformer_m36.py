_base_ = './retinanet_poolformer_s12.py'
model = dict(
    backbone=dict(arch='m36',
                  init_cfg=dict(checkpoint={{_base_.pretrained_weights.poolformer_m36}})),
    neck=dict(in_channels=[192, 384, 768]))
