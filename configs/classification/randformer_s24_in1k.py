# RandFormer-S24: scripts/randformer/train_randformer_s24.sh of sail-sg/metaformer
# (AdamW lr 4e-3 per 4096 images, 5 warmup epochs, drop path 0.1).
_base_ = './randformer_s12_in1k.py'
model = dict(backbone=dict(arch='s24'))
