"""Nomogram scales against rms 6.5 (../shared/stats-refs), breakdown, persistence, drawing."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from _stats_refs import ITERATIVE, assert_close, data, expected

from dlrn.errors import DlrnError
from dlrn.nomogram import Nomogram, r_pretty

PREDICTORS = ["shape", "margin", "pae", "dlr_score"]


def _from_lrm(**params) -> Nomogram:
    """Scales from R's own lrm coefficients, so that every scale is closed-form."""
    reference = expected("logistic_nomogram")
    coefficients = reference["lrm"]["coefficients"]
    cases = data("clinical")
    lp_range = (-6.0, 4.0)  # pretty(range(fitted lp)) in R; the range itself is not exported
    nomogram = Nomogram.from_coefficients(
        coefficients["Intercept"], {p: coefficients[p] for p in PREDICTORS}, cases[PREDICTORS],
        lp_range=lp_range, **params)
    return nomogram


@pytest.mark.parametrize("key", ["nomogram_default", "nomogram_fun_at"])
def test_scales_match_rms_exactly_from_its_coefficients(key):
    reference = expected("logistic_nomogram")[key]
    fun_at = reference.get("fun_at_requested")
    nomogram = _from_lrm(fun_at=fun_at)
    assert_close(nomogram.points_per_unit_, reference["points_per_lp_unit_sc"])
    assert_close(nomogram.lp_at_zero_points_, reference["lp_at_zero_total_points"])
    scales = nomogram.scale_table()
    for name, ref in reference["variables"].items():
        rows = scales[scales["predictor"] == name]
        assert rows["value"].tolist() == ref["values"]
        assert_close(rows["xbeta"], ref["Xbeta"])
        assert_close(rows["points"], ref["points"])
    assert_close(nomogram.total_points_axis_, reference["total_points_axis"])
    assert_close(nomogram.lp_axis_["lp"], reference["lp_axis"]["lp"])
    assert_close(nomogram.lp_axis_["total_points"], reference["lp_axis"]["total_points"])
    risk = nomogram.risk_axis_
    assert_close(risk["probability"], reference["risk_axis"]["probability"])
    assert_close(risk["total_points"], reference["risk_axis"]["total_points_rms"], rel=1e-9)
    assert_close(risk["total_points_exact"], reference["risk_axis"]["total_points_exact"])


def test_fitted_nomogram_matches_rms_and_drops_risk_outside_lp_axis():
    reference = expected("logistic_nomogram")["nomogram_fun_at"]
    cases = data("clinical")
    nomogram = Nomogram(fun_at=reference["fun_at_requested"]).fit(cases[PREDICTORS], cases["y"])
    assert_close(nomogram.points_per_unit_, reference["points_per_lp_unit_sc"], rel=ITERATIVE)
    assert nomogram.lp_axis_["lp"].tolist() == reference["lp_axis"]["lp"]
    assert 0.99 not in nomogram.risk_axis_["probability"].tolist()
    assert_close(nomogram.risk_axis_["total_points"], reference["risk_axis"]["total_points_rms"],
                 rel=ITERATIVE)


def test_per_patient_breakdown_matches_rms_examples():
    examples = pd.DataFrame(expected("logistic_nomogram")["nomogram_examples"])
    breakdown = _from_lrm().points(examples[PREDICTORS])
    assert_close(breakdown["total_points"], examples["total_points"])
    assert_close(breakdown["linear_predictor"], examples["linear_predictor"])
    assert_close(breakdown["probability"], examples["probability"])
    parts = breakdown[[f"points_{p}" for p in PREDICTORS]].sum(axis=1)
    assert_close(parts, breakdown["total_points"])


def test_r_pretty_matches_r():
    # the dlr_score axis and the total-points axis of the rms reference nomogram
    assert_close(r_pretty(-2.802, 2.777, 10), np.arange(-3, 3.01, 0.5))
    assert_close(r_pretty(0, 146.6, 10), np.arange(0, 161, 20))
    ref = expected("logistic_nomogram")["nomogram_default"]
    assert_close(r_pretty(0.0024726, 0.9820138, 10)[1:-1], ref["risk_axis"]["probability"])


