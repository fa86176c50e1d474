"""The synthetic cohort: deterministic, well-formed, and realistically (not perfectly) separable."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import cross_val_predict

from dlrn.errors import DlrnError
from dlrn.synthetic import CLINICAL_COLUMNS, make_synthetic_cohort

EXPECTED_COLUMNS = ["case_id", "patient_id", "image", "mask", "mask_reader2", "label",
                    *CLINICAL_COLUMNS]


def file_digests(folder: Path) -> dict[str, str]:
    return {
        str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*")) if path.is_file()
    }


def test_same_seed_gives_byte_identical_files(tmp_path: Path) -> None:
    first = make_synthetic_cohort(tmp_path / "a", n_cases=12, seed=3, image_size=(64, 64))
    second = make_synthetic_cohort(tmp_path / "b", n_cases=12, seed=3, image_size=(64, 64))
    other = make_synthetic_cohort(tmp_path / "c", n_cases=12, seed=4, image_size=(64, 64))
    digests = file_digests(first.parent)
    assert len(digests) == 1 + 3 * 12
    assert digests == file_digests(second.parent)
    assert digests["images/syn0001.png"] != file_digests(other.parent)["images/syn0001.png"]


def test_table_and_files_are_well_formed(synthetic_cohort_csv: Path) -> None:
    table = pd.read_csv(synthetic_cohort_csv)
    folder = synthetic_cohort_csv.parent
    assert list(table.columns) == EXPECTED_COLUMNS
    assert len(table) == 60 and table["case_id"].is_unique
    assert 0.25 <= table["label"].mean() <= 0.32
    assert table["patient_id"].value_counts().max() == 2  # some patients have two images
    assert table["patient_id"].nunique() < len(table)
    two_views = table[table["patient_id"].duplicated(keep=False)]
    assert (two_views.groupby("patient_id")["label"].nunique() == 1).all()
    image = np.asarray(Image.open(folder / table.loc[0, "image"]))
    mask = np.asarray(Image.open(folder / table.loc[0, "mask"]))
    assert image.shape == mask.shape == (128, 128) and image.dtype == np.uint8
    assert set(np.unique(mask)) == {0, 255}
    assert set(table["shape"]) == {"regular", "irregular"}
    assert set(table["margin"]) == {"well-defined", "poorly-defined"}
    assert set(table["posterior_enhancement"]) == {"present", "absent"}
    assert table["max_diameter_mm"].between(5, 40).all()


def test_second_reader_disagrees_a_little(synthetic_cohort_csv: Path) -> None:
    table = pd.read_csv(synthetic_cohort_csv)
    folder = synthetic_cohort_csv.parent
    dice = []
    for first, second in table[["mask", "mask_reader2"]].itertuples(index=False):
        a = np.asarray(Image.open(folder / first)) > 0
        b = np.asarray(Image.open(folder / second)) > 0
        dice.append(2 * (a & b).sum() / (a.sum() + b.sum()))
    assert 0.8 < np.median(dice) < 0.99
    assert max(dice) < 1.0


def test_reader2_fraction_leaves_blank_cells(tmp_path: Path) -> None:
    path = make_synthetic_cohort(tmp_path, n_cases=20, image_size=(64, 64), reader2_fraction=0.5)
    table = pd.read_csv(path)
    assert 0 < table["mask_reader2"].isna().sum() < 20


def test_classes_overlap_like_real_lesions(tmp_path: Path) -> None:
    """Simple image and clinical models separate the classes well, but not perfectly."""
    path = make_synthetic_cohort(tmp_path, n_cases=150, seed=1, image_size=(64, 64))
    table = pd.read_csv(path)
    labels = table["label"].to_numpy()
    image_features = np.array([_lesion_features(path.parent, image, mask)
                               for image, mask in table[["image", "mask"]].itertuples(index=False)])
    clinical = pd.get_dummies(
        table[["shape", "margin", "posterior_enhancement", "echogenicity", "calcification"]],
        drop_first=True,
    ).astype(float)
    for features in (image_features, clinical.to_numpy()):
        auc = _cross_validated_auc(features, labels)
        assert 0.7 < auc < 0.95
    irregular = table["shape"] == "irregular"
    assert labels[irregular].mean() > 2 * labels[~irregular].mean()
    assert roc_auc_score(labels, table["posterior_enhancement"] == "absent") > 0.65
    assert abs(roc_auc_score(labels, table["sex"] == "male") - 0.5) < 0.15


def _lesion_features(folder: Path, image_path: str, mask_path: str) -> list[float]:
    image = np.asarray(Image.open(folder / image_path), float)
    mask = np.asarray(Image.open(folder / mask_path)) > 0
    rows, cols = np.nonzero(mask)
    below = image[rows.max() + 1 :, cols.min() : cols.max() + 1].mean()
    perimeter = (mask ^ np.roll(mask, 1, 0)).sum() + (mask ^ np.roll(mask, 1, 1)).sum()
    return [image[mask].mean(), image[mask].std(), below, perimeter**2 / mask.sum(),
            np.ptp(rows) / np.ptp(cols)]


def _cross_validated_auc(features: np.ndarray, labels: np.ndarray) -> float:
    scaled = (features - features.mean(0)) / features.std(0)
    scores = cross_val_predict(LogisticRegression(), scaled, labels, cv=5, method="predict_proba")
    return roc_auc_score(labels, scores[:, 1])


def test_refuses_to_overwrite(tmp_path: Path) -> None:
    make_synthetic_cohort(tmp_path, n_cases=4, image_size=(48, 48))
    with pytest.raises(DlrnError, match="already exists"):
        make_synthetic_cohort(tmp_path, n_cases=4, image_size=(48, 48))
    make_synthetic_cohort(tmp_path, n_cases=4, image_size=(48, 48), overwrite=True)


@pytest.mark.parametrize(
    ("setting", "message"),
    [({"n_cases": 1}, "n_cases"), ({"image_size": (32, 32)}, "image_size"),
     ({"prevalence": 1.0}, "prevalence"), ({"reader2_fraction": 2.0}, "reader2_fraction")],
)
def test_bad_settings_are_named(tmp_path: Path, setting: dict, message: str) -> None:
    with pytest.raises(DlrnError, match=message):
        make_synthetic_cohort(tmp_path, **setting)


MESSY_SPEC = {"age": "continuous", "shape": "categorical",
              "margin_lexicon": {"type": "multilabel"}, "tissue_composition": "categorical"}


@pytest.fixture(scope="module")
def messy_cohorts(tmp_path_factory) -> tuple[pd.DataFrame, pd.DataFrame]:
    folder = tmp_path_factory.mktemp("messy")
    internal = make_synthetic_cohort(folder / "internal", n_cases=160, seed=2,
                                     image_size=(48, 48), messy=True)
    external = make_synthetic_cohort(folder / "external", n_cases=60, seed=9,
                                     image_size=(48, 48), messy=True, external=True)
    return pd.read_csv(internal), pd.read_csv(external)


def test_messy_cohort_has_the_traits_of_a_hospital_export(messy_cohorts) -> None:
    from dlrn.synthetic import EXTERNAL_ONLY_LEVEL, RARE_LEVEL

    internal, external = messy_cohorts
    assert list(internal.columns) == [*EXPECTED_COLUMNS, "margin_lexicon", "tissue_composition"]
    assert internal["age"].isna().sum() == 16 and external["age"].isna().sum() == 6
    assert internal["margin_lexicon"].str.contains("&").sum() >= 10
    assert 1 <= (internal["tissue_composition"] == RARE_LEVEL).sum() <= 3
    assert EXTERNAL_ONLY_LEVEL not in set(internal["tissue_composition"])
    assert (external["tissue_composition"] == EXTERNAL_ONLY_LEVEL).sum() == 3
    angular = internal["margin_lexicon"].str.contains("angular")
    assert internal.loc[angular, "label"].mean() > 2 * internal.loc[~angular, "label"].mean()


def test_messy_cohort_goes_through_the_clinical_encoder(messy_cohorts) -> None:
    from dlrn.clinical import ClinicalEncoder, logistic_analysis
    from dlrn.synthetic import EXTERNAL_ONLY_LEVEL

    internal, external = messy_cohorts
    internal, external = internal.set_index("case_id"), external.set_index("case_id")
    encoder = ClinicalEncoder(MESSY_SPEC).fit(internal)
    assert "age[missing]" in encoder.terms_["age"]
    # the rare level (1 to 3 cases) is too rare even for an 'other' term
    assert "tissue_composition[other]" not in encoder.terms_["tissue_composition"]
    assert any(note.startswith("tissue_composition: levels held by fewer than 5 training "
                               "cases, too few even together") for note in encoder.notes_)
    assert encoder.transform(external).notna().all().all()
    only_external = external.index[external["tissue_composition"] == EXTERNAL_ONLY_LEVEL]
    notes = encoder.transform_notes(external, where="external")
    assert any(all(case in note for case in only_external) and "treated as missing" in note
               for note in notes)
    result = logistic_analysis(internal, "label", list(MESSY_SPEC), encoder=encoder)
    assert "margin_lexicon" in result.selected


def test_external_needs_messy(tmp_path: Path) -> None:
    with pytest.raises(DlrnError, match="messy=True"):
        make_synthetic_cohort(tmp_path, n_cases=4, image_size=(48, 48), external=True)
