"""``dlrn model``: selection + seven tuned classifiers on a feature table, alone.

For users whose features come from elsewhere: a features CSV (one row per case,
a case id column and numeric feature columns) and a cohort table with case id,
0/1 label, optionally a patient column and a split column. Without a split
column the split is made here (stratified by label, grouped by patient, seeded)
and written to ``split.csv`` so it can be reused. The models are fitted by the
same function as the study's model stages (``dlrn.study.stages.models``), with
the study file's ``classifiers`` and ``selection`` settings as options.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

from dlrn.cli._cohort_args import add_cohort_arguments, add_hidden_aliases, cohort_columns
from dlrn.cli._console import (
    Console,
    add_console_options,
    model_auc_lines,
    noted,
    run_log,
)
from dlrn.cli._settings import option_help, parse_value
from dlrn.errors import ConfigError, DlrnError, shown_items
from dlrn.study.config import ClassifierSettings, SelectionSettings

logger = logging.getLogger(__name__)

_FORMER_OPTION_NAMES = {
    "--case-id-column": "id_column",
    "--label-column": "label_column",
    "--patient-column": "patient_column",
}
"""Option names before the cohort options were shared; still accepted, not shown."""

#: option -> (settings section, field); the same knobs as the study file's sections.
SETTING_OPTIONS = {
    "--cv-folds": (ClassifierSettings, "cv_folds"),
    "--class-weight": (ClassifierSettings, "class_weight"),
    "--grids": (ClassifierSettings, "grids"),
    "--icc-threshold": (SelectionSettings, "icc_threshold"),
    "--p-threshold": (SelectionSettings, "p_threshold"),
    "--correlation-threshold": (SelectionSettings, "correlation_threshold"),
    "--lasso-folds": (SelectionSettings, "lasso_folds"),
    "--max-features": (SelectionSettings, "max_features"),
    "--univariate-test": (SelectionSettings, "univariate_test"),
    "--lasso-lambda": (SelectionSettings, "lasso_lambda"),
    "--nested": (SelectionSettings, "nested"),
}


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "model",
        help="feature selection + 7 tuned classifiers on a feature table",
        description="Leakage-safe feature selection and grid search of LR, SVM, RandomForest, "
        "ExtraTrees, XGBoost, LightGBM and MLP; everything is fitted on training cases only. "
        "--id names the case id column of the features files as well; --split-column values "
        "other than train and test mark external test sets.",
    )
    parser.add_argument(
        "features", type=Path, help="features CSV: case id column + numeric features"
    )
    parser.add_argument(
        "--cohort",
        type=Path,
        required=True,
        help="cohort table (CSV/TSV/Excel) with case id, label [, patient, split]",
    )
    parser.add_argument("--out", type=Path, required=True, help="output folder (must be empty)")
    parser.add_argument("--name", default="HCR", help="feature-set name for model columns")
    add_cohort_arguments(parser, images=False, split=True)
    add_hidden_aliases(parser, _FORMER_OPTION_NAMES)
    parser.add_argument("--test-size", type=float, default=0.3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--classifiers",
        default=None,
        help="comma-separated subset of LR,SVM,RandomForest,ExtraTrees,XGBoost,"
        "LightGBM,MLP (default: all)",
    )
    parser.add_argument(
        "--no-selection",
        action="store_true",
        help="skip feature selection (features are only z-scored)",
    )
    parser.add_argument(
        "--repeat-features",
        type=Path,
        nargs="+",
        default=None,
        metavar="FILE",
        help="features of repeat segmentations (second reader / session) for the "
        "ICC filter; ICC is computed on the training cases they cover",
    )
    parser.add_argument(
        "--icc-form", default="ICC(2,1)", choices=("ICC(1,1)", "ICC(2,1)", "ICC(3,1)")
    )
    for option, (section, name) in SETTING_OPTIONS.items():
        where = "classifiers" if section is ClassifierSettings else "selection"
        parser.add_argument(option, dest=name, default=None,
                            help=option_help(section, name, where))
    parser.add_argument("--jobs", type=int, default=None, help="parallel workers (default: all)")
    parser.add_argument("--overwrite", action="store_true", help="allow a non-empty --out")
    add_console_options(parser)
    parser.set_defaults(func=run)


def _option_values(args: argparse.Namespace, section: type) -> dict[str, Any]:
    """The options given for one settings section, read as the study file reads them."""
    values = {}
    for cls, name in SETTING_OPTIONS.values():
        text = getattr(args, name)
        if cls is section and text is not None:
            values[name] = parse_value(text)
    return values


def model_settings(args: argparse.Namespace) -> Any:
    """The options as the models stage's settings (validated like the study file)."""
    from dlrn.classifiers import CLASSIFIERS, check_classifier_names
    from dlrn.study.stages.models import ModelsStageSettings
    from dlrn.study.validation import section_from_dict

    models = ([c.strip() for c in args.classifiers.split(",")] if args.classifiers
              else list(CLASSIFIERS))
    classifiers = section_from_dict(ClassifierSettings, {
        "models": models, **_option_values(args, ClassifierSettings)}, path="classifiers")
    check_classifier_names(classifiers.models)
    selection = section_from_dict(SelectionSettings, _option_values(args, SelectionSettings),
                                  path="selection")
    if args.no_selection and args.repeat_features:
        raise ConfigError("--repeat-features needs selection; drop --no-selection")
    return ModelsStageSettings(classifiers, None if args.no_selection else selection, args.seed)


