# PoolFormerV2-S24: scripts/poolformerv2/train_poolformerv2_s24.sh of sail-sg/metaformer
# (AdamW lr 4e-3 per 4096 images, 5 warmup epochs, drop path 0.1).
_base_ = './poolformerv2_s12_in1k.py'
model = dict(backbone=dict(arch='s24'))
