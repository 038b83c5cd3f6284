# convformer_b36: scripts/convformer/train_convformer_b36.sh of sail-sg/metaformer
# (drop path 0.6, head dropout 0.0).
_base_ = './convformer_s18_in1k.py'
model = dict(backbone=dict(arch='b36', drop_path_rate=0.6), head=dict(in_channels=768))
