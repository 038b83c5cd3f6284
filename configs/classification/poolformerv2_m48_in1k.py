# PoolFormerV2-M48: scripts/poolformerv2/train_poolformerv2_m48.sh of sail-sg/metaformer
# (AdamW lr 4e-3 per 4096 images, 5 warmup epochs, drop path 0.4).
_base_ = './poolformerv2_s12_in1k.py'
model = dict(backbone=dict(arch='m48', drop_path_rate=0.4), head=dict(in_channels=768))
