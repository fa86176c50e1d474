"""The methods summary: what the CLEAR and METRICS radiomics checklists ask a study to state."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from dlrn.study.config import StudyConfig
from dlrn.study.runner import StudyContext
from dlrn.study.stages.cohort import CohortSummary
from dlrn.study.stages.comparison import ComparisonSummary
from dlrn.study.stages.files import clinical_record
from dlrn.study.stages.nomogram import NomogramSummary
from dlrn.study.stages.radiomics import RadiomicsSummary


def _cohort(context: StudyContext) -> CohortSummary:
    """The cohort stage's summary (empty when it did not run)."""
    summary = context.summary("cohort")
    return summary if isinstance(summary, CohortSummary) else CohortSummary()


def _funnel_text(context: StudyContext, stage: str, kind: str) -> str:
    path = context.stage_dir(stage) / "result" / "selection_funnel.csv"
    if not path.exists():
        return ""
    import pandas as pd

    funnel = pd.read_csv(path)
    steps = ", ".join(f"{row.step} {row.features_in}→{row.features_out}"
                      for row in funnel.itertuples())
    return f" Features per step ({kind}): {steps}."


UNIVARIATE_TESTS = {"t": "Student t-test", "mannwhitney": "Mann-Whitney U test",
                    "auto": "t-test or Mann-Whitney U test (by Shapiro-Wilk normality)"}


def _lasso_text(config: StudyConfig) -> str:
    """How lambda was chosen: the rule and whether the filters were nested in its folds."""
    s = config.selection
    rule = ("lambda.1se (the largest lambda within one standard error of the lowest mean "
            "CV error, glmnet's rule)" if s.lasso_lambda == "1se"
            else "lambda.min (the lowest mean CV error)")
    nesting = ("the steps before the LASSO were refitted inside each LASSO fold, so lambda "
               "was chosen on features that fold's labels did not pick"
               if s.nested else "the steps before the LASSO saw all training labels before "
               "its folds (not nested: the CV error and the number of features kept are "
               "optimistic)")
    return f"Lambda: {rule}; LASSO folds grouped by patient; {nesting}."


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" + ("" if count == 1 else "s")


def _listing(names: list[str], empty: str = "none") -> str:
    return ", ".join(map(str, names)) or empty


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


def _random_init(weights: str | None) -> bool:
    return weights in (None, "none")


def weights_text(weights: str | None) -> str:
    """How the CNNs start: random, ImageNet or a weight file, in words."""
    if _random_init(weights):
        return "random initialisation (no pretrained weights)"
    if weights == "imagenet":
        return "ImageNet-pretrained weights (torchvision)"
    return f"pretrained weights from the file {Path(str(weights)).name}"


def _learning_rate(learning_rate: float | None, weights: str | None) -> str:
    from dlrn.deep.classifier.task import initial_learning_rate

    rate = f"{initial_learning_rate(learning_rate, weights):g}"
    if learning_rate is not None:
        return rate
    return rate + (", the default for training from scratch" if _random_init(weights)
                   else ", the default for fine-tuning pretrained weights")


def _deep_text(config: StudyConfig) -> str:
    from dlrn.deep.classifier.crossfit import CrossfitSettings, describe

    dl = config.dl
    if not dl.enabled:
        return "not run (dl.enabled is false)."
    verb = "trained" if _random_init(dl.weights) else "fine-tuned"
    chosen_on = ("the pooled out-of-fold AUC of its cross-fitted CNNs, as is each "
                 "backbone's number of epochs" if dl.select_on == "crossfit"
                 else "a validation split of the training set")
    crossfit = CrossfitSettings(dl.fusion_features, dl.select_on)
    return (f"Backbones {_listing(dl.backbones)} from {weights_text(dl.weights)}, {verb} "
            f"for {_plural(dl.epochs, 'epoch')} (batch {dl.batch_size}, initial learning rate "
            f"{_learning_rate(dl.learning_rate, dl.weights)}, cosine decay) on ROI crops of "
            f"{dl.image_size}×{dl.image_size} pixels; the backbone is chosen on {chosen_on}; "
            "deep features reduced by PCA (at most "
            f"{dl.pca_components} components, fitted on training cases). "
            + describe(crossfit, config.classifiers.cv_folds))


