"""The methods summary: what the CLEAR and METRICS radiomics checklists ask a study to state."""

from __future__ import annotations

import json
from typing import Any

from dlrn.study.config import StudyConfig
from dlrn.study.pipeline import StudyContext
from dlrn.study.stages import IGNORED_REPEATS


def _facts(context: StudyContext, stage: str) -> dict[str, Any]:
    record = context.records.get(stage)
    return (record.summary or {}).get("facts", {}) if record and record.status == "done" else {}


def _funnel_text(context: StudyContext, stage: str) -> str:
    path = context.stage_dir(stage) / "result" / "selection_funnel.csv"
    if not path.exists():
        return ""
    import pandas as pd

    funnel = pd.read_csv(path)
    steps = ", ".join(f"{row.step} {row.features_in}→{row.features_out}"
                      for row in funnel.itertuples())
    return f" Counts per step: {steps}."


def _inclusion_text(config: StudyConfig) -> str:
    c = config.cohort
    size = (f"lesions with a maximum ROI diameter below {c.min_roi_mm} mm excluded where the "
            "pixel spacing is known; " if c.min_roi_mm is not None else "")
    return (f"Inclusion: {size}ROIs of fewer than {c.min_roi_pixels} pixels refused; invalid "
            f"cases {'excluded' if c.on_error == 'exclude' else 'stopped the study'}.")


def _roi_text(config: StudyConfig) -> str:
    c = config.cohort
    label = "every non-zero pixel" if c.mask_label is None else f"mask value {c.mask_label}"
    return f"{label}, frame {c.frame}"


def _learning_rate(learning_rate: float | None, weights: str | None) -> str:
    from dlrn.deep.train import initial_learning_rate

    rate = f"{initial_learning_rate(learning_rate, weights):g}"
    return rate if learning_rate is not None else f"{rate}, chosen for the initial weights"


def methods_summary(context: StudyContext) -> list[tuple[str, str]]:
    """(checklist item, sentence) pairs, built from the settings and the stages' records."""
    config = context.config
    cohort = _facts(context, "cohort")
    radiomics = _facts(context, "radiomics")
    params_path = context.stage_dir("radiomics") / "params.json"
    params = json.loads(params_path.read_text()) if params_path.exists() else {}
    setting = params.get("setting", {})
    dl = config.dl
    items = [
        ("Study design and data", f"Retrospective cohort from {config.cohort.table}; "
         f"{cohort.get('cases analysed', '?')} cases analysed, "
         f"{cohort.get('cases excluded', 0)} excluded (listed with reasons below); outcome "
         f"column '{config.cohort.label}'. External validation sets: "
         f"{', '.join(e.name for e in config.cohort.external) or 'none'}. "
         + _inclusion_text(config)),
        ("Segmentation", "Manual 2D region of interest from the mask column "
         f"'{config.cohort.mask}' ({_roi_text(config)}). Repeat segmentations for "
         "reproducibility: "
         f"{', '.join(config.cohort.repeat_masks) or 'none'}; ICC(2,1) (two-way random, "
         "absolute agreement) computed on training cases only, features kept at ICC ≥ "
         f"{config.selection.icc_threshold}; "
         f"{_facts(context, 'cohort').get(IGNORED_REPEATS, 0)} unusable repeat masks left "
         "out of that subset."),
        ("Preprocessing and extraction", f"PyRadiomics preset '{config.radiomics.preset}' "
         f"(2D, binWidth {setting.get('binWidth', '?')}, resampling "
         f"{setting.get('resampledPixelSpacing') or 'none'}, normalisation "
         f"{setting.get('normalize', False)}); {radiomics.get('features extracted', '?')} "
         "features per case. Full parameters in the settings section and the bundle."),
        ("Feature selection", "Fitted on training cases only, inside the cross-validated "
         "pipeline: ICC filter, z-score, univariate test p < "
         f"{config.selection.p_threshold}, Pearson |r| > "
         f"{config.selection.correlation_threshold} pair removal, greedy correlation "
         f"deletion, LASSO with {config.selection.lasso_folds}-fold CV."
         + _funnel_text(context, "hcr_models") + _funnel_text(context, "dlr_models")),
        ("Deep learning", ("not run (dl.enabled is false)." if not dl.enabled else
         f"Backbones {', '.join(dl.backbones)} initialised with {dl.weights} weights, "
         f"fine-tuned {dl.epochs} epochs (batch {dl.batch_size}, initial learning rate "
         f"{_learning_rate(dl.learning_rate, dl.weights)}, cosine decay) on ROI crops "
         f"of {dl.image_size} px; the backbone is chosen on a validation split of the "
         f"training set; deep features reduced by PCA ({dl.pca_components} components at "
         "most, fitted on training cases).")),
        ("Models and tuning", f"Classifiers {', '.join(config.classifiers.models)}; grid "
         f"search with {config.classifiers.cv_folds}-fold cross-validation grouped by "
         "patient on the training set. The best model of each kind is the one with the "
         "highest cross-validated training AUC; the test set plays no part in any choice."),
        ("Validation", f"Internal hold-out test set ({cohort.get('split', '')})"
         + (f"; external sets {', '.join(e.name for e in config.cohort.external)} evaluated "
            "with the frozen models" if config.cohort.external else "") + "."),
        ("Statistics", "AUC with DeLong 95% CI (pROC conventions); cut-off by Youden index on "
         "the training set, applied unchanged to the other sets; paired DeLong tests; "
         f"calibration curves and Hosmer-Lemeshow test with {config.evaluation.calibration_bins}"
         " groups; decision-curve analysis; clinical predictors by univariate then "
         f"multivariate logistic regression (p < {config.evaluation.clinical_p_threshold}, "
         "training set)."),
        ("Reproducibility", f"Seed {config.seed} for every random step; software versions "
         "below; a model bundle (bundle/) with checksums predicts new cases "
         "(dlrn predict)."),
    ]
    return items
