"""How well predicted masks match the expert's: Dice, IoU, HD95, with patient-level CIs.

Per case (:func:`mask_metrics`), with MONAI's metrics (``DiceMetric``, ``MeanIoU``,
``HausdorffDistanceMetric(percentile=95)``) on the image's own grid: HD95 in mm where the
image's spacing is known, else in pixels (``hd95_unit``). A case with no predicted lesion
counts as Dice 0 and IoU 0 (HD95 undefined: NaN); it is never dropped. Summaries
(:func:`metric_summary`): mean, median and a 95% CI by bootstrapping patients (all
images of a patient resampled together).
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
import torch

from dlrn.errors import DlrnError

METRICS = ("dice", "iou", "hd95")


def _pair(predicted: np.ndarray, expert: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """MONAI's (batch, channel, rows, cols) float tensors of one or several mask pairs."""
    predicted, expert = np.asarray(predicted, dtype=bool), np.asarray(expert, dtype=bool)
    if predicted.shape != expert.shape:
        raise DlrnError(f"predicted mask of shape {predicted.shape} and expert mask of shape "
                        f"{expert.shape} differ")
    if predicted.ndim == 2:
        predicted, expert = predicted[None], expert[None]
    return (torch.from_numpy(predicted[:, None].astype(np.float32)),
            torch.from_numpy(expert[:, None].astype(np.float32)))


def overlap_scores(predicted: np.ndarray, expert: np.ndarray) -> tuple[float, float]:
    """(Dice, IoU) of two boolean masks of one shape; NaN where the expert mask is empty,
    0 where only the prediction is."""
    from monai.metrics import DiceMetric, MeanIoU

    y_pred, y = _pair(predicted, expert)
    if not y.any():
        return math.nan, math.nan
    dice = DiceMetric(include_background=True, reduction="none")(y_pred, y)
    iou = MeanIoU(include_background=True, reduction="none")(y_pred, y)
    return float(dice.item()), float(iou.item())


def hd95(predicted: np.ndarray, expert: np.ndarray,
         spacing: tuple[float, float] | None = None) -> float:
    """95th-percentile symmetric Hausdorff distance between two masks' boundaries; in the
    unit of ``spacing`` (row, column pixel sizes), pixels without it. NaN where either
    mask is empty."""
    from monai.metrics import HausdorffDistanceMetric

    y_pred, y = _pair(predicted, expert)
    if not (y_pred.any() and y.any()):
        return math.nan
    metric = HausdorffDistanceMetric(include_background=True, percentile=95, reduction="none")
    kwargs = {"spacing": [float(s) for s in spacing]} if spacing is not None else {}
    with warnings.catch_warnings():  # MONAI 1.5+ warns about an argument it passes itself
        warnings.filterwarnings("ignore", message=".*always_return_as_numpy",
                                category=FutureWarning)
        return float(metric(y_pred, y, **kwargs).item())


def case_metrics(predicted: np.ndarray | None, expert: np.ndarray,
                 spacing: tuple[float, float] | None) -> dict[str, float]:
    """Dice, IoU and HD95 of one case; ``predicted=None`` (no lesion found): 0, 0, NaN."""
    if predicted is None:
        return {"dice": 0.0, "iou": 0.0, "hd95": math.nan}
    dice, iou = overlap_scores(predicted, expert)
    return {"dice": dice, "iou": iou, "hd95": hd95(predicted, expert, spacing)}


