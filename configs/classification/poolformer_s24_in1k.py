_base_ = './poolformer_s12_in1k.py'
model = dict(backbone=dict(arch='s24'))
