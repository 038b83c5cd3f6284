# RandFormer-M36: scripts/randformer/train_randformer_m36.sh of sail-sg/metaformer
# (AdamW lr 4e-3 per 4096 images, 5 warmup epochs, drop path 0.3).
_base_ = './randformer_s12_in1k.py'
model = dict(backbone=dict(arch='m36', drop_path_rate=0.3), head=dict(in_channels=768))
