# convformer_s36: scripts/convformer/train_convformer_s36.sh of sail-sg/metaformer
# (drop path 0.3, head dropout 0.0).
_base_ = './convformer_s18_in1k.py'
model = dict(backbone=dict(arch='s36', drop_path_rate=0.3))
