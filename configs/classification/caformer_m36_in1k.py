# caformer_m36: scripts/caformer/train_caformer_m36.sh of sail-sg/metaformer
# (drop path 0.4, head dropout 0.4).
_base_ = './caformer_s18_in1k.py'
model = dict(backbone=dict(arch='m36', drop_path_rate=0.4), head=dict(dropout=0.4, in_channels=576))
