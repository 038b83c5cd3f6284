"""The bottom layer, which imports nothing else of mmpoolformer: errors and the tools'
one-line handler, walking configs, the tensor-forward wrapper, and the OpenMMLab
environment."""
