"""What the evaluation figures draw (the numbers behind the lines), not how they look."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from _stats_refs import assert_close, data, expected

from dlrn.evaluation import calibration, figures


@pytest.fixture(scope="module")
def holdout() -> tuple[np.ndarray, pd.DataFrame]:
    y = data("binary_scores")["y"].to_numpy()[150:300]
    reference = expected("calibration_hl_dca")
    probabilities = pd.DataFrame({"holdout": reference["holdout"]["predicted"],
                                  "insample": reference["insample"]["predicted"][150:300]})
    return y, probabilities


def _lines(figure) -> list:
    return [line for line in figure.axes[0].get_lines() if len(line.get_xdata()) > 2]


def test_calibration_figure_draws_lowess_curves_and_grouped_points(holdout):
    y, probabilities = holdout
    figure = figures.plot_calibration(y, probabilities)
    lines = _lines(figure)
    assert len(lines) == 4  # per model: lowess line, then grouped markers
    for index, model in enumerate(probabilities):
        curve, groups = lines[2 * index], lines[2 * index + 1]
        lowess = calibration.calibration_lowess(y, probabilities[model])
        assert_close(curve.get_ydata(), lowess["observed"])
        assert curve.get_marker() in ("None", None, "") and groups.get_linestyle() == "None"
        bins = calibration.calibration_bins(y, probabilities[model])
        assert_close(groups.get_ydata(), bins["observed_rate"])
    legend = [text.get_text() for text in figure.axes[0].get_legend().get_texts()]
    assert legend[0].startswith("holdout (HL p = ") and "lowess" in legend[-1]
    figures.plt.close(figure)


def test_calibration_figure_without_smoothing_joins_the_groups(holdout):
    y, probabilities = holdout
    figure = figures.plot_calibration(y, probabilities, smooth=False)
    lines = _lines(figure)
    assert len(lines) == 2 and all(line.get_linestyle() != "None" for line in lines)
    assert not any("lowess" in t.get_text() for t in figure.axes[0].get_legend().get_texts())
    figures.plt.close(figure)