def _numeric_features(table: Any, path: Path) -> Any:
    non_numeric = [c for c in table.columns if table[c].dtype.kind not in "biuf"]
    if non_numeric:
        raise DlrnError(
            f"features file {path}: non-numeric column(s) {non_numeric[:10]}; "
            "keep only the case id and feature columns"
        )
    return table.astype(float)


def _cohort_frame(args: argparse.Namespace) -> Any:
    """case_id-indexed label, patient_id and set (read or made here), checked for leakage."""
    from dlrn.splitting import read_labelled_table

    if cohort_columns(args).label is None:
        raise ConfigError("dlrn model needs an outcome column: --label none is not allowed here")
    return read_labelled_table(args.cohort, cohort_columns(args), test_size=args.test_size,
                               seed=args.seed)


def _check_same_cases(features: Any, cases: Any, args: argparse.Namespace) -> None:
    only_features = features.index.difference(cases.index)
    only_cohort = cases.index.difference(features.index)
    if len(only_features) or len(only_cohort):
        raise DlrnError(
            f"case ids of {args.features} and {args.cohort} differ: "
            f"{len(only_features)} only in the features [{shown_items(only_features)}], "
            f"{len(only_cohort)} only in the cohort [{shown_items(only_cohort)}]"
        )


def _icc(args: argparse.Namespace, features: Any, train_ids: Any) -> Any:
    """The ICC of each feature between the main and the repeat features (training cases)."""
    from dlrn.io import read_indexed_table
    from dlrn.selection import repeat_icc

    if not args.repeat_features:
        return None
    repeats = {}
    for path in args.repeat_features:
        reading = _numeric_features(
            read_indexed_table(path, args.id_column, what="repeat features"), path)
        unknown = reading.index.difference(features.index)
        if len(unknown):
            raise DlrnError(
                f"repeat features {path}: case(s) not in {args.features}: {list(unknown[:10])}"
            )
        in_training = reading.loc[reading.index.isin(train_ids)]
        logger.info("%s: ICC on %d training case(s) (%d test case(s) not used)", path.name,
                    len(in_training), len(reading) - len(in_training))
        repeats[path.stem] = in_training
    return repeat_icc(features, repeats, form=args.icc_form)


def run(args: argparse.Namespace) -> int:
    import pandas as pd

    from dlrn.io import check_output_folder, read_indexed_table
    from dlrn.notes import collect
    from dlrn.study.stages.models import fit_and_save
    from dlrn.tables import write_tables

    check_output_folder(args.out, overwrite=args.overwrite)
    settings = model_settings(args)
    features = _numeric_features(
        read_indexed_table(args.features, args.id_column, what="features"), args.features)
    cases = _cohort_frame(args)
    _check_same_cases(features, cases, args)
    cases = cases.loc[features.index]
    console = Console(args)
    with run_log(args.out, args) as log_path, collect() as raised:
        icc = _icc(args, features, cases.index[cases["set"] == "train"])
        summary = fit_and_save(args.out, args.name, features, cases, settings, icc=icc,
                               result_dir=".", progress=console.progress, n_jobs=args.jobs)
    extra = {"split": cases.reset_index()}
    if icc is not None:
        extra["icc"] = icc.reset_index()
    write_tables(extra, args.out, workbook=None)
    metrics = pd.read_csv(args.out / "evaluation" / "metrics.csv")  # training rows out-of-fold
    console.say(*model_auc_lines(metrics, [summary.best], title=(
        "AUC (95% CI); * the best by pooled out-of-fold AUC on the training set")))
    console.cautions(("", caution) for caution in raised.cautions)
    console.say("", f"results: {args.out}", f"log:     {log_path} ({noted(raised)})")
    return 0
