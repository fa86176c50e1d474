"""``dlrn clinical``: the clinical analysis of a table alone, and a nomogram of any image score.

For a table of cases without images (or whose images are analysed elsewhere): the
baseline table (Table 2), univariate and multivariate logistic regression with
odds ratios, the clinical models, and with ``--score COLUMN`` the nomogram of an
image score made elsewhere (out-of-fold on the training cases) with the clinical
predictors. The stages are the study's own (``dlrn.study.pipeline.clinical_stages``),
with the study file's settings: take them from ``--study FILE`` or give them as
options; an option overrides the file.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from dlrn.cli._cohort_args import add_cohort_arguments
from dlrn.cli._console import Console, add_console_options
from dlrn.cli._settings import option_help, parse_value
from dlrn.errors import ConfigError
from dlrn.study.config import CohortSettings, EvaluationSettings, SplitSettings

#: option -> (settings section, its key in the study file, field)
SETTING_OPTIONS = {
    "--clinical": (CohortSettings, "cohort", "clinical"),
    "--missing": (CohortSettings, "cohort", "missing"),
    "--min-level-count": (CohortSettings, "cohort", "min_level_count"),
    "--na-values": (CohortSettings, "cohort", "na_values"),
    "--regression": (EvaluationSettings, "evaluation", "clinical_regression"),
    "--p-threshold": (EvaluationSettings, "evaluation", "clinical_p_threshold"),
    "--selection": (EvaluationSettings, "evaluation", "clinical_selection"),
    "--fallback": (EvaluationSettings, "evaluation", "clinical_fallback"),
    "--nomogram-bootstrap": (EvaluationSettings, "evaluation", "nomogram_bootstrap"),
    "--test-size": (SplitSettings, "split", "test_size"),
}


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "clinical", help="clinical analysis of a table: Table 2, odds ratios, clinical "
                         "models, and a nomogram of an image score (--score)",
        description="The study's clinical stages on a table of cases, without images: "
                    "baseline table, univariate and multivariate logistic regression (R's "
                    "glm; Firth's regression where a level separates the classes), the "
                    "clinical models and, with --score, the nomogram of that image score "
                    "with the clinical predictors. Settings come from --study and the "
                    "options (the study file's names are given in each option's help).")
    parser.add_argument("table", type=Path, nargs="?", default=None,
                        help="cohort table (CSV/TSV/Excel); default: the study file's "
                             "cohort.table")
    parser.add_argument("--study", type=Path, default=None,
                        help="study file whose cohort, split, evaluation and classifiers "
                             "settings to use")
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--score", metavar="COLUMN", default=None,
                        help="column with an image score made elsewhere (training cases' "
                             "scores out-of-fold): adds its nomogram with the clinical "
                             "predictors")
    add_cohort_arguments(parser, images=False, split=True)
    for option, (section, where, name) in SETTING_OPTIONS.items():
        parser.add_argument(option, dest=name, default=None,
                            help=option_help(section, name, where))
    parser.add_argument("--classifiers", default=None,
                        help="comma-separated subset of LR,SVM,RandomForest,ExtraTrees,"
                             "XGBoost,LightGBM,MLP (default: the study file's, or all)")
    parser.add_argument("--seed", type=int, default=None, help="the study seed (default 0)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace the results of another analysis in --out")
    add_console_options(parser)
    parser.set_defaults(func=run)


def study_data(args: argparse.Namespace) -> tuple[dict[str, Any], Path]:
    """The study file's data (or an empty study) with the options laid over it, and the
    folder relative paths are read from."""
    import yaml

    data: dict[str, Any] = {}
    base = Path.cwd()
    if args.study is not None:
        if not args.study.is_file():
            raise ConfigError(f"study file {args.study} does not exist")
        data = yaml.safe_load(args.study.read_text()) or {}
        base = args.study.parent
    cohort = data.setdefault("cohort", {})
    if args.table is not None:
        cohort["table"] = str(args.table.absolute())
    if "table" not in cohort:
        raise ConfigError("dlrn clinical needs a table: give TABLE or --study with cohort.table")
    columns = {"case_id": args.id_column, "label": args.label_column,
               "patient": args.patient_column}
    defaults = {"case_id": "case_id", "label": "label", "patient": None}
    cohort.update({k: v for k, v in columns.items() if v != defaults[k] or k not in cohort})
    for _, (_, where, name) in SETTING_OPTIONS.items():
        text = getattr(args, name)
        if text is not None:
            data.setdefault(where, {})[name] = parse_value(text)
    if args.split_column is not None:
        data.setdefault("split", {})["column"] = args.split_column
    if args.classifiers is not None:
        data.setdefault("classifiers", {})["models"] = [
            c.strip() for c in args.classifiers.split(",")]
    if args.seed is not None:
        data["seed"] = args.seed
    if not cohort.get("clinical"):
        raise ConfigError("dlrn clinical needs clinical columns: --clinical "
                          "'{age: continuous, shape: categorical}' or cohort.clinical in "
                          "the study file")
    data["output"] = str(args.out.absolute())
    data.pop("dl", None)
    return data, base


def run(args: argparse.Namespace) -> int:
    from functools import partial

    from dlrn.cli.study import run_and_show
    from dlrn.study.config import study_from_dict
    from dlrn.study.pipeline import run_clinical_study

    data, base = study_data(args)
    config = study_from_dict(data, base_dir=base, source=str(args.study or "the options"))
    result = run_and_show(config, args, partial(run_clinical_study, score=args.score))
    Console(args).say(*events_lines(result.records))
    return 0


def events_lines(records: dict[str, Any]) -> list[str]:
    """Events per term of the multivariate model(s) and of the nomogram, for the console,
    with the usual rule's warning where a model has fewer than 10."""
    from dlrn.clinical.events import MIN_EVENTS_PER_TERM

    lines = []
    for name in ("clinical", "dlrn"):
        record = records.get(name)
        events = getattr(record.summary, "events", None) if record is not None else None
        lines += [events] if isinstance(events, str) and events else list(events or [])
    if not lines:
        return []
    return ["", f"Events per term (the usual rule asks for at least {MIN_EVENTS_PER_TERM}; "
                "the report's notes say more):", *[f"  {line}" for line in lines]]
