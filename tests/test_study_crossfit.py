"""The DLR models' CV folds must be the deep stage's cross-fitting folds."""

from __future__ import annotations

from types import SimpleNamespace

import pandas as pd
import pytest

from dlrn.errors import DlrnError
from dlrn.study.stages.deep import check_crossfit_folds

FOLDS = pd.Series([1, 2, 1, 2, 3, 3], index=[f"c{i}" for i in range(6)], name="fold")


def _study(tmp_path, dlr_folds: pd.Series, *, cross_fitted: bool = True) -> SimpleNamespace:
    """Stage folders as the deep and dlr_models stages leave them."""
    deep, result = tmp_path / "deep", tmp_path / "dlr_models" / "result"
    deep.mkdir()
    result.mkdir(parents=True)
    FOLDS.rename_axis("case_id").to_csv(deep / "crossfit_folds.csv")
    if cross_fitted:
        pd.DataFrame({"DL-resnet18": 0.5}, index=FOLDS.index.rename("case_id")).to_csv(
            deep / "oof.csv")
    dlr_folds.rename_axis("case_id").reset_index().to_csv(result / "cv_folds.csv", index=False)
    return SimpleNamespace(stage_dir=lambda name: tmp_path / name)


def test_the_same_folds_in_another_row_order_pass(tmp_path):
    check_crossfit_folds(_study(tmp_path, FOLDS.iloc[::-1]))


def test_other_folds_are_refused_as_leakage(tmp_path):
    swapped = FOLDS.replace({1: 2, 2: 1})
    with pytest.raises(DlrnError, match="differ from the deep stage's cross-fitting folds"):
        check_crossfit_folds(_study(tmp_path, swapped))


def test_a_case_missing_from_the_dlr_models_is_named(tmp_path):
    with pytest.raises(DlrnError, match="cases in one only: c5"):
        check_crossfit_folds(_study(tmp_path, FOLDS.drop("c5")))


def test_in_sample_features_have_no_folds_to_check(tmp_path):
    check_crossfit_folds(_study(tmp_path, FOLDS.replace({1: 2, 2: 1}), cross_fitted=False))


def _config(**dl: str):
    from dlrn.study.config import study_from_dict

    return study_from_dict({"cohort": {"table": "cases.csv", "case_id": "id", "image": "img",
                                       "mask": "roi", "label": "malignant"}, "dl": dl})


def test_cross_fitting_is_the_default_and_in_the_methods_text():
    from dlrn.study.methods import _deep_text

    config = _config()
    assert (config.dl.fusion_features, config.dl.select_on) == ("crossfit", "validation")
    assert "cross-fitted" in _deep_text(config) and "optimistic" not in _deep_text(config)


def test_in_sample_features_are_called_optimistic_in_the_methods_text():
    from dlrn.study.methods import _deep_text

    assert "optimistic" in _deep_text(_config(fusion_features="in_sample"))


def test_choosing_on_cross_fitted_auc_needs_cross_fitted_features():
    from dlrn.errors import ConfigError

    with pytest.raises(ConfigError, match=r"dl\.select_on: crossfit cross-fits every backbone"):
        _config(fusion_features="in_sample", select_on="crossfit")


def test_the_methods_text_says_when_the_epoch_was_chosen_on_cross_fitted_auc():
    from dlrn.study.methods import _deep_text

    text = _deep_text(_config(select_on="crossfit"))
    assert "number of training epochs were chosen by the pooled out-of-fold AUC" in text
    assert "no inner validation split" in text
    assert "number of training epochs" not in _deep_text(_config())
