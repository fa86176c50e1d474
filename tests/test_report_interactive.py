"""The interactive nomogram: the page's points and risk equal Nomogram.points."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest
from headless_chromium import chromium

from dlrn.errors import DlrnError
from dlrn.nomogram import Nomogram
from dlrn.report.interactive import interactive_nomogram


@pytest.fixture(scope="module")
def nomogram() -> Nomogram:
    """A continuous score, a discrete count and a three-level category, as in a DLRN."""
    rng = np.random.default_rng(3)
    n = 300
    X = pd.DataFrame({"DLR_score": rng.uniform(0, 1, n), "nodes": rng.integers(0, 4, n),
                      "margin": rng.choice(["clear", "fuzzy", "spiculated"], n)})
    lp = -2 + 3 * X["DLR_score"] + 0.4 * X["nodes"] + X["margin"].map(
        {"clear": 0.0, "fuzzy": 0.8, "spiculated": -0.6})
    y = (rng.uniform(size=n) < 1 / (1 + np.exp(-lp))).astype(int)
    return Nomogram().fit(X, y)


def test_fragment_is_self_contained_and_carries_the_fitted_scales(nomogram):
    html = interactive_nomogram(nomogram.to_dict(), labels={"DLR_score": "</script> score"})
    assert html.startswith('<div class="dlrn-interactive-nomogram"') and html.endswith("</div>")
    assert "http" not in html and "src=" not in html  # no network, no server
    state_text = re.search(r'class="dlrn-nomogram-state">(.*?)</script>', html, re.S).group(1)
    state = json.loads(state_text)
    assert state["scales"] == nomogram.to_dict()["scales"]
    assert state["labels"]["DLR_score"] == "</script> score"  # escaped in the page, not cut
    assert [s["kind"] for s in state["scales"]] == ["continuous", "discrete", "categorical"]


def test_not_a_nomogram_is_refused():
    with pytest.raises(DlrnError, match=r"Nomogram\.to_dict"):
        interactive_nomogram({"scales": []})


def test_points_and_risk_in_the_browser_equal_nomogram_points(nomogram, tmp_path):
    from selenium.webdriver.common.by import By

    page = tmp_path / "nomogram.html"
    page.write_text("<!DOCTYPE html><html><body>"
                    + interactive_nomogram(nomogram.to_dict()) + "</body></html>")
    patients = pd.DataFrame({"DLR_score": [0.0, 0.137, 0.5, 0.86421, 1.0],
                             "nodes": [0, 3, 1, 2, 0],
                             "margin": ["clear", "spiculated", "fuzzy", "clear", "spiculated"]})
    expected = Nomogram.from_dict(nomogram.to_dict()).points(patients)
    with chromium(tmp_path / "profile") as driver:
        driver.get(page.as_uri())
        root = driver.find_element(By.CLASS_NAME, "dlrn-interactive-nomogram")
        assert root.get_attribute("data-ready") == "true"
        for i, patient in patients.iterrows():
            for name, value in patient.items():
                driver.execute_script(
                    "const c = arguments[0].querySelector(`[data-predictor='${arguments[1]}']`);"
                    "c.value = arguments[2];"
                    "c.dispatchEvent(new Event('input', {bubbles: true}));",
                    root, name, str(value))
            shown = driver.execute_script(
                "const r = arguments[0], v = s => Number(r.querySelector(s).dataset.value);"
                "const p = {}; r.querySelectorAll('output.dlrn-points').forEach("
                "  o => { p[o.dataset.predictor] = Number(o.dataset.value); });"
                "return {points: p, total: v('.dlrn-total'), lp: v('.dlrn-lp'),"
                "        risk: v('.dlrn-risk')};", root)
            row = expected.loc[i]
            for name in patients.columns:
                assert shown["points"][name] == pytest.approx(row[f"points_{name}"], rel=1e-12,
                                                              abs=1e-12)
            assert shown["total"] == pytest.approx(row["total_points"], rel=1e-12)
            assert shown["lp"] == pytest.approx(row["linear_predictor"], rel=1e-12, abs=1e-12)
            assert shown["risk"] == pytest.approx(row["probability"], rel=1e-12)


@pytest.fixture(scope="module")
def nomogram_v2() -> Nomogram:
    """A v2 nomogram (clinical encoder): a missing-indicator, an ordinal and multilabel axes."""
    rng = np.random.default_rng(5)
    n = 400
    X = pd.DataFrame({"DLR_score": rng.uniform(0, 1, n), "age": rng.normal(50, 12, n).round(),
                      "grade": rng.choice(["low", "mid", "high"], n),
                      "symptoms": rng.choice(["pain", "pain;fever", "fever", "none"], n)})
    X.loc[rng.choice(n, 40, replace=False), "age"] = np.nan
    lp = (-3 + 3 * X["DLR_score"] + 0.02 * X["age"].fillna(60)
          + X["grade"].map({"low": 0.0, "mid": 0.5, "high": 1.0})
          + 0.7 * X["symptoms"].str.contains("pain"))
    y = (rng.uniform(size=n) < 1 / (1 + np.exp(-lp))).astype(int)
    columns = {"DLR_score": "continuous", "age": {"type": "continuous", "missing": "impute"},
               "grade": {"type": "ordinal", "order": ["low", "mid", "high"]},
               "symptoms": {"type": "multilabel", "separator": ";"}}
    return Nomogram(columns=columns, missing="stop").fit(X, y)


def _axis_inputs(nomogram: Nomogram, patients: pd.DataFrame) -> pd.DataFrame:
    """Each axis' value for the page's controls, from the encoder's terms of the patients."""
    design = nomogram.encoder_.transform(patients)
    inputs = pd.DataFrame(index=patients.index)
    for scale in nomogram.scales_:
        if scale.kind != "categorical":
            inputs[scale.name] = design[scale.name]
        elif scale.values == ["no", "yes"]:  # a multilabel token or a missing indicator
            inputs[scale.name] = design[next(iter(scale.terms))].map({0.0: "no", 1.0: "yes"})
        else:  # ordinal: the level of the case's score
            beta = next(iter(scale.terms.values()))
            inputs[scale.name] = [next(level for level, xb in scale.coefficient.items()
                                       if np.isclose(xb, beta * score))
                                  for score in design[scale.name]]
    return inputs


