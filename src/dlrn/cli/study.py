"""``dlrn init``, ``dlrn run``, ``dlrn predict`` and ``dlrn demo``: the whole study."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any

from dlrn.cli._console import (
    Console,
    add_console_options,
    auc_cell,
    model_auc_lines,
    run_log,
    table_lines,
)
from dlrn.errors import DlrnError

DEMO_STUDY = """\
# The demo study: the synthetic cohort with small settings (a few minutes on 2 cores).
# Its clinical table looks like a hospital export: about 10% of ages blank (imputed with
# the training median plus an age[missing] term), BI-RADS margin descriptors joined by
# '&' (one yes/no term per token), a tissue-composition level held by 1-3 cases (merged
# into 'other') and, in the external centre, a level met nowhere else (read as 'other').
cohort:
  table: cohort/cohort.csv
  patient: patient_id
  repeat_masks: [mask_reader2]
  missing: impute
  min_level_count: 5
  clinical: {{age: continuous, sex: categorical, smoking: categorical,
             max_diameter_mm: continuous, shape: categorical, margin: categorical,
             echogenicity: categorical, calcification: categorical,
             posterior_enhancement: categorical,
             margin_lexicon: {{type: multilabel, separator: "&"}},
             tissue_composition: categorical}}
  external: {external}
radiomics:
  preset: fast
selection:
  lasso_folds: 5
classifiers:
  cv_folds: 3
  grids: {{LR: {{C: [1.0]}}, SVM: {{estimator__C: [1.0]}}, RandomForest: {{n_estimators: [50]}},
          ExtraTrees: {{n_estimators: [50]}}, XGBoost: {{n_estimators: [50]}},
          LightGBM: {{n_estimators: [50]}}, MLP: {{hidden_layer_sizes: [[16]], alpha: [1.0]}}}}
dl:
  enabled: {dl}
  backbones: [resnet18]
  weights: null
  epochs: 1
  batch_size: 16
  image_size: 64
  pca_components: 16
evaluation:
  nomogram_bootstrap: 20  # a quick look; 200 (the default) or 1000 for a paper
segmentation:  # dlrn demo --segmentation: a small U-Net, so the bundle proposes the ROI
  enabled: {segmentation}
  image_size: 64
  epochs: 20
  batch_size: 16
  patience: null
labels:
  label: {{name: malignancy, levels: {{0: benign, 1: malignant}}}}
  age: {{name: Age, unit: years}}
  sex: {{name: Sex}}
  smoking: {{name: Smoker}}
  max_diameter_mm: {{name: Largest diameter, unit: mm}}
  shape: {{name: Shape}}
  margin: {{name: Margin, levels: {{poorly-defined: poorly defined, well-defined: well defined}}}}
  echogenicity: {{name: Echogenicity}}
  calcification: {{name: Calcification}}
  posterior_enhancement: {{name: Posterior acoustic enhancement}}
  margin_lexicon: {{name: Margin (BI-RADS descriptor)}}
  tissue_composition: {{name: Breast tissue composition}}
  DLR_score: {{name: Image score (deep-learning radiomics)}}
