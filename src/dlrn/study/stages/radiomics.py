"""Stage ``radiomics``: PyRadiomics features of every case, and their ICC between readers."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from dlrn.errors import DlrnError
from dlrn.report.summary import StageSummary
from dlrn.study.config import RadiomicsSettings, StudyConfig
from dlrn.study.runner import Stage, StudyContext
from dlrn.study.stages.files import image_options, read_cases, train_ids

VERSION = 1


@dataclass(frozen=True)
class RadiomicsStageSettings:
    """What changes the features (not jobs or the cache folder, which only change speed)."""

    preset: str
    icc_threshold: float


@dataclass
class RadiomicsSummary(StageSummary):
    preset: str = ""
    cache: str = ""
    features_extracted: int = 0
    from_cache: dict[str, int] = field(default_factory=dict)  # mask column -> cases
    icc_cases: int | None = None
    icc_threshold: float = 0.85
    icc_kept: int | None = None

    def facts(self) -> dict[str, Any]:
        cached = {f"cases read from the feature cache ({column})": count
                  for column, count in self.from_cache.items()}
        first = dict(list(cached.items())[:1])
        facts = {"PyRadiomics settings": self.preset, "feature cache": self.cache, **first,
                 "features extracted": self.features_extracted, **cached}
        if self.icc_cases is not None:
            facts["ICC cases (training, with repeat masks)"] = self.icc_cases
            facts[f"features with ICC >= {self.icc_threshold}"] = self.icc_kept
        return facts


def settings(config: StudyConfig) -> RadiomicsStageSettings:
    return RadiomicsStageSettings(str(config.resolve_preset()), config.selection.icc_threshold)


def inputs(config: StudyConfig) -> list[Path]:
    preset = config.resolve_preset()
    return [preset] if isinstance(preset, Path) else []


def extract(cases: pd.DataFrame, radiomics: RadiomicsSettings, *,
            preset: str | Path | dict[str, Any],
            cache_dir: Path | None, mask_column: str = "mask", mask_label: int | None = None,
            frame: int = 0, progress: bool = True) -> Any:
    """PyRadiomics features of every case with ``mask_column`` under the study's
    ``radiomics`` settings (``preset`` resolved against the study file or the cwd);
    ``dlrn extract`` and the radiomics stage both call this."""
    from dlrn.radiomics import extract_features

    return extract_features(cases, preset, mask_column=mask_column, mask_label=mask_label,
                            frame=frame, jobs=radiomics.jobs, cache_dir=cache_dir,
                            scheduler=radiomics.scheduler, progress=progress)


def _extract(context: StudyContext, cases: pd.DataFrame, mask_column: str,
             summary: RadiomicsSummary) -> pd.DataFrame:
    """Features of every case with ``mask_column``; records how many came from the cache."""
    config = context.config
    result = extract(cases, config.radiomics, preset=config.resolve_preset(),
                     cache_dir=config.radiomics_cache_dir, mask_column=mask_column,
                     **image_options(config), progress=context.progress)
    summary.from_cache[mask_column] = len(result.from_cache)
    if len(result.failures):
        listing = "\n  ".join(f"{row.case_id}: {row.error}" for row in
                              result.failures.itertuples())
        raise DlrnError(f"feature extraction failed for {len(result.failures)} case(s) "
                        f"({mask_column}); fix or exclude them:\n  {listing}")
    return result.features


def run(context: StudyContext) -> RadiomicsSummary:
    from dlrn.radiomics import load_params
    from dlrn.selection import repeat_icc

    config = context.config
    cases = read_cases(context)
    folder = context.stage_dir("radiomics")
    summary = RadiomicsSummary(preset=config.radiomics.preset,
                               cache=str(config.radiomics_cache_dir),
                               icc_threshold=config.selection.icc_threshold)
    features = _extract(context, cases, "mask", summary)
    features.to_csv(folder / "features.csv")
    (folder / "params.json").write_text(json.dumps(load_params(config.resolve_preset()),
                                                   indent=1, default=str))
    summary.features_extracted = features.shape[1]
    training = cases.loc[train_ids(cases)]
    repeats = {column: _extract(context, training[training[column].notna()], column, summary)
               for column in config.cohort.repeat_masks}
    if repeats:
        icc = repeat_icc(features.loc[repeats[next(iter(repeats))].index], repeats)
        icc.to_csv(folder / "icc.csv")
        summary.icc_cases = len(next(iter(repeats.values())))
        summary.icc_kept = int((icc >= summary.icc_threshold).all(axis=1).sum())
    return summary


STAGE = Stage("radiomics", "Handcrafted radiomics features", ("cohort",), settings, run,
              inputs=inputs, version=VERSION, summary_type=RadiomicsSummary)
