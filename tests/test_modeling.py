"""fit_feature_set: the leakage proof, determinism, outputs, input errors."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import cross_val_predict

from dlrn.classifiers import make_classifier, make_cv
from dlrn.errors import DlrnError
from dlrn.modeling import fit_feature_set, write_feature_set_result
from dlrn.selection import make_selection_pipeline

ONE_POINT_LR = {"LR": {"C": [1.0]}}


def _cohort(n: int, p: int, seed: int, signal: float = 0.0):
    rng = np.random.default_rng(seed)
    ids = pd.Index([f"case{i:03d}" for i in range(n)], name="case_id")
    y = pd.Series(rng.integers(0, 2, n), index=ids)
    X = pd.DataFrame(rng.normal(size=(n, p)), index=ids, columns=[f"f{i}" for i in range(p)])
    X["f0"] += signal * y
    split = pd.Series(np.where(np.arange(n) % 10 < 3, "test", "train"), index=ids)
    return X, y, split


def test_noise_gives_chance_auc_while_the_leaky_recipe_looks_excellent() -> None:
    """150 cases x 1000 noise features, random labels: selection inside CV stays at chance."""
    X, y, split = _cohort(150, 1000, seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = fit_feature_set(
            "Noise",
            X,
            y,
            split,
            classifiers=["LR"],
            grids=ONE_POINT_LR,
            seed=0,
            n_jobs=1,
            progress=False,
        )
    test_auc = result.metrics.set_index("set").loc["test", "auc"]
    oof_auc = result.cv_metrics["auc"].iloc[0]
    assert 0.25 < test_auc < 0.75  # 45 test cases: SE of an AUC of 0.5 is about 0.09
    assert 0.35 < oof_auc < 0.65

    # The published tool's order: select on all training rows, *then* cross-validate.
    train = split == "train"
    selected = make_selection_pipeline(seed=0).fit(X[train], y[train]).transform(X[train])
    folds = make_cv(y[train].to_numpy(), seed=0)
    leaky = cross_val_predict(
        make_classifier("LR"), selected, y[train], cv=folds, method="predict_proba"
    )[:, 1]
    leaky_auc = roc_auc_score(y[train], leaky)
    assert leaky_auc > 0.85
    assert leaky_auc - oof_auc > 0.3


def test_same_seed_same_numbers_including_boosters() -> None:
    X, y, split = _cohort(120, 40, seed=1, signal=1.5)
    grids = {"XGBoost": {"max_depth": [2, 3]}, "LightGBM": {"num_leaves": [7]}}
    runs = [
        fit_feature_set(
            "HCR",
            X,
            y,
            split,
            classifiers=["XGBoost", "LightGBM"],
            grids=grids,
            seed=5,
            n_jobs=jobs,
            progress=False,
        )
        for jobs in (1, 2)
    ]
    pd.testing.assert_frame_equal(runs[0].predictions, runs[1].predictions)
    pd.testing.assert_frame_equal(runs[0].oof_predictions, runs[1].oof_predictions)
    pd.testing.assert_frame_equal(runs[0].grid_results, runs[1].grid_results)
    assert runs[0].metrics.set_index(["model", "set"]).loc[("HCR-XGBoost", "test"), "auc"] > 0.6


def test_result_shapes_and_written_files(tmp_path) -> None:
    X, y, split = _cohort(120, 60, seed=2, signal=1.5)
    result = fit_feature_set(
        "HCR",
        X,
        y,
        split,
        classifiers=["LR", "ExtraTrees"],
        grids={"LR": {"C": [0.1, 1.0]}, "ExtraTrees": {"max_depth": [3]}},
        seed=0,
        n_jobs=1,
        progress=False,
    )
    assert list(result.predictions.columns) == ["label", "set", "HCR-LR", "HCR-ExtraTrees"]
    assert result.predictions.index.equals(X.index)
    assert set(result.oof_predictions["set"]) == {"train"}
    assert len(result.oof_predictions) == (split == "train").sum()
    assert "f0" in result.selected_features
    assert result.funnel["features_in"].iloc[0] == 60
    assert set(result.metrics["set"]) == {"train", "test"}
    assert (
        result.best_model
        == result.best_params.loc[result.best_params["median_auc"].idxmax(), "classifier"]
    )
    assert result.importance["feature"].tolist()[0] in result.selected_features
    assert result.radscore.index.equals(X.index)
    written = write_feature_set_result(result, tmp_path / "out")
    for name in (
        "predictions",
        "predictions_cv",
        "metrics",
        "metrics_cv",
        "selection_funnel",
        "selection_removed",
        "lasso_path",
        "grid_search",
        "importance",
        "workbook",
        "figures/lasso_path.png",
        "figures/lasso_cv_error.png",
        "figures/lasso_coefficients.png",
        "provenance",
    ):
        assert written[name].exists(), name
    saved = pd.read_csv(written["predictions"], dtype={"case_id": str}).set_index("case_id")
    assert np.allclose(saved["HCR-LR"], result.predictions["HCR-LR"])
    with pytest.raises(DlrnError, match="not empty"):
        write_feature_set_result(result, tmp_path / "out")


def test_bad_inputs_name_the_cases_and_columns() -> None:
    X, y, split = _cohort(40, 5, seed=3)
    with pytest.raises(DlrnError, match=r"only in features: \[case000\]"):
        fit_feature_set("HCR", X, y.drop("case000"), split, progress=False)
    broken = X.copy()
    broken.loc["case007", "f3"] = np.nan
    with pytest.raises(DlrnError, match=r"'f3' is missing or infinite for case\(s\) case007"):
        fit_feature_set("HCR", broken, y, split, progress=False)
    with pytest.raises(DlrnError, match="unknown classifier"):
        fit_feature_set("HCR", X, y, split, classifiers=["KNN"], progress=False)
