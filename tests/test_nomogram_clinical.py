"""The nomogram as a classifier on messy clinical inputs (through the ClinicalEncoder)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.model_selection import cross_val_predict

from dlrn.clinical import ClinicalEncoder, fit_firth
from dlrn.nomogram import Nomogram

ORDER = ["2", "3", "4a", "4b", "4c", "5"]
COLUMNS = {"score": "continuous", "age": "continuous",
           "margin": {"type": "multilabel"}, "birads": {"type": "ordinal", "order": ORDER}}
RULES = {"missing": "impute", "min_level_count": 5}  # the study's defaults


def _cohort(n: int = 160, seed: int = 0) -> tuple[pd.DataFrame, pd.Series]:
    rng = np.random.default_rng(seed)
    y = rng.permutation(np.r_[np.ones(n // 2, int), np.zeros(n - n // 2, int)])
    score = rng.normal(1.2 * y, 1.0)
    age = rng.normal(50 + 4 * y, 10).round()
    age[rng.random(n) < 0.1] = np.nan
    angular = rng.random(n) < 0.2 + 0.4 * y
    indistinct = rng.random(n) < 0.5
    margin = np.where(angular & indistinct, "angular&indistinct",
                      np.where(angular, "angular",
                               np.where(indistinct, "indistinct", "circumscribed")))
    birads = np.array(ORDER[1:])[np.clip(rng.integers(0, 4, n) + y, 0, 4)]
    X = pd.DataFrame({"score": score, "age": age, "margin": margin, "birads": birads},
                     index=[f"c{i}" for i in range(n)])
    return X, pd.Series(y, index=X.index)


@pytest.fixture(scope="module")
def fitted() -> tuple[Nomogram, pd.DataFrame, pd.Series]:
    X, y = _cohort()
    return Nomogram(columns=COLUMNS, **RULES).fit(X, y), X, y


def test_axes_follow_the_encoder_terms(fitted):
    nomogram, _, _ = fitted
    names = [scale.name for scale in nomogram.scales_]
    assert names == ["score", "age", "age[missing]", "margin[angular]",
                     "margin[circumscribed]", "margin[indistinct]", "birads"]
    table = nomogram.scale_table().set_index("predictor")
    assert table.loc["margin[angular]", "value"].tolist() == ["no", "yes"]
    assert table.loc["birads", "value"].tolist() == ["3", "4a", "4b", "4c", "5"]
    params = nomogram.model_.params
    birads = table.loc["birads"]
    assert np.allclose(np.diff(birads["xbeta"]), params["birads"])  # one score term


def test_points_equal_the_logistic_model_and_predict_proba(fitted):
    nomogram, X, _ = fitted
    design = nomogram.encoder_.transform(X)
    design.insert(0, "(Intercept)", 1.0)
    lp = design @ nomogram.model_.params
    points = nomogram.points(X)
    np.testing.assert_allclose(points["linear_predictor"], lp, rtol=1e-10, atol=1e-10)
    proba = nomogram.predict_proba(X)
    np.testing.assert_allclose(proba[:, 1], points["probability"])
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    assert set(nomogram.predict(X)) == {0, 1}


def test_new_cases_with_missing_and_unseen_values_get_points_and_notes(fitted):
    nomogram, _, _ = fitted
    new = pd.DataFrame({"score": [0.5, 0.5], "age": [np.nan, 50.0],
                        "margin": ["angular&spiculated", "angular"], "birads": ["4a", "4a"]},
                       index=["p1", "p2"])
    points = nomogram.points(new)
    ticks = nomogram.scale_table().set_index(["predictor", "value"])["points"]
    assert points.loc["p1", "points_age[missing]"] == ticks["age[missing]", "yes"]
    assert points.loc["p2", "points_age[missing]"] == ticks["age[missing]", "no"]
    imputed = new.assign(age=nomogram.encoder_.state_["age"]["fill"])
    assert points.loc["p1", "points_age"] == nomogram.points(imputed).loc["p1", "points_age"]
    assert np.isfinite(points["probability"]).all()
    notes = nomogram.notes(new, where="predict")
    assert any(n.startswith("predict: age: no value for 1 case(s) (p1)") for n in notes)
    assert any("p1 (spiculated)" in n for n in notes)


def test_json_round_trip_and_old_format(fitted):
    nomogram, X, _ = fitted
    restored = Nomogram.from_dict(json.loads(json.dumps(nomogram.to_dict())))
    pd.testing.assert_frame_equal(restored.points(X), nomogram.points(X))
    old = Nomogram.from_coefficients(-1.0, {"score": 1.5}, X[["score"]]).to_dict()
    del old["encoder"]
    old["version"] = 1
    for scale in old["scales"]:
        del scale["terms"]
    version_one = Nomogram.from_dict(old)
    assert version_one.points(X[["score"]]).shape[0] == len(X)


def test_is_a_scikit_learn_classifier(fitted):
    _, X, y = fitted
    oof = cross_val_predict(clone(Nomogram(columns=COLUMNS, **RULES)), X, y, cv=4,
                            method="predict_proba")
    assert oof.shape == (len(X), 2) and np.isfinite(oof).all()
    assert Nomogram(columns=COLUMNS, **RULES).get_params()["missing"] == "impute"


def test_default_rules_keep_every_level_and_refuse_blanks():
    from dlrn.errors import DlrnError

    X, y = _cohort()
    with pytest.raises(DlrnError, match=r"'age' is missing for \d+ training case"):
        Nomogram(columns=COLUMNS).fit(X, y)
    nomogram = Nomogram(columns={"score": "continuous", "margin": {"type": "multilabel"}}
                        ).fit(X, y)
    assert [s.name for s in nomogram.scales_][1:] == [
        "margin[angular]", "margin[circumscribed]", "margin[indistinct]"]


def test_firth_nomogram_uses_penalised_coefficients():
    X, y = _cohort()
    nomogram = Nomogram(columns=COLUMNS, regression="firth", **RULES).fit(X, y)
    design = ClinicalEncoder(COLUMNS).fit(X).transform(X)
    design.insert(0, "(Intercept)", 1.0)
    pd.testing.assert_series_equal(nomogram.model_.params, fit_firth(y, design).params)


def test_figure_draws_every_axis_title_and_tick_label(fitted):
    import matplotlib.pyplot as plt

    nomogram, _, _ = fitted
    figure = nomogram.plot(labels={"score": "Rad-score"})
    shown = [t.get_text() for t in figure.axes[0].texts if t.get_visible()]
    for title in ("Points", "Rad-score", "age", "age[missing]", "margin", "angular", "birads",
                  "Total Points", "Linear Predictor", "Risk"):
        assert title in shown
    for tick in ("3", "4a", "4c", "5", "no", "yes"):
        assert tick in shown
    plt.close(figure)


def test_token_axes_sit_under_their_descriptor_and_an_aliased_token_has_none():
    """A descriptor table's '&' tokens (synthetic_descriptors): the aliased token gets no axis
    (its note says so), the others are grouped under "Margin" and titled by their token."""
    import warnings

    from matplotlib.text import Text

    from dlrn.synthetic_descriptors import DESCRIPTOR_COLUMNS, descriptor_table

    rng = np.random.default_rng(0)
    y = pd.Series((rng.random(200) < 0.35).astype(int), index=[f"c{i}" for i in range(200)])
    X = descriptor_table(y, seed=0)[["Margin", "Shape"]]
    X.insert(0, "score", rng.normal(1.2 * y))
    columns = {"score": "continuous", "Margin": DESCRIPTOR_COLUMNS["Margin"],
               "Shape": "categorical"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        nomogram = Nomogram(columns=columns, **RULES).fit(X, y)
    aliased = nomogram.model_.aliased
    assert aliased and all(term.startswith("Margin[") for term in aliased)
    names = [scale.name for scale in nomogram.scales_]
    assert not set(aliased) & set(names)
    assert all("no axis in the nomogram" in nomogram.fit_notes_[term] for term in aliased)
    tokens = [s for s in nomogram.scales_ if s.name.startswith("Margin[")]
    assert tokens and all(s.group == "Margin" and s.title == s.name[len("Margin["):-1]
                          for s in tokens)
    assert all(np.ptp(s.axis_xbeta) > 0 for s in nomogram.scales_)
    design = nomogram.encoder_.transform(X).assign(**{"(Intercept)": 1.0})
    linear = design[nomogram.model_.params.index] @ nomogram.model_.params.fillna(0.0)
    assert np.allclose(nomogram.decision_function(X), linear)  # no points lost
    texts = [t.get_text() for t in nomogram.plot().axes[0].findobj(Text)]
    assert texts.count("Margin") == 1 and "spiculated" in texts
    assert not any(text.startswith("Margin[") for text in texts)