def test_categorical_labels_and_json_round_trip(tmp_path):
    cases = data("clinical")
    features = cases[PREDICTORS].assign(
        shape=cases["shape"].map({0: "regular", 1: "irregular"}))
    nomogram = Nomogram(reference={"shape": "regular"}).fit(features, cases["y"])
    shape = nomogram.scale_table().query("predictor == 'shape'")
    assert shape["value"].tolist() == ["regular", "irregular"]
    numeric = Nomogram().fit(cases[PREDICTORS], cases["y"])
    assert_close(nomogram.points(features)["probability"],
                 numeric.points(cases[PREDICTORS])["probability"], rel=1e-9)
    restored = Nomogram.from_dict(json.loads(json.dumps(nomogram.to_dict())))
    pd.testing.assert_frame_equal(restored.points(features), nomogram.points(features))
    with pytest.raises(DlrnError, match="'shape' is 'lobulated', a value the training set "
                                        "never had"):
        nomogram.points(features.assign(shape="lobulated"))
    paths = nomogram.plot(tmp_path / "nomogram", labels={"dlr_score": "DLR score"})
    assert [p.suffix for p in paths] == [".png", ".svg"]
    svg = paths[1].read_text()
    for text in ("DLR score", "Total Points", "Linear Predictor", "regular", "irregular"):
        assert text in svg


def test_bad_inputs_are_clear_errors():
    cases = data("clinical")
    with pytest.raises(DlrnError, match="lack predictor"):
        _from_lrm().points(cases[["shape"]])
    with pytest.raises(DlrnError, match="format"):
        Nomogram.from_dict({"format": "pickle"})


def _crowded_nomogram() -> Nomogram:
    """A wide-range continuous predictor with a tiny coefficient, close and tied categories."""
    rng = np.random.default_rng(0)
    data_ = pd.DataFrame({
        "dlr_score": rng.uniform(-3, 3, 200),
        "ca125": rng.uniform(0, 5000, 200),
        "age": rng.uniform(18, 90, 200),
        "tirads": rng.choice(["TR1", "TR2", "TR3", "TR4", "TR5"], 200),
        "echogenicity": rng.choice(["hypoechoic", "isoechoic", "hyperechoic"], 200),
    })
    coefficients = {"dlr_score": 1.4, "ca125": 0.00005, "age": 0.02,
                    "tirads": {"TR1": 0.0, "TR2": 0.05, "TR3": 0.1, "TR4": 0.9, "TR5": 2.5},
                    "echogenicity": {"hypoechoic": 0.0, "isoechoic": 0.0, "hyperechoic": 0.3}}
    return Nomogram.from_coefficients(-3.0, coefficients, data_)


@pytest.mark.parametrize("nomogram", [_crowded_nomogram(), _from_lrm()], ids=["crowded", "rms"])
def test_nomogram_labels_never_overlap(nomogram):
    figure = nomogram.plot()
    figure.canvas.draw()
    renderer = figure.canvas.get_renderer()
    texts = [t for t in figure.axes[0].texts if t.get_visible()]
    boxes = [t.get_window_extent(renderer) for t in texts]
    for i, first in enumerate(boxes):
        for j in range(i + 1, len(boxes)):
            assert not first.overlaps(boxes[j]), (texts[i].get_text(), texts[j].get_text())
    import matplotlib.pyplot as plt
    plt.close(figure)


def test_crowded_nomogram_keeps_every_category_and_both_ends_of_a_scale():
    figure = _crowded_nomogram().plot()
    shown = [t.get_text() for t in figure.axes[0].texts]
    for level in ["TR1", "TR2", "TR3", "TR4", "TR5", "hypoechoic", "isoechoic", "hyperechoic"]:
        assert shown.count(level) == 1
    assert "5000" in shown and "1000" not in shown  # ca125: 11 ticks on 3 points, ends kept
    import matplotlib.pyplot as plt
    plt.close(figure)


def test_a_separated_predictor_gets_firth_coefficients_and_a_note():
    # the 10 cases with calcification 'present' are all malignant: by maximum likelihood its
    # points would take the whole scale
    rng = np.random.default_rng(3)
    cases = pd.DataFrame({"calcification": ["present"] * 10 + ["absent"] * 50,
                          "dlr_score": rng.standard_normal(60)})
    y = np.r_[np.ones(10, int), rng.permutation(np.repeat([0, 1], 25))]
    standard = Nomogram(regression="standard").fit(cases, y)
    assert standard.method_ == "ML" and standard.model_.params.abs().max() > 10
    assert "calcification[present]" in standard.fit_notes_
    nomogram = Nomogram().fit(cases, y)
    assert nomogram.method_ == "Firth" and nomogram.model_.params.abs().max() < 5
    assert "fitted by Firth's penalised regression instead" in \
        nomogram.fit_notes_["calcification[present]"]
    shares = nomogram.point_shares().set_index("predictor")
    assert shares.loc["calcification", "fewest_cases_at_an_end"] == 10
    assert shares["share"].sum() == pytest.approx(1.0)
    assert standard.point_shares().set_index("predictor").loc["calcification", "share"] > 0.8
    assert standard.readability_notes(60)[0].startswith(
        "warning: calcification takes 8")
    assert "rests on 10 of 60 training cases" in standard.readability_notes(60)[0]
