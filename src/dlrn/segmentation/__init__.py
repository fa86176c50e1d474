"""Lesion segmentation: a 2D U-Net (MONAI) trained on the training cases' expert masks.

``train_segmentation`` trains it (the generic engine's epoch loop), ``SegmentationModel``
predicts a lesion mask on an image's own grid (``NoLesionFound`` when there is none) and
saves/loads without pickle, ``segment_cases`` writes each case's predicted mask,
``mask_metrics`` and ``metric_summary`` score them against the expert's (Dice, IoU,
HD95, patient-level CIs) and ``overlay_figure`` draws both contours on the image.
"""

from dlrn.segmentation.figures import overlay_figure
from dlrn.segmentation.masks import NO_LESION_NOTE, segment_cases, write_mask
from dlrn.segmentation.metrics import mask_metrics, metric_summary
from dlrn.segmentation.model import NoLesionFound, SegmentationModel
from dlrn.segmentation.settings import SegmentationSettings
from dlrn.segmentation.train import SegmentationResult, train_segmentation

__all__ = ["NO_LESION_NOTE", "NoLesionFound", "SegmentationModel", "SegmentationResult",
           "SegmentationSettings", "mask_metrics", "metric_summary", "overlay_figure",
           "segment_cases", "train_segmentation", "write_mask"]
