"""Assemble the study report from a study's output folder.

Stages describe what they contribute in their typed summary
(:class:`dlrn.report.summary.StageSummary`, stored in ``stage.json``): ``tables``
({path: caption}, CSVs under the stage folder; a table caption's first sentence is its
heading, the rest is printed below it), ``figures`` ({stem: caption}, PNG + SVG),
``facts()`` ({label: value}) and ``notes`` (caveats shown beside the facts). Tables and
figures are read from the stage folders, so the report can be rebuilt from files.
"""

from __future__ import annotations

import base64
import html
import json
import math
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from dlrn.report.summary import StageSummary
from dlrn.tables import write_tables

STUDY_RECORD = "study.json"


@dataclass
class ReportSection:
    """What the report needs of one stage: its name, title, outcome and typed summary."""

    name: str
    title: str
    status: str
    summary: StageSummary
    reason: str | None = None
    seconds: float = 0.0


@dataclass
class Section:
    """One stage in the report: its tables, figures and facts, or why it was skipped."""

    name: str
    title: str
    status: str
    reason: str | None = None
    facts: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # caveats, e.g. a criterion not applied
    cautions: list[str] = field(default_factory=list)  # notes that change a number's meaning
    tables: list[tuple[str, str, str]] = field(default_factory=list)  # (name, caption, html)
    figures: list[tuple[str, str, str]] = field(default_factory=list)  # (stem, caption, data)
    seconds: float = 0.0
    interactive: str = ""  # the interactive nomogram (the report's only script)


NOMOGRAM_FILE = "nomogram.json"  # the nomogram stage's Nomogram.to_dict()
LABELS_FILE = "labels.json"  # its names for people: {"labels": {axis: title}, "levels": ...}

# A metrics table carries many columns (CIs of every proportion, counts, methods); the
# report shows the paper's view of it and keeps every column in tables.xlsx and the CSVs.
METRIC_COLUMNS = ("accuracy", "sensitivity", "specificity", "ppv", "npv", "f1")
METRIC_NAMES = {"ppv": "PPV", "npv": "NPV", "f1": "F1"}
# The baseline table's paper view; the Shapiro-Wilk p, statistic and smallest expected
# count stay in tables.xlsx.
BASELINE_MARKERS = {"variable", "level", "test", "p_value", "min_expected"}
LOGISTIC_MARKERS = {"term", "odds_ratio", "ci_low", "ci_high", "p_value"}
SHORT_TEXT = 32  # characters; columns of shorter text never wrap
LONG_TABLE_ROWS = 30  # longer tables are folded (the reader opens them on demand)
NUMERIC_CELL = re.compile(r"[<>≤≥+\-−]?(\d|∞)[\d.,eE+\-]*( [(±].*)?")


def _table_html(table: pd.DataFrame) -> str:
    if table.empty:
        return "<p>None.</p>"
    view = _paper_view(table)
    body = _html_table(view)
    if len(view) > LONG_TABLE_ROWS:
        return (f"<details><summary>Show all {len(view)} rows</summary>{body}</details>")
    return body


def _paper_view(table: pd.DataFrame) -> pd.DataFrame:
    """The table as a journal prints it: formatted text, only the columns a reader needs."""
    columns = set(table.columns)
    if {"auc", "auc_ci_low", "auc_ci_high", "sensitivity"} <= columns:
        return metrics_view(table)
    if columns >= BASELINE_MARKERS:
        return baseline_view(table)
    if columns >= LOGISTIC_MARKERS:
        return logistic_view(table)
    columns = [c for c in table.columns if c != "note"]
    view = pd.DataFrame({_header(c): _formatted(table[c], c) for c in columns})
    return _with_notes(view, table)


def metrics_view(metrics: pd.DataFrame) -> pd.DataFrame:
    """Model, set, n (and patients), "AUC (95% CI)", the cut-off metrics, the cut-off,
    where it was chosen (when the table says) and any notes."""
    view = pd.DataFrame({"Model": metrics["model"], "Set": metrics["set"]})
    view["n"] = _formatted(metrics["n"], "n")
    if "n_patients" in metrics:
        view["Patients"] = _formatted(metrics["n_patients"], "n_patients")
    if "n_positive" in metrics:
        view["Positive"] = _formatted(metrics["n_positive"], "n_positive")
    view["AUC (95% CI)"] = [estimate_with_ci(*row) for row in
                            metrics[["auc", "auc_ci_low", "auc_ci_high"]].itertuples(index=False)]
    for column in METRIC_COLUMNS:
        if column in metrics:
            view[METRIC_NAMES.get(column, column.capitalize())] = _formatted(metrics[column],
                                                                             column)
    view["Cut\u2011off"] = _formatted(metrics["threshold"], "threshold")  # no break at "-"
    if "cutoff_source" in metrics:
        view["Cut\u2011off chosen"] = _text(metrics["cutoff_source"])
    return _with_notes(view, metrics)


