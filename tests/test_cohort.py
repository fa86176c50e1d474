"""Cohort table reading, every validation rule, exclusion, and the grouped stratified split."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk
from PIL import Image

from dlrn.cohort import (
    CohortColumns,
    CohortValidationError,
    max_diameter_mm,
    read_cohort,
    split_cohort,
)
from dlrn.errors import DlrnError

SIZE = (24, 32)  # rows, cols


def lesion_mask(side: int = 8, size: tuple[int, int] = SIZE) -> np.ndarray:
    mask = np.zeros(size, np.uint8)
    mask[4 : 4 + side, 6 : 6 + side] = 255
    return mask


def write_png(path: Path, pixels: np.ndarray) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)
    return str(path.relative_to(path.parent.parent))


def write_case(folder: Path, case_id: str, *, mask: np.ndarray | None = None) -> tuple[str, str]:
    """A PNG image and its mask under ``folder``; returns their table paths."""
    rng = np.random.default_rng(abs(hash(case_id)) % 2**32)
    image = rng.integers(0, 256, SIZE, dtype=np.uint8)
    return (
        write_png(folder / "images" / f"{case_id}.png", image),
        write_png(folder / "masks" / f"{case_id}.png", lesion_mask() if mask is None else mask),
    )


def make_table(folder: Path, n_cases: int = 6, **extra_columns) -> pd.DataFrame:
    rows = []
    for i in range(n_cases):
        image, mask = write_case(folder, f"c{i}")
        rows.append({"case_id": f"c{i}", "image": image, "mask": mask, "label": i % 2,
                     "age": 40 + i})
    table = pd.DataFrame(rows)
    for name, values in extra_columns.items():
        table[name] = values
    return table


def save(table: pd.DataFrame, folder: Path, name: str = "cases.csv") -> Path:
    path = folder / name
    if path.suffix == ".xlsx":
        table.to_excel(path, index=False)
    else:
        table.to_csv(path, index=False, sep="\t" if path.suffix == ".tsv" else ",")
    return path


DEFAULT_COLUMNS = CohortColumns()


def problems_of(path: Path, columns: CohortColumns = DEFAULT_COLUMNS, **options) -> pd.DataFrame:
    with pytest.raises(CohortValidationError) as caught:
        read_cohort(path, columns, progress=False, **options)
    return caught.value.problems


# --- reading --------------------------------------------------------------------------------


def test_valid_table_gives_canonical_cases(tmp_path: Path) -> None:
    cohort = read_cohort(save(make_table(tmp_path), tmp_path), progress=False)
    cases = cohort.cases
    assert cases.index.name == "case_id"
    assert list(cases.index) == [f"c{i}" for i in range(6)]
    assert list(cases.columns) == ["image", "mask", "label", "patient_id", "age"]
    assert Path(cases.loc["c0", "image"]).is_absolute()
    assert Path(cases.loc["c0", "mask"]) == tmp_path / "masks" / "c0.png"
    assert cases["label"].dtype == int and list(cases["label"]) == [0, 1, 0, 1, 0, 1]
    assert list(cases["patient_id"]) == list(cases.index)  # no patient column
    assert cohort.clinical == ["age"]
    assert cohort.exclusions.empty
    assert cohort.source == tmp_path / "cases.csv"


@pytest.mark.parametrize("name", ["cases.xlsx", "cases.tsv"])
def test_excel_and_tsv_tables(tmp_path: Path, name: str) -> None:
    cohort = read_cohort(save(make_table(tmp_path), tmp_path, name), progress=False)
    assert len(cohort.cases) == 6
    assert cohort.cases["age"].tolist() == [40, 41, 42, 43, 44, 45]


def test_ids_stay_text_and_custom_column_names(tmp_path: Path) -> None:
    table = make_table(tmp_path, 4).rename(
        columns={"case_id": "ID", "image": "us", "mask": "roi", "label": "malignant"}
    )
    table["ID"] = ["007", "008", "009", "010"]
    table["pid"] = ["0001", "0001", "0002", "0003"]
    columns = CohortColumns(case_id="ID", image="us", mask="roi", label="malignant",
                            patient="pid")
    cohort = read_cohort(save(table, tmp_path), columns, progress=False)
    assert list(cohort.cases.index) == ["007", "008", "009", "010"]
    assert list(cohort.cases["patient_id"]) == ["0001", "0001", "0002", "0003"]
    assert cohort.clinical == ["age"]


def test_patient_id_column_is_used_when_present(tmp_path: Path) -> None:
    table = make_table(tmp_path, 4, patient_id=["p1", "p1", "p2", "p3"])
    cohort = read_cohort(save(table, tmp_path), progress=False)
    assert list(cohort.cases["patient_id"]) == ["p1", "p1", "p2", "p3"]
    assert "patient_id" not in cohort.clinical


def test_table_without_label_for_extraction(tmp_path: Path) -> None:
    table = make_table(tmp_path, 3).drop(columns="label")
    cohort = read_cohort(save(table, tmp_path), CohortColumns(label=None), progress=False)
    assert "label" not in cohort.cases.columns


def test_windows_separators_in_relative_paths(tmp_path: Path) -> None:
    table = make_table(tmp_path, 2)
    table["image"] = table["image"].str.replace("/", "\\")
    cohort = read_cohort(save(table, tmp_path), progress=False)
    assert Path(cohort.cases.loc["c0", "image"]) == tmp_path / "images" / "c0.png"


def test_synthetic_cohort_with_repeat_masks_is_valid(synthetic_cohort_csv: Path) -> None:
    columns = CohortColumns(patient="patient_id", repeat_masks=("mask_reader2",))
    cohort = read_cohort(synthetic_cohort_csv, columns, min_roi_pixels=16, progress=False)
    assert len(cohort.cases) == 60 and cohort.exclusions.empty
    assert cohort.repeat_masks == ["mask_reader2"]
    assert "max_diameter_mm" in cohort.clinical and "mask_reader2" not in cohort.clinical


def test_missing_table_file(tmp_path: Path) -> None:
    with pytest.raises(DlrnError, match="cohort table not found"):
        read_cohort(tmp_path / "nope.csv")


# --- validation: one test per rule ----------------------------------------------------------


def test_missing_columns_are_named_with_the_columns_found(tmp_path: Path) -> None:
    path = save(make_table(tmp_path).drop(columns=["mask", "label"]), tmp_path)
    with pytest.raises(CohortValidationError,
                       match=r"missing column\(s\) 'mask', 'label'; columns found: 'case_id', "
                             r"'image', 'age'"):
        read_cohort(path, progress=False)


def test_missing_file(tmp_path: Path) -> None:
    table = make_table(tmp_path)
    (tmp_path / "masks" / "c2.png").unlink()
    problems = problems_of(save(table, tmp_path))
    assert problems.to_dict("records") == [{
        "row": 4, "case_id": "c2", "column": "mask",
        "file": str(tmp_path / "masks" / "c2.png"), "problem": "file not found",
    }]


def test_unreadable_file(tmp_path: Path) -> None:
    table = make_table(tmp_path)
    (tmp_path / "images" / "c1.png").write_bytes(b"garbage")
    problems = problems_of(save(table, tmp_path))
    assert problems[["row", "case_id", "column"]].values.tolist() == [[3, "c1", "image"]]
    assert problems.loc[0, "problem"] == "unreadable: cannot identify image file"


def test_unsupported_format_problem_names_the_format(tmp_path: Path) -> None:
    table = make_table(tmp_path)
    (tmp_path / "images" / "c1.gif").write_bytes(b"GIF89a")
    table.loc[1, "image"] = "images/c1.gif"
    problem = problems_of(save(table, tmp_path)).loc[0, "problem"]
    assert problem.startswith("unreadable: unsupported image format .gif; supported: .png")


def test_image_mask_size_mismatch(tmp_path: Path) -> None:
    table = make_table(tmp_path)
    write_case(tmp_path, "c3", mask=lesion_mask(size=(20, 32)))
    problems = problems_of(save(table, tmp_path))
    assert problems.loc[0, "case_id"] == "c3"
    assert problems.loc[0, "problem"] == "mask size 32x20 differs from image size 32x24"


def test_spacing_mismatch(tmp_path: Path) -> None:
    table = make_table(tmp_path, 2)
    for case_id, spacing in (("c0", 0.1), ("c1", 0.1)):
        image = sitk.GetImageFromArray(np.ones(SIZE, np.float32))
        image.SetSpacing((spacing, spacing))
        sitk.WriteImage(image, str(tmp_path / "images" / f"{case_id}.nrrd"))
        mask = sitk.GetImageFromArray(lesion_mask())
        mask.SetSpacing((0.2, 0.2) if case_id == "c1" else (spacing, spacing))
        sitk.WriteImage(mask, str(tmp_path / "masks" / f"{case_id}.nrrd"))
    table["image"] = ["images/c0.nrrd", "images/c1.nrrd"]
    table["mask"] = ["masks/c0.nrrd", "masks/c1.nrrd"]
    problems = problems_of(save(table, tmp_path))
    assert problems["case_id"].tolist() == ["c1"]
    assert problems.loc[0, "problem"] == "mask spacing 0.2 x 0.2 mm differs from image spacing " \
                                         "0.1 x 0.1 mm"


def test_empty_mask(tmp_path: Path) -> None:
    table = make_table(tmp_path)
    write_case(tmp_path, "c4", mask=np.zeros(SIZE, np.uint8))
    problems = problems_of(save(table, tmp_path))
    assert problems[["case_id", "problem"]].values.tolist() == [
        ["c4", "empty mask (no ROI pixels)"]
    ]


def test_roi_below_min_pixels(tmp_path: Path) -> None:
    table = make_table(tmp_path)
    write_case(tmp_path, "c0", mask=lesion_mask(side=3))
    problems = problems_of(save(table, tmp_path), min_roi_pixels=10)
    assert problems.loc[0, "problem"] == "ROI has 9 pixels, fewer than min_roi_pixels=10"


def test_roi_below_min_diameter_when_spacing_is_known(tmp_path: Path) -> None:
    table = make_table(tmp_path, 2)
    for case_id, side in (("c0", 8), ("c1", 3)):  # 0.4 mm pixels: 4.5 mm and 1.7 mm diagonals
        for folder, pixels in (("images", np.ones(SIZE, np.uint8)), ("masks", lesion_mask(side))):
            item = sitk.GetImageFromArray(pixels)
            item.SetSpacing((0.4, 0.4))
            sitk.WriteImage(item, str(tmp_path / folder / f"{case_id}.nii.gz"))
    table["image"] = ["images/c0.nii.gz", "images/c1.nii.gz"]
    table["mask"] = ["masks/c0.nii.gz", "masks/c1.nii.gz"]
    problems = problems_of(save(table, tmp_path), min_roi_mm=2.0, min_roi_pixels=1)
    assert problems[["case_id", "problem"]].values.tolist() == [
        ["c1", "ROI maximum diameter 1.70 mm is below min_roi_mm=2"]
    ]


def test_min_diameter_without_spacing_is_noted_not_ignored_silently(tmp_path: Path) -> None:
    cohort = read_cohort(save(make_table(tmp_path), tmp_path), min_roi_mm=5, progress=False)
    assert len(cohort.cases) == 6
    assert cohort.notes == [
        "min_roi_mm=5 was not applied to 6 case(s) whose images carry no pixel spacing "
        "(PNG/JPEG/BMP/TIFF or uncalibrated DICOM)"
    ]


def test_duplicate_case_ids(tmp_path: Path) -> None:
    table = make_table(tmp_path)
    table.loc[3, "case_id"] = "c1"
    problems = problems_of(save(table, tmp_path))
    duplicates = problems[problems["problem"].str.startswith("duplicate")]
    assert duplicates[["row", "case_id", "problem"]].values.tolist() == [
        [3, "c1", "duplicate case id (rows 3, 5)"], [5, "c1", "duplicate case id (rows 3, 5)"],
    ]


def test_missing_case_id(tmp_path: Path) -> None:
    table = make_table(tmp_path)
    table.loc[2, "case_id"] = None
    problems = problems_of(save(table, tmp_path))
    assert problems[["row", "problem"]].values.tolist() == [[4, "case id is missing"]]


def test_label_not_binary_names_the_value(tmp_path: Path) -> None:
    table = make_table(tmp_path)
    table["label"] = table["label"].astype(object)
    table.loc[1, "label"] = 2
    table.loc[4, "label"] = None
    problems = problems_of(save(table, tmp_path))
    assert problems[["row", "problem"]].values.tolist() == [
        [3, "label '2' is not binary (expected one of: 0, 0.0, 1, 1.0, false, true; "
            "or set positive_label)"],
        [6, "label is missing"],
    ]


def test_positive_label_value(tmp_path: Path) -> None:
    table = make_table(tmp_path)
    table["label"] = ["Malignant", "benign", "benign", "malignant", "benign", "benign"]
    columns = CohortColumns(positive_label="malignant")
    cohort = read_cohort(save(table, tmp_path), columns, progress=False)
    assert cohort.cases["label"].tolist() == [1, 0, 0, 1, 0, 0]


def test_positive_label_with_three_values_is_refused(tmp_path: Path) -> None:
    table = make_table(tmp_path)
    table["label"] = ["malignant", "benign", "benign", "malignent", "benign", "benign"]
    problems = problems_of(save(table, tmp_path), CohortColumns(positive_label="malignant"))
    assert len(problems) == 6
    assert "must hold exactly two values" in problems.loc[0, "problem"]
    assert problems.loc[0, "problem"].endswith("(found: benign, malignant, malignent)")


def test_label_mapping_reports_unmapped_values(tmp_path: Path) -> None:
    table = make_table(tmp_path)
    table["label"] = ["MPGT", "BPGT", "BPGT", "unknown", "BPGT", "MPGT"]
    columns = CohortColumns(positive_label={"MPGT": 1, "BPGT": 0})
    problems = problems_of(save(table, tmp_path), columns)
    assert problems[["case_id", "problem"]].values.tolist() == [
        ["c3", "label 'unknown' is not binary (expected one of: bpgt, mpgt; "
               "or set positive_label)"]
    ]


def test_same_image_used_by_two_cases(tmp_path: Path) -> None:
    table = make_table(tmp_path)
    table.loc[4, "image"] = "images/./c1.png"
    problems = problems_of(save(table, tmp_path))
    assert problems["case_id"].tolist() == ["c1", "c4"]
    assert set(problems["problem"]) == {"the same image file is used by cases c1, c4"}


def test_missing_patient_id(tmp_path: Path) -> None:
    table = make_table(tmp_path, patient_id=["p0", "p1", None, "p3", "p4", "p5"])
    problems = problems_of(save(table, tmp_path))
    assert problems[["row", "column", "problem"]].values.tolist() == [
        [4, "patient_id", "patient id is missing"]
    ]


def test_repeat_masks_may_be_blank_but_are_checked(tmp_path: Path) -> None:
    table = make_table(tmp_path)
    write_png(tmp_path / "reader2" / "c0.png", lesion_mask(side=7))
    write_png(tmp_path / "reader2" / "c1.png", np.zeros(SIZE, np.uint8))
    table["reader2"] = ["reader2/c0.png", "reader2/c1.png", None, "reader2/c9.png", None, None]
    columns = CohortColumns(repeat_masks=("reader2",))
    problems = problems_of(save(table, tmp_path), columns)
    assert problems[["case_id", "column", "problem"]].values.tolist() == [
        ["c1", "reader2", "empty mask (no ROI pixels)"],
        ["c3", "reader2", "file not found"],
    ]
    cohort = read_cohort(save(table, tmp_path), columns, on_error="exclude", progress=False)
    assert len(cohort.cases) == 6  # a bad repeat mask leaves the case in the study
    assert cohort.cases["reader2"].notna().tolist() == [True, False, False, False, False, False]
    assert set(cohort.exclusions["action"]) == {"repeat mask ignored"}


def test_all_problems_are_reported_together(tmp_path: Path) -> None:
    table = make_table(tmp_path)
    table.loc[0, "label"] = 7
    table.loc[5, "case_id"] = "c4"
    (tmp_path / "images" / "c2.png").unlink()
    with pytest.raises(CohortValidationError) as caught:
        read_cohort(save(table, tmp_path), progress=False)
    message = str(caught.value)
    assert "4 problem(s) in 4 row(s)" in message
    assert "row 2, case 'c0', label: label '7' is not binary" in message
    assert f"row 4, case 'c2', image {tmp_path / 'images' / 'c2.png'}: file not found" in message
    assert "row 7, case 'c4', case_id: duplicate case id (rows 6, 7)" in message


def test_exclude_drops_bad_cases_and_records_why(tmp_path: Path) -> None:
    table = make_table(tmp_path)
    write_case(tmp_path, "c4", mask=np.zeros(SIZE, np.uint8))
    (tmp_path / "masks" / "c1.png").unlink()
    cohort = read_cohort(save(table, tmp_path), on_error="exclude", progress=False)
    assert list(cohort.cases.index) == ["c0", "c2", "c3", "c5"]
    assert cohort.exclusions[["case_id", "problem", "action"]].values.tolist() == [
        ["c1", "file not found", "case excluded"],
        ["c4", "empty mask (no ROI pixels)", "case excluded"],
    ]


def test_exclude_with_nothing_left_is_an_error(tmp_path: Path) -> None:
    table = make_table(tmp_path, 2)
    table["label"] = ["x", "y"]
    with pytest.raises(CohortValidationError, match="no valid cases remain"):
        read_cohort(save(table, tmp_path), on_error="exclude", progress=False)


def test_invalid_on_error_setting(tmp_path: Path) -> None:
    with pytest.raises(DlrnError, match="on_error must be"):
        read_cohort(save(make_table(tmp_path), tmp_path), on_error="skip")  # type: ignore[arg-type]


# --- given split column ---------------------------------------------------------------------


def test_given_split_column(tmp_path: Path) -> None:
    table = make_table(tmp_path, set=["train", "Train", "test", "train", "test ", "train"])
    cohort = read_cohort(save(table, tmp_path), CohortColumns(split="set"), progress=False)
    assert cohort.given_split.tolist() == ["train", "train", "test", "train", "test", "train"]
    assert list(cohort.given_split.index) == list(cohort.cases.index)
    assert "set" not in cohort.cases.columns and "set" not in cohort.clinical


def test_given_split_values_and_patient_leakage_are_checked(tmp_path: Path) -> None:
    table = make_table(tmp_path, set=["train", "valid", "test", "train", "test", "train"],
                       patient_id=["a", "b", "c", "c", "d", "e"])
    problems = problems_of(save(table, tmp_path), CohortColumns(split="set"))
    assert problems[["case_id", "problem"]].values.tolist() == [
        ["c1", "split value 'valid' is not one of train, test"],
        ["c2", "patient 'c' has cases in both train and test (leakage)"],
        ["c3", "patient 'c' has cases in both train and test (leakage)"],
    ]


# --- split_cohort ---------------------------------------------------------------------------


def cases_for_split(n_patients: int = 100, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    patients = np.repeat(np.arange(n_patients), rng.integers(1, 4, n_patients))
    labels = (rng.random(n_patients) < 0.3).astype(int)[patients]
    ids = [f"case{i}" for i in range(len(patients))]
    return pd.DataFrame({"label": labels, "patient_id": [f"p{p}" for p in patients]},
                        index=pd.Index(ids, name="case_id"))


def test_split_is_grouped_stratified_and_deterministic() -> None:
    cases = cases_for_split()
    split = split_cohort(cases, test_size=0.3, seed=1)
    assert split.index.equals(cases.index) and set(split) == {"train", "test"}
    assert (cases.groupby("patient_id").apply(lambda g: split[g.index].nunique()) == 1).all()
    test_patients = cases.loc[split == "test", "patient_id"].nunique()
    assert test_patients == 30  # 30% of the 100 patients
    rates = cases.groupby(split)["label"].mean()
    assert abs(rates["train"] - rates["test"]) < 0.06
    assert split.equals(split_cohort(cases, test_size=0.3, seed=1))
    assert not split.equals(split_cohort(cases, test_size=0.3, seed=2))


def test_split_keeps_patients_with_mixed_labels_together() -> None:
    cases = cases_for_split()
    cases.loc[cases.index[:6], "patient_id"] = ["m1", "m1", "m2", "m2", "m3", "m3"]
    cases.loc[cases.index[:6], "label"] = [0, 1, 0, 1, 1, 0]
    split = split_cohort(cases, seed=0)
    for patient in ("m1", "m2", "m3"):
        assert split[cases["patient_id"] == patient].nunique() == 1


def test_split_errors_are_clear() -> None:
    with pytest.raises(DlrnError, match="test_size must be between 0 and 1"):
        split_cohort(cases_for_split(), test_size=1.5)
    with pytest.raises(DlrnError, match="needs the columns"):
        split_cohort(cases_for_split().drop(columns="patient_id"))
    tiny = cases_for_split().iloc[:3].assign(label=[1, 0, 0])
    with pytest.raises(DlrnError, match="cannot split"):
        split_cohort(tiny, test_size=0.3)


# --- maximum diameter -----------------------------------------------------------------------


def test_max_diameter_of_simple_shapes() -> None:
    line = np.zeros((5, 20), bool)
    line[2, 3:13] = True  # 10 pixels: 10 long, corners included
    assert max_diameter_mm(line, (1.0, 1.0)) == pytest.approx(np.hypot(10, 1))
    square = np.zeros((20, 20), bool)
    square[2:8, 2:8] = True
    assert max_diameter_mm(square, (0.5, 0.5)) == pytest.approx(6 * 0.5 * np.sqrt(2))
    assert max_diameter_mm(line, (0.1, 2.0)) == pytest.approx(np.hypot(1.0, 2.0))
