"""ClinicalEncoder: rules learned on training rows, applied unchanged, reported, saved as JSON."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline

from dlrn.clinical import ClinicalEncoder, methods_text
from dlrn.errors import DlrnError

ORDER = ["2", "3", "4a", "4b", "4c", "5"]
SPEC = {"age": "continuous", "tissue": "categorical",
        "margin": {"type": "multilabel"}, "birads": {"type": "ordinal", "order": ORDER}}


def _training() -> pd.DataFrame:
    """40 cases: 4 without age; rare: tissue 'mixed' (2), 'granular' (3), tokens 'spiculated'
    (3), 'microlobulated' (2), together 5 each: merged into 'other'."""
    tissue = ["dense"] * 20 + ["fatty"] * 15 + ["mixed"] * 2 + ["granular"] * 3
    margin = (["angular&indistinct"] * 12 + ["circumscribed"] * 13 + ["angular"] * 5
              + ["indistinct&spiculated"] * 3 + ["indistinct&microlobulated"] * 2
              + ["indistinct"] * 5)
    birads = (ORDER[1:] * 8)[:40]
    age = np.arange(40, 80, dtype=float)
    age[[0, 5, 9, 30]] = np.nan
    return pd.DataFrame({"age": age, "tissue": tissue, "margin": margin, "birads": birads},
                        index=[f"tr{i}" for i in range(40)])


def _test_rows() -> pd.DataFrame:
    return pd.DataFrame({"age": [np.nan, 200.0, 180.0],
                         "tissue": ["heterogeneous", "fatty", "dense"],
                         "margin": ["angular&lobulated", "circumscribed", np.nan],
                         "birads": ["4c", "2", "5"]},
                        index=["te1", "te2", "te3"])


@pytest.fixture(scope="module")
def encoder() -> ClinicalEncoder:
    return ClinicalEncoder(SPEC).fit(_training())


def test_terms_and_training_rules(encoder):
    assert encoder.terms_ == {
        "age": ["age", "age[missing]"],
        "tissue": ["tissue[fatty]", "tissue[other]"],  # 'dense' is the reference
        "margin": ["margin[angular]", "margin[circumscribed]", "margin[indistinct]",
                   "margin[other]"],
        "birads": ["birads"]}
    assert list(encoder.get_feature_names_out()) == [
        t for terms in encoder.terms_.values() for t in terms]
    assert encoder.terms_of(["birads", "age"]) == ["birads", "age", "age[missing]"]
    with pytest.raises(DlrnError, match=r"no column\(s\) \['size'\]"):
        encoder.terms_of(["size"])
    training = _training()
    encoded = encoder.transform(training)
    median = training["age"].median()
    assert encoded.loc["tr0", ["age", "age[missing]"]].tolist() == [median, 1.0]
    assert encoded.loc["tr1", ["age", "age[missing]"]].tolist() == [41.0, 0.0]
    assert encoded.loc["tr39", "tissue[other]"] == 1.0  # 'mixed' (2 cases) merged
    assert encoded.loc["tr0", ["margin[angular]", "margin[indistinct]", "margin[other]"]
                       ].tolist() == [1.0, 1.0, 0.0]
    assert encoded.loc["tr32", ["margin[indistinct]", "margin[other]"]].tolist() == [1.0, 1.0]
    assert encoded.loc["tr0", "birads"] == ORDER.index(training.loc["tr0", "birads"]) + 1
    assert ("tissue: levels held by fewer than 5 training cases merged into 'other': "
            "granular (3), mixed (2)") in encoder.notes_
    assert any(note.startswith("age: no value for 4 of 40 training cases (tr0, tr5, tr9, tr30)")
               for note in encoder.notes_)


def test_test_rows_use_training_rules_and_are_noted(encoder):
    test = _test_rows()
    encoded = encoder.transform(test)
    median = _training()["age"].median()
    assert encoded.loc["te1", ["age", "age[missing]"]].tolist() == [median, 1.0]
    assert encoded.loc["te2", "age"] == 200.0
    assert encoded.loc["te1", ["tissue[fatty]", "tissue[other]"]].tolist() == [0.0, 1.0]
    assert encoded.loc["te1", ["margin[angular]", "margin[other]"]].tolist() == [1.0, 1.0]
    assert encoded.loc["te1", "birads"] == 5.0  # 4c: in the order though unseen in training
    notes = encoder.transform_notes(test, where="test")
    assert f"test: age: no value for 1 case(s) (te1); imputed with the training median " \
           f"({median:g})" in notes
    assert ("test: tissue: a value the training set never had for 1 case(s): te1 "
            "(heterogeneous); mapped to 'other'") in notes
    assert ("test: margin: a value the training set never had for 1 case(s): te1 (lobulated); "
            "mapped to 'other'") in notes
    assert any(n.startswith("test: margin: no value for 1 case(s) (te3)") for n in notes)


def test_a_value_present_only_in_test_never_changes_a_fitted_level_or_median(encoder):
    before = json.dumps(encoder.to_dict(), sort_keys=True)
    training = _training()
    expected = encoder.transform(training)
    encoder.transform(_test_rows())
    assert json.dumps(encoder.to_dict(), sort_keys=True) == before
    pd.testing.assert_frame_equal(encoder.transform(training), expected)
    # refitting with the test rows would change the median and the levels: the check is real
    together = ClinicalEncoder(SPEC).fit(pd.concat([training, _test_rows()]))
    assert together.state_["age"]["fill"] != encoder.state_["age"]["fill"]
    assert "heterogeneous" in together.state_["tissue"]["levels"]
    assert "heterogeneous" not in encoder.state_["tissue"]["levels"]


def test_unseen_level_without_other_follows_the_missing_rule():
    training = _training().assign(tissue=["dense"] * 20 + ["fatty"] * 20)
    test = _test_rows()
    imputed = ClinicalEncoder(SPEC).fit(training)
    assert imputed.terms_["tissue"] == ["tissue[fatty]"]
    assert imputed.transform(test).loc["te1", "tissue[fatty]"] == 0.0  # most frequent: dense
    assert any("te1 (heterogeneous); treated as missing (tissue has no 'other') and imputed "
               "with the most frequent training level (dense)" in n
               for n in imputed.transform_notes(test))
    spec = {**SPEC, "tissue": {"type": "categorical", "missing": "exclude"}}
    excluding = ClinicalEncoder(spec).fit(training)
    excluded = excluding.exclusions(test)
    assert excluded.to_dict(orient="records") == [{
        "case": "te1", "column": "tissue",
        "reason": "'tissue' is 'heterogeneous', a value the training set never had "
                  "(cohort.missing: exclude)"}]
    with pytest.raises(DlrnError, match=r"1 case\(s\) must be excluded.*te1"):
        excluding.transform(test)
    assert excluding.transform(test.drop(index="te1")).shape == (2, 8)
    stopping = ClinicalEncoder({**SPEC, "tissue": {"type": "categorical", "missing": "stop"}}
                               ).fit(training)
    with pytest.raises(DlrnError, match=r"'tissue' cannot be encoded for 1 case\(s\) \(te1: "
                                        r".*heterogeneous.*cohort.missing: impute or exclude"):
        stopping.transform(test)


def test_exclude_leaves_out_training_cases_and_says_why():
    encoder = ClinicalEncoder(SPEC, missing="exclude").fit(_training())
    assert encoder.excluded_["case"].tolist() == ["tr0", "tr5", "tr9", "tr30"]
    assert encoder.terms_["age"] == ["age"]  # no missing value left, so no indicator
    assert encoder.state_["age"]["fill"] == _training()["age"].drop(
        index=["tr0", "tr5", "tr9", "tr30"]).median()
    assert any(n.startswith("age: 4 training case(s) without a value were excluded "
                            "(cohort.missing: exclude): tr0, tr5, tr9, tr30")
               for n in encoder.notes_)
    assert "4 training case(s) with a missing value in age were excluded" in methods_text(encoder)


def test_stop_names_the_column_cases_and_the_setting():
    with pytest.raises(DlrnError, match=r"'age' is missing for 4 training case\(s\): tr0, tr5, "
                                        r"tr9, tr30; set cohort.missing: impute"):
        ClinicalEncoder(SPEC, missing="stop").fit(_training())


def test_global_missing_rule_can_be_overridden_per_column():
    spec = {**SPEC, "age": {"type": "continuous", "missing": "impute"}}
    encoder = ClinicalEncoder(spec, missing="stop").fit(_training())
    assert encoder.terms_["age"] == ["age", "age[missing]"]


def test_min_level_count_and_separator_are_settable():
    training = _training().assign(margin=lambda t: t["margin"].str.replace("&", "|"))
    encoder = ClinicalEncoder({"margin": {"type": "multilabel", "separator": "|"},
                               "tissue": "categorical"}, min_level_count=2).fit(training)
    assert encoder.terms_["margin"] == ["margin[angular]", "margin[circumscribed]",
                                        "margin[indistinct]", "margin[microlobulated]",
                                        "margin[spiculated]"]
    assert encoder.terms_["tissue"] == ["tissue[fatty]", "tissue[granular]", "tissue[mixed]"]


def test_rare_levels_too_few_for_other_count_as_the_most_frequent_or_are_ignored():
    training = _training().assign(
        tissue=["dense"] * 20 + ["fatty"] * 18 + ["mixed"] * 2,
        margin=lambda t: t["margin"].replace("indistinct&microlobulated", "indistinct"))
    encoder = ClinicalEncoder(SPEC).fit(training)
    assert encoder.terms_["tissue"] == ["tissue[fatty]"]
    assert encoder.terms_["margin"] == ["margin[angular]", "margin[circumscribed]",
                                        "margin[indistinct]"]
    encoded = encoder.transform(training)
    assert encoded.loc["tr38", "tissue[fatty]"] == 0.0  # 'mixed' counts as 'dense'
    assert encoded.loc["tr30", "margin[indistinct]"] == 1.0  # 'spiculated' ignored
    assert ("tissue: levels held by fewer than 5 training cases, too few even together for "
            "an 'other' term, count as the most frequent level (dense): mixed (2)"
            ) in encoder.notes_
    assert ("margin: tokens held by fewer than 5 training cases, too few even together for an "
            "'other' term, are ignored: spiculated (3)") in encoder.notes_
    new = pd.DataFrame({"age": [50.0, 50.0], "tissue": ["dense", "dense"],
                        "margin": ["angular&lobulated", "lobulated"], "birads": ["3", "3"]},
                       index=["n1", "n2"])
    encoded = encoder.transform(new)
    assert encoded.loc["n1", ["margin[angular]", "margin[indistinct]"]].tolist() == [1.0, 0.0]
    notes = encoder.transform_notes(new)
    assert ("margin: a value the training set never had for 1 case(s): n2 (lobulated); treated "
            "as missing (margin has no 'other') and imputed with the most frequent training "
            "value of each token") in notes[0]
    assert notes[1] == ("margin: a value the training set never had for 1 case(s): n1 "
                        "(lobulated); those tokens are ignored (margin has no 'other'); the "
                        "case's other tokens count")
    assert ("were not given one (tissue: mixed, counted as dense; margin: spiculated, "
            "ignored)") in methods_text(encoder)
    restored = ClinicalEncoder.from_dict(json.loads(json.dumps(encoder.to_dict())))
    for table in (training, new):
        pd.testing.assert_frame_equal(restored.transform(table), encoder.transform(table))


def test_json_round_trip_gives_identical_transforms(encoder):
    saved = json.loads(json.dumps(encoder.to_dict()))
    restored = ClinicalEncoder.from_dict(saved)
    for table in (_training(), _test_rows()):
        pd.testing.assert_frame_equal(restored.transform(table), encoder.transform(table))
    assert restored.transform_notes(_test_rows()) == encoder.transform_notes(_test_rows())
    assert restored.notes_ == encoder.notes_
    with pytest.raises(DlrnError, match="format"):
        ClinicalEncoder.from_dict({"format": "pickle"})


def test_is_a_scikit_learn_transformer(encoder):
    training = _training()
    y = np.r_[np.zeros(20, int), np.ones(20, int)]
    model = make_pipeline(clone(encoder), LogisticRegression(max_iter=5000)).fit(training, y)
    assert model.predict_proba(_test_rows()).shape == (3, 2)


@pytest.mark.parametrize(("columns", "table", "message"), [
    ({"age": "continuous"}, pd.DataFrame({"age": [np.nan] * 3}, index=["a", "b", "c"]),
     r"'age' is empty in all 3 training case\(s\)"),
    ({"age": "numeric"}, pd.DataFrame({"age": [1.0]}),
     r"cohort.clinical.age: unknown column type 'numeric'; choose one of \['continuous', "),
    ({"birads": {"type": "ordinal", "order": ["3", "4"]}},
     pd.DataFrame({"birads": ["3", "4", "4b"]}, index=["a", "b", "c"]),
     r"'birads' has value\(s\) \['4b'\] that are not in its order \['3', '4'\] for case\(s\) c"),
    ({"margin": {"type": "multilabel", "separator": ";"}},
     pd.DataFrame({"margin": ["a&b", "a"]}),
     r"'margin': the separator ';' occurs in none of its 2 training values"),
    ({"age": {"type": "continuous", "missing": "drop"}}, pd.DataFrame({"age": [1.0]}),
     r"missing is 'drop'"),
    ({"age": "continuous"}, pd.DataFrame({"age": ["51", "old"]}, index=["a", "b"]),
     r"'age' holds non-numeric value\(s\) \['old'\] for case\(s\) b"),
    ({"sex": "categorical"}, pd.DataFrame({"sex": ["m"] * 6}), r"'sex' takes one value"),
    ({"sex": "categorical"}, pd.DataFrame({"sex": ["m", "f", "f"]}),
     r"categorical column 'sex': no level or token is held by 5 training cases"),
    ({"shape": "categorical"}, pd.DataFrame({"age": [1.0]}), r"\['shape'\] not found"),
])
def test_bad_input_is_a_clear_error(columns, table, message):
    with pytest.raises(DlrnError, match=message):
        ClinicalEncoder(columns).fit(table)


def test_methods_text_says_what_was_done(encoder):
    text = methods_text(encoder)
    median = _training()["age"].median()
    assert f"age (4 of 40; the training median ({median:g}))" in text
    assert ("merged into 'other' (tissue: granular, mixed; margin: microlobulated, "
            "spiculated)") in text
    assert "margin, split at '&': angular, circumscribed, indistinct" in text
    assert "birads: 2 < 3 < 4a < 4b < 4c < 5" in text
    assert "tissue: dense" in text


def test_the_encoder_says_when_a_token_duplicates_another_column_s_level():
    rng = np.random.default_rng(5)
    calcified = rng.random(60) < 0.3
    cases = pd.DataFrame({
        "calcification": np.where(calcified, "present", "absent"),
        "findings": np.where(calcified, "calcified&mass", "mass"),  # the token repeats it
        "age": rng.normal(50, 10, 60)})
    encoder = ClinicalEncoder({"calcification": "categorical",
                               "findings": {"type": "multilabel"}, "age": "continuous"}).fit(cases)
    assert encoder.notes_ == [
        "findings: findings[calcified] = calcification[present] in every training case: it "
        "duplicates other terms, so findings[calcified] is aliased and the regressions give "
        "it no estimate of its own (NA, as R's glm does)",
        "findings: findings[mass] = (Intercept) in every training case: it is the same for "
        "every training case, so findings[mass] is aliased and the regressions give it no "
        "estimate of its own (NA, as R's glm does)"]
