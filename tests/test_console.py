"""What a run shows and keeps: a stage's warnings become its notes, worker processes'
warnings go to the run log, and an error still reaches the console, even a quiet one."""

from __future__ import annotations

import json
import logging
import warnings

from joblib import Parallel, delayed

from dlrn.cli import main
from dlrn.notes import Note
from dlrn.parallel import map_cases, worker_warnings_to
from dlrn.report.summary import StageSummary
from dlrn.study.config import study_from_dict
from dlrn.study.runner import Stage, run_stages

COHORT = {"table": "cases.csv", "case_id": "id", "image": "img", "mask": "roi", "label": "y"}


def _remarking_stage(context):
    for model in ("A-RF", "A-ET"):
        for name in ("train", "test"):
            warnings.warn(Note("calibration slope not computed", "probabilities of 0 or 1",
                               model=model, on_set=name), stacklevel=1)
    warnings.warn(Note("all scores are equal", model="A-LR", on_set="test", caution=True),
                  stacklevel=1)
    warnings.warn(RuntimeWarning("overflow in exp"), stacklevel=1)  # a library's
    return StageSummary(notes=["the stage's own note"])


def test_a_stage_s_warnings_become_its_notes_and_reach_only_the_log(tmp_path, capfd, caplog):
    config = study_from_dict({"cohort": COHORT, "output": str(tmp_path / "out")},
                             base_dir=tmp_path)
    heard = []
    with caplog.at_level(logging.INFO):
        result = run_stages([Stage("remarks", "Remarks", (), lambda c: None, _remarking_stage)],
                            config, progress=False, on_stage=heard.append)
    record = result.records["remarks"]
    assert record.summary.notes == [
        "the stage's own note",
        "2 models (A-RF, A-ET) on 2 sets ('train', 'test'): calibration slope not computed: "
        "probabilities of 0 or 1"]
    assert record.summary.cautions == ["A-LR on set 'test': all scores are equal"]
    stored = json.loads((tmp_path / "out" / "stages" / "remarks" / "stage.json").read_text())
    assert stored["summary"]["cautions"] == record.summary.cautions
    assert heard == [record]
    assert capfd.readouterr() == ("", "")
    logged = [(r.name, r.getMessage()) for r in caplog.records]
    assert ("dlrn.study.runner", "stage remarks: caution: " + record.summary.cautions[0]) in logged
    assert any(name == "py.warnings" and "RuntimeWarning: overflow in exp" in message
               for name, message in logged)


def test_worker_processes_write_their_warnings_into_the_run_log(tmp_path, capfd):
    log = tmp_path / "run.log"
    with worker_warnings_to(log):
        list(map_cases(warnings.warn, [("a", "a case's remark"), ("b", "another")], jobs=2,
                       progress=False))
        Parallel(n_jobs=2)(delayed(warnings.warn)(f"fold {k}") for k in range(2))
    text = log.read_text()
    for said in ("a case's remark", "another", "fold 0", "fold 1"):
        assert f"UserWarning: {said}" in text
    assert "Warning" not in capfd.readouterr().err


def test_a_bad_setting_prints_its_error_on_the_console_even_when_quiet(tmp_path, capsys):
    study = tmp_path / "study.yaml"
    study.write_text("cohort: {table: cases.csv, label: y}\nclassifiers: {cv_folds: 1}\n")
    assert main(["run", str(study), "--quiet"]) == 2
    console = capsys.readouterr()
    assert console.out == ""
    assert "dlrn run: error:" in console.err and "classifiers.cv_folds: 1" in console.err


def test_a_failing_stage_prints_its_error_and_the_log_keeps_the_traceback(tmp_path, capsys):
    study = tmp_path / "study.yaml"
    study.write_text("cohort: {table: missing.csv, label: y}\noutput: out\n")
    assert main(["run", str(study)]) == 2
    assert "cohort table not found" in capsys.readouterr().err
    (log,) = (tmp_path / "out" / "logs").glob("run-*.log")
    assert "Traceback" in log.read_text() and "cohort table not found" in log.read_text()
