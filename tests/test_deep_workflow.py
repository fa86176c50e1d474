"""``dlrn train-dl`` / ``dlrn deep-features`` end to end on a tiny PNG cohort."""

from __future__ import annotations

import json
import sys

import numpy as np
import pandas as pd
import pytest
from deep_cohort import one_torch_thread, write_png_cohort  # noqa: F401 (autouse fixture)

from dlrn.cli import main
from dlrn.deep.classifier.features import DeepFeaturePCA

COHORT = ["--label", "malignant", "--patient", "patient", "--no-progress"]
TINY = ["--weights", "none", "--epochs", "2", "--image-size", "32", "--batch-size", "8",
        "--val-fraction", "0.3", "--threads", "1"]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("deep")
    table = write_png_cohort(folder / "cohort", n_cases=40, size=40)
    out = folder / "out"
    code = main(["train-dl", str(table), "--out", str(out), "--backbones",
                 "resnet18,mobilenet_v3_small", *TINY, *COHORT])
    return table, out, code


def test_train_dl_writes_predictions_comparison_features_and_gradcam(run):
    _, out, code = run
    assert code == 0
    predictions = pd.read_csv(out / "predictions.csv", index_col="case_id")
    assert list(predictions.columns) == ["label", "set", "DL-resnet18", "DL-mobilenet_v3_small"]
    assert predictions["DL-resnet18"].between(0, 1).all() and len(predictions) == 40
    chosen = json.loads((out / "chosen.json").read_text())
    comparison = pd.read_csv(out / "comparison.csv")
    assert chosen["chosen"] == comparison.loc[comparison["val_auc"].idxmax(), "backbone"]
    assert list(comparison.columns) == [
        "backbone", "val_auc", "best_epoch", "epochs_run", "train_auc", "test_auc",
        "platt_intercept", "platt_slope", "train_time_s", "images_per_s", "peak_memory_mib",
        "device", "chosen", "crossfit_auc"]
    assert (comparison[["train_time_s", "images_per_s"]] > 0).all().all()
    assert (comparison["device"] == "cpu").all()
    if sys.platform.startswith("linux"):
        assert (comparison["peak_memory_mib"] > 0).all()
    assert "validation AUC" in chosen["rule"]
    features = pd.read_csv(out / "deep_features.csv", index_col="case_id")
    width = {"resnet18": 512, "mobilenet_v3_small": 576}[chosen["chosen"]]
    assert features.shape == (40, width)
    n_train = int((predictions["set"] == "train").sum())
    pca_table = pd.read_csv(out / "deep_features_pca.csv", index_col="case_id")
    assert pca_table.shape == (40, n_train - 1)  # 512 capped by the training cases
    gradcam = pd.read_csv(out / "gradcam_cases.csv")
    assert set(gradcam["category"]) == {"TP", "TN", "FP", "FN"}
    for path in gradcam["path"].dropna():
        assert (out / "gradcam").joinpath(path.split("/")[-1]).is_file()
    assert (out / "evaluation" / "metrics.csv").is_file()
    for backbone in ("resnet18", "mobilenet_v3_small"):
        assert (out / "models" / backbone / "best.safetensors").is_file()


