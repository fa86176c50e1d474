"""DeepFeaturePCA: fitted on training rows only, capped honestly, saved without pickle."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone

from dlrn.deep.classifier.features import DeepFeaturePCA
from dlrn.errors import DlrnError

RNG = np.random.default_rng(0)
FEATURES = pd.DataFrame(RNG.normal(size=(30, 12)) @ RNG.normal(size=(12, 40)),
                        index=pd.Index([f"c{i}" for i in range(30)], name="case_id"),
                        columns=[f"DL_densenet121_{i}" for i in range(40)])
TRAIN, TEST = FEATURES.index[:20], FEATURES.index[20:]


def test_pca_depends_on_training_rows_only():
    first = DeepFeaturePCA(5).fit(FEATURES.loc[TRAIN])
    changed = FEATURES.copy()
    changed.loc[TEST] = changed.loc[TEST] * 10 + 3
    second = DeepFeaturePCA(5).fit(changed.loc[TRAIN])
    np.testing.assert_allclose(first.transform(FEATURES.loc[TRAIN]),
                               second.transform(changed.loc[TRAIN]))
    scores = first.transform(FEATURES)
    assert scores.shape == (30, 5) and list(scores.index) == list(FEATURES.index)
    assert list(scores.columns) == [f"DL_PC{i}" for i in range(1, 6)]


def test_n_components_capped_by_training_cases_with_a_reason():
    with pytest.warns(UserWarning, match=r"512 reduced to 19.*20 training cases.*leakage"):
        pca = DeepFeaturePCA().fit(FEATURES.loc[TRAIN])
    assert pca.n_components_ == 19
    assert pca.get_params() == clone(pca).get_params()  # sklearn-style: no work in __init__


def test_save_and_load_without_pickle(tmp_path):
    pca = DeepFeaturePCA(4).fit(FEATURES.loc[TRAIN])
    pca.save(tmp_path / "pca")
    with np.load(tmp_path / "pca" / "pca.npz", allow_pickle=False) as arrays:
        assert arrays["components"].shape == (4, 40)
    again = DeepFeaturePCA.load(tmp_path / "pca")
    pd.testing.assert_frame_equal(again.transform(FEATURES), pca.transform(FEATURES))


def test_other_columns_are_refused():
    pca = DeepFeaturePCA(4).fit(FEATURES.loc[TRAIN])
    with pytest.raises(DlrnError, match="columns differ"):
        pca.transform(FEATURES.rename(columns=lambda name: name.replace("densenet", "vgg")))
    with pytest.raises(DlrnError, match="NaN"):
        pca.transform(FEATURES.where(FEATURES > 0))
