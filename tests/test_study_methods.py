"""The methods text states the ICC filter, grouping by patient, out-of-fold nomogram
predictions and patient-level statistics only when the run did them (issue 10)."""

from __future__ import annotations

import pandas as pd
import pytest

from dlrn.report.summary import StageSummary
from dlrn.study.config import study_from_dict
from dlrn.study.methods import methods_summary
from dlrn.study.runner import StageRecord, StudyContext
from dlrn.study.stages.comparison import ComparisonSummary
from dlrn.study.stages.radiomics import RadiomicsSummary

MODELS = ["HCR-LR", "DL-resnet18", "DLR-SVM", "DLRN"]


def _context(tmp_path, *, repeat_masks: bool = False, patients: list[str] | None = None,
             summaries: dict[str, StageSummary] | None = None) -> StudyContext:
    cohort = {"table": "cases.csv", "patient": "patient"}
    if repeat_masks:
        cohort["repeat_masks"] = ["mask_reader2"]
    config = study_from_dict({"cohort": cohort, "output": str(tmp_path / "out")},
                             base_dir=tmp_path)
    records = {name: StageRecord(name, "test", "done", summary=summary)
               for name, summary in (summaries or {}).items()}
    if patients is not None:
        records["cohort"] = StageRecord("cohort", "test", "done")
        folder = config.output_dir / "stages" / "cohort"
        folder.mkdir(parents=True)
        pd.DataFrame({"case_id": [f"c{i}" for i in range(len(patients))],
                      "patient_id": patients}).to_csv(folder / "cases.csv", index=False)
    return StudyContext(config, False, records)


def _item(context: StudyContext, item: str) -> str:
    return dict(methods_summary(context))[item]


def test_the_icc_filter_is_stated_only_when_icc_was_computed(tmp_path):
    without = _context(tmp_path)
    assert "ICC" not in _item(without, "Feature selection")
    assert "no ICC reproducibility filter" in _item(without, "Segmentation")
    listed_only = _context(tmp_path, repeat_masks=True)  # radiomics did not run
    assert "ICC" not in _item(listed_only, "Feature selection")
    assert "no ICC was computed" in _item(listed_only, "Segmentation")
    computed = _context(tmp_path, repeat_masks=True,
                        summaries={"radiomics": RadiomicsSummary(icc_cases=20, icc_kept=5)})
    assert "pipeline: ICC filter, z-score" in _item(computed, "Feature selection")
    assert "ICC(2,1)" in _item(computed, "Segmentation")


@pytest.mark.parametrize(("patients", "grouped"), [(["p1", "p2", "p3"], False),
                                                   (["p1", "p1", "p2"], True)])
def test_grouping_by_patient_is_stated_only_with_several_images_per_patient(tmp_path, patients,
                                                                            grouped):
    text = _item(_context(tmp_path, patients=patients), "Models and tuning")
    assert ("grouped by patient (1 patient with several images" in text) == grouped
    assert ("grouped by patient" in text) == grouped


def test_out_of_fold_nomogram_predictions_are_stated_only_when_the_run_made_them(tmp_path):
    cross_validated = ComparisonSummary(models=MODELS, out_of_fold=["HCR-LR", "DLR-SVM", "DLRN"],
                                        images=90, patients=90)
    text = _item(_context(tmp_path, summaries={"comparison": cross_validated}), "Statistics")
    assert "the nomogram's out-of-fold probabilities" in text
    assert "in-sample training predictions of DL-resnet18 (apparent" in text
    failed = ComparisonSummary(models=MODELS, out_of_fold=["HCR-LR", "DLR-SVM"], images=90,
                               patients=90)
    text = _item(_context(tmp_path, summaries={"comparison": failed}), "Statistics")
    assert "nomogram's out-of-fold" not in text
    assert "in-sample training predictions of DL-resnet18, DLRN (apparent" in text
    assert "out-of-fold predictions of HCR-LR, DLR-SVM" in text


def test_patient_level_statistics_are_stated_only_with_several_images_per_patient(tmp_path):
    plain = ComparisonSummary(models=MODELS, out_of_fold=[], images=90, patients=90)
    text = _item(_context(tmp_path, summaries={"comparison": plain}), "Statistics")
    assert text.startswith("AUC with DeLong 95% CI") and "paired DeLong tests" in text
    assert "patient" not in text.split("; clinical")[0]
    clustered = ComparisonSummary(models=MODELS, out_of_fold=[], images=90, patients=60)
    text = _item(_context(tmp_path, summaries={"comparison": clustered}), "Statistics")
    assert text.startswith("AUC with 95% CI by bootstrap over patients")
    assert "90 images of 60 patients: paired tests by obuchowski over patients" in text
    assert "scored by the mean of its images' scores" in text
    assert "Holm-adjusted" in text