output: study
seed: 0
"""


def _init(args: argparse.Namespace) -> int:
    from dlrn.study.template import study_template

    path = Path(args.path)
    if path.exists() and not args.overwrite:
        raise DlrnError(f"{path} exists; pass --overwrite to replace it")
    path.write_text(study_template())
    print(f"wrote {path}: edit cohort.table and the columns, then run `dlrn run {path}`")
    return 0


def _run(args: argparse.Namespace) -> int:
    from functools import partial

    from dlrn.study.config import load_study
    from dlrn.study.pipeline import run_study

    run_and_show(load_study(args.study), args, partial(run_study, force=args.force or ()))
    return 0


def run_and_show(config: Any, args: argparse.Namespace, runner: Callable[..., Any]) -> Any:
    """Run (or resume) the study with ``runner`` (``run_study`` or ``run_clinical_study``)
    and its run log: a status line per stage as it ends, then the results, what needs
    action and where everything is."""
    from dlrn.study.runner import claim_output

    console, overwrite = Console(args), getattr(args, "overwrite", False)  # demo: none
    claim_output(config, overwrite=overwrite)  # before the log: a refused folder gets none
    with run_log(config.output_dir, args, settings=config.to_dict()) as log_path:
        console.say(f"study {config.output_dir} (the full record: {log_path})")
        result = runner(config, progress=console.progress, overwrite=overwrite,
                        on_stage=console.stage_done)
    console.say("", *results_lines(result))
    console.cautions((name, caution) for name, record in result.records.items()
                     for caution in record.summary.cautions)
    bundle = result.output_dir / "bundle"
    console.say("", f"report: {result.report}",
                *([f"bundle: {bundle}"] if bundle.is_dir() else []), f"log:    {log_path}")
    return result


def results_lines(result: Any) -> list[str]:
    """The answer: each classifier's AUC on the test set (a column per feature set), then
    the chosen models, the CNN and the nomogram on every held-out set."""
    from dlrn.study.results import chosen_model_aucs, classifier_aucs

    every = classifier_aucs(result.output_dir, result.records)
    lines = []
    if len(every):
        on_set = every[every["set"] == every["set"].iloc[0]]  # the test set comes first
        feature_sets = list(dict.fromkeys(on_set["feature_set"]))
        cells = {(row["feature_set"], row["classifier"]): auc_cell(row, row["chosen"])
                 for _, row in on_set.iterrows()}
        rows = [(classifier, [cells.get((name, classifier), "") for name in feature_sets])
                for classifier in dict.fromkeys(on_set["classifier"])]
        lines += table_lines(f"AUC (95% CI) on the {on_set['set'].iloc[0]} set; * the model "
                             "each stage chose on the training data", feature_sets, rows)
    chosen = chosen_model_aucs(result.output_dir, result.records)
    if len(chosen):
        lines += ["", *model_auc_lines(chosen, title="The model each stage chose, and the "
                                                     "nomogram: AUC (95% CI)")]
    return lines + _segmentation_lines(result, list(chosen["model"].unique())
                                       if len(chosen) else [])


def _segmentation_lines(result: Any, models: list[str]) -> list[str]:
    """The U-Net's Dice per set, and the chosen models' AUC from expert vs its masks."""
    from dlrn.study.results import automatic_mask_aucs, segmentation_dice

    dice = segmentation_dice(result.records)
    if not dice:
        return []
    lines = ["", "Lesion segmentation (U-Net), Dice (95% CI): " + "; ".join(
        f"{name} {value}" for name, value in dice.items())]
    aucs = automatic_mask_aucs(result.output_dir, result.records, models)
    if len(aucs):
        lines.append("AUC with the expert masks vs the U-Net's (DeLong p):")
        lines += [f"  {row.model} ({row.set}, {row.cases} cases): {row.auc_expert:.3f} vs "
                  f"{row.auc_automatic:.3f} (p {row.p_value:.3g})" for row in aucs.itertuples()]
    return lines


def _predict(args: argparse.Namespace) -> int:
    from dlrn.io import check_output_folder
    from dlrn.study.predict import predict_table

    out = Path(args.out)
    if out.exists() and not args.overwrite:
        raise DlrnError(f"{out} exists; pass --overwrite to replace it")
    gradcam = None if args.gradcam is None else check_output_folder(
        args.gradcam, overwrite=args.overwrite, what="Grad-CAM folder")
    masks = out.with_name(f"{out.stem}_masks")
    check_output_folder(masks, overwrite=args.overwrite, what="folder of predicted masks")
    console = Console(args)
    with run_log(out.absolute().parent, args) as log_path:
        predictions = predict_table(args.bundle, args.table, gradcam_dir=gradcam,
                                    progress=console.progress, feature_cache=args.cache,
                                    masks_dir=masks)
        predictions.to_csv(out)
    console.say(f"wrote predictions of {len(predictions)} case(s) to {out}")
    if "applicable" in predictions.columns:
        unlike = predictions.index[predictions["applicable"].eq(False).fillna(False)]
        if len(unlike):
            console.say(f"{len(unlike)} case(s) are unlike the images the model was built on "
                        f"(applicable false; why: applicability_note): "
                        f"{', '.join(map(str, unlike[:10]))}{' ...' if len(unlike) > 10 else ''}")
    if masks.is_dir() and any(masks.iterdir()):
        console.say(f"wrote the masks the study's U-Net predicted (cases without one) to "
                    f"{masks}")
    if gradcam is not None:
        console.say(f"wrote Grad-CAM overlays of the CNN to {gradcam}")
    console.say(f"log: {log_path}")
    return 0


DEMO_EXTERNAL = "centre_b"


def _demo_cohorts(out: Path, cases: int, external_cases: int) -> str:
    """The synthetic cohorts (made once); returns the study file's ``external`` list."""
    from dlrn.synthetic import make_synthetic_cohort

    size = (160, 160)
    if not (out / "cohort" / "cohort.csv").exists():
        make_synthetic_cohort(out / "cohort", n_cases=cases, seed=0, image_size=size,
                              messy=True)
    if not external_cases:
        return "[]"
    table = out / DEMO_EXTERNAL / "cohort.csv"
    if not table.exists():
        # Another centre: its own patients and a slightly different field of view.
        make_synthetic_cohort(table.parent, n_cases=external_cases, seed=1, image_size=size,
                              field_of_view_mm=45.0, messy=True, external=True)
        from dlrn.io import read_table

        cohort = read_table(table, text_columns=("case_id", "patient_id"))
        for column in ("case_id", "patient_id"):  # case ids must differ between centres
            cohort[column] = "b" + cohort[column]
        cohort.to_csv(table, index=False)
    return f"[{{name: {DEMO_EXTERNAL}, table: {DEMO_EXTERNAL}/cohort.csv}}]"


