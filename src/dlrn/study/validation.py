"""Validation of the study file against its dataclasses: every problem, each with its path.

:class:`Validator` converts parsed YAML into the settings dataclasses, collecting all
problems (wrong type, value out of bounds, unknown key with a difflib suggestion)
instead of stopping at the first.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from pathlib import Path
from typing import Any, Literal

from dlrn.errors import ConfigError


def public_fields(cls: type) -> list[dataclasses.Field]:
    return [f for f in dataclasses.fields(cls) if not f.metadata.get("internal")]


def _describe(tp: Any) -> str:
    """Human wording of an allowed type, for error messages."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in args)
    if origin in (typing.Union, types.UnionType):
        return " or ".join("null" if a is type(None) else _describe(a) for a in args)
    if origin is list:
        return f"a list of {_describe(args[0])}"
    if origin is dict:
        return f"a mapping of {_describe(args[0])} to {_describe(args[1])}"
    if dataclasses.is_dataclass(tp):
        return "a mapping with keys " + ", ".join(f.name for f in public_fields(tp))
    return {str: "text", int: "an integer", float: "a number", bool: "true or false",
            Any: "any value"}.get(tp, getattr(tp, "__name__", str(tp)))


class Validator:
    """Converts parsed YAML into the dataclasses, collecting every problem with its path."""

    def __init__(self) -> None:
        self.problems: list[str] = []

    def fail(self, path: str, message: str) -> None:
        self.problems.append(f"{path or '<top level>'}: {message}")

    def raise_problems(self, source: str) -> None:
        """One ConfigError listing every problem found, if any."""
        if self.problems:
            listing = "\n  ".join(self.problems)
            raise ConfigError(f"{source} has {len(self.problems)} problem(s):\n  {listing}")

    def convert(self, tp: Any, value: Any, path: str) -> Any:
        origin, args = typing.get_origin(tp), typing.get_args(tp)
        if dataclasses.is_dataclass(tp):
            return self.dataclass(tp, value, path)
        if origin in (typing.Union, types.UnionType):
            return self.union(tp, args, value, path)
        if origin is Literal:
            if value not in args:
                hint = suggest(value, [str(a) for a in args])
                self.fail(path, f"{value!r} is not allowed; use {_describe(tp)}"
                                f"{f' ({hint.strip()})' if hint else ''}")
            return value
        if origin is list:
            if not isinstance(value, list):
                self.fail(path, f"expected {_describe(tp)}, got {value!r}")
                return []
            return [self.convert(args[0], item, f"{path}[{i}]") for i, item in enumerate(value)]
        if origin is dict:
            if not isinstance(value, dict):
                self.fail(path, f"expected {_describe(tp)}, got {value!r}")
                return {}
            return {self.convert(args[0], k, f"{path}"): self.convert(args[1], v, f"{path}.{k}")
                    for k, v in value.items()}
        return self.scalar(tp, value, path)

    def union(self, tp: Any, args: tuple, value: Any, path: str) -> Any:
        if value is None and type(None) in args:
            return None
        for arg in args:
            if arg is type(None):
                continue
            trial = Validator()
            converted = trial.convert(arg, value, path)
            if not trial.problems:
                return converted
        self.fail(path, f"expected {_describe(tp)}, got {value!r}")
        return None

    def scalar(self, tp: Any, value: Any, path: str) -> Any:
        if tp is Any:
            return value
        if tp is float and isinstance(value, int) and not isinstance(value, bool):
            return float(value)
        if tp is Path and isinstance(value, str):
            return Path(value)
        if not isinstance(value, tp) or (tp is int and isinstance(value, bool)):
            self.fail(path, f"expected {_describe(tp)}, got {value!r}")
        return value

    def dataclass(self, cls: type, value: Any, path: str) -> Any:
        if not isinstance(value, dict):
            self.fail(path, f"expected {_describe(cls)}, got {value!r}")
            value = {}
        fields = {f.name: f for f in public_fields(cls)}
        hints = typing.get_type_hints(cls)
        for key in value:
            if key not in fields:
                hint = suggest(key, list(fields))
                self.fail(_join(path, key), f"unknown setting; {hint}allowed: {', '.join(fields)}")
        kwargs = {}
        for name, spec in fields.items():
            key_path = _join(path, name)
            if name in value:
                kwargs[name] = self.convert(hints[name], value[name], key_path)
                self.bounds(spec, kwargs[name], key_path)
            elif _is_required(spec):
                self.fail(key_path, f"required setting is missing ({spec.metadata['help']})")
                kwargs[name] = None
        return cls(**kwargs)

    def bounds(self, spec: dataclasses.Field, value: Any, path: str) -> None:
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            return
        low, high = spec.metadata.get("minimum"), spec.metadata.get("maximum")
        if low is not None and value < low:
            self.fail(path, f"{value} is below the minimum {low}")
        if high is not None and value > high:
            self.fail(path, f"{value} is above the maximum {high}")


def _is_required(spec: dataclasses.Field) -> bool:
    return spec.default is dataclasses.MISSING and spec.default_factory is dataclasses.MISSING


def suggest(value: Any, allowed: list[str]) -> str:
    """'did you mean ...? ' for the closest allowed names (two when they are equally close)."""
    close = difflib.get_close_matches(str(value), allowed, n=2, cutoff=0.6)
    if not close:
        return ""
    return "did you mean " + " or ".join(repr(c) for c in close) + "? "


def _join(path: str, key: Any) -> str:
    return f"{path}.{key}" if path else str(key)


def section_from_dict(cls: type, data: dict[str, Any], *, path: str,
                      source: str = "the command line") -> Any:
    """One section of the study file (e.g. ``SelectionSettings``) validated from plain data.

    The stand-alone commands build their settings through this, so a command-line value
    is checked exactly as the same setting in a study file.
    """
    validator = Validator()
    section = validator.dataclass(cls, data, path)
    validator.raise_problems(source)
    return section


def setting_help(cls: type, name: str) -> str:
    """The help line of one setting (shared by the study template and command options)."""
    return next(f.metadata["help"] for f in dataclasses.fields(cls) if f.name == name)