def test_train_dl_cross_fits_the_chosen_backbone(run):
    """The chosen CNN's training rows come from fold CNNs that did not train on them."""
    from dlrn.evaluation.threshold import youden_threshold

    _, out, _ = run
    chosen = json.loads((out / "chosen.json").read_text())
    predictions = pd.read_csv(out / "predictions.csv", index_col="case_id")
    train = predictions.index[predictions["set"] == "train"]
    folds = pd.read_csv(out / "crossfit_folds.csv", index_col="case_id")["fold"]
    assert sorted(folds.index) == sorted(train) and sorted(folds.unique()) == [1, 2, 3, 4, 5]
    oof = pd.read_csv(out / "oof.csv", index_col="case_id")
    column = f"DL-{chosen['chosen']}"
    assert list(oof.columns) == [column] and sorted(oof.index) == sorted(train)
    # the final CNN scores its own training cases otherwise than the fold CNNs do
    assert not np.allclose(oof[column], predictions.loc[oof.index, column])
    labels = predictions.loc[oof.index, "label"]
    assert chosen["gradcam_threshold"] == pytest.approx(youden_threshold(labels, oof[column]))
    assert len(chosen["fold_model_dirs"]) == 5
    fold_table = pd.read_csv(out / "crossfit_folds_table.csv")
    assert fold_table["n_held_out"].sum() == len(train)
    # the fused features (features.csv) are the PCA of the cross-fitted rows, not of the
    # final CNN's deep_features.csv
    fused = pd.read_csv(out / "features.csv", index_col="case_id")
    pca = DeepFeaturePCA.load(out / "pca")
    final = pd.read_csv(out / "deep_features.csv", index_col="case_id")
    assert not np.allclose(fused.loc[train], pca.transform(final.loc[train]), atol=1e-4)


def test_train_dl_in_sample_is_reported_as_optimistic(run, tmp_path, capsys):
    table, _, _ = run
    code = main(["train-dl", str(table), "--out", str(tmp_path / "out"), "--backbones",
                 "resnet18", *TINY, "--epochs", "1", "--fusion-features", "in_sample",
                 *COHORT])
    assert code == 0
    assert "optimistic" in capsys.readouterr().out
    assert not (tmp_path / "out" / "oof.csv").exists()
    assert json.loads((tmp_path / "out" / "chosen.json").read_text())["fold_model_dirs"] == []
    # deep-features --pca: the in_sample PCA was fitted on the model's own features
    code = main(["deep-features", str(table), "--out", str(tmp_path / "f"), "--model",
                 str(tmp_path / "out" / "models" / "resnet18"), "--pca",
                 str(tmp_path / "out" / "pca"), *COHORT])
    assert code == 0 and "PCA applied to the model's features" in capsys.readouterr().out
    reduced = pd.read_csv(tmp_path / "f" / "deep_features_pca.csv", index_col="case_id")
    fused = pd.read_csv(tmp_path / "out" / "features.csv", index_col="case_id")
    np.testing.assert_allclose(reduced, fused.loc[reduced.index, reduced.columns], rtol=1e-4,
                               atol=1e-4 * np.abs(fused.to_numpy()).max())
    provenance = json.loads((tmp_path / "f" / "provenance.json").read_text())
    assert "in_sample" in provenance["pca_applied_to"]


def test_train_dl_can_choose_backbone_and_epoch_on_cross_fitted_auc(run, tmp_path):
    table, _, _ = run
    out = tmp_path / "out"
    code = main(["train-dl", str(table), "--out", str(out), "--backbones",
                 "resnet18,mobilenet_v3_small", *TINY, "--epochs", "3", "--pca-components", "0",
                 "--select-on", "crossfit", "--cv-folds", "2", *COHORT])
    assert code == 0
    comparison = pd.read_csv(out / "comparison.csv").set_index("backbone")
    chosen = json.loads((out / "chosen.json").read_text())
    assert chosen["chosen"] == comparison["crossfit_auc"].idxmax()
    assert comparison["chosen"].sum() == 1 and "out-of-fold AUC" in chosen["rule"]
    oof = pd.read_csv(out / "oof.csv", index_col="case_id")
    assert list(oof.columns) == ["DL-resnet18", "DL-mobilenet_v3_small"]
    assert len(chosen["fold_model_dirs"]) == 2
    # each backbone's epoch: the best pooled out-of-fold AUC of its lockstep fold CNNs
    epochs = pd.read_csv(out / "crossfit_epochs.csv")
    assert list(epochs.columns[:3]) == ["backbone", "epoch", "pooled_oof_auc"]
    for backbone, rows in epochs.groupby("backbone"):  # ties: lower loss, then earlier
        best = rows.sort_values(["pooled_oof_auc", "pooled_oof_loss", "epoch"],
                                ascending=[False, True, True]).iloc[0]
        assert comparison.loc[backbone, "crossfit_epoch"] == best["epoch"]
        assert comparison.loc[backbone, "crossfit_auc"] == pytest.approx(best["pooled_oof_auc"])
        assert chosen["crossfit_epoch"][backbone] == best["epoch"]
        # the final CNN: every training case, no validation split, stopped at that epoch
        card = json.loads((out / "models" / backbone / "model.json").read_text())
        assert (card["best_epoch"], card["n_val"]) == (best["epoch"], 0)
        assert card["n_fit"] == int((pd.read_csv(out / "predictions.csv")["set"]
                                     == "train").sum())
        history = pd.read_csv(out / "models" / backbone / "history.csv")
        assert list(history["epoch"]) == list(range(1, int(best["epoch"]) + 1))
        assert comparison.loc[backbone, "epochs_run"] == best["epoch"]
    assert comparison["val_auc"].isna().all() and chosen["val_auc"][chosen["chosen"]] is None


