# Mask R-CNN (COCO) + PoolFormerV2-S12: PoolFormer-S12's recipe with the backbone
# swapped; ImageNet weights from sail-sg/metaformer (converted on loading).
_base_ = './maskrcnn_poolformer_s12.py'
model = dict(backbone=dict(
    type='mmpoolformer.PoolFormerV2', arch='s12',
    init_cfg=dict(checkpoint='https://huggingface.co/sail/dl/resolve/main/poolformerv2/poolformerv2_s12.pth')))
