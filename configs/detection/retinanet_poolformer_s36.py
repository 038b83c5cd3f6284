_base_ = './retinanet_poolformer_s12.py'
model = dict(
    backbone=dict(arch='s36',
                  init_cfg=dict(checkpoint={{_base_.pretrained_weights.poolformer_s36}})))