def test_a_second_run_does_not_overwrite_silently(run, capsys):
    table, out, _ = run
    code = main(["train-dl", str(table), "--out", str(out), "--backbones", "resnet18",
                 *TINY, *COHORT])
    assert code == 2 and "--overwrite" in capsys.readouterr().err


def test_train_dl_uses_a_given_split_column(run, tmp_path):
    table, _, _ = run
    cases = pd.read_csv(table)
    cases["group"] = np.where(cases["patient"] < "p14", "train", "test")
    given = table.parent / "cases_with_split.csv"  # beside the images: relative paths hold
    cases.to_csv(given, index=False)
    code = main(["train-dl", str(given), "--out", str(tmp_path / "out"), "--backbones",
                 "resnet18", *TINY, "--epochs", "1", "--pca-components", "0",
                 "--split-column", "group", *COHORT])
    assert code == 0
    predictions = pd.read_csv(tmp_path / "out" / "predictions.csv", index_col="case_id")
    assert predictions["set"].to_dict() == cases.set_index("case_id")["group"].to_dict()


def test_deep_features_applies_the_trained_model_and_pca(run, tmp_path, capsys):
    """The PCA goes to the features it was fitted on: with fusion_features crossfit the
    fold CNNs' (their mean for these cases, as the DLR's test rows), not the model's."""
    table, out, _ = run
    chosen = json.loads((out / "chosen.json").read_text())
    code = main(["deep-features", str(table), "--out", str(tmp_path / "f"), "--model",
                 str(out / "models" / chosen["chosen"]), "--pca", str(out / "pca"), *COHORT])
    assert code == 0
    assert "PCA applied to the mean features of the 5 fold CNNs" in capsys.readouterr().out
    again = pd.read_csv(tmp_path / "f" / "deep_features.csv", index_col="case_id")
    original = pd.read_csv(out / "deep_features.csv", index_col="case_id")
    np.testing.assert_allclose(again.to_numpy(), original.loc[again.index].to_numpy(),
                               rtol=1e-4, atol=1e-5)
    reduced = pd.read_csv(tmp_path / "f" / "deep_features_pca.csv", index_col="case_id")
    pca = DeepFeaturePCA.load(out / "pca")
    assert list(reduced.columns) == list(pca.get_feature_names_out())
    # the test cases' rows are what the DLR fused for them (features.csv: the fold mean)
    predictions = pd.read_csv(out / "predictions.csv", index_col="case_id")
    test = predictions.index[predictions["set"] == "test"]
    fused = pd.read_csv(out / "features.csv", index_col="case_id")
    scale = np.abs(fused.loc[test].to_numpy()).max()  # tiny networks: tiny components
    np.testing.assert_allclose(reduced.loc[test], fused.loc[test, reduced.columns],
                               rtol=1e-4, atol=1e-4 * scale)
    final = pca.transform(again.loc[test].astype(np.float32))
    assert not np.allclose(reduced.loc[test], final, rtol=0, atol=0.1 * scale)
    provenance = json.loads((tmp_path / "f" / "provenance.json").read_text())
    assert "fusion_features: crossfit" in provenance["pca_applied_to"]
