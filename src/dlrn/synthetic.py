"""A deterministic synthetic ultrasound cohort for the demo and the tests.

Each case is a B-mode-like image: layered tissue bands (skin, fat, gland,
deep muscle) with depth attenuation and fully developed speckle (the envelope
of complex Gaussian noise blurred by an anisotropic point-spread function,
log-compressed), and one hypoechoic lesion with its mask (PNG 0/255). A
latent "suspicion" drives how malignant a lesion looks; it depends on the label
but overlaps between classes, so classifiers reach realistic AUCs (about
0.75-0.9), not 1.0:

* benign-looking: round/oval and wider than tall, smooth well-defined margin,
  homogeneous interior, posterior acoustic enhancement, sometimes cystic;
* malignant-looking: irregular or spiculated, blurred margin, heterogeneous,
  taller than wide, posterior shadowing, calcifications more often.

A second reader's mask (boundary jitter plus a dilation or erosion of a few
pixels) is written for ``reader2_fraction`` of the cases. A few patients have
two images (another view of the same lesion), so grouping by patient matters.
The clinical table mimics the parotid study's: age, sex, smoking, drinking,
max_diameter_mm, shape, margin, echogenicity, cystic, calcification and
posterior_enhancement; shape, margin and posterior enhancement carry most of
the signal, the others little or none. The same seed gives byte-identical
files.

``messy=True`` makes the table look like a hospital export (the default output
is unchanged): about 10% of ages are blank, ``margin_lexicon`` holds BI-RADS
margin descriptors joined by ``&`` (``angular&indistinct``), and
``tissue_composition`` has a rare level ("extremely dense", 1 to 3 cases); with
``external=True`` as well (an external centre's cohort, best with another seed)
some cases have a level met nowhere else ("fibroglandular").

Pixel spacing is ``field_of_view_mm / width`` (not stored in PNGs; the diameter
column uses it).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image
from scipy.ndimage import gaussian_filter, zoom

from dlrn.errors import DlrnError

CLINICAL_COLUMNS = (
    "age", "sex", "smoking", "drinking", "max_diameter_mm", "shape", "margin",
    "echogenicity", "cystic", "calcification", "posterior_enhancement",
)
MESSY_COLUMNS = ("margin_lexicon", "tissue_composition")
MESSY_MISSING_FRACTION = 0.1
RARE_LEVEL = "extremely dense"
EXTERNAL_ONLY_LEVEL = "fibroglandular"
COHORT_FILE = "cohort.csv"
_DYNAMIC_RANGE_DB = 50.0
_REFERENCE_ENVELOPE = 8.0
_ANGLE_STEPS = 720


@dataclass(frozen=True)
class _Lesion:
    """Everything about one patient's lesion and its clinical record."""

    label: int
    suspicion: float
    diameter_mm: float
    aspect: float  # height / width
    irregularity: float
    spicules: int
    edge_width: float
    heterogeneity: float
    posterior_log_gain: float
    cystic: bool
    calcified: bool
    age: int
    sex: str
    smoking: bool
    drinking: bool