def _demo(args: argparse.Namespace) -> int:
    from dlrn.study.config import load_study
    from dlrn.study.pipeline import run_study

    out = Path(args.out).absolute()
    out.mkdir(parents=True, exist_ok=True)
    external = _demo_cohorts(out, args.cases, args.external_cases)
    study = out / "study.yaml"
    study.write_text(DEMO_STUDY.format(dl="false" if args.no_dl else "true",
                                       segmentation="true" if args.segmentation else "false",
                                       external=external))
    result = run_and_show(load_study(study), args, run_study)
    Console(args).say(f"open {result.report} in a browser; the study file is {study}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    init = subparsers.add_parser("init", help="write a commented study file template")
    init.add_argument("path", nargs="?", default="study.yaml")
    init.add_argument("--overwrite", action="store_true")
    init.set_defaults(func=_init)

    run = subparsers.add_parser("run", help="run (or resume) a whole study from its YAML file")
    run.add_argument("study", help="study YAML file (see `dlrn init`)")
    run.add_argument("--force", action="append", metavar="STAGE",
                     help="recompute this stage and those after it (repeatable): cohort, "
                          "segmentation, clinical, clinical_models, radiomics, hcr_models, deep, "
                          "dlr_models, dlrn, applicability, comparison, automatic_masks")
    run.add_argument("--overwrite", action="store_true",
                     help="replace the results of another study in the output folder")
    add_console_options(run)
    run.set_defaults(func=_run)

    predict = subparsers.add_parser("predict", help="predict new cases with a study's bundle")
    predict.add_argument("bundle", help="bundle folder written by `dlrn run`")
    predict.add_argument("table", help="cohort table of the new cases (label optional; a "
                                       "case without a mask gets the study's U-Net's, when "
                                       "it trained one)")
    predict.add_argument("--out", required=True, help="predictions CSV to write")
    predict.add_argument("--gradcam", metavar="DIR", help="also write Grad-CAM overlays here")
    predict.add_argument("--cache", metavar="DIR", type=Path,
                         help="PyRadiomics feature cache to read cases from and add new ones "
                              "to (default: the study's, where it still is; `dlrn extract "
                              "--cache` makes one)")
    predict.add_argument("--overwrite", action="store_true")
    add_console_options(predict)
    predict.set_defaults(func=_predict)

    demo = subparsers.add_parser("demo", help="synthetic cohort + the full study, small settings")
    demo.add_argument("--out", default="dlrn-demo", help="folder for the cohort and results")
    demo.add_argument("--cases", type=int, default=200,
                      help="synthetic cases (default 200: enough for the multivariate "
                      "clinical analysis to find several predictors)")
    demo.add_argument("--external-cases", type=int, default=40,
                      help="cases of a second synthetic centre evaluated as an external "
                           "validation set (0: none; default 40)")
    demo.add_argument("--no-dl", action="store_true", help="skip the deep learning stages")
    demo.add_argument("--segmentation", action="store_true",
                      help="also train a small lesion-segmentation U-Net (64 px, 20 epochs), "
                           "so the bundle proposes the ROI in dlrn serve and dlrn predict "
                           "draws the masks a table lacks")
    add_console_options(demo)
    demo.set_defaults(func=_demo)