def baseline_view(baseline: pd.DataFrame) -> pd.DataFrame:
    """Variable (once per block), level, the groups' summaries, missing counts if any, p, test.

    The groups are the columns named "<group> (n=...)", in the table's order.
    """
    groups = [c for c in baseline.columns if re.fullmatch(r".+ \(n=\d+\)", str(c))]
    first_of_block = ~baseline["variable"].duplicated()
    view = pd.DataFrame({"Variable": baseline["variable"].where(first_of_block, ""),
                         "Level": _text(baseline["level"])})
    for group in groups:
        view[group] = _text(baseline[group])
    missing = [c for c in baseline.columns if str(c).endswith(" missing")]
    if (baseline[missing].fillna(0).to_numpy() > 0).any():
        for column in missing:
            view[f"Missing, {column.removesuffix(' missing')}"] = _formatted(
                baseline[column].astype("Int64"), column)
    view["p"] = baseline["p_value"].map(format_p)
    view["Test used"] = _text(baseline["test"])
    return _with_notes(view, baseline)


def logistic_view(coefficients: pd.DataFrame) -> pd.DataFrame:
    """Term, what it is compared with, "OR (95% CI)" and p, as in the paper's Supplementary
    Table 1 (no intercept); an aliased term reads NA, and the fit is named where Firth's
    regression was used."""
    terms = coefficients[coefficients["term"] != "(Intercept)"]
    view = pd.DataFrame({"Term": terms["term"]})
    if "reference" in terms:
        view["vs"] = _text(terms["reference"])
    view["OR (95% CI)"] = ["NA" if pd.isna(row[0]) else estimate_with_ci(*row) for row in
                           terms[["odds_ratio", "ci_low", "ci_high"]].itertuples(index=False)]
    view["p"] = terms["p_value"].map(format_p)
    if "method" in terms and (terms["method"] != "ML").any():
        view["Fit"] = terms["method"].map({"ML": "maximum likelihood", "Firth": "Firth"})
    if "p_variable" in terms and (terms["p_variable"] != terms["p_value"]).any():
        view["p (variable, likelihood-ratio test)"] = terms["p_variable"].map(format_p)
    return _with_notes(view, terms)


def _with_notes(view: pd.DataFrame, table: pd.DataFrame) -> pd.DataFrame:
    """Add the ``note`` column when any row has one (it says why a value is missing)."""
    notes = _text(table["note"]) if "note" in table else pd.Series(dtype=str)
    if (notes.str.strip() != "").any():
        view["Note"] = notes
    return view.reset_index(drop=True)


def estimate_with_ci(estimate: float, low: float, high: float) -> str:
    """``0.909 (0.881–0.937)``; the estimate alone without a CI, empty when undefined."""
    if pd.isna(estimate):
        return ""
    if pd.isna(low) or pd.isna(high):
        return _format_number(estimate)
    return f"{_format_number(estimate)} ({_format_number(low)}–{_format_number(high)})"


def format_p(value: float) -> str:
    """p-values as journals print them: three decimals, or ``<0.001``."""
    if pd.isna(value):
        return ""
    return "<0.001" if value < 0.001 else f"{value:.3f}"


HEADER_WORDS = {"auc": "AUC", "ci": "CI", "sd": "SD", "se": "SE", "hl": "HL", "icc": "ICC",
                "ppv": "PPV", "npv": "NPV", "or": "OR"}
HEADER_UNITS = {"s": "(s)", "mib": "(MiB)", "mm": "(mm)"}
# Counts that a blank in the CSV turns into floats; shown whole again.
COUNT_COLUMNS = {"n", "n_positive", "n_patients", "n_images", "groups", "df", "cases",
                 "patients", "positive", "negative",
                 "tp", "fp", "tn", "fn", "features_in", "features_out", "removed", "row",
                 "best_epoch", "epochs_run"}


HEADERS = {"p_value_holm": "p value (Holm-adjusted)"}


def _header(column: object) -> str:
    """``auc_ci_low`` -> ``AUC CI low``, ``train_time_s`` -> ``train time (s)``."""
    if column in HEADERS:
        return HEADERS[str(column)]
    words = [HEADER_WORDS.get(word, word) for word in str(column).split("_")]
    if len(words) > 2 and words[-2] == "per":
        return " ".join(words[:-2]) + "/" + words[-1]  # images_per_s -> images/s
    if len(words) > 1 and words[-1] in HEADER_UNITS:
        words[-1] = HEADER_UNITS[words[-1]]
    return " ".join(words)


def _is_p_column(column: object) -> bool:
    return re.search(r"(^|[_ ])p($|[_ ])", str(column)) is not None


def _formatted(values: pd.Series, column: object) -> pd.Series:
    """One column as text: integers whole, floats to 3 decimals (p as journals print it)."""
    if pd.api.types.is_bool_dtype(values):
        return values.map(lambda v: "" if pd.isna(v) else ("yes" if v else "no"))
    whole = values.dropna()
    if pd.api.types.is_integer_dtype(values) or (
            str(column) in COUNT_COLUMNS and pd.api.types.is_float_dtype(values)
            and bool((whole == whole.round()).all())):
        return values.map(lambda v: "" if pd.isna(v) else str(int(v)))
    if pd.api.types.is_float_dtype(values):
        return values.map(format_p if _is_p_column(column) else _format_number)
    if column == "params":
        return values.map(_parameters)
    return _text(values)


