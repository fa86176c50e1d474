"""Remarks as notes: a UserWarning in a notebook, grouped once per kind inside a study."""

from __future__ import annotations

import logging
import re
import warnings

import pytest

from dlrn.evaluation.threshold import youden_threshold
from dlrn.notes import Note, about, collect, summarize


def _calibration_note(model: str, on_set: str) -> Note:
    return Note("calibration intercept and slope not computed",
                "probabilities of exactly 0 or 1", model=model, on_set=on_set)


def test_a_note_used_alone_is_a_user_warning_with_its_own_text():
    with pytest.warns(UserWarning, match="^2 thresholds tie for the best Youden J; using the "
                                         r"lowest \(0\.4\)$"):
        youden_threshold([0, 1, 0, 1], [0.2, 0.6, 0.6, 0.9])
    assert str(_calibration_note("LR", "test")) == (
        "LR on set 'test': calibration intercept and slope not computed: probabilities of "
        "exactly 0 or 1")


def test_notes_are_grouped_once_per_kind_with_the_models_and_sets_they_concern():
    notes = [_calibration_note(model, name) for model in ("RF", "ET")
             for name in ("train", "test", "external")]
    notes += [Note("odd", model="RF", on_set="test"), Note("odd", model="ET", on_set="train"),
              Note("kept no feature"), Note("kept no feature"), Note("once", model="LR")]
    assert summarize(notes) == [
        "2 models (RF, ET) on 3 sets ('train', 'test', 'external'): calibration intercept and "
        "slope not computed: probabilities of exactly 0 or 1",
        "2 models (RF, ET) on some of 2 sets ('test', 'train'): odd",
        "kept no feature (2 times)",
        "LR: once"]
    # one model on one set, noted twice (its image- and patient-level rows): its own text
    twice = [Note("ties", message="3 tie at 0.2", model="LR", on_set="test"),
             Note("ties", message="2 tie at 0.3", model="LR", on_set="test")]
    assert summarize(twice) == ["LR on set 'test': 3 tie at 0.2"]


def test_collect_keeps_notes_named_by_about_and_logs_other_warnings_with_their_origin(caplog):
    with caplog.at_level(logging.INFO), collect("stage x") as raised:
        with about("HCR-LR", "test"):
            youden_threshold([0, 1, 0, 1], [0.2, 0.6, 0.6, 0.9])
        warnings.warn(Note("no ranking", caution=True, model="HCR-SVM"), stacklevel=1)
        warnings.warn(RuntimeWarning("overflow in exp"), stacklevel=1)
    assert raised.remarks == ["HCR-LR on set 'test': 2 thresholds tie for the best Youden J; "
                              "using the lowest (0.4)"]
    assert raised.cautions == ["HCR-SVM: no ranking"]
    logged = "\n".join(f"{record.name} {record.getMessage()}" for record in caplog.records)
    assert re.search(rf"^dlrn.notes stage x: note \({__file__}:\d+\): HCR-SVM: no ranking$",
                     logged, re.M)
    assert re.search(rf"^py.warnings stage x: {__file__}:\d+: RuntimeWarning: overflow in exp$",
                     logged, re.M)
