"""The applicability check (issue 31), measured: what it flags among a study's test and
external cases, against what it flags among images that hold no lesion or no ultrasound.

A finished study with a bundle (``dlrn demo --segmentation``, or the BUS-BRA study this
script writes) is asked, through ``dlrn predict``'s function, about images unlike its own,
each twice: with an ROI drawn in its middle (an ellipse of about a tenth of the image, as
a user would draw one) and with none (the bundle's U-Net proposes it, as on the page's
image-only path). Kinds, ``--per-kind`` each (seeded): uniform noise, Gaussian noise with
the cohort's grey levels, blank grey frames, black frames, gradients, photograph-like
colour images (a colour gradient with coloured shapes), and background crops of the
study's test images (the largest half or quarter clear of the lesion). A case is
"flagged" when ``applicable`` is false or the U-Net found no lesion (no answer at all).

    python benchmarks/bench_applicability.py busbra OUT [--patients 200] [--epochs 15]
    dlrn run OUT/study.yaml
    python benchmarks/bench_applicability.py measure STUDY [--per-kind 10]

STUDY is the study's output folder (``dlrn-demo/study`` or ``OUT/study``).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

sys.path.insert(0, str(Path(__file__).parent))


def write_busbra(out: Path, patients: int, epochs: int) -> None:
    """A BUS-BRA study: one image per patient, radiomics (fast preset) and two classifiers,
    no CNN, the U-Net at 96 px for ``epochs`` epochs."""
    from real_cohort import busbra_cases, one_image_per_patient

    out.mkdir(parents=True, exist_ok=True)
    cases = one_image_per_patient(busbra_cases(), n_patients=patients)
    cases[["patient_id", "image", "mask", "label"]].to_csv(out / "cases.csv",
                                                            index_label="case_id")
    study = {"cohort": {"table": "cases.csv", "patient": "patient_id"},
             "radiomics": {"preset": "fast"}, "classifiers": {"models": ["LR", "SVM"],
                                                              "cv_folds": 3},
             "dl": {"enabled": False},
             "segmentation": {"enabled": True, "image_size": 96, "epochs": epochs,
                              "patience": None, "automatic_masks": False},
             "output": "study"}
    (out / "study.yaml").write_text(yaml.safe_dump(study, sort_keys=False))


def _ellipse(shape: tuple[int, int]) -> np.ndarray:
    rows, cols = np.mgrid[:shape[0], :shape[1]]
    return (((rows - shape[0] / 2) / (shape[0] * 0.2)) ** 2
            + ((cols - shape[1] / 2) / (shape[1] * 0.2)) ** 2) <= 1


def _photo(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """A colour image like a photograph's: a colour gradient, coloured shapes, texture."""
    rows, cols = shape
    y, x = np.mgrid[:rows, :cols] / max(shape)
    start, end = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
    angle = rng.uniform(0, np.pi)
    ramp = (np.cos(angle) * x + np.sin(angle) * y)[..., None]
    picture = start + (end - start) * (ramp - ramp.min()) / (np.ptp(ramp) or 1)
    for _ in range(rng.integers(3, 8)):
        colour = rng.uniform(0, 255, 3)
        cy, cx, ry, rx = rng.uniform(0, 1), rng.uniform(0, 1), *rng.uniform(0.05, 0.3, 2)
        if rng.random() < 0.5:
            inside = ((y - cy) / ry) ** 2 + ((x - cx) / rx) ** 2 <= 1
        else:
            inside = (abs(y - cy) < ry) & (abs(x - cx) < rx)
        picture[inside] = colour
    picture += rng.normal(0, 6, picture.shape)
    return np.clip(picture, 0, 255).astype(np.uint8)


def unlike_images(test: pd.DataFrame, per_kind: int, seed: int = 0
                  ) -> list[tuple[str, np.ndarray]]:
    """(kind, pixels) of images without a lesion or without ultrasound, sized and grey-
    levelled like the study's test images."""
    import SimpleITK as sitk

    from dlrn.imaging import read_image_and_mask
    from dlrn.segmentation.evidence import background_crop

    rng = np.random.default_rng(seed)
    images, crops = [], []
    for case in test.index:
        image, mask = read_image_and_mask(test.at[case, "image"], test.at[case, "mask"])
        pixels = sitk.GetArrayFromImage(image).astype(np.float32)
        images.append(pixels)
        crop = background_crop(pixels, sitk.GetArrayFromImage(mask) != 0)
        if crop is not None:
            crops.append(crop)
    out = []
    for k in range(per_kind):
        reference = images[k % len(images)]
        shape, mean, spread = reference.shape, float(reference.mean()), float(reference.std())
        out.append(("uniform noise", rng.uniform(0, 255, shape)))
        out.append(("Gaussian noise", rng.normal(mean, spread, shape)))
        out.append(("blank grey", np.full(shape, rng.uniform(20, 235))))
        out.append(("black", np.zeros(shape)))
        angle = rng.uniform(0, 2 * np.pi)
        rows, cols = np.mgrid[:shape[0], :shape[1]]
        out.append(("gradient", np.cos(angle) * rows + np.sin(angle) * cols))
        out.append(("photograph-like", _photo(rng, shape)))
    out += [("background crop", crop) for crop in crops[:per_kind]]
    return out