def _extraction_text(config: StudyConfig, setting: dict[str, Any] | None,
                     features: Any) -> str:
    preset = f"PyRadiomics preset '{config.radiomics.preset}'"
    if setting is None:
        return f"{preset}; features not extracted in this run."
    spacing = setting.get("resampledPixelSpacing")
    resampling = (f"to {' × '.join(f'{v:g}' for v in spacing)} mm pixels" if spacing
                  else "none")
    normalisation = ("yes (scale " f"{setting.get('normalizeScale', 1):g})"
                     if setting.get("normalize") else "no")
    return (f"{preset} (2D, bin width "
            f"{setting.get('binWidth', '?')}, resampling {resampling}, intensity "
            f"normalisation {normalisation}); {features} features per case. Full parameters "
            "in the settings section and the bundle.")


def _automatic_text(context: StudyContext) -> str:
    """The U-Net's sentence, where the study trained one."""
    from dlrn.study.stages.segmentation import SegmentationSummary

    summary = context.summary("segmentation")
    if not isinstance(summary, SegmentationSummary):
        return ""
    section = context.config.segmentation
    text = (f" Automatic segmentation: a 2D U-Net (MONAI) on the whole image resized to "
            f"{summary.image_size} x {summary.image_size} pixels (per-image z-score), Dice + "
            f"cross-entropy loss, AdamW (learning rate {section.learning_rate:g}, cosine "
            f"decay), trained on the {summary.cases_trained} training cases' expert masks; "
            f"epoch chosen on the validation Dice of {summary.cases_validated} held-out "
            f"training cases (grouped by patient; best epoch {summary.best_epoch} of "
            f"{summary.epochs_run}); its mask is resized back to the image's grid, "
            "thresholded at 0.5 and reduced to its largest connected component. Dice, IoU "
            "and HD95 against the expert masks on the test and external cases, 95% CIs by "
            "resampling patients.")
    if context.done("automatic_masks"):
        text += (" Every model (trained on expert masks) also predicted the test and "
                 "external cases from the U-Net's masks; AUCs compared with the paired "
                 "DeLong test.")
    return text


def _segmentation_text(context: StudyContext) -> str:
    config = context.config
    text = (f"Manual 2D region of interest from the mask column '{config.cohort.mask}' "
            f"({_roi_text(config)}).") + _automatic_text(context)
    if not config.cohort.repeat_masks:
        return text + " No repeat segmentations: no ICC reproducibility filter."
    if not _icc_filtered(context):
        return text + (f" Repeat segmentations ({_listing(config.cohort.repeat_masks)}) "
                       "listed, but no ICC was computed in this run (no radiomics features).")
    return (text + f" Repeat segmentations for reproducibility: "
            f"{_listing(config.cohort.repeat_masks)}; ICC(2,1) (two-way random, absolute "
            "agreement) computed on training cases only, features kept at ICC ≥ "
            f"{config.selection.icc_threshold}; "
            f"{_cohort(context).ignored_repeat_masks} unusable repeat masks left "
            "out of that subset.")


def _repeated_patients(context: StudyContext) -> int:
    """Patients with several images in the analysed cohort (0 when none or not known)."""
    path = context.stage_dir("cohort") / "cases.csv"
    if not context.done("cohort") or not path.exists():
        return 0
    import pandas as pd

    patients = pd.read_csv(path, usecols=lambda c: c == "patient_id", dtype=str)
    if "patient_id" not in patients:
        return 0
    counts = patients["patient_id"].value_counts()
    return int((counts > 1).sum())


def _icc_filtered(context: StudyContext) -> bool:
    """True when the run computed ICCs, so the selection began with the ICC filter."""
    radiomics = context.summary("radiomics")
    return isinstance(radiomics, RadiomicsSummary) and radiomics.icc_cases is not None


