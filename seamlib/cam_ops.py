"""CAM normalisation shared by the losses, the PCM input and the inference stage.

All three follow the authors' code: ReLU, then per-map (cam - min - EPS) / (max - min + EPS)
over the last two dimensions, so values within EPS of the map's minimum become zero. They
differ in two details, kept as switches so each caller's numbers stay bit-identical:
the PCM input uses min = 0, and inference raises values below min + EPS to min + EPS before
subtracting (the authors' infer_SEAM order) instead of a ReLU after it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

EPS = 1e-5


def normalise_maps(cam: torch.Tensor, subtract_min: bool = True,
                   lift_low: bool = False) -> torch.Tensor:
    """Min-max normalise each (H, W) map of a ReLU'd CAM (..., H, W) to [0, 1).

    ``subtract_min=False`` takes the minimum as 0 (PCM input); ``lift_low=True`` floors the
    values at min + EPS before subtracting (inference stage) rather than ReLU after it (losses).
    """
    cam = F.relu(cam)
    hi = cam.flatten(-2).amax(-1)[..., None, None]
    if not subtract_min:
        return F.relu(cam - EPS) / (hi + EPS)
    lo = cam.flatten(-2).amin(-1)[..., None, None]
    if lift_low:
        cam = torch.where(cam < lo + EPS, lo + EPS, cam)
        return (cam - lo - EPS) / (hi - lo + EPS)
    return F.relu(cam - lo - EPS) / (hi - lo + EPS)
