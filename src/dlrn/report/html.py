"""Assemble the study report from a study's output folder.

Stages describe what they contribute in their ``stage.json`` summary:
``tables`` ({name: caption}, CSVs in ``<stage>/tables/``), ``figures``
({stem: caption}, PNG + SVG in ``<stage>/figures/``), ``facts`` ({label: value})
and ``notes`` (caveats shown beside the facts). The report is therefore
rebuilt from files alone: ``dlrn report`` after the run gives the same result.
"""

from __future__ import annotations

import base64
import html
import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from dlrn.tables import write_tables

STUDY_RECORD = "study.json"
STAGE_RECORD = "stage.json"


@dataclass
class Section:
    """One stage in the report: its tables, figures and facts, or why it was skipped."""

    name: str
    title: str
    status: str
    reason: str | None = None
    facts: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # caveats, e.g. a criterion not applied
    tables: list[tuple[str, str, str]] = field(default_factory=list)  # (name, caption, html)
    figures: list[tuple[str, str, str]] = field(default_factory=list)  # (stem, caption, data)
    seconds: float = 0.0


# Metrics tables carry many columns; the report shows these (tables.xlsx has all).
METRIC_COLUMNS = ("model", "set", "n", "auc", "auc_ci_low", "auc_ci_high", "threshold",
                  "accuracy", "sensitivity", "specificity", "ppv", "npv", "f1")


def _table_html(table: pd.DataFrame) -> str:
    if table.empty:
        return "<p>None.</p>"
    if {"auc", "sensitivity"} <= set(table.columns):
        table = table[[c for c in METRIC_COLUMNS if c in table.columns]]
    formatted = table.copy()
    for column in formatted.columns:
        if pd.api.types.is_float_dtype(formatted[column]):
            formatted[column] = formatted[column].map(_format_number)
    return formatted.to_html(index=False, border=0, classes="data", na_rep="", escape=True)


def _format_number(value: float) -> str:
    if pd.isna(value):
        return ""
    if value != 0 and abs(value) < 0.001:
        return f"{value:.2e}"
    return f"{value:.3f}"


def _png_data(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode()


def _section(folder: Path, title: str, all_tables: dict[str, pd.DataFrame],
             figure_out: Path) -> Section:
    record = json.loads((folder / STAGE_RECORD).read_text())
    summary = record.get("summary") or {}
    section = Section(record["name"], title, record["status"], record.get("reason"),
                      summary.get("facts", {}), summary.get("notes", []),
                      seconds=record.get("seconds", 0.0))
    for key, caption in summary.get("tables", {}).items():
        table = pd.read_csv(folder / f"{key}.csv")
        name = Path(key).name
        if name in all_tables:
            name = f"{section.name}_{name}"
        all_tables[name] = table
        section.tables.append((name, caption, _table_html(table)))
    for key, caption in summary.get("figures", {}).items():
        stem = folder / key
        for source in sorted(stem.parent.glob(f"{stem.name}.*")):
            shutil.copy2(source, figure_out / f"{section.name}_{source.name}")
        section.figures.append((stem.name, caption, _png_data(stem.with_suffix(".png"))))
    return section


def build_report(output_dir: str | Path, stage_titles: dict[str, str],
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
    sections = [_section(out / "stages" / name, title, all_tables, figure_out)
                for name, title in stage_titles.items()
                if (out / "stages" / name / STAGE_RECORD).exists()]
    written = write_tables(all_tables, report_dir / "tables", workbook="tables.xlsx")
    if "workbook" in written:
        written["workbook"].replace(report_dir / "tables.xlsx")
    environment = Environment(loader=PackageLoader("dlrn.report", "templates"),
                              autoescape=select_autoescape(["html", "j2"]))
    page = environment.get_template("report.html.j2").render(
        study=study, sections=sections, methods=methods,
        settings=json.dumps(study.get("settings", {}), indent=2),
        skipped=[s for s in sections if s.status == "skipped"], escape=html.escape)
    path = report_dir / "report.html"
    path.write_text(page)
    return path