def _models_text(context: StudyContext) -> str:
    c = context.config.classifiers
    weighting = "; classes weighted inversely to their frequency" if c.class_weight else ""
    repeated = _repeated_patients(context)
    grouped = (f" grouped by patient ({_plural(repeated, 'patient')} with several images "
               "kept in one fold)" if repeated else "")
    lr = ""
    if "LR" in c.models and context.done("clinical_models"):
        own = _REGRESSION_WORDS[context.config.evaluation.clinical_regression]
        lr = (" The clinical models' LR grid holds the clinical analysis' own unpenalised "
              f"logistic regression ({own}) beside the L2 penalties; the other feature sets' "
              "LR is L2-penalised.")
    return (f"Classifiers {_listing(c.models)}; grid search with {c.cv_folds}-fold "
            f"cross-validation{grouped} on the training set{weighting}. The best "
            "model of each kind is the one with the highest cross-validated training AUC; the "
            f"test set plays no part in any choice.{lr}{_nomogram_text(context)}")


_REGRESSION_WORDS = {
    "auto": "maximum likelihood as R's glm, or Firth's penalised likelihood as R's logistf "
            "where the maximum-likelihood fit showed separation",
    "standard": "maximum likelihood as R's glm",
    "firth": "Firth's penalised likelihood as R's logistf",
}


def _nomogram_text(context: StudyContext) -> str:
    """How the nomogram's logistic model was fitted and how much of its scale the score has."""
    summary = context.summary("dlrn")
    if not isinstance(summary, NomogramSummary):
        return ""
    if summary.method == "ML":
        fitted = _REGRESSION_WORDS["standard"]
    elif context.config.evaluation.clinical_regression == "auto":
        fitted = "Firth's penalised likelihood (its maximum-likelihood fit showed separation)"
    else:
        fitted = _REGRESSION_WORDS["firth"]
    return (f" The {summary.title} is a logistic regression of the image score "
            f"({summary.dlr_model}) with the clinical predictors, fitted by {fitted}, terms "
            "that are combinations of others (aliased) set aside as in R; its axes follow "
            f"rms::nomogram, the image score spanning {summary.score_share:.0%} of the summed "
            f"points ranges.{_nomogram_validation_text(context, summary)}")


def _nomogram_validation_text(context: StudyContext, summary: NomogramSummary) -> str:
    """The bootstrap validation as rms validate / calibrate, and what it repeats."""
    if not summary.bootstrap:
        return ""
    repeated = ("the selection of its clinical predictors and its logistic regression were "
                "repeated" if context.done("clinical") else "its logistic regression was refitted")
    return (f" It was validated internally as R's rms validate and calibrate do (method "
            f"\"boot\"): in each of {summary.bootstrap} bootstrap samples of the training set "
            f"{repeated}, and the mean difference between each sample model's performance on "
            "its own sample and on the original training cases (the optimism) was subtracted "
            "from the apparent C index, Nagelkerke R2, Brier score and calibration intercept "
            "and slope; the bias-corrected calibration curve is the lowess of the outcome on "
            "the predicted risk corrected the same way, summarised by its mean absolute error. "
            "The image score entered as given (out-of-fold); its own model was not refitted in "
            "the samples.")


def _clinical_text(context: StudyContext) -> str:
    config = context.config
    p = config.evaluation.clinical_p_threshold
    text = {"backward": "clinical predictors by univariate logistic regression, then backward "
                        f"elimination by likelihood-ratio tests (p < {p}, training set)",
            "enter": "clinical predictors by univariate then multivariate logistic regression "
                     f"(p < {p}, training set)",
            "none": "clinical predictors pre-specified (every declared variable in one "
                    "multivariate logistic regression, training set)",
            }[config.evaluation.clinical_selection]
    note = clinical_record(context).note
    summary = context.summary("clinical")
    events = "; ".join(getattr(summary, "events", []))
    encoding = " ".join(filter(None, (getattr(summary, "encoding", ""),
                                      getattr(summary, "regression", ""),
                                      f"Events per term: {events}." if events else "")))
    if note:
        return f"{text}. {note} {encoding}".strip()
    if config.evaluation.clinical_fallback == "univariate":
        text += ("; if none had been significant in the multivariate analysis, the "
                 "univariately significant ones would have been used")
    return f"{text}. {encoding}".strip()


