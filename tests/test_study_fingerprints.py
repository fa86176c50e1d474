"""Stage fingerprints: image and mask contents, stage versions, not caption prose."""

from __future__ import annotations

import shutil
from dataclasses import replace

import numpy as np
import pandas as pd
from PIL import Image

from dlrn.study.config import study_from_dict
from dlrn.study.pipeline import run_stages
from dlrn.study.stages import STAGES

FIRST_STAGES = [s for s in STAGES if s.name in ("cohort", "radiomics", "hcr_models")]


def _study(synthetic_cohort_csv, tmp_path):
    """A copy of the synthetic cohort (its files get overwritten) and a small study on it."""
    folder = tmp_path / "cohort"
    shutil.copytree(synthetic_cohort_csv.parent, folder)
    config = study_from_dict({
        "cohort": {"table": str(folder / "cohort.csv"), "patient": "patient_id"},
        "radiomics": {"preset": "fast", "jobs": 1},
        "classifiers": {"models": ["LR"], "cv_folds": 3, "grids": {"LR": {"C": [1.0]}}},
        "selection": {"lasso_folds": 3},
        "output": str(tmp_path / "out")}, base_dir=tmp_path)
    return config, folder


def _reused(result) -> dict[str, bool]:
    return {name: record.reused for name, record in result.records.items()}


def test_a_mask_replaced_in_place_reruns_the_cohort_and_what_depends_on_it(
        synthetic_cohort_csv, tmp_path):
    config, folder = _study(synthetic_cohort_csv, tmp_path)
    run_stages(FIRST_STAGES, config, progress=False)
    assert all(_reused(run_stages(FIRST_STAGES, config, progress=False)).values())

    table = pd.read_csv(folder / "cohort.csv")
    mask_path = folder / table.loc[0, "mask"]
    mask = np.array(Image.open(mask_path))
    square = np.zeros_like(mask)
    square[40:60, 40:60] = mask.max()  # a 400-pixel square instead of the drawn ROI
    Image.fromarray(square).save(mask_path)

    again = run_stages(FIRST_STAGES, config, progress=False)
    assert _reused(again) == {"cohort": False, "radiomics": False, "hcr_models": False}
    features = pd.read_csv(config.output_dir / "stages" / "radiomics" / "features.csv",
                           index_col="case_id", dtype={"case_id": str})
    area = features.loc[str(table.loc[0, "case_id"]), "original_shape2D_PixelSurface"]
    assert area == 400  # the new mask's features, not cached ones of the old mask


def test_a_new_stage_version_reruns_that_stage_and_its_dependants(synthetic_cohort_csv,
                                                                  tmp_path):
    config, _ = _study(synthetic_cohort_csv, tmp_path)
    cohort_only = FIRST_STAGES[:2]
    run_stages(cohort_only, config, progress=False)
    bumped = [cohort_only[0], replace(cohort_only[1], version=cohort_only[1].version + 1)]
    assert _reused(run_stages(bumped, config, progress=False)) == {"cohort": True,
                                                                   "radiomics": False}


def test_captions_are_not_part_of_a_fingerprint(synthetic_cohort_csv, tmp_path):
    config, _ = _study(synthetic_cohort_csv, tmp_path)
    cohort = FIRST_STAGES[:1]
    run_stages(cohort, config, progress=False)

    def reworded(context):
        summary = cohort[0].run(context)
        summary.tables = {key: caption + " (reworded)" for key, caption in summary.tables.items()}
        return summary

    renamed = [replace(cohort[0], title="Cases and split", run=reworded)]
    assert _reused(run_stages(renamed, config, progress=False)) == {"cohort": True}


def test_the_labels_are_part_of_the_nomogram_s_fingerprint():
    """The study's names for people redraw the nomogram figure: its stage reruns."""
    from dlrn.study.runner import stage_fingerprint

    stage = next(s for s in STAGES if s.name == "dlrn")
    upstream = {name: "same" for name in stage.depends}
    plain = study_from_dict({"cohort": {"table": "t.csv"}})
    named = study_from_dict({"cohort": {"table": "t.csv"},
                             "labels": {"age": {"name": "Age", "unit": "years"}}})
    assert (stage_fingerprint(stage, plain, upstream, files={})
            != stage_fingerprint(stage, named, upstream, files={}))
