"""seamlib: SEAM (Wang et al., CVPR 2020) for weakly supervised semantic segmentation."""

__version__ = "0.1.0"
