"""Patient-level inference: Obuchowski variance, cluster bootstrap, design-effect CIs, tables."""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import pandas as pd
import pytest
from _stats_refs import assert_close, data, expected

from dlrn.errors import DlrnError
from dlrn.evaluation import (
    auc_ci,
    clustered,
    evaluate_predictions,
    metrics_table,
    patient_predictions,
    write_evaluation,
)
from dlrn.evaluation.roc import delong_covariance, delong_pairwise
from dlrn.evaluation.threshold import proportion_ci


def _psi(x: float, y: float) -> float:
    return 1.0 if x > y else 0.5 if x == y else 0.0


def _obuchowski_by_hand(y: np.ndarray, score: np.ndarray, cluster: np.ndarray) -> float:
    """Obuchowski (1997) variance written out loop by loop from the paper's definitions."""
    pos, neg = score[y == 1], score[y == 0]
    big_m, big_n = pos.size, neg.size
    theta = sum(_psi(a, b) for a in pos for b in neg) / (big_m * big_n)
    ids = list(dict.fromkeys(cluster))
    x_comp, y_comp, m, n = [], [], [], []
    for i in ids:
        xs = score[(cluster == i) & (y == 1)]
        ys = score[(cluster == i) & (y == 0)]
        x_comp.append(sum(sum(_psi(a, b) for b in neg) / big_n for a in xs))
        y_comp.append(sum(sum(_psi(a, b) for a in pos) / big_m for b in ys))
        m.append(xs.size)
        n.append(ys.size)
    x_comp, y_comp, m, n = map(np.array, (x_comp, y_comp, m, n))
    i10, i01, clusters = np.count_nonzero(m), np.count_nonzero(n), len(ids)
    s10 = i10 / ((i10 - 1) * big_m) * np.sum((x_comp - m * theta) ** 2)
    s01 = i01 / ((i01 - 1) * big_n) * np.sum((y_comp - n * theta) ** 2)
    s11 = clusters / (clusters - 1) * np.sum((x_comp - m * theta) * (y_comp - n * theta))
    return s10 / big_m + s01 / big_n + 2 * s11 / (big_m * big_n)


@pytest.fixture(scope="module")
def small_clusters() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """40 images of 15 patients (1-5 images each, some with both labels), tied scores."""
    rng = np.random.default_rng(7)
    cluster = np.repeat(np.arange(15), [1, 2, 3, 4, 5, 1, 2, 3, 4, 5, 1, 2, 3, 2, 2])
    y = (rng.random(cluster.size) < 0.3 + 0.4 * (cluster % 2)).astype(int)
    score = np.round(y + rng.normal(size=cluster.size) + 0.3 * cluster / 15, 1)
    return y, score, cluster


def test_obuchowski_matches_the_paper_loop_by_loop(small_clusters):
    y, score, cluster = small_clusters
    _, covariance = clustered.obuchowski_covariance(y, score, cluster)
    assert_close(covariance[0, 0], _obuchowski_by_hand(y, score, cluster))


def test_obuchowski_equals_delong_and_proc_with_one_image_per_patient():
    scores = data("binary_scores")
    ref = expected("roc_auc_youden")["binary_scores"]
    columns = scores[["s1", "s2", "s3", "s4"]]
    auc, covariance = clustered.obuchowski_covariance(scores["y"], columns, np.arange(300))
    delong_auc, delong = delong_covariance(scores["y"], columns)
    assert_close(covariance, delong)
    assert_close(auc, delong_auc)
    assert_close(np.diag(covariance), [ref[s]["delong_var"] for s in columns])
    paired = expected("delong_tests")["paired"]["s1_vs_s2"]
    assert_close(covariance[0, 1], paired["covariance"])
    tests = clustered.clustered_pairwise(scores["y"], columns, np.arange(300))
    assert_close(tests.drop(columns=["model_1", "model_2"]),
                 delong_pairwise(scores["y"], columns).drop(columns=["model_1", "model_2"]))


def test_exact_copies_of_an_image_add_no_information():
    """Each patient's image three times: Obuchowski = DeLong of one copy; deff-Wilson = Wilson."""
    scores = data("binary_scores")
    copies = scores.loc[scores.index.repeat(3)]
    patient = copies.index.to_numpy()
    _, covariance = clustered.obuchowski_covariance(copies["y"], copies["s1"], patient)
    _, single = delong_covariance(scores["y"], scores["s1"])
    assert_close(covariance, single)
    called = (copies["s1"] >= 0.5).to_numpy()
    positive = (copies["y"] == 1).to_numpy()
    low_high = clustered.clustered_proportion_ci(called, positive, patient)
    once = scores["y"] == 1
    reference = proportion_ci(int((scores["s1"][once] >= 0.5).sum()), int(once.sum()))
    assert_close(low_high, reference)


