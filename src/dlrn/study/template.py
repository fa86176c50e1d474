"""The commented study file that ``dlrn init`` writes: every setting, its help and default.

Generated from the same field metadata as the validation (:mod:`dlrn.study.config`),
so the template and the schema can never disagree.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import yaml

from dlrn.study.config import StudyConfig
from dlrn.study.validation import public_fields


def _yaml_value(value: Any) -> str:
    if isinstance(value, (list, dict)) and not value:
        return "[]" if isinstance(value, list) else "{}"
    text = yaml.safe_dump(value, default_flow_style=True, width=1000).strip()
    return text.removesuffix("\n...").removesuffix("...").strip()


def _template_lines(obj: Any, indent: str) -> list[str]:
    lines = []
    for spec in public_fields(type(obj)):
        value = getattr(obj, spec.name)
        help_text, example = spec.metadata["help"], spec.metadata.get("example")
        if dataclasses.is_dataclass(value):
            lines += ["", f"{indent}# {help_text}", f"{indent}{spec.name}:"]
            lines += _template_lines(value, indent + "  ")
            continue
        if example and value != "":
            help_text += f"; e.g. {example}"
        lines.append(f"{indent}# {help_text}")
        rendered = example if value == "" else _yaml_value(value)
        lines.append(f"{indent}{spec.name}: {rendered}")
    return lines


def study_template() -> str:
    """A commented study file listing every setting with its default."""
    header = [
        "# dlrn study file. Every setting is shown with its default; delete what you",
        "# do not change. Only cohort.table and the four cohort columns are needed.",
    ]
    return "\n".join(header + _template_lines(StudyConfig(), "")) + "\n"
