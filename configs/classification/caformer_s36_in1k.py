# caformer_s36: scripts/caformer/train_caformer_s36.sh of sail-sg/metaformer
# (drop path 0.3, head dropout 0.4).
_base_ = './caformer_s18_in1k.py'
model = dict(backbone=dict(arch='s36', drop_path_rate=0.3), head=dict(dropout=0.4))
