# caformer_b36: scripts/caformer/train_caformer_b36.sh of sail-sg/metaformer
# (drop path 0.6, head dropout 0.5).
_base_ = './caformer_s18_in1k.py'
model = dict(backbone=dict(arch='b36', drop_path_rate=0.6), head=dict(dropout=0.5, in_channels=768))