def _training_rows_text(comparison: ComparisonSummary) -> str:
    """Where the cut-offs and training-set results come from: out-of-fold only where so."""
    oof = [m for m in comparison.out_of_fold if m != "DLRN"]
    apparent = [m for m in comparison.models if m not in comparison.out_of_fold]
    parts = [f"out-of-fold predictions of {_listing(oof)}"] if oof else []
    if "DLRN" in comparison.out_of_fold:
        parts.append("the nomogram's out-of-fold probabilities (cross-validated with the DLR "
                     "models' folds)")
    if apparent:
        parts.append(f"the in-sample training predictions of {_listing(apparent)} (apparent, "
                     "optimistic)")
    return "; ".join(parts)


def _statistics_text(context: StudyContext) -> str:
    """AUC CIs, cut-offs, tests and calibration as this run computed them."""
    evaluation = context.config.evaluation
    comparison = context.summary("comparison")
    clustered = isinstance(comparison, ComparisonSummary) and comparison.clustered
    ci = evaluation.auc_ci or ("cluster-bootstrap" if clustered else "delong")
    if clustered:
        ci = {"delong": "obuchowski", "bootstrap": "cluster-bootstrap"}.get(ci, ci)
    ci_text = {"delong": "DeLong 95% CI (pROC conventions)",
               "bootstrap": "stratified bootstrap 95% CI (pROC conventions)",
               "cluster-bootstrap": "95% CI by bootstrap over patients",
               "obuchowski": "95% CI by Obuchowski's clustered variance"}[ci]
    text = f"AUC with {ci_text}; cut-off by Youden index on training data only"
    if isinstance(comparison, ComparisonSummary):
        text += f" ({_training_rows_text(comparison)})"
    text += ", applied unchanged to the other sets; "
    if clustered:
        text += (f"{comparison.images} images of {comparison.patients} patients: paired tests "
                 f"by {evaluation.comparison.replace('-', ' ')} over patients, proportions "
                 "with design-effect adjusted Wilson CIs, and patient-level results with each "
                 f"patient scored by the {evaluation.patient_aggregation} of its images' "
                 "scores; ")
    else:
        text += "paired DeLong tests; "
    return (text + "p-values of pairwise tests also Holm-adjusted; calibration curves and "
            f"Hosmer-Lemeshow test with {evaluation.calibration_bins} groups; decision-curve "
            "analysis; " + _clinical_text(context))


def _image_items(context: StudyContext, setting: dict | None,
                 features: object) -> list[tuple[str, str]]:
    """The items on the images (absent from ``dlrn clinical``, which reads none)."""
    config = context.config
    return [
        ("Segmentation", _segmentation_text(context)),
        ("Preprocessing and extraction", _extraction_text(
            config, setting, features)),
        ("Feature selection", "Fitted on training cases only, inside the cross-validated "
         f"pipeline: {'ICC filter, ' if _icc_filtered(context) else ''}z-score, "
         f"{UNIVARIATE_TESTS[config.selection.univariate_test]} p < "
         f"{config.selection.p_threshold}, Pearson |r| > "
         f"{config.selection.correlation_threshold} pair removal, greedy correlation "
         f"deletion, LASSO with {config.selection.lasso_folds}-fold CV. "
         + _lasso_text(config)
         + _funnel_text(context, "hcr_models", "HCR")
         + _funnel_text(context, "dlr_models", "DLR")),
        ("Deep learning", _deep_text(config)),
    ]


