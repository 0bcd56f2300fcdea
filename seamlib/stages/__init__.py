"""The stages of SEAM's pipeline, one module each, in the paper's order (``seam run`` runs
them so, seamlib/pipeline.py):

    train_cam       SEAM (or the plain-CAM baseline) on image-level labels
    cams            multi-scale + flip CAMs (the PCM output or the fc8 CAM); the pipeline
                    runs it twice: on the lists CAMs are scored on (cams), then on the whole
                    training list for the pseudo labels (label_cams)
    crf             dense-CRF label maps of confident foreground and background
    train_affinity  AffinityNet on those label maps
    random_walk     the CAMs propagated by AffinityNet's affinities: pseudo labels
    train_seg       DeepLab-LargeFOV retrained on the pseudo labels
    segment         multi-scale + flip (+ CRF) segmentation of a list
    evaluate        mIoU, mFP and mFN of any stage's output against the masks
"""
