"""The CNN's Grad-CAM of one patient for the page: the ROI crop and its heat map side by
side, without a caption (the page says what it shows, in words a clinician reads)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from dlrn.serve.roi import png_bytes
from dlrn.study.bundle import Bundle


def gradcam_picture(bundle: Bundle, cases: pd.DataFrame, row: pd.Series) -> bytes:
    """PNG of the first case of ``cases`` (as ``read_new_cases`` read it): its crop, as the
    CNN sees it, beside the Grad-CAM overlay of the class the CNN's cut-off gives it
    (``row``: the case's ``predict_cases`` row)."""
    from dlrn.deep.classifier.gradcam import gradcam_maps, overlay_image
    from dlrn.deep.data import CropSettings, build_crop_cache

    deep = bundle.json("settings")["deep"]
    backbone, case_id = deep["backbone"], str(cases.index[0])
    cache = build_crop_cache(cases.iloc[:1], CropSettings(**deep["crop"]), progress=False)
    positive = float(row[f"DL-{backbone}"]) >= deep.get("threshold", 0.5)
    heatmap = gradcam_maps(bundle.cnn(backbone), backbone, cache, [case_id],
                           normalization=deep["normalization"], positive=[positive])[0]
    crop = cache.images([case_id])[0, 0]
    gap = np.full((crop.shape[0], max(2, crop.shape[1] // 16), 3), 255, np.uint8)
    return png_bytes(np.concatenate([np.repeat(crop[..., None], 3, axis=2), gap,
                                     overlay_image(crop, heatmap)], axis=1))