def test_design_effect_ci_is_the_plain_ci_with_one_image_per_patient():
    rng = np.random.default_rng(1)
    success, eligible = rng.random(80) < 0.7, rng.random(80) < 0.8
    for method in ("wilson", "clopper-pearson"):
        plain = proportion_ci(int((success & eligible).sum()), int(eligible.sum()), method=method)
        assert_close(clustered.clustered_proportion_ci(success, eligible, np.arange(80),
                                                       method=method), plain, rel=1e-14)


def test_design_effect_ci_at_zero_uses_the_patients_as_sample_size():
    success = np.zeros(12, dtype=bool)
    patients = np.repeat(range(4), 3)
    low, high = clustered.clustered_proportion_ci(success, np.ones(12, bool), patients)
    assert (low, high) == pytest.approx(proportion_ci(0, 4))


def test_weighted_aucs_equal_the_auc_of_the_resampled_images(small_clusters):
    y, score, cluster = small_clusters
    rng = np.random.default_rng(3)
    weights = clustered._resample_weights(y, cluster, 5, rng)
    got = clustered._weighted_aucs(y, score, weights)
    for row, value in zip(weights, got, strict=True):
        repeat = row.astype(int)
        yy, ss = np.repeat(y, repeat), np.repeat(score, repeat)
        pairs = [_psi(a, b) for a, b in itertools.product(ss[yy == 1], ss[yy == 0])]
        assert value == pytest.approx(np.mean(pairs), abs=1e-12)
    per_cluster = weights[:, np.unique(cluster, return_index=True)[1]]
    assert np.allclose(per_cluster.sum(axis=1), 15)  # whole patients are drawn, 15 per resample


def test_cluster_bootstrap_is_seeded_and_agrees_with_obuchowski(small_clusters):
    y, score, cluster = small_clusters
    first = clustered.clustered_auc_ci(y, score, cluster, n_bootstrap=500, seed=4)
    again = clustered.clustered_auc_ci(y, score, cluster, n_bootstrap=500, seed=4)
    other = clustered.clustered_auc_ci(y, score, cluster, n_bootstrap=500, seed=5)
    assert first == again and first.ci_low != other.ci_low and first.n_bootstrap == 500
    wald = clustered.clustered_auc_ci(y, score, cluster, method="obuchowski")
    assert wald.variance == pytest.approx(_obuchowski_by_hand(y, score, cluster), rel=1e-12)
    assert first.se == pytest.approx(wald.se, rel=0.25)


@pytest.fixture
def images() -> pd.DataFrame:
    """The reference scores as 300 images of 1-4 views per patient, one label per patient."""
    table = data("binary_scores").rename(columns={"y": "label"})
    table = table.sort_values("label", kind="stable").reset_index(drop=True)
    patient = []
    for label, count in table["label"].value_counts(sort=False).sort_index().items():
        numbers = np.repeat(np.arange(count), np.resize([1, 2, 3, 4], count))[:count]
        patient += [f"{'P' if label else 'N'}{k:03d}" for k in numbers]
    table["patient"] = patient
    table["set"] = np.where(table["patient"].map(lambda p: int(p[1:]) % 3 == 0), "test", "train")
    table["prob"] = 1 / (1 + np.exp(-6 * (table["s1"] - 0.5)))
    table.index = pd.Index([f"img{i:03d}" for i in range(300)], name="case_id")
    return table


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_one_image_per_patient_gives_the_same_tables_to_the_digit(images):
    first = images.groupby("patient").head(1).copy()
    first["patient"] = "Q" + first.index
    scores = ["prob", "s1", "s2"]
    plain = evaluate_predictions(first, scores)
    grouped = evaluate_predictions(first, scores, groups="patient", auc_method="bootstrap")
    assert set(grouped) == set(plain)
    for name, table in plain.items():
        if name == "metrics":  # the bootstrap option means the same when not clustered
            table = evaluate_predictions(first, scores, auc_method="bootstrap")["metrics"]
        pd.testing.assert_frame_equal(grouped[name], table, check_exact=True)


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_several_images_per_patient_use_patient_methods_and_add_patient_tables(images):
    tables = evaluate_predictions(images, ["prob", "s1", "s2"], groups="patient",
                                  n_bootstrap=300)
    metrics = tables["metrics"].set_index(["model", "set"])
    test = metrics.loc[("s1", "test")]
    in_test = images[images["set"] == "test"]
    assert test["n_patients"] == in_test["patient"].nunique() < test["n"] == len(in_test)
    assert test["auc_ci_method"] == "cluster bootstrap over patients (300 resamples, seed 0)"
    assert test["proportion_ci_method"] == "wilson, design-effect adjusted for patients"
    delong = tables["delong"]
    assert (delong["method"] == "obuchowski (clustered DeLong)").all()
    rows = images[images["set"] == "test"]
    reference = clustered.clustered_pairwise(rows["label"], rows[["prob", "s1", "s2"]],
                                             rows["patient"])
    assert np.array_equal(delong[delong["set"] == "test"]["p_value"], reference["p_value"])
    assert tables["hosmer_lemeshow"]["note"].str.contains("assumes independent cases").all()
    patient = tables["patient_metrics"].set_index(["model", "set"])
    assert patient.loc[("s1", "test"), "n"] == test["n_patients"] and "n_patients" not in patient
    per_patient = patient_predictions(images, ["s1"], "patient")
    test_patients = per_patient[per_patient["set"] == "test"]
    assert patient.loc[("s1", "test"), "auc"] == auc_ci(test_patients["label"],
                                                        test_patients["s1"]).auc
    assert {"patient_delong", "patient_hosmer_lemeshow", "patient_dca"} <= set(tables)


