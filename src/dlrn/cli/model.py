"""``dlrn model``: selection + seven tuned classifiers on a feature table, alone.

For users whose features come from elsewhere: a features CSV (one row per case,
a case id column and numeric feature columns) and a cohort table with case id,
0/1 label, optionally a patient column and a split column. Without a split
column the split is made here (stratified by label, grouped by patient, seeded)
and written to ``split.csv`` so it can be reused.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

from dlrn.cli._cohort_args import add_cohort_arguments, add_hidden_aliases, cohort_columns
from dlrn.errors import ConfigError, DlrnError, shown_items

logger = logging.getLogger(__name__)

EXCEL_SUFFIXES = (".xlsx", ".xlsm", ".xls")

_FORMER_OPTION_NAMES = {
    "--case-id-column": "id_column",
    "--label-column": "label_column",
    "--patient-column": "patient_column",
}
"""Option names before the cohort options were shared; still accepted, not shown."""


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
    parser.add_argument("--icc-threshold", type=float, default=0.85)
    parser.add_argument(
        "--class-weight",
        choices=("balanced",),
        default=None,
        help="weight classes inversely to their frequency (no oversampling)",
    )
    parser.add_argument("--jobs", type=int, default=None, help="parallel workers (default: all)")
    parser.add_argument("--overwrite", action="store_true", help="allow a non-empty --out")
    parser.set_defaults(func=run)


def read_table(path: Path, id_column: str, *, what: str) -> Any:
    """A CSV/TSV/Excel table indexed by its case id column (as text)."""
    import pandas as pd

    if not path.is_file():
        raise DlrnError(f"{what} not found: {path}")
    try:
        if path.suffix.lower() in EXCEL_SUFFIXES:
            table = pd.read_excel(path, dtype={id_column: str})
        else:
            separator = "\t" if path.suffix.lower() in (".tsv", ".tab") else ","
            table = pd.read_csv(path, sep=separator, dtype={id_column: str})
    except Exception as error:  # pandas raises many types for malformed files
        raise DlrnError(f"cannot read {what} {path}: {error}") from error
    if id_column not in table.columns:
        raise DlrnError(
            f"{what} {path} has no case id column {id_column!r} "
            f"(columns: {list(table.columns[:10])})"
        )
    table[id_column] = table[id_column].astype(str).str.strip()
    duplicated = table[id_column][table[id_column].duplicated()].unique()
    if len(duplicated):
        raise DlrnError(f"{what} {path}: duplicate case id(s) {list(duplicated[:10])}")
    return table.set_index(id_column).rename_axis("case_id")


def _numeric_features(table: Any, path: Path) -> Any:
    non_numeric = [c for c in table.columns if table[c].dtype.kind not in "biuf"]
    if non_numeric:
        raise DlrnError(
            f"features file {path}: non-numeric column(s) {non_numeric[:10]}; "
            "keep only the case id and feature columns"
        )
    return table.astype(float)


def _cohort_frame(args: argparse.Namespace) -> Any:
    """case_id-indexed label, patient_id and split (read or made here)."""
    import pandas as pd

    from dlrn.cohort import split_cohort

    columns = cohort_columns(args)
    if columns.label is None:
        raise ConfigError("dlrn model needs an outcome column: --label none is not allowed here")
    table = read_table(args.cohort, columns.case_id, what="cohort table")
    patient = columns.patient or ("patient_id" if "patient_id" in table.columns else None)
    for column in filter(None, (columns.label, patient, columns.split)):
        if column not in table.columns:
            raise DlrnError(f"cohort table {args.cohort} has no column {column!r}")
    label = pd.to_numeric(table[columns.label], errors="coerce")
    bad = table.index[~label.isin([0, 1])]
    if len(bad):
        raise DlrnError(
            f"cohort table {args.cohort}: column {columns.label!r} is not 0/1 for "
            f"case(s) {list(bad[:10])}"
        )
    cases = pd.DataFrame(
        {
            "label": label.astype(int),
            "patient_id": table[patient].astype(str) if patient else table.index,
        }
    )
    if columns.split:
        cases["set"] = table[columns.split].astype(str).str.strip().str.lower()
    else:
        cases["set"] = split_cohort(cases, test_size=args.test_size, seed=args.seed)
    return cases


def _check_same_cases(features: Any, cases: Any, args: argparse.Namespace) -> None:
    only_features = features.index.difference(cases.index)
    only_cohort = cases.index.difference(features.index)
    if len(only_features) or len(only_cohort):
        raise DlrnError(
            f"case ids of {args.features} and {args.cohort} differ: "
            f"{len(only_features)} only in the features [{shown_items(only_features)}], "
            f"{len(only_cohort)} only in the cohort [{shown_items(only_cohort)}]"
        )


def _selection(args: argparse.Namespace, features: Any, train_ids: Any) -> tuple[Any, Any]:
    """The selection pipeline and (with repeat features) the ICC table used by it."""
    from dlrn.selection import make_selection_pipeline, repeat_icc

    if args.no_selection:
        if args.repeat_features:
            raise ConfigError("--repeat-features needs selection; drop --no-selection")
        return None, None
    if not args.repeat_features:
        return make_selection_pipeline(seed=args.seed), None
    repeats = {}
    for path in args.repeat_features:
        reading = _numeric_features(
            read_table(path, args.id_column, what="repeat features"), path
        )
        unknown = reading.index.difference(features.index)
        if len(unknown):
            raise DlrnError(
                f"repeat features {path}: case(s) not in {args.features}: {list(unknown[:10])}"
            )
        in_training = reading.loc[reading.index.isin(train_ids)]
        logger.info(
            "%s: ICC on %d training case(s) (%d test case(s) not used)",
            path.name,
            len(in_training),
            len(reading) - len(in_training),
        )
        repeats[path.stem] = in_training
    icc = repeat_icc(features, repeats, form=args.icc_form)
    pipeline = make_selection_pipeline(icc=icc, icc_threshold=args.icc_threshold, seed=args.seed)
    return pipeline, icc


def run(args: argparse.Namespace) -> int:
    import pandas as pd

    from dlrn.classifiers import CLASSIFIERS, check_classifier_names
    from dlrn.modeling import fit_feature_set, write_feature_set_result
    from dlrn.tables import write_tables

    if args.out.exists() and any(args.out.iterdir()) and not args.overwrite:
        raise DlrnError(f"output folder {args.out} is not empty; choose another or add --overwrite")
    classifiers = (
        check_classifier_names([c.strip() for c in args.classifiers.split(",")])
        if args.classifiers
        else CLASSIFIERS
    )
    features = _numeric_features(
        read_table(args.features, args.id_column, what="features"), args.features
    )
    cases = _cohort_frame(args)
    _check_same_cases(features, cases, args)
    cases = cases.loc[features.index]
    selection, icc = _selection(args, features, cases.index[cases["set"] == "train"])
    result = fit_feature_set(
        args.name,
        features,
        cases["label"],
        cases["set"],
        groups=cases["patient_id"],
        selection=selection,
        classifiers=classifiers,
        class_weight=args.class_weight,
        seed=args.seed,
        n_jobs=args.jobs,
    )
    write_feature_set_result(result, args.out, overwrite=args.overwrite)
    extra = {"split": cases.reset_index()}
    if icc is not None:
        extra["icc"] = icc.reset_index()
    write_tables(extra, args.out, workbook=None)
    cv = result.cv_metrics.assign(set="train, out-of-fold")
    rows = pd.concat([cv, result.metrics[result.metrics["set"] != "train"]])
    for _, row in rows[rows["model"] == f"{args.name}-{result.best_model}"].iterrows():
        logger.info(
            "best by median CV AUC: %s, %s AUC %.3f (%.3f-%.3f)",
            row["model"],
            row["set"],
            row["auc"],
            row["auc_ci_low"],
            row["auc_ci_high"],
        )
    logger.info("results written to %s", args.out)
    return 0
