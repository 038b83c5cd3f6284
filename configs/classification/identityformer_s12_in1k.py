# IdentityFormer-S12: scripts/identityformer/train_identityformer_s12.sh of sail-sg/metaformer
# (AdamW lr 4e-3 per 4096 images, 5 warmup epochs, drop path 0.1).
_base_ = './poolformerv2_s12_in1k.py'
model = dict(backbone=dict(type='mmpoolformer.IdentityFormer'))
