"""The vendored R references: present in the clone, and a missing one fails rather than skips."""

from __future__ import annotations

import pytest
from _stats_refs import STATS_REFS, data, expected


def test_every_reference_the_tests_read_is_in_the_clone():
    for name in ("baseline_tests", "calibration_hl_dca", "delong_tests", "logistic_nomogram",
                 "roc_auc_youden"):
        assert expected(name), name
    for name in ("binary_scores", "clinical", "small_ties"):
        assert len(data(name)) > 0, name
    assert STATS_REFS.parent.name == "data"  # tests/data, not ../shared


def test_a_missing_reference_fails_the_test():
    with pytest.raises(pytest.fail.Exception, match="not found"):
        expected("no_such_reference")
    with pytest.raises(pytest.fail.Exception, match="not found"):
        data("no_such_data")
