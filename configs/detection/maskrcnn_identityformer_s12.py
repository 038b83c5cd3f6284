# Mask R-CNN (COCO) + IdentityFormer-S12: PoolFormer-S12's recipe with the backbone
# swapped; ImageNet weights from sail-sg/metaformer (converted on loading).
_base_ = './maskrcnn_poolformer_s12.py'
model = dict(backbone=dict(
    type='mmpoolformer.IdentityFormer', arch='s12',
    init_cfg=dict(checkpoint='https://huggingface.co/sail/dl/resolve/main/identityformer/identityformer_s12.pth')))
