"""A cohort case as the calculator's clients send it: the clinical values and the files."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from dlrn.serve.predictor import Predictor
from dlrn.study.bundle import Bundle
from dlrn.study.predict import predict_cases, read_new_cases


def form_of(predictor: Predictor, case: pd.Series, **changes: str) -> dict[str, str]:
    """The case's value of every clinical predictor of the form, with ``changes``."""
    return {**{f.name: case[f.name] for f in predictor.fields}, **changes}


def files_of(case: pd.Series, *, image: bytes | None = None,
                 mask: bytes | None = None) -> dict:
    """The case's image and mask as multipart files; the client file names are
    deliberately misleading: the content decides."""
    return {"image": ("scan.dcm", image or Path(case["image"]).read_bytes()),
            "mask": ("../../etc/mask.txt", mask or Path(case["mask"]).read_bytes())}


def open_with_image(driver, live_server: str, case: pd.Series, *,
                    roi_pixels: str | None = None):
    """The page with the case's clinical values and image; its canvas once the image shows
    (its ROI's pixel count set: ``roi_pixels`` where the test knows what it must be)."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait

    driver.get(live_server + "/")
    for element in driver.find_elements(By.CSS_SELECTOR, "#case-form select"):
        Select(element).select_by_value(case[element.get_attribute("name")])
    for element in driver.find_elements(By.CSS_SELECTOR, "#case-form input[type=number]"):
        element.send_keys(case[element.get_attribute("name")])
    driver.find_element(By.ID, "image-file").send_keys(case["image"])
    canvas = driver.find_element(By.ID, "roi-canvas")

    def shown(_: object) -> bool:
        pixels = canvas.get_attribute("data-roi-pixels")
        return bool(pixels) if roi_pixels is None else pixels == roi_pixels

    WebDriverWait(driver, 30).until(shown)
    driver.execute_script("arguments[0].scrollIntoView();", canvas)
    return canvas


def png_of(array: np.ndarray) -> bytes:
    """An array as the bytes of a PNG file."""
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def dlrn_predict_row(bundle_dir: Path, case: pd.Series, roi: np.ndarray,
                     tmp_path: Path) -> pd.Series:
    """``dlrn predict``'s row for the case's image with ``roi`` as its mask file."""
    mask = tmp_path / f"roi{roi.sum()}.png"
    mask.write_bytes(png_of(roi.astype(np.uint8) * 255))
    table = tmp_path / "one.csv"
    case.to_frame().T.assign(mask=str(mask)).to_csv(table, index=False)
    bundle = Bundle.open(bundle_dir)
    cases = read_new_cases(table, bundle.json("settings"), progress=False)
    return predict_cases(bundle, cases, progress=False).iloc[0]
