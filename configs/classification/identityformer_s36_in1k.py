# IdentityFormer-S36: scripts/identityformer/train_identityformer_s36.sh of sail-sg/metaformer
# (AdamW lr 4e-3 per 4096 images, 5 warmup epochs, drop path 0.2).
_base_ = './identityformer_s12_in1k.py'
model = dict(backbone=dict(arch='s36', drop_path_rate=0.2))
