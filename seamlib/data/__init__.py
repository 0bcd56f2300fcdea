"""Data: PASCAL VOC 2012 + SBD, the embedded synthetic benchmark, lists, labels and datasets."""
