"""Class activation maps (Grad-CAM) of PoolFormer and other classifiers."""