def test_image_level_cis_are_narrower_than_patient_aware_ones(images):
    copies = images.loc[images.index.repeat(3)].set_axis(
        [f"{c}_{k}" for c in images.index for k in range(3)])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        naive = metrics_table(copies, ["s2"], set_column=None).iloc[0]
        aware = metrics_table(copies, ["s2"], set_column=None, groups="patient",
                              auc_method="obuchowski").iloc[0]
    assert naive["auc"] == aware["auc"]
    naive_width = naive["auc_ci_high"] - naive["auc_ci_low"]
    assert aware["auc_ci_high"] - aware["auc_ci_low"] > 1.5 * naive_width
    assert (aware["sensitivity_ci_high"] - aware["sensitivity_ci_low"]
            > 1.5 * (naive["sensitivity_ci_high"] - naive["sensitivity_ci_low"]))


def test_patient_predictions_mean_or_max_and_errors(images):
    table = patient_predictions(images, ["s1"], "patient")
    assert len(table) == images["patient"].nunique() and table["n_images"].sum() == 300
    first = images[images["patient"] == "P001"]
    assert table.loc["P001", "s1"] == first["s1"].mean()
    assert patient_predictions(images, ["s1"], "patient", how="max").loc["P001", "s1"] == (
        first["s1"].max())
    mixed = images.copy()
    mixed.loc[first.index[0], "label"] = 1 - mixed.loc[first.index[0], "label"]
    with pytest.raises(DlrnError, match=r"patient\(s\) P001 have images labelled both 0 and 1"):
        patient_predictions(mixed, ["s1"], "patient")
    split = images.copy()
    split.loc[first.index[0], "set"] = "train" if first["set"].iloc[0] == "test" else "test"
    with pytest.raises(DlrnError, match="P001 have images in more than one set"):
        metrics_table(split, ["s1"], groups="patient")
    with pytest.raises(DlrnError, match="patient id column 'who' not found"):
        patient_predictions(images, ["s1"], "who")


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_write_evaluation_with_patients_and_out_of_fold_rows(images, tmp_path):
    train = images[images["set"] == "train"]
    oof = train[["prob"]] * 0.9  # stands for the cross-validated probabilities
    written = write_evaluation(images, ["prob", "s1"], tmp_path / "out", groups="patient",
                               oof=oof, n_bootstrap=200)
    out = tmp_path / "out"
    per_patient = pd.read_csv(out / "patient_predictions.csv", index_col="patient_id")
    assert len(per_patient) == images["patient"].nunique()
    for name in ["metrics_apparent", "patient_metrics", "patient_metrics_apparent"]:
        assert (out / f"{name}.csv").is_file()
    figures = {path.stem for path in (out / "figures").glob("*.png")}
    assert {"roc_train_oof", "roc_train_apparent", "roc_test", "patient_roc_train_oof",
            "patient_calibration_test", "delong_test"} <= figures
    metrics = pd.read_csv(out / "patient_metrics.csv")
    oof_row = metrics[(metrics["model"] == "prob") & (metrics["set"] == "train (out-of-fold)")]
    patient_oof = (oof["prob"].groupby(train["patient"]).mean())
    assert oof_row["n"].item() == len(patient_oof)
    assert written["provenance"].is_file()


def test_a_set_with_one_positive_patient_gets_noted_rows_not_a_crash(images):
    small = images[images["set"] == "test"].copy()
    positives = small[small["label"] == 1]["patient"].unique()
    small = small[(small["label"] == 0) | (small["patient"] == positives[0])]
    external = small.assign(set="external").set_axis("x" + small.index)
    external["patient"] = "x" + external["patient"]
    cohort = pd.concat([images, external])
    with pytest.warns(UserWarning, match="1 patient.s. with positive"):
        tables = evaluate_predictions(cohort, ["prob", "s1"], groups="patient",
                                      auc_method="obuchowski")
    row = tables["metrics"].set_index(["model", "set"]).loc[("s1", "external")]
    assert np.isfinite(row["auc"]) and np.isnan(row["auc_ci_low"])
    assert row["note"].startswith("AUC CI undefined: 1 patient(s) with positive")
    delong = tables["delong"].set_index("set").loc["external"]
    assert delong["note"].startswith("DeLong test skipped: 1 patient(s)")