def make_synthetic_cohort(
    out_dir: str | Path,
    *,
    n_cases: int = 120,
    seed: int = 0,
    image_size: tuple[int, int] = (256, 256),
    prevalence: float = 0.28,
    reader2_fraction: float = 1.0,
    second_view_fraction: float = 0.08,
    field_of_view_mm: float = 50.0,
    overwrite: bool = False,
    messy: bool = False,
    external: bool = False,
) -> Path:
    """Write images, masks, second-reader masks and ``cohort.csv``; return the CSV's path.

    ``image_size`` is (height, width). ``second_view_fraction`` of the cases are a
    second image of an earlier patient's lesion. ``messy`` and ``external``: see
    the module's description (``external`` needs ``messy``).
    """
    _check_settings(n_cases, image_size, prevalence, reader2_fraction, second_view_fraction)
    out = Path(out_dir)
    table_path = out / COHORT_FILE
    if table_path.exists() and not overwrite:
        raise DlrnError(f"{table_path} already exists; choose another folder or overwrite=True")
    for folder in ("images", "masks", "masks_reader2"):
        (out / folder).mkdir(parents=True, exist_ok=True)

    rng = np.random.default_rng(seed)
    n_second = round(second_view_fraction * n_cases) if n_cases >= 4 else 0
    n_patients = n_cases - n_second
    labels = _balanced_labels(rng, n_patients, prevalence)
    lesions = [_draw_lesion(rng, label) for label in labels]
    patient_of_case = np.r_[np.arange(n_patients), rng.choice(n_patients, n_second, False)]
    with_reader2 = rng.random(n_cases) < reader2_fraction
    spacing_mm = field_of_view_mm / image_size[1]

    rows = []
    for case_index, patient in enumerate(patient_of_case):
        case_rng = np.random.default_rng([seed, case_index])
        case_id = f"syn{case_index + 1:04d}"
        lesion = lesions[patient]
        image, mask, mask2 = _render_case(case_rng, lesion, image_size, spacing_mm)
        _write_png(out / "images" / f"{case_id}.png", image)
        _write_png(out / "masks" / f"{case_id}.png", mask * np.uint8(255))
        reader2 = ""
        if with_reader2[case_index]:
            reader2 = f"masks_reader2/{case_id}.png"
            _write_png(out / reader2, mask2 * np.uint8(255))
        rows.append({
            "case_id": case_id,
            "patient_id": f"P{patient + 1:04d}",
            "image": f"images/{case_id}.png",
            "mask": f"masks/{case_id}.png",
            "mask_reader2": reader2,
            "label": lesion.label,
            **_clinical_record(np.random.default_rng([seed, case_index, 1]), lesion),
        })
    table = pd.DataFrame(rows)
    if messy:
        table = _messy(table, [lesions[p] for p in patient_of_case],
                       np.random.default_rng([seed, 2]), external)
    elif external:
        raise DlrnError("external=True adds a level to the messy columns: use messy=True too")
    table.to_csv(table_path, index=False, float_format="%.1f")
    return table_path


def _check_settings(
    n_cases: int, image_size: tuple[int, int], prevalence: float,
    reader2_fraction: float, second_view_fraction: float,
) -> None:
    if n_cases < 2:
        raise DlrnError(f"n_cases must be at least 2, got {n_cases}")
    if min(image_size) < 48:
        raise DlrnError(f"image_size must be at least 48x48 pixels, got {image_size}")
    if not 0.0 < prevalence < 1.0:
        raise DlrnError(f"prevalence must be between 0 and 1, got {prevalence}")
    for name, value in (("reader2_fraction", reader2_fraction),
                        ("second_view_fraction", second_view_fraction)):
        if not 0.0 <= value <= (1.0 if name == "reader2_fraction" else 0.5):
            raise DlrnError(f"{name} is out of range: {value}")


def _balanced_labels(rng: np.random.Generator, n_patients: int, prevalence: float) -> np.ndarray:
    """Exactly round(prevalence * n) positives (at least one of each class), shuffled."""
    n_positive = min(max(round(prevalence * n_patients), 1), n_patients - 1)
    return rng.permutation(np.r_[np.ones(n_positive, int), np.zeros(n_patients - n_positive, int)])


def _sigmoid(value: float) -> float:
    return float(1.0 / (1.0 + np.exp(-value)))