def methods_summary(context: StudyContext, *, images: bool = True) -> list[tuple[str, str]]:
    """(checklist item, sentence) pairs, built from the settings and the stages' records;
    ``images=False`` (``dlrn clinical``) leaves out the items on images and their models."""
    config = context.config
    cohort = _cohort(context)
    radiomics = context.summary("radiomics")
    features = radiomics.features_extracted if isinstance(radiomics, RadiomicsSummary) else "?"
    params_path = context.stage_dir("radiomics") / "params.json"
    setting = (json.loads(params_path.read_text()).get("setting", {})
               if params_path.exists() else None)
    external = [e.name for e in config.cohort.external]
    items = [
        ("Study design and data", f"Retrospective cohort from {config.cohort.table}; "
         f"{cohort.cases_analysed or '?'} cases analysed, "
         f"{cohort.cases_excluded} excluded (listed with reasons below); outcome "
         f"column '{config.cohort.label}'. External validation sets: {_listing(external)}. "
         + (_inclusion_text(config) if images else "")),
        *(_image_items(context, setting, features) if images else []),
        ("Models and tuning", _models_text(context)),
        ("Validation", f"Internal hold-out test set ({cohort.split})"
         + (f"; external sets {_listing(external)} evaluated with the frozen models"
            if external else "") + "."),
        ("Statistics", _statistics_text(context)),
        *([("Applicability", _applicability_text(context))]
          if context.done("applicability") else []),
        ("Reproducibility", _reproducibility_text(context)),
    ]
    return items


def _applicability_text(context: StudyContext) -> str:
    """The rule that flags a case unlike the study's, with its learned thresholds."""
    from dlrn.study.stages.applicability import ApplicabilitySummary

    summary, settings = context.summary("applicability"), context.config.applicability
    if not isinstance(summary, ApplicabilitySummary):
        return ""
    text = "Before every answer (test and external cases, dlrn predict, dlrn serve) each case "
    text += "was checked against the training cases, with thresholds set on them only. "
    if summary.feature_model:
        text += (f"Image features: a case is outside when more than "
                 f"{settings.max_outside_share:.0%} of the {summary.features} selected "
                 f"features of {summary.feature_model} lie outside the training range, or "
                 "when its Mahalanobis distance (z-scored features, Ledoit-Wolf shrinkage "
                 f"covariance) exceeds {summary.distance_threshold:.2f}, the "
                 f"{settings.quantile:.0%} quantile of the training cases' out-of-fold "
                 f"distances ({settings.cv_folds} folds by patient). ")
    if summary.lesion_rule:
        text += ("Lesion evidence: the U-Net's peak probability, confidence inside its "
                 "outline, the outline's area, parts and solidity, combined by a logistic "
                 "regression fitted on its training images against no-lesion images made "
                 "from them (background crops, noise, gradients, blank frames); cut-off at "
                 f"the {1 - settings.quantile:.0%} quantile of the lesion images' out-of-fold "
                 "scores; an image without contrast has no lesion. ")
    flagged = "; ".join(f"{name} {text}" for name, text in summary.flagged.items())
    return text + (f"Cases flagged: {flagged}." if flagged else "")


def _reproducibility_text(context: StudyContext) -> str:
    """Order, seeds, the CNN's repeatability, the versions against the lock, the record."""
    from dlrn.lockfile import status_text
    from dlrn.study.runner import STUDY_RECORD
    from dlrn.study.stages.deep import DeepSummary

    record_path = context.output_dir / STUDY_RECORD
    lock = json.loads(record_path.read_text()).get("lock") if record_path.exists() else None
    deep = context.summary("deep")
    training = (f"; CNN training {deep.repeatability}"
                if isinstance(deep, DeepSummary) and deep.repeatability else "")
    return (f"Cases taken in case-id order, whatever the tables' row order; seed "
            f"{context.config.seed} for every random step{training}; software versions below, "
            f"{status_text(lock or {})}; study.json records the settings, versions and the "
            "sha256 of every input, from which `dlrn reproduce` re-runs the study and "
            "compares every table; a model bundle (bundle/) with checksums predicts new cases "
            "(dlrn predict).")
