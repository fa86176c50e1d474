"""Every new case gets a number or a note, over many random splits of a descriptor table.

``dlrn predict`` rebuilds the study's clinical encoder and nomogram from their JSON and
encodes new cases with the training rules. A rule that could leave a probability or a
points value empty (a level seen only in test, a rare level wholly in test, a marker such
as "not available", a blank where training had none) must show up on some split of a
table that has them all; so the rules run here on 30 random splits, through the same
JSON round trips as the bundle.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dlrn.clinical import ClinicalEncoder, LogisticModel
from dlrn.clinical_predictors import clinical_features, encoder_for, nomogram_columns
from dlrn.nomogram import Nomogram
from dlrn.splitting import split_cohort
from dlrn.stacking import RAD_SCORE, nomogram_inputs
from dlrn.synthetic_descriptors import DESCRIPTOR_COLUMNS, NOT_AVAILABLE, descriptor_table

SPLITS = 30


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    rng = np.random.default_rng(18)
    labels = pd.Series((rng.random(253) < 0.36).astype(int),
                       index=[f"case{i:03d}" for i in range(253)], name="label")
    cases = descriptor_table(labels, seed=3).assign(label=labels)
    cases["patient_id"] = cases.index
    cases[RAD_SCORE] = np.clip(0.5 + 0.25 * (2 * labels - 1) + rng.normal(0, 0.2, 253), 0, 1)
    return cases


def _parts(value: object, column: str) -> set[str]:
    """A value's tokens (multilabel columns) or the value itself."""
    if isinstance(DESCRIPTOR_COLUMNS[column], dict):
        return {token.strip() for token in str(value).split("&")}
    return {str(value)}


def _unusual(test: pd.DataFrame, training: pd.DataFrame) -> pd.Index:
    """Test cases with a blank, a marker, or a level or token unseen in training."""
    flagged = pd.Series(False, index=test.index)
    for column in DESCRIPTOR_COLUMNS:
        seen = set().union(*(_parts(v, column) for v in training[column].dropna()))
        values = test[column]
        unseen = values.map(lambda v, c=column, known=seen: pd.notna(v)
                            and v != NOT_AVAILABLE and DESCRIPTOR_COLUMNS[c] != "continuous"
                            and not _parts(v, c) <= known)
        flagged |= values.isna() | (values == NOT_AVAILABLE) | unseen
    return test.index[flagged]


@pytest.mark.parametrize("seed", range(SPLITS))
def test_every_test_case_gets_numbers_and_each_unusual_value_a_note(table, seed):
    sets = split_cohort(table, seed=seed)
    training, test = table[sets == "train"], table[sets == "test"]
    columns = list(DESCRIPTOR_COLUMNS)
    saved = ClinicalEncoder(DESCRIPTOR_COLUMNS).fit(training).to_dict()  # the bundle's JSON
    features = clinical_features(saved, columns, training)
    model = LogisticModel().fit(features, training["label"])
    probability = model.predict_proba(clinical_features(saved, columns, test))[:, 1]
    assert np.isfinite(probability).all()

    X = nomogram_inputs(table, table[RAD_SCORE], columns, RAD_SCORE)
    nomogram = Nomogram(columns=nomogram_columns(saved, columns, RAD_SCORE), missing="impute",
                        min_level_count=5).fit(X.loc[training.index], training["label"])
    assert np.isfinite([v for scale in nomogram.scales_
                        for v in (scale.coefficient.values()
                                  if isinstance(scale.coefficient, dict)
                                  else [scale.coefficient])]).all()
    points = Nomogram.from_dict(nomogram.to_dict()).points(X.loc[test.index])
    assert points.notna().all().all() and np.isfinite(points.to_numpy()).all()

    encoder = encoder_for(saved, columns)
    noted = {case for case in test.index if encoder.transform_notes(test.loc[[case]])}
    assert set(_unusual(test, training)) <= noted