def _draw_lesion(rng: np.random.Generator, label: int) -> _Lesion:
    suspicion = 1.6 * label + rng.normal()
    looks = suspicion - 0.8  # centred between the classes
    return _Lesion(
        label=label,
        suspicion=suspicion,
        diameter_mm=float(np.clip(rng.normal(17.0 + 2.5 * label, 5.0), 7.0, 32.0)),
        aspect=float(np.clip(0.62 + 0.3 * _sigmoid(1.5 * looks) + rng.normal(0, 0.07), 0.45, 1.2)),
        irregularity=float(max(0.0, 0.02 + 0.14 * _sigmoid(2 * looks) + rng.normal(0, 0.03))),
        spicules=int(rng.integers(3, 8)) if looks + rng.normal(0, 0.8) > 0.8 else 0,
        edge_width=float(np.clip(0.02 + 0.12 * _sigmoid(2 * (looks + rng.normal(0, 0.6))),
                                 0.015, 0.2)),
        heterogeneity=float(max(0.05, 0.15 + 0.45 * _sigmoid(2 * looks) + rng.normal(0, 0.1))),
        posterior_log_gain=float(0.3 - 0.35 * suspicion + rng.normal(0, 0.2)),
        cystic=bool(rng.random() < (0.12 if label else 0.3)),
        calcified=bool(rng.random() < (0.25 if label else 0.08)),
        age=int(np.clip(round(rng.normal(49 + 5 * label, 15)), 12, 87)),
        sex="male" if rng.random() < 0.54 else "female",
        smoking=bool(rng.random() < (0.35 if label else 0.2)),
        drinking=bool(rng.random() < (0.2 if label else 0.15)),
    )


def _clinical_record(rng: np.random.Generator, lesion: _Lesion) -> dict[str, object]:
    """What the sonographer reports: the lesion's look, read with some disagreement."""
    irregular = lesion.irregularity + 0.05 * lesion.spicules + rng.normal(0, 0.03) > 0.11
    heterogeneous = (lesion.heterogeneity + rng.normal(0, 0.12) > 0.42
                     or lesion.calcified or (lesion.cystic and rng.random() < 0.5))
    return {
        "age": lesion.age,
        "sex": lesion.sex,
        "smoking": _yes_no(lesion.smoking),
        "drinking": _yes_no(lesion.drinking),
        "max_diameter_mm": round(lesion.diameter_mm + rng.normal(0, 1.0), 1),
        "shape": "irregular" if irregular else "regular",
        "margin": ("poorly-defined" if lesion.edge_width + rng.normal(0, 0.02) > 0.08
                   else "well-defined"),
        "echogenicity": "heterogeneous" if heterogeneous else "homogeneous",
        "cystic": _present(lesion.cystic),
        "calcification": _present(lesion.calcified),
        "posterior_enhancement": _present(lesion.posterior_log_gain + rng.normal(0, 0.1) > 0.1),
    }


def _messy(table: pd.DataFrame, lesions: list[_Lesion], rng: np.random.Generator,
           external: bool) -> pd.DataFrame:
    """Blank ages, multi-valued margin descriptors, a rare and an external-only level."""
    n = len(table)
    table["margin_lexicon"] = [_margin_lexicon(rng, lesion) for lesion in lesions]
    composition = rng.choice(["fatty", "scattered", "heterogeneous"], n,
                             p=[0.35, 0.4, 0.25]).astype(object)
    special = rng.permutation(n)
    n_rare = int(np.clip(round(0.02 * n), 1, 3))
    composition[special[:n_rare]] = RARE_LEVEL
    if external:
        composition[special[n_rare:n_rare + max(1, round(0.05 * n))]] = EXTERNAL_ONLY_LEVEL
    table["tissue_composition"] = composition
    blank = rng.choice(n, round(MESSY_MISSING_FRACTION * n), replace=False)
    table["age"] = table["age"].astype(float)
    table.loc[blank, "age"] = np.nan
    return table


def _margin_lexicon(rng: np.random.Generator, lesion: _Lesion) -> str:
    """BI-RADS margin descriptors as a radiologist writes them, joined by '&'."""
    looks = lesion.suspicion - 0.8 + rng.normal(0, 0.7)
    tokens = []
    if lesion.spicules and rng.random() < 0.8:
        tokens.append("spiculated")
    if looks > 0.2:
        tokens.append("angular")
    if lesion.edge_width + rng.normal(0, 0.02) > 0.08:
        tokens.append("indistinct")
    if rng.random() < 0.12:
        tokens.append("microlobulated")
    return "&".join(tokens) if tokens else "circumscribed"


def _yes_no(flag: bool) -> str:
    return "yes" if flag else "no"


