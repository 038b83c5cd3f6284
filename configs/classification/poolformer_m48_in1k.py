_base_ = './poolformer_m36_in1k.py'
model = dict(backbone=dict(arch='m48', drop_path_rate=0.4))
