"""Stage runner: resume, recompute on change, --force, skips, and output-folder ownership."""

from __future__ import annotations

import pytest

from dlrn.errors import ConfigError, DlrnError
from dlrn.report.summary import StageSummary
from dlrn.study.config import CohortSettings, StudyConfig
from dlrn.study.pipeline import Stage, run_stages


def _toy_stages(calls: list[str]) -> list[Stage]:
    def runner(name):
        def run(context):
            calls.append(name)
            (context.stage_dir(name) / "out.txt").write_text(name)
            return StageSummary(notes=[f"ran {name}"])
        return run

    return [
        Stage("cohort", "Cohort", (), lambda c: c.cohort.label, runner("cohort")),
        Stage("radiomics", "HCR", ("cohort",), lambda c: c.radiomics.preset, runner("radiomics")),
        Stage("dl", "DL", ("cohort",), lambda c: c.dl.epochs, runner("dl"),
              skip=lambda ctx: None if ctx.config.dl.enabled else "dl.enabled is false"),
        Stage("fusion", "DLR", ("radiomics", "dl"), lambda c: c.seed, runner("fusion")),
        Stage("comparison", "Comparison", ("radiomics", "dl"), lambda c: None,
              runner("comparison"), optional=("dl",)),
    ]


@pytest.fixture()
def config(tmp_path):
    table = tmp_path / "cases.csv"
    table.write_text("case_id,image,mask,label\n")
    return StudyConfig(cohort=CohortSettings(table=str(table)), output=str(tmp_path / "out"),
                       base_dir=tmp_path)


def test_second_run_recomputes_nothing(config):
    calls: list[str] = []
    first = run_stages(_toy_stages(calls), config, progress=False)
    assert calls == ["cohort", "radiomics", "dl", "fusion", "comparison"]
    assert all(r.status == "done" and not r.reused for r in first.records.values())
    calls.clear()
    second = run_stages(_toy_stages(calls), config, progress=False)
    assert calls == []
    assert all(r.reused for r in second.records.values())
    assert second.records["fusion"].summary == StageSummary(notes=["ran fusion"])


def test_changed_setting_recomputes_that_stage_and_its_dependants(config):
    calls: list[str] = []
    run_stages(_toy_stages(calls), config, progress=False)
    calls.clear()
    config.dl.epochs = 2
    run_stages(_toy_stages(calls), config, progress=False)
    assert calls == ["dl", "fusion", "comparison"]


def test_changed_input_file_recomputes_everything_downstream(config):
    calls: list[str] = []
    stages = _toy_stages(calls)
    table = config.resolve(config.cohort.table)
    stages[0] = Stage("cohort", "Cohort", (), lambda c: None, stages[0].run,
                      inputs=lambda c: [c.resolve(c.cohort.table)])
    run_stages(stages, config, progress=False)
    calls.clear()
    table.write_text(table.read_text() + "a,b,c,1\n")
    run_stages(stages, config, progress=False)
    assert calls == ["cohort", "radiomics", "dl", "fusion", "comparison"]


def test_force_redoes_a_stage_and_its_dependants(config):
    calls: list[str] = []
    run_stages(_toy_stages(calls), config, progress=False)
    calls.clear()
    run_stages(_toy_stages(calls), config, force=["radiomics"], progress=False)
    assert calls == ["radiomics", "fusion", "comparison"]
    with pytest.raises(ConfigError, match=r"unknown stage.*radiomic"):
        run_stages(_toy_stages(calls), config, force=["radiomic"], progress=False)


def test_skipped_stage_propagates_unless_optional(config):
    calls: list[str] = []
    config.dl.enabled = False
    result = run_stages(_toy_stages(calls), config, progress=False)
    assert result.records["dl"].reason == "dl.enabled is false"
    assert result.records["fusion"].status == "skipped"
    assert "needs dl" in result.records["fusion"].reason
    assert result.records["comparison"].status == "done"
    assert "fusion" not in calls


def test_folder_of_another_study_is_refused(config, tmp_path):
    run_stages(_toy_stages([]), config, progress=False)
    other = StudyConfig(cohort=CohortSettings(table=str(tmp_path / "other.csv")),
                        output=config.output, base_dir=tmp_path)
    with pytest.raises(DlrnError, match="holds the results of another study"):
        run_stages(_toy_stages([]), other, progress=False)
    calls: list[str] = []
    run_stages(_toy_stages(calls), other, progress=False, overwrite=True)
    assert calls[0] == "cohort"
    stranger = tmp_path / "stranger"
    stranger.mkdir()
    (stranger / "thesis.docx").write_text("precious")
    other.output = str(stranger)
    with pytest.raises(DlrnError, match="not a dlrn study folder"):
        run_stages(_toy_stages([]), other, progress=False)