def _present(flag: bool) -> str:
    return "present" if flag else "absent"


# --- rendering ------------------------------------------------------------------------------


def _render_case(
    rng: np.random.Generator, lesion: _Lesion, size: tuple[int, int], spacing_mm: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(image uint8, reader-1 mask 0/1, reader-2 mask 0/1) for one view of a lesion."""
    height, width = size
    rows, cols = np.ogrid[0:height, 0:width]
    rows, cols = rows.astype(float), cols.astype(float)
    # The boundary reaches up to ~1.5 half-axes (lobules, spicules): keep the lesion inside
    # the gland with room below it for posterior enhancement or shadowing.
    half_width = min(lesion.diameter_mm / spacing_mm / 2 * rng.uniform(0.92, 1.0), 0.3 * width)
    half_height = min(half_width * lesion.aspect * rng.uniform(0.9, 1.1), 0.2 * height)
    top, bottom = 0.14 * height + 1.5 * half_height, 0.8 * height - 1.5 * half_height
    centre_row = rng.uniform(top, max(top, bottom))
    centre_col = rng.uniform(1.5 * half_width, width - 1.5 * half_width)
    angle = np.arctan2(rows - centre_row, (cols - centre_col) * half_height / half_width)
    radius = np.hypot((cols - centre_col) / half_width, (rows - centre_row) / half_height)
    boundary = _boundary(rng, lesion, angle)
    inside = np.clip((boundary - radius) / lesion.edge_width, -30, 30)
    weight = 1.0 / (1.0 + np.exp(-inside))

    echo = _tissue(rng, rows / height, cols / width, size)
    lesion_echo = _lesion_echo(rng, lesion, radius, angle, size)
    echo = echo * (1 - weight) + lesion_echo * weight
    echo *= _posterior_gain(lesion, rows, cols, centre_row + half_height,
                            centre_col, half_width, height)
    echo *= np.exp(-0.8 * rows / height)  # attenuation left after time-gain compensation
    image = _speckle_and_compress(rng, echo)

    mask = (radius <= boundary).astype(np.uint8)
    mask2 = _second_reader(rng, radius, boundary, half_width, half_height)
    return image, mask, mask2


def _boundary(rng: np.random.Generator, lesion: _Lesion, angle: np.ndarray) -> np.ndarray:
    """Normalised boundary radius per angle: lobulation plus spicules for suspicious lesions."""
    table_angles = np.linspace(-np.pi, np.pi, _ANGLE_STEPS, endpoint=False)
    table = np.ones(_ANGLE_STEPS)
    for harmonic in range(3, 9):
        amplitude = lesion.irregularity * rng.normal() / (harmonic - 2)
        table += amplitude * np.cos(harmonic * table_angles + rng.uniform(0, 2 * np.pi))
    for spike_angle in rng.uniform(-np.pi, np.pi, lesion.spicules):
        offset = np.angle(np.exp(1j * (table_angles - spike_angle)))
        table += rng.uniform(0.15, 0.35) * np.exp(-((offset / 0.07) ** 2))
    steps = np.round((angle + np.pi) / (2 * np.pi) * _ANGLE_STEPS).astype(int) % _ANGLE_STEPS
    return np.maximum(table, 0.4)[steps]


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, int], sigma: float) -> np.ndarray:
    """Unit-variance noise smooth on the scale ``sigma`` pixels (drawn coarse, upsampled)."""
    step = max(sigma / 2, 1.0)
    coarse_shape = tuple(int(np.ceil(length / step)) + 2 for length in shape)
    coarse = gaussian_filter(rng.normal(size=coarse_shape), 2.0, mode="wrap")
    noise = zoom(coarse, step, order=1)[: shape[0], : shape[1]]
    return (noise - noise.mean()) / (noise.std() + 1e-12)


def _tissue(
    rng: np.random.Generator, depth: np.ndarray, lateral: np.ndarray, size: tuple[int, int]
) -> np.ndarray:
    """Echogenicity of layered tissue: skin, subcutaneous fat, gland, deep muscle."""
    phases = rng.uniform(0, 2 * np.pi, 3)
    levels = [0.05, 0.2, 0.8]
    borders = [
        level + 0.02 * np.sin(2 * np.pi * (1 + k) * lateral + phases[k])
        for k, level in enumerate(levels)
    ]
    echo = np.select(
        [depth < borders[0], depth < borders[1], depth < borders[2]],
        [1.8, rng.uniform(0.45, 0.6), 1.0],
        default=0.75 * (1 + 0.25 * np.sin(60 * depth + 3 * lateral)),
    )
    return echo * np.exp(0.15 * _smooth_noise(rng, size, size[0] / 12))


def _lesion_echo(
    rng: np.random.Generator, lesion: _Lesion, radius: np.ndarray, angle: np.ndarray,
    size: tuple[int, int],
) -> np.ndarray:
    """Hypoechoic interior; heterogeneity, a cystic part and calcifications as drawn."""
    base = rng.uniform(0.25, 0.4)
    texture = np.exp(lesion.heterogeneity * _smooth_noise(rng, size, size[0] / 40))
    echo = base * texture
    if lesion.cystic:
        cyst_angle, cyst_radius = rng.uniform(-np.pi, np.pi), rng.uniform(0.2, 0.4)
        centre = 0.45 * np.exp(1j * cyst_angle)
        distance = np.abs(radius * np.exp(1j * angle) - centre)
        echo = np.where(distance < cyst_radius, 0.03, echo)
    if lesion.calcified:
        for _ in range(rng.integers(2, 6)):
            spot = rng.uniform(0, 0.7) * np.exp(1j * rng.uniform(-np.pi, np.pi))
            distance = np.abs(radius * np.exp(1j * angle) - spot)
            echo = np.where(distance < 0.06, 5.0, echo)
    return echo


def _posterior_gain(
    lesion: _Lesion, rows: np.ndarray, cols: np.ndarray, bottom: float,
    centre_col: float, half_width: float, height: int,
) -> np.ndarray:
    """Enhancement (gain > 1) or shadowing (< 1) below the lesion, across its width."""
    lateral = np.exp(-(np.abs(cols - centre_col) / (0.8 * half_width)) ** 4)
    below = np.clip((rows - bottom + 0.05 * height) / (0.1 * height), 0, 1)
    return np.exp(lesion.posterior_log_gain * lateral * below)


def _speckle_and_compress(rng: np.random.Generator, echo: np.ndarray) -> np.ndarray:
    """Rayleigh speckle (blurred complex noise envelope), log-compressed to 8 bits."""
    psf_sigma = (0.8, 1.6)  # axial, lateral (pixels)
    real = gaussian_filter(rng.normal(size=echo.shape), psf_sigma)
    imaginary = gaussian_filter(rng.normal(size=echo.shape), psf_sigma)
    envelope = echo * np.hypot(real, imaginary) / np.sqrt(2 * real.var() + 1e-12)
    decibels = 20 * np.log10(np.maximum(envelope, 1e-6) / _REFERENCE_ENVELOPE)
    grey = np.clip((decibels + _DYNAMIC_RANGE_DB) / _DYNAMIC_RANGE_DB, 0, 1)
    return np.round(grey * 255).astype(np.uint8)


def _second_reader(
    rng: np.random.Generator, radius: np.ndarray, boundary: np.ndarray,
    half_width: float, half_height: float,
) -> np.ndarray:
    """Reader 2: smooth boundary jitter plus a dilation or erosion of a few pixels."""
    angle_noise = 1 + 0.04 * _smooth_noise(rng, radius.shape, radius.shape[0] / 10)
    offset_pixels = rng.normal(0, 1.5)
    mean_half_axis = (half_width + half_height) / 2
    return (radius <= boundary * angle_noise + offset_pixels / mean_half_axis).astype(np.uint8)


def _write_png(path: Path, pixels: np.ndarray) -> None:
    Image.fromarray(pixels).save(path, format="PNG", optimize=False)