def _shown(driver, root, inputs: pd.Series) -> dict:
    for name, value in inputs.items():
        driver.execute_script(
            "const c = arguments[0].querySelector(`[data-predictor='${arguments[1]}']`);"
            "if (c.type === 'checkbox') { c.checked = arguments[2] === 'yes'; }"
            "else { c.value = arguments[2]; }"
            "c.dispatchEvent(new Event('input', {bubbles: true}));",
            root, name, str(value))
    return driver.execute_script(
        "const r = arguments[0], v = s => Number(r.querySelector(s).dataset.value);"
        "const p = {}; r.querySelectorAll('output.dlrn-points').forEach("
        "  o => { p[o.dataset.predictor] = Number(o.dataset.value); });"
        "return {points: p, total: v('.dlrn-total'), lp: v('.dlrn-lp'),"
        "        risk: v('.dlrn-risk')};", root)


def test_v2_nomogram_in_the_browser_equals_nomogram_points(nomogram_v2, tmp_path):
    from selenium.webdriver.common.by import By

    state = nomogram_v2.to_dict()
    names = [scale["name"] for scale in state["scales"]]
    assert {"age[missing]", "symptoms[pain]", "grade"} <= set(names)
    page = tmp_path / "nomogram.html"
    page.write_text("<!DOCTYPE html><html><body>" + interactive_nomogram(state)
                    + "</body></html>")
    patients = pd.DataFrame({"DLR_score": [0.1, 0.7, 0.95], "age": [np.nan, 41.0, 66.0],
                             "grade": ["high", "low", "mid"],
                             "symptoms": ["pain;fever", "none", "fever"]})
    expected = Nomogram.from_dict(state).points(patients)  # through the saved encoder
    inputs = _axis_inputs(Nomogram.from_dict(state), patients)
    with chromium(tmp_path / "profile") as driver:
        driver.get(page.as_uri())
        root = driver.find_element(By.CLASS_NAME, "dlrn-interactive-nomogram")
        checkboxes = root.find_elements(By.CSS_SELECTOR, "input[type=checkbox]")
        assert {c.get_attribute("data-predictor") for c in checkboxes} == {
            s["name"] for s in state["scales"] if s["values"] == ["no", "yes"]}
        for i in patients.index:
            shown, row = _shown(driver, root, inputs.loc[i]), expected.loc[i]
            for name in names:
                assert shown["points"][name] == pytest.approx(row[f"points_{name}"], rel=1e-12,
                                                              abs=1e-12)
            assert shown["total"] == pytest.approx(row["total_points"], rel=1e-12)
            assert shown["lp"] == pytest.approx(row["linear_predictor"], rel=1e-12, abs=1e-12)
            assert shown["risk"] == pytest.approx(row["probability"], rel=1e-12)


def test_a_patient_s_values_are_recovered_from_its_points(nomogram):
    """The explorer starts at a patient: the values whose points are the patient's."""
    from dlrn.report.interactive import values_from_points

    patients = pd.DataFrame({"DLR_score": [0.137, 0.86421], "nodes": [3, 0],
                             "margin": ["spiculated", "fuzzy"]})
    state = nomogram.to_dict()
    table = nomogram.points(patients)
    for i, row in table.iterrows():
        points = {name.removeprefix("points_"): value for name, value in row.items()
                  if name.startswith("points_")}
        values = values_from_points(state, points)
        assert values["margin"] == patients.loc[i, "margin"]
        assert values["nodes"] == patients.loc[i, "nodes"]
        assert values["DLR_score"] == pytest.approx(patients.loc[i, "DLR_score"], rel=1e-12)
        again = nomogram.points(pd.DataFrame([values]))
        assert again["probability"].iloc[0] == pytest.approx(row["probability"], rel=1e-12)


def test_the_figure_and_the_explorer_use_the_names_for_people(nomogram):
    figure = nomogram.plot(labels={"margin": "Lesion margin"},
                           levels={"margin": {"fuzzy": "ill-defined"}})
    texts = {text.get_text() for axes in figure.axes for text in axes.texts}
    assert {"Lesion margin", "ill-defined", "clear"} <= texts and "fuzzy" not in texts
    html = interactive_nomogram(nomogram.to_dict(), levels={"margin": {"fuzzy": "ill-defined"}},
                                start={"nodes": 2})
    state = json.loads(re.search(r'class="dlrn-nomogram-state">(.*?)</script>', html,
                                 re.S).group(1))
    assert state["levels"] == {"margin": {"fuzzy": "ill-defined"}}
    assert state["start"] == {"nodes": 2}
