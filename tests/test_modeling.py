"""fit_feature_set: the leakage proof, determinism, outputs, input errors."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.inspection import permutation_importance
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import cross_val_predict
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import Pipeline

from dlrn.classifiers import BEST_MODEL_RULE, make_classifier, make_cv
from dlrn.errors import DlrnError
from dlrn.modeling import (
    fit_feature_set,
    fold_permutation_importance,
    permutation_auc_drops,
    write_feature_set_result,
)
from dlrn.selection import ZScore, make_selection_pipeline

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
    published = make_selection_pipeline(seed=0, nested=False)  # plain LassoCV, as it runs
    selected = published.fit(X[train], y[train]).transform(X[train])
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
    pd.testing.assert_frame_equal(runs[0].importance, runs[1].importance)
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
    assert result.metrics["set"].tolist() == ["train (apparent)", "test"] * 2
    # one cut-off per model, chosen on its out-of-fold training predictions
    assert (result.metrics["threshold_set"] == "train (out-of-fold)").all()
    cv_cutoff = result.cv_metrics.set_index("model")["threshold"]
    assert np.allclose(result.metrics["threshold"], cv_cutoff.loc[result.metrics["model"]])
    assert result.cv_metrics["set"].eq("train (out-of-fold)").all()
    assert (
        result.best_model
        == result.best_params.loc[result.best_params["median_auc"].idxmax(), "classifier"]
    )
    top = result.importance.iloc[0]
    assert top["feature"] == "f0" and top["n_folds_selected"] == 5 and top["in_final_model"]
    assert (result.importance["n_folds_selected"].between(1, 5)).all()
    assert result.importance["importance_mean"].iloc[1:].abs().max() < top["importance_mean"] / 3
    assert result.settings["importance"]["model"] == result.best_model
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


def test_importance_is_measured_on_held_out_folds() -> None:
    """A memorising 1-NN on noise: large importance on its training rows, ~0 held out."""
    X, y, _ = _cohort(200, 3, seed=4)
    folds = make_cv(y.to_numpy(), seed=0)
    model = Pipeline(
        [
            ("selection", ZScore().set_output(transform="pandas")),
            ("classifier", KNeighborsClassifier(1)),
        ]
    )
    fold_models = [clone(model).fit(X.iloc[train], y.iloc[train]) for train, _ in folds]
    table = fold_permutation_importance(fold_models, X, y, folds, final_features=["f0"], seed=0)
    assert set(table["feature"]) == {"f0", "f1", "f2"}
    assert (table["n_folds_selected"] == 5).all()
    assert table["importance_mean"].abs().max() < 0.08
    on_training = permutation_importance(
        fold_models[0], X.iloc[folds[0][0]], y.iloc[folds[0][0]], scoring="roc_auc", random_state=0
    )
    assert on_training.importances_mean.min() > 0.15
    assert table.set_index("feature")["in_final_model"].to_dict() == {
        "f0": True,
        "f1": False,
        "f2": False,
    }


def test_importance_counts_features_a_fold_dropped_as_zero() -> None:
    X, y, _ = _cohort(200, 30, seed=5, signal=1.5)
    folds = make_cv(y.to_numpy(), seed=0)
    model = make_selection_pipeline(seed=0, lasso_lambda="min")  # lets noise into some folds
    fold_models = [
        Pipeline([("selection", clone(model)), ("classifier", make_classifier("LR"))]).fit(
            X.iloc[train], y.iloc[train]
        )
        for train, _ in folds
    ]
    table = fold_permutation_importance(fold_models, X, y, folds, n_repeats=3, seed=0)
    kept = [set(m["selection"].get_feature_names_out()) for m in fold_models]
    for _, row in table.iterrows():
        in_folds = [row["feature"] in features for features in kept]
        assert row["n_folds_selected"] == sum(in_folds)
        per_fold = row[[f"fold{k + 1}" for k in range(5)]].to_numpy(dtype=float)
        assert (per_fold[~np.array(in_folds)] == 0).all()
        assert row["importance_mean"] == pytest.approx(per_fold.mean())
    assert table["feature"].iloc[0] == "f0"
    assert table["n_folds_selected"].min() < 5  # some noise feature slipped into some fold only


def test_batched_permutation_gives_sklearns_numbers() -> None:
    X, y, _ = _cohort(150, 6, seed=6, signal=1.0)
    forest = make_classifier("ExtraTrees").set_params(n_estimators=20).fit(X[:100], y[:100])
    ours = permutation_auc_drops(forest, X[100:], y[100:], n_repeats=4, seed=3)
    theirs = permutation_importance(
        forest, X[100:], y[100:], scoring="roc_auc", n_repeats=4, random_state=3
    )
    np.testing.assert_array_equal(ours, theirs.importances)
    assert ours[0].mean() > 0.05  # the planted feature matters on held-out rows


def test_best_model_has_the_highest_pooled_out_of_fold_auc() -> None:
    X, y, split = _cohort(120, 30, seed=3, signal=1.2)
    result = fit_feature_set(
        "HCR",
        X,
        y,
        split,
        classifiers=["ExtraTrees", "LR"],
        grids={"ExtraTrees": {"max_depth": [2]}, "LR": {"C": [0.01, 1.0]}},
        seed=0,
        n_jobs=1,
        progress=False,
    )
    train = result.oof_predictions
    pooled = {c: roc_auc_score(train["label"], train[f"HCR-{c}"]) for c in ["ExtraTrees", "LR"]}
    table = result.best_params.set_index("classifier")["oof_auc"]
    assert table.to_dict() == pytest.approx(pooled)
    assert result.best_model == max(pooled, key=pooled.get)
    assert result.settings["best_model_rule"] == BEST_MODEL_RULE


def test_workers_do_not_change_results_with_grouped_nested_selection() -> None:
    """Default selection (nested LASSO, folds grouped by patient), MLP and SVM: 1 vs 2 workers."""
    X, y, split = _cohort(160, 60, seed=4)
    patients = pd.Series([f"p{i // 2}" for i in range(len(X))], index=X.index)
    y = y.groupby(patients).transform("first")  # both images of a patient share the label
    X["f0"] += 1.5 * y
    runs = [
        fit_feature_set(
            "HCR",
            X,
            y,
            split,
            groups=patients,
            classifiers=["SVM", "MLP"],
            grids={"SVM": {"estimator__C": [1.0]}, "MLP": {"hidden_layer_sizes": [(32,)]}},
            seed=1,
            n_jobs=jobs,
            progress=False,
        )
        for jobs in (1, 2)
    ]
    pd.testing.assert_frame_equal(runs[0].predictions, runs[1].predictions)
    pd.testing.assert_frame_equal(runs[0].oof_predictions, runs[1].oof_predictions)
    assert runs[0].selected_features == runs[1].selected_features
    assert runs[0].lasso.nested_
