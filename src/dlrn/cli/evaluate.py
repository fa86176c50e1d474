"""``dlrn evaluate``: statistics for any model's predictions, trained in dlrn or elsewhere."""

from __future__ import annotations

import argparse
import dataclasses
import typing
from pathlib import Path
from typing import TYPE_CHECKING

from dlrn.cli._console import (
    Console,
    add_console_options,
    model_auc_lines,
    noted,
    run_log,
)
from dlrn.errors import ConfigError

if TYPE_CHECKING:
    import pandas as pd


def _field(name: str) -> dataclasses.Field:
    from dlrn.study.config import EvaluationSettings

    return next(f for f in dataclasses.fields(EvaluationSettings) if f.name == name)


def _choices(name: str) -> list[str]:
    """The allowed values of an evaluation setting (its Literal), None left out."""
    from dlrn.study.config import EvaluationSettings

    hint = typing.get_type_hints(EvaluationSettings)[name]
    literal = next((a for a in typing.get_args(hint) if typing.get_origin(a) is typing.Literal),
                   hint)
    return list(typing.get_args(literal))


def _default(name: str) -> object:
    return _field(name).default


def _help(name: str) -> str:
    return f"{_field(name).metadata['help']} (study file: evaluation.{name})"


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "evaluate",
        help="AUC/DeLong, cut-off metrics, calibration and decision curves for a predictions CSV",
        description=(
            "Evaluate model scores against a 0/1 label. With --set, the Youden cut-off is "
            "chosen on the training set and applied unchanged to every other set."
        ),
    )
    parser.add_argument("predictions", type=Path, help="CSV with one row per case")
    parser.add_argument("--label", required=True, help="0/1 outcome column")
    parser.add_argument(
        "--scores", required=True, help="comma-separated score columns, one per model (e.g. LR,SVM)"
    )
    parser.add_argument(
        "--set",
        dest="set_column",
        default=None,
        help="column naming each case's set (train/test/...)",
    )
    parser.add_argument(
        "--train-set", default="train", help="set on which the cut-off is chosen (default: train)"
    )
    parser.add_argument(
        "--id",
        dest="id_column",
        default=None,
        help="case id column (default: the first column if named case_id)",
    )
    parser.add_argument("--out", required=True, type=Path, help="output folder")
    parser.add_argument("--overwrite", action="store_true", help="allow a non-empty output folder")
    parser.add_argument(
        "--patient",
        default=None,
        metavar="COL",
        help="patient id column: with several images per patient, CIs and tests count "
        "patients (clustered) and patient-level tables are added",
    )
    parser.add_argument(
        "--patient-aggregation",
        choices=_choices("patient_aggregation"),
        default=_default("patient_aggregation"),
        help=_help("patient_aggregation"),
    )
    parser.add_argument(
        "--ci",
        choices=_choices("auc_ci"),
        default=_default("auc_ci"),
        help=_help("auc_ci"),
    )
    parser.add_argument(
        "--comparison",
        choices=_choices("comparison"),
        default=_default("comparison"),
        help=_help("comparison"),
    )
    parser.add_argument("--n-bootstrap", type=int, default=2000, help="bootstrap resamples")
    parser.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    parser.add_argument(
        "--thresholds",
        choices=["midpoint", "observed"],
        default="midpoint",
        help="report the Youden cut-off as a pROC midpoint or an observed score",
    )
    parser.add_argument(
        "--proportion-ci",
        choices=["wilson", "clopper-pearson"],
        default="wilson",
        help="CI of accuracy/sensitivity/... (default: wilson)",
    )
    parser.add_argument("--hl-groups", type=int, default=10, help="Hosmer-Lemeshow groups")
    parser.add_argument(
        "--hl-grouping",
        default="quantile_cut",
        choices=["quantile_cut", "quantile_cut_left_closed", "equal_size_rank"],
        help="grouping rule of calibration bins and the HL test",
    )
    parser.add_argument("--no-figures", action="store_true", help="tables only")
    parser.add_argument(
        "--no-lowess",
        action="store_true",
        help="calibration figures without the lowess curve (grouped points joined instead)",
    )
    add_console_options(parser)
    parser.set_defaults(func=run)


def _read_predictions(path: Path, id_column: str | None) -> pd.DataFrame:
    import pandas as pd

    from dlrn.io import read_table

    table = read_table(path, what="predictions file")
    id_column = id_column or ("case_id" if "case_id" in table.columns else None)
    if id_column is None:
        table.index = pd.Index([f"row {i + 2}" for i in range(len(table))], name="case_id")
        return table
    if id_column not in table.columns:
        raise ConfigError(f"{path}: id column {id_column!r} not found")
    duplicated = table[id_column][table[id_column].duplicated()]
    if len(duplicated):
        raise ConfigError(f"{path}: duplicated case id(s) {list(duplicated.astype(str)[:5])}")
    return table.set_index(table[id_column].astype(str).rename("case_id"))


def run(args: argparse.Namespace) -> int:
    import pandas as pd

    from dlrn.io import check_output_folder
    from dlrn.notes import collect

    scores = [s.strip() for s in args.scores.split(",") if s.strip()]
    predictions = _read_predictions(args.predictions, args.id_column)
    check_output_folder(args.out, overwrite=args.overwrite,
                        remedy="choose another or pass --overwrite")
    console = Console(args)
    with run_log(args.out, args) as log_path, collect() as raised:
        written = _evaluate(args, predictions, scores)
    metrics = pd.read_csv(args.out / "metrics.csv", dtype={"set": str})
    console.say(*model_auc_lines(metrics, title="AUC (95% CI)"))
    console.cautions(("", caution) for caution in raised.cautions)
    console.say("", f"wrote {len(written)} files to {args.out}",
                f"log: {log_path} ({noted(raised)})")
    return 0


def _evaluate(args: argparse.Namespace, predictions: pd.DataFrame, scores: list[str]) -> dict:
    from dlrn.evaluation.summary import write_evaluation

    return write_evaluation(
        predictions,
        scores,
        args.out,
        label=args.label,
        set_column=args.set_column,
        train_set=args.train_set,
        groups=args.patient,
        patient_aggregation=args.patient_aggregation,
        hl_groups=args.hl_groups,
        comparison_method=args.comparison,
        grouping=args.hl_grouping,
        overwrite=args.overwrite,
        figures=not args.no_figures,
        smooth_calibration=not args.no_lowess,
        source=args.predictions,
        auc_method=args.ci,
        n_bootstrap=args.n_bootstrap,
        seed=args.seed,
        thresholds=args.thresholds,
        ci_method=args.proportion_ci,
    )
