_base_ = './poolformer_s12_in1k.py'
model = dict(backbone=dict(arch='s36', drop_path_rate=0.2))
