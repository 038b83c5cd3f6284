# convformer_m36: scripts/convformer/train_convformer_m36.sh of sail-sg/metaformer
# (drop path 0.4, head dropout 0.0).
_base_ = './convformer_s18_in1k.py'
model = dict(backbone=dict(arch='m36', drop_path_rate=0.4), head=dict(in_channels=576))
