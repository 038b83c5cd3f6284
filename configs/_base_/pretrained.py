# The ImageNet-1K weights of each backbone: the official releases (sail-sg/poolformer,
# sail-sg/metaformer; their layout is converted on loading). The detection and segmentation
# configs start their backbone from these, through a root config that lists this file:
#     init_cfg=dict(checkpoint={{_base_.pretrained_weights.poolformer_s24}})
# and tools/analysis/make_metafiles.py names them as the classification configs' weights.
pretrained_weights = dict(
    poolformer_s12='https://github.com/sail-sg/poolformer/releases/download/v1.0/poolformer_s12.pth.tar',
    poolformer_s24='https://github.com/sail-sg/poolformer/releases/download/v1.0/poolformer_s24.pth.tar',
    poolformer_s36='https://github.com/sail-sg/poolformer/releases/download/v1.0/poolformer_s36.pth.tar',
    poolformer_m36='https://github.com/sail-sg/poolformer/releases/download/v1.0/poolformer_m36.pth.tar',
    poolformer_m48='https://github.com/sail-sg/poolformer/releases/download/v1.0/poolformer_m48.pth.tar',
    poolformerv2_s12='https://huggingface.co/sail/dl/resolve/main/poolformerv2/poolformerv2_s12.pth',
    poolformerv2_s24='https://huggingface.co/sail/dl/resolve/main/poolformerv2/poolformerv2_s24.pth',
    poolformerv2_s36='https://huggingface.co/sail/dl/resolve/main/poolformerv2/poolformerv2_s36.pth',
    poolformerv2_m36='https://huggingface.co/sail/dl/resolve/main/poolformerv2/poolformerv2_m36.pth',
    poolformerv2_m48='https://huggingface.co/sail/dl/resolve/main/poolformerv2/poolformerv2_m48.pth',
    identityformer_s12='https://huggingface.co/sail/dl/resolve/main/identityformer/identityformer_s12.pth',
    identityformer_s24='https://huggingface.co/sail/dl/resolve/main/identityformer/identityformer_s24.pth',
    identityformer_s36='https://huggingface.co/sail/dl/resolve/main/identityformer/identityformer_s36.pth',
    identityformer_m36='https://huggingface.co/sail/dl/resolve/main/identityformer/identityformer_m36.pth',
    identityformer_m48='https://huggingface.co/sail/dl/resolve/main/identityformer/identityformer_m48.pth',
    randformer_s12='https://huggingface.co/sail/dl/resolve/main/randformer/randformer_s12.pth',
    randformer_s24='https://huggingface.co/sail/dl/resolve/main/randformer/randformer_s24.pth',
    randformer_s36='https://huggingface.co/sail/dl/resolve/main/randformer/randformer_s36.pth',
    randformer_m36='https://huggingface.co/sail/dl/resolve/main/randformer/randformer_m36.pth',
    randformer_m48='https://huggingface.co/sail/dl/resolve/main/randformer/randformer_m48.pth',
    convformer_s18='https://huggingface.co/sail/dl/resolve/main/convformer/convformer_s18.pth',
    convformer_s36='https://huggingface.co/sail/dl/resolve/main/convformer/convformer_s36.pth',
    convformer_m36='https://huggingface.co/sail/dl/resolve/main/convformer/convformer_m36.pth',
    convformer_b36='https://huggingface.co/sail/dl/resolve/main/convformer/convformer_b36.pth',
    caformer_s18='https://huggingface.co/sail/dl/resolve/main/caformer/caformer_s18.pth',
    caformer_s36='https://huggingface.co/sail/dl/resolve/main/caformer/caformer_s36.pth',
    caformer_m36='https://huggingface.co/sail/dl/resolve/main/caformer/caformer_m36.pth',
    caformer_b36='https://huggingface.co/sail/dl/resolve/main/caformer/caformer_b36.pth',
    # The classifier that configs/classification/poolformer_s12_builtin.py trains on the
    # built-in data, which the built-in detection and segmentation configs start from.
    poolformer_s12_builtin='work_dirs/poolformer_s12_builtin/epoch_15.pth',
)