def _write(folder: Path, kinds_pixels: list[tuple[str, np.ndarray]], drawn: bool
           ) -> pd.DataFrame:
    from PIL import Image

    rows = []
    for k, (kind, pixels) in enumerate(kinds_pixels):
        if pixels.ndim == 2:
            span = np.ptp(pixels) or 1.0
            scaled = pixels if kind in ("blank grey", "black") else (
                (pixels - pixels.min()) / span * 255 if pixels.max() > 255 or pixels.min() < 0
                else pixels)
            picture = np.clip(scaled, 0, 255).astype(np.uint8)
        else:
            picture = pixels
        name = f"x{k:03d}"
        Image.fromarray(picture).save(folder / f"{name}.png")
        row = {"case_id": name, "kind": kind, "image": f"{name}.png"}
        if drawn:
            Image.fromarray(_ellipse(picture.shape[:2]).astype(np.uint8) * 255).save(
                folder / f"{name}_roi.png")
            row["mask"] = f"{name}_roi.png"
        rows.append(row)
    return pd.DataFrame(rows)


def _with_clinical(table: pd.DataFrame, test: pd.DataFrame, bundle: Path) -> pd.DataFrame:
    """The clinical columns the bundle needs, from the first test case (the same for all)."""
    settings = json.loads((bundle / "settings.json").read_text())
    for column in (settings.get("clinical") or {}).get("selected", []):
        table[column] = test[column].iloc[0]
    return table


def _flagged(predicted: pd.DataFrame) -> pd.Series:
    """Flagged: no answer (no lesion found) or ``applicable`` false."""
    return predicted["applicable"].fillna(False).astype(bool).map(lambda ok: not ok)


def measure(study: Path, per_kind: int) -> None:
    from dlrn.study.predict import predict_table

    stages = study / "stages"
    for name in ("segmentation", "applicability", "automatic_masks"):
        path = stages / name / "stage.json"
        if path.is_file():
            record = json.loads(path.read_text())
            print(f"stage {name}: {record['status']}, {record['seconds']:.0f} s")
    print("\ntest and external cases flagged (the study's own report):")
    print(pd.read_csv(stages / "applicability" / "tables" / "applicability.csv")
          .round(3).to_string(index=False))
    cases = pd.read_csv(stages / "cohort" / "cases.csv", dtype={"case_id": str},
                        index_col="case_id")
    test = cases[cases["set"] == "test"]
    pictures = unlike_images(test, per_kind)
    results = {}
    for drawn in (True, False):
        with tempfile.TemporaryDirectory() as folder:
            root = Path(folder)
            table = _with_clinical(_write(root, pictures, drawn), test, study / "bundle")
            table.drop(columns="kind").to_csv(root / "cases.csv", index=False)
            started = time.perf_counter()
            predicted = predict_table(study / "bundle", root / "cases.csv", progress=False,
                                      masks_dir=root / "masks")
            seconds = time.perf_counter() - started
        kinds = table.set_index("case_id")["kind"]
        flagged = _flagged(predicted).groupby(kinds.loc[predicted.index]).agg(["sum", "count"])
        label = "ROI drawn" if drawn else "ROI by the U-Net"
        results[label] = flagged["sum"].astype(str) + " of " + flagged["count"].astype(str)
        print(f"\n{label}: {len(predicted)} images in {seconds:.0f} s")
        shown = predicted.assign(kind=kinds.loc[predicted.index])
        first = shown.groupby("kind").head(1)
        for row in first.itertuples():
            note = row.applicability_note if isinstance(row.applicability_note, str) \
                else row.note
            print(f"  {row.kind}: {note}")
    print("\nunlike images flagged:")
    print(pd.DataFrame(results).to_string())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    busbra = commands.add_parser("busbra", help="write a BUS-BRA study with the U-Net")
    busbra.add_argument("out", type=Path)
    busbra.add_argument("--patients", type=int, default=200)
    busbra.add_argument("--epochs", type=int, default=15)
    run = commands.add_parser("measure", help="measure a finished study's check")
    run.add_argument("study", type=Path)
    run.add_argument("--per-kind", type=int, default=10)
    args = parser.parse_args()
    if args.command == "busbra":
        write_busbra(args.out, args.patients, args.epochs)
    else:
        measure(args.study, args.per_kind)


if __name__ == "__main__":
    main()