def _parameters(value: object) -> str:
    """Tuned hyper-parameters as ``C = 1.0; n_estimators = 50`` (pipeline prefixes dropped)."""
    if pd.isna(value):
        return ""
    try:
        parameters = json.loads(str(value))
    except json.JSONDecodeError:
        return str(value)
    if not isinstance(parameters, dict):
        return str(value)
    return "; ".join(f"{name.rsplit('__', 1)[-1]} = {setting}"
                     for name, setting in parameters.items())


def _text(values: pd.Series) -> pd.Series:
    """Cells as text, blanks (NaN, NA) empty; an all-blank column reads back as numbers."""
    return values.map(lambda v: "" if pd.isna(v) else str(v))


def _format_number(value: float) -> str:
    if pd.isna(value):
        return ""
    if math.isinf(value):
        return "∞" if value > 0 else "−∞"
    if abs(value) >= 1e5:  # e.g. the odds ratio of a level without events
        return f"{value:.2e}"
    text = f"{value:.1f}" if abs(value) >= 100 else f"{value:.3f}"
    return "0.000" if text == "-0.000" else text  # exact values are in tables.xlsx


def _cell_class(cells: pd.Series) -> str:
    filled = [text for text in cells if text]
    if filled and all(NUMERIC_CELL.fullmatch(text) for text in filled):
        return "num"
    return "text" if any(len(text) > SHORT_TEXT for text in filled) else "text short"


def _html_table(view: pd.DataFrame) -> str:
    """An HTML table of text cells.

    Columns whose every cell is a number align right; short text (names, sets) does not
    wrap, long text (notes) does.
    """
    classes = [_cell_class(view[c]) for c in view.columns]
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in view.columns)
    rows = []
    for cells in view.itertuples(index=False):
        rows.append("".join(f'<td class="{kind}">{html.escape(text)}</td>'
                            for text, kind in zip(cells, classes, strict=True)))
    body = "".join(f"<tr>{row}</tr>" for row in rows)
    return f'<table class="data"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _png_data(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode()


def _section(folder: Path, stage: ReportSection, all_tables: dict[str, pd.DataFrame],
             figure_out: Path) -> Section:
    summary = stage.summary
    section = Section(stage.name, stage.title, stage.status, stage.reason, summary.facts(),
                      list(summary.notes), list(summary.cautions), seconds=stage.seconds)
    for key, caption in summary.tables.items():
        # nullable dtypes keep integer columns with blanks (missing counts) integers
        table = pd.read_csv(folder / f"{key}.csv", dtype_backend="numpy_nullable")
        name = Path(key).name
        if name in all_tables:
            name = f"{section.name}_{name}"
        all_tables[name] = table
        section.tables.append((name, caption, _table_html(table)))
    for key, caption in summary.figures.items():
        stem = folder / key
        for source in sorted(stem.parent.glob(f"{stem.name}.*")):
            shutil.copy2(source, figure_out / f"{section.name}_{source.name}")
        section.figures.append((stem.name, caption, _png_data(stem.with_suffix(".png"))))
    if (folder / NOMOGRAM_FILE).exists():
        from dlrn.report.interactive import interactive_nomogram

        names = (json.loads((folder / LABELS_FILE).read_text())
                 if (folder / LABELS_FILE).exists() else {})
        section.interactive = interactive_nomogram(json.loads(
            (folder / NOMOGRAM_FILE).read_text()), **names)
    return section


def _settings_text(settings: dict[str, Any]) -> str:
    """The settings in the study file's own format (YAML), short lists on one line."""
    import yaml

    return yaml.safe_dump(settings, sort_keys=False, default_flow_style=None, width=100,
                          allow_unicode=True)


def build_report(output_dir: str | Path, stages: list[ReportSection],
                 methods: list[tuple[str, str]]) -> Path:
    """Write ``report/report.html``, ``report/tables.xlsx`` and ``report/figures/``."""
    from jinja2 import Environment, PackageLoader, select_autoescape

    out = Path(output_dir)
    report_dir = out / "report"
    figure_out = report_dir / "figures"
    shutil.rmtree(figure_out, ignore_errors=True)
    figure_out.mkdir(parents=True)
    study = json.loads((out / STUDY_RECORD).read_text())
    all_tables: dict[str, pd.DataFrame] = {}
    sections = [_section(out / "stages" / stage.name, stage, all_tables, figure_out)
                for stage in stages]
    written = write_tables(all_tables, report_dir / "tables", workbook="tables.xlsx")
    if "workbook" in written:
        written["workbook"].replace(report_dir / "tables.xlsx")
    environment = Environment(loader=PackageLoader("dlrn.report", "templates"),
                              autoescape=select_autoescape(["html", "j2"]))
    page = environment.get_template("report.html.j2").render(
        study=study, sections=sections, methods=methods,
        settings=_settings_text(study.get("settings", {})),
        skipped=[s for s in sections if s.status == "skipped"], escape=html.escape)
    path = report_dir / "report.html"
    path.write_text(page)
    return path
