# IdentityFormer-M48: scripts/identityformer/train_identityformer_m48.sh of sail-sg/metaformer
# (AdamW lr 4e-3 per 4096 images, 5 warmup epochs, drop path 0.4).
_base_ = './identityformer_s12_in1k.py'
model = dict(backbone=dict(arch='m48', drop_path_rate=0.4), head=dict(in_channels=768))
