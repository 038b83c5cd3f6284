"""Class activation maps (Grad-CAM) of PoolFormer and the models it is compared with."""
