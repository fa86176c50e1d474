"""Command-line values of study-file settings, read as the study file reads them."""

from __future__ import annotations

from typing import Any


def parse_value(text: str) -> Any:
    """A number where the text is one (``1e-3`` included, which YAML 1.1 leaves as text),
    else the YAML value (``null``, ``true``, ``{LR: {C: [1.0]}}``, plain text)."""
    import yaml

    for convert in (int, float):
        try:
            return convert(text)
        except ValueError:
            continue
    return yaml.safe_load(text)


def option_help(section: type, name: str, where: str) -> str:
    """A study-file setting's help as an option's help: argparse formats help with ``%``,
    so a literal ``%`` in the setting's text (``'10%'``) is doubled."""
    from dlrn.study.validation import setting_help

    return f"{setting_help(section, name)} (study file: {where}.{name})".replace("%", "%%")