def mask_metrics(cases: pd.DataFrame, predicted: pd.DataFrame, *, label: int | None = None,
                 frame: int = 0, progress: bool = False) -> pd.DataFrame:
    """Dice, IoU and HD95 of each case of ``predicted`` (column ``mask``: path of the
    predicted mask, NA where no lesion was found) against the expert's ``cases['mask']``.

    Masks are read with the image's geometry (:func:`dlrn.imaging.read_image_and_mask`;
    ``label`` and ``frame`` as the cohort reads them, the predicted masks with ``label``);
    HD95 is in mm where the image's spacing is known (``hd95_unit`` ``mm``), else in
    pixels (``pixel``). Columns: dice, iou, hd95, hd95_unit, lesion_found.
    """
    from tqdm.auto import tqdm

    from dlrn.imaging import align_mask_to_image, read_image_and_mask, read_mask, spacing_is_known

    missing = [str(i) for i in predicted.index if i not in cases.index]
    if missing:
        raise DlrnError(f"mask_metrics: case(s) {missing[:5]} are not in the cases table")
    rows = {}
    for case_id, path in tqdm(predicted["mask"].items(), total=len(predicted), unit="case",
                              desc="scoring masks", disable=not progress, leave=False):
        image, expert = read_image_and_mask(cases.at[case_id, "image"],
                                            cases.at[case_id, "mask"], label=label,
                                            frame=frame)
        known = spacing_is_known(image)
        spacing = tuple(reversed(image.GetSpacing())) if known else None  # (row, col)
        mask = None
        if not pd.isna(path):
            mask = _array(align_mask_to_image(image, read_mask(path, label=label),
                                              cases.at[case_id, "image"], path))
        rows[case_id] = {**case_metrics(mask, _array(expert), spacing),
                         "hd95_unit": "mm" if known else "pixel",
                         "lesion_found": mask is not None}
    table = pd.DataFrame.from_dict(rows, orient="index",
                                   columns=[*METRICS, "hd95_unit", "lesion_found"])
    table.index.name = predicted.index.name or "case_id"
    return table


def _array(mask) -> np.ndarray:
    import SimpleITK as sitk

    return sitk.GetArrayFromImage(mask) != 0


def metric_summary(per_case: pd.DataFrame, patients: pd.Series | None = None, *,
                   seed: int = 0, n_boot: int = 2000) -> pd.DataFrame:
    """One row per metric (dice, iou, hd95 where present): mean, median, 95% CI of the
    mean, n_cases, n_patients.

    The CI is the percentile interval of ``n_boot`` bootstrap means drawn by patient
    (``patients``: patient id per case; all cases of a drawn patient come in together),
    or by case where ``patients`` is None. Deterministic for ``seed``. HD95 is summarised
    over the cases where it is defined (a lesion found); Dice and IoU over all cases.
    """
    groups = (pd.Series(per_case.index.astype(str), index=per_case.index) if patients is None
              else patients.reindex(per_case.index))
    if groups.isna().any():
        raise DlrnError(f"metric_summary: no patient for case(s) "
                        f"{list(groups.index[groups.isna()][:5])}")
    rows = {}
    for name in [m for m in METRICS if m in per_case.columns]:
        values = per_case[name].astype(float)
        defined = values.notna()
        rows[name] = _summary_row(values[defined].to_numpy(), groups[defined].to_numpy(),
                                  np.random.default_rng(seed), n_boot)
    return pd.DataFrame.from_dict(rows, orient="index")


def _summary_row(values: np.ndarray, groups: np.ndarray, rng: np.random.Generator,
                 n_boot: int) -> dict[str, float]:
    if len(values) == 0:
        return {"mean": math.nan, "median": math.nan, "ci_low": math.nan, "ci_high": math.nan,
                "n_cases": 0, "n_patients": 0}
    codes, n_groups = pd.factorize(groups)[0], len(np.unique(groups))
    sums = np.bincount(codes, weights=values, minlength=n_groups)
    counts = np.bincount(codes, minlength=n_groups).astype(float)
    draws = rng.integers(0, n_groups, size=(n_boot, n_groups))
    weights = np.stack([np.bincount(row, minlength=n_groups) for row in draws])
    means = (weights @ sums) / (weights @ counts)
    low, high = np.quantile(means, [0.025, 0.975])
    return {"mean": float(values.mean()), "median": float(np.median(values)),
            "ci_low": float(low), "ci_high": float(high), "n_cases": len(values),
            "n_patients": n_groups}
