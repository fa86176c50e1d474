"""What the evaluation figures draw (labels, legends, the numbers behind the lines), not how
they look."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from _stats_refs import assert_close, data, expected

from dlrn.evaluation import calibration, figures
from dlrn.evaluation.decision_curve import decision_curve
from dlrn.evaluation.roc import AucResult, auc_ci, delong_matrix, roc_curve


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


def test_calibration_figure_without_smoothing_joins_the_groups(holdout):
    y, probabilities = holdout
    figure = figures.plot_calibration(y, probabilities, smooth=False)
    lines = _lines(figure)
    assert len(lines) == 2 and all(line.get_linestyle() != "None" for line in lines)
    assert not any("lowess" in t.get_text() for t in figure.axes[0].get_legend().get_texts())


@pytest.fixture(scope="module")
def two_models() -> tuple[np.ndarray, pd.DataFrame]:
    scores = data("binary_scores")
    return scores["y"].to_numpy(), scores[["s1", "s3"]]


def _legend(figure) -> list[str]:
    return [text.get_text() for text in figure.axes[0].get_legend().get_texts()]


def test_roc_figure_draws_the_computed_curves_with_auc_legend(two_models):
    y, scores = two_models
    figure = figures.plot_roc(y, scores, title="test set (n = 300)")
    axes = figure.axes[0]
    assert (axes.get_xlabel(), axes.get_ylabel()) == ("1 − Specificity", "Sensitivity")
    assert axes.get_title() == "test set (n = 300)"
    curves = [line for line in axes.get_lines() if line.get_label() != "_chance"]
    assert len(curves) == 2
    for line, model in zip(curves, scores, strict=True):
        roc = roc_curve(y, scores[model])
        assert_close(line.get_xdata(), 1 - roc["specificity"])
        assert_close(line.get_ydata(), roc["sensitivity"])
    ref = expected("roc_auc_youden")["binary_scores"]
    s1 = ref["s1"]
    assert _legend(figure) == [
        f"s1: {s1['auc']:.3f} ({s1['ci95_delong']['lower']:.3f}–{s1['ci95_delong']['upper']:.3f})",
        f"s3: {auc_ci(y, scores['s3']).auc:.3f} ({auc_ci(y, scores['s3']).ci_low:.3f}–"
        f"{auc_ci(y, scores['s3']).ci_high:.3f})"]
    assert axes.get_legend().get_title().get_text() == "AUC (95% CI)"


def test_roc_figure_uses_the_cis_it_is_given(two_models):
    y, scores = two_models
    given = {"s1": AucResult(0.9, np.nan, np.nan, 0.8, 0.95),
             "s3": AucResult(0.7, np.nan, np.nan, 0.6, 0.75)}
    figure = figures.plot_roc(y, scores, auc_results=given)
    assert _legend(figure) == ["s1: 0.900 (0.800–0.950)", "s3: 0.700 (0.600–0.750)"]
    assert figure.axes[0].get_title() == ""


def test_decision_curve_figure_draws_net_benefit_treat_all_and_none(holdout):
    y, probabilities = holdout
    figure = figures.plot_decision_curves(y, probabilities, title="holdout")
    axes = figure.axes[0]
    assert (axes.get_xlabel(), axes.get_ylabel(), axes.get_title()) == (
        "Threshold probability", "Net benefit", "holdout")
    assert _legend(figure) == ["Treat all", "Treat none", "holdout", "insample"]
    lines = {line.get_label(): line for line in axes.get_lines()}
    curve = decision_curve(y, probabilities["holdout"])
    assert_close(lines["Treat all"].get_ydata(), curve["net_benefit_treat_all"])
    assert_close(lines["holdout"].get_xdata(), curve["threshold"])
    assert_close(lines["holdout"].get_ydata(), curve["net_benefit"])
    assert_close(lines["holdout"].get_ydata(), expected("calibration_hl_dca")["holdout"][
        "decision_curve"]["net_benefit_model"])
    assert list(lines["Treat none"].get_ydata()) == [0, 0]


def test_delong_matrix_figure_writes_each_p_value_in_its_cell(two_models):
    y, _ = two_models
    frame = data("binary_scores")[["s1", "s2", "s3"]]
    p_values = delong_matrix(y, frame)
    figure = figures.plot_delong_matrix(p_values, title="p")
    axes = figure.axes[0]
    cells = {(text.get_position(), text.get_text()) for text in axes.texts}
    paired = expected("delong_tests")["paired"]
    s1_s2 = paired["s1_vs_s2"]["p_value"]
    assert ((0, 0), f"{s1_s2:.3f}") in cells  # row s2, column s1
    assert ((1, 1), figures._format_p(p_values.loc["s3", "s2"])) in cells
    assert len(axes.texts) == 3  # lower triangle only
    assert [t.get_text() for t in axes.get_xticklabels()] == ["s1", "s2"]
    assert [t.get_text() for t in axes.get_yticklabels()] == ["s2", "s3"]
    assert figure.axes[1].get_ylabel() == "DeLong p-value" and axes.get_title() == "p"


def test_saving_writes_png_and_svg_holding_the_figure(tmp_path, two_models):
    y, scores = two_models
    paths = figures.save_figure(figures.plot_roc(y, scores, title="roc title"),
                                tmp_path / "roc")
    assert [p.suffix for p in paths] == [".png", ".svg"]
    assert paths[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    svg = paths[1].read_text()
    assert "roc title" in svg and "Sensitivity" in svg  # text kept as text (svg.fonttype none)


def test_the_library_never_switches_the_matplotlib_backend():
    import matplotlib

    source = Path(figures.__file__).read_text()
    assert "matplotlib.use(" not in source
    before = matplotlib.get_backend()
    figures.plot_roc([0, 1, 0, 1], pd.DataFrame({"m": [0.1, 0.9, 0.3, 0.6]}))
    assert matplotlib.get_backend() == before
