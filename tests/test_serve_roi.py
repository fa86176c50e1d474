"""dlrn serve without a mask file: a polygon (API) or an ROI drawn on the page, the image
alone (the segmentation model's ROI), the preview to draw on, and every ROI problem said
in the clinician's words. Numbers are compared with ``dlrn predict`` on the same image
and the mask built from the same polygon."""

from __future__ import annotations

import base64
import io
import json

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk
from headless_chromium import chromium
from PIL import Image
from serve_cases import dlrn_predict_row, files_of, form_of, open_with_image, png_of

from dlrn.applicability import COLUMNS as APPLICABILITY_COLUMNS
from dlrn.imaging import read_image
from dlrn.serve.messages import NO_LESION_FOUND, NO_SEGMENTATION_MODEL, problem_message
from dlrn.serve.roi import polygon_mask

CASE = "syn0004"
LESION = [[40.3, 38.6], [88.1, 41.7], [84.6, 87.1], [52.2, 90.3], [42.4, 70.2]]
COHORT_WORDS = ("cohort table", "row", "on_error", "exclusions", "validate", "min_roi")


def _decoded(text: str) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(text))))


def _same_numbers(answer: dict, row: pd.Series) -> None:
    assert answer["predictions"] == row.drop(["label", "note", *APPLICABILITY_COLUMNS],
                                             errors="ignore").to_dict()


# --- the polygon rule -----------------------------------------------------------------------

def test_a_pixel_is_in_the_polygon_when_its_centre_is_inside():
    square = polygon_mask(np.array([[1, 1], [4, 1], [4, 3], [1, 3]], float), 5, 6)
    expected = np.zeros((5, 6), bool)
    expected[1:3, 1:4] = True  # integer corners: exactly the pixels within them
    assert (square == expected).all()
    # centres exactly on the outline: inside on the left and top edges, not right and bottom
    on_edges = polygon_mask(np.array([[1.5, 1.5], [3.5, 1.5], [3.5, 3.5], [1.5, 3.5]]), 5, 6)
    assert np.argwhere(on_edges).tolist() == [[1, 1], [1, 2], [2, 1], [2, 2]]


def test_the_polygon_rule_agrees_with_independent_rasterisers():
    from matplotlib.path import Path as Outline
    from skimage.draw import polygon2mask

    rng = np.random.default_rng(7)
    rows, columns = np.mgrid[0:90, 0:110]
    centres = np.c_[columns.ravel() + 0.5, rows.ravel() + 0.5]
    for points in (5, 12, 60, 400):  # self-crossing ones included: the even-odd rule
        vertices = rng.uniform(0, [110, 90], (points, 2))
        roi = polygon_mask(vertices, 90, 110)
        assert (roi == Outline(vertices).contains_points(centres).reshape(90, 110)).all()
        # skimage's pixel centres are integer points: shift by half a pixel, (row, column)
        assert (roi == polygon2mask((90, 110), vertices[:, ::-1] - 0.5)).all()


@pytest.mark.parametrize("label", [None, 2, 300])
def test_a_mask_written_for_dlrn_predict_reads_back_as_the_roi(tmp_path, label):
    from dlrn.imaging import read_mask
    from dlrn.serve.roi import mask_file_png

    roi = polygon_mask(np.array(LESION), 100, 120)
    path = tmp_path / "mask.png"
    path.write_bytes(mask_file_png(roi, label))  # the study's mask_label, or any non-zero
    assert (sitk.GetArrayFromImage(read_mask(path, label=label)) == roi).all()


# --- the JSON API: polygon, image alone, refusals ------------------------------------------

def test_a_polygon_gives_dlrn_predict_s_numbers_with_its_mask(client, predictor, cohort,
                                                               bundle_dir, tmp_path):
    from scipy.ndimage import binary_dilation
    from skimage.draw import polygon2mask

    case = cohort.loc[CASE]
    files = {"image": files_of(case)["image"]}
    answer = client.post("/api/predict", data={**form_of(predictor, case),
                                               "polygon": json.dumps(LESION)}, files=files)
    assert answer.status_code == 200, answer.text
    answer = answer.json()
    roi = polygon2mask((128, 128), np.array(LESION)[:, ::-1] - 0.5)  # built independently
    _same_numbers(answer, dlrn_predict_row(bundle_dir, case, roi, tmp_path))
    assert answer["roi"]["source"] == "polygon" and answer["roi"]["pixels"] == roi.sum()
    assert ((_decoded(answer["roi"]["mask_png_base64"]) > 0) == roi).all()
    overlay = _decoded(answer["roi"]["overlay_png_base64"])
    assert overlay.shape == (128, 128, 3)
    grey = np.asarray(Image.open(case["image"]))
    assert (overlay[roi] == grey[roi][:, None]).all()  # the lesion's margin is left visible
    ring = binary_dilation(roi) & ~roi  # outlined just outside it
    assert (overlay[ring] == [255, 210, 0]).all() and (overlay[~roi & ~ring] ==
                                                        grey[~roi & ~ring][:, None]).all()
    # the ROI matters: another outline moves the CNN's probability
    other = client.post("/api/predict", data={**form_of(predictor, case), "polygon": json.dumps(
        [[x + 6, y] for x, y in LESION])}, files=files).json()
    assert other["predictions"]["DL-resnet18"] != answer["predictions"]["DL-resnet18"]


@pytest.mark.parametrize(("polygon", "reason"), [
    ("[[10, 10], [50, 10]]", "The polygon has 2 point(s); an outline needs at least 3"),
    ("[[10, 10], [50, 10], [130, 60]]", "Point 3 of the polygon, (x=130, y=60), lies outside "
                                        "the image, which spans 0 to 128 (x) by 0 to 128 (y)"),
    ("[[10, 10], [50, 10], [30, -1]]", "lies outside the image"),
    ("10,10 50,10 30,40", "must be a JSON list of [x, y] points"),
    ('[[10, 10], [50, 10], [30, "40"]]', "must be a JSON list of [x, y] points"),
    ("[[10, 10], [50, 10], [30, NaN]]", "NaN and infinity are not coordinates"),
    ("[[10, 10], [60, 60], [110, 110]]", "The polygon encloses no pixel centre"),
    ("[[40, 40], [44, 40], [40, 44]]", "The polygon's ROI covers 6 pixels; this model needs "
                                       "at least 16"),
])
def test_a_bad_polygon_is_refused_with_the_reason(client, predictor, cohort, polygon, reason):
    case = cohort.loc[CASE]
    response = client.post("/api/predict", data={**form_of(predictor, case), "polygon": polygon},
                           files={"image": files_of(case)["image"]})
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert reason in detail and not any(words in detail for words in COHORT_WORDS), detail


def test_a_mask_and_a_polygon_together_are_refused(client, predictor, cohort):
    case = cohort.loc[CASE]
    response = client.post("/api/predict", data={**form_of(predictor, case),
                                                 "polygon": json.dumps(LESION)},
                           files=files_of(case))
    assert response.status_code == 422 and "not both" in response.json()["detail"]


def test_the_image_alone_needs_the_bundle_s_segmentation_model(client, predictor, cohort,
                                                               bundle_dir, tmp_path,
                                                               monkeypatch):
    case = cohort.loc[CASE]
    form, image = form_of(predictor, case), {"image": files_of(case)["image"]}
    alone = client.post("/api/predict", data=form, files=image)
    assert alone.status_code == 422 and alone.json()["detail"] == NO_SEGMENTATION_MODEL
    # the one hook: a segmentation model's ROI is used as dlrn predict uses a mask file
    lesion = np.asarray(Image.open(case["mask"])) > 0
    monkeypatch.setattr(predictor, "proposed_roi", lambda picture: lesion)
    answer = client.post("/api/predict", data=form, files=image).json()
    _same_numbers(answer, dlrn_predict_row(bundle_dir, case, lesion, tmp_path))
    assert answer["roi"]["source"] == "automatic" and answer["roi"]["pixels"] == lesion.sum()
    monkeypatch.setattr(predictor, "proposed_roi", lambda picture: np.zeros_like(lesion))
    nothing = client.post("/api/predict", data=form, files=image)
    assert nothing.status_code == 422 and nothing.json()["detail"] == NO_LESION_FOUND


# --- the preview the page draws on ----------------------------------------------------------

def test_the_preview_shows_any_accepted_format_as_the_reader_reads_it(client, cohort,
                                                                      tmp_path):
    case = cohort.loc[CASE]
    nifti = tmp_path / "image.nii.gz"
    sitk.WriteImage(read_image(case["image"]), str(nifti))  # a format browsers cannot show
    shown = client.post("/api/preview", files={"image": ("x.bin", nifti.read_bytes())})
    assert shown.status_code == 200, shown.text
    preview = shown.json()
    assert (preview["width"], preview["height"]) == (128, 128)
    assert (_decoded(preview["image_png_base64"]) == np.asarray(Image.open(case["image"]))).all()
    assert preview["roi_png_base64"] is None and "Draw the lesion's outline" in preview["message"]
    with_mask = client.post("/api/preview", files={"image": ("a", nifti.read_bytes()),
                                                   "mask": files_of(case)["mask"]}).json()
    lesion = np.asarray(Image.open(case["mask"])) > 0
    assert ((_decoded(with_mask["roi_png_base64"]) > 0) == lesion).all()
    assert with_mask["roi_source"] == "mask file"


@pytest.mark.parametrize(("files", "status", "reason"), [
    ({"mask": ("m.png", png_of(np.ones((40, 30), np.uint8)))}, 422,
     "The ROI mask is 30 x 40 pixels but the image is 128 x 128 pixels"),
    ({"image": ("i.png", b"%PDF-1.4 not an image")}, 415, "not an image format"),
    ({"image": ("i.png", b"\x89PNG\r\n\x1a\n damaged")}, 422, "header is damaged"),
    ({"polygon": ("p.txt", b"[]")}, 422, "unknown field(s) polygon"),
])
def test_the_preview_refuses_what_a_prediction_refuses(client, cohort, files, status, reason):
    image = {"image": files_of(cohort.loc[CASE])["image"]}
    response = client.post("/api/preview", files={**image, **files})
    assert response.status_code == status and reason in response.json()["detail"]


def test_the_reader_s_problems_are_said_in_the_clinician_s_words():
    cases = {
        ("mask", "ROI has 9 pixels, fewer than min_roi_pixels=16", "mask"):
            "The ROI covers 9 pixels; this model needs at least 16: outline the whole lesion",
        ("mask", "ROI maximum diameter 2.50 mm is below min_roi_mm=3", "automatic"):
            "The ROI found automatically is 2.50 mm across; this model needs at least 3 mm",
        ("mask", "mask spacing 0.1 x 0.1 mm differs from image spacing 0.2 x 0.2 mm", "mask"):
            "The ROI mask's pixel spacing (0.1 x 0.1 mm) differs from the image's",
        ("image", "unreadable: cannot identify image file", "mask"):
            "The image file could not be read (cannot identify image file): upload the image",
        ("mask", "empty mask (no ROI pixels)", "automatic"): NO_LESION_FOUND,
    }
    for (what, problem, source), words in cases.items():
        message = problem_message(what, problem, source)
        assert message.startswith(words), message
        assert not any(words in message for words in COHORT_WORDS), message


# --- the page: draw, correct, predict -------------------------------------------------------

def _tap(driver, points: list[tuple[int, int]], kind: str) -> None:
    """Pointer down and up at each viewport point, with a touch or a mouse pointer."""
    from selenium.webdriver.common.actions.action_builder import ActionBuilder
    from selenium.webdriver.common.actions.pointer_input import PointerInput

    actions = ActionBuilder(driver, mouse=PointerInput(kind, kind))
    for x, y in points:
        actions.pointer_action.move_to_location(x, y).pointer_down().pointer_up()
    actions.perform()


def test_the_page_draws_a_polygon_and_predicts_asdlrn_predict_row(live_server, cohort,
                                                              bundle_dir, tmp_path):
    from selenium.webdriver.common.actions import interaction
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    case = cohort.loc[CASE]
    with chromium(tmp_path / "profile") as driver:
        canvas = open_with_image(driver, live_server, case, roi_pixels="0")
        box = driver.execute_script("return arguments[0].getBoundingClientRect().toJSON();",
                                    canvas)
        assert box["width"] > 3 * 128  # drawn on a display much larger than the image
        taps = [(round(box["left"] + x * box["width"] / 128),
                 round(box["top"] + y * box["height"] / 128)) for x, y in LESION]
        _tap(driver, [*taps, taps[0]], interaction.POINTER_TOUCH)  # a tablet: closed on 1st
        drawn = json.loads(canvas.get_attribute("data-polygon"))
        # the page's image coordinates are exactly the pointer's, whatever the display size
        assert drawn == [[(u - box["left"]) * 128 / box["width"],
                          (v - box["top"]) * 128 / box["height"]] for u, v in taps]
        roi = polygon_mask(np.array(drawn), 128, 128)  # the server's rule
        rng = np.random.default_rng(3)
        for vertices in (drawn, rng.uniform(0, 128, (40, 2)).tolist(),  # self-crossing
                         (rng.integers(0, 257, (12, 2)) / 2).tolist()):  # centres on edges
            page_raster = driver.execute_script(
                "return Array.from(window.dlrnPolygonMask(arguments[0], 128, 128));", vertices)
            assert (np.array(page_raster, bool).reshape(128, 128)
                    == polygon_mask(np.array(vertices), 128, 128)).all()
        assert int(canvas.get_attribute("data-roi-pixels")) == roi.sum()
        driver.find_element(By.ID, "predict").click()
        shown = WebDriverWait(driver, 120).until(
            lambda d: d.find_elements(By.ID, "dlrn-probability"))[0]
        probability = float(shown.get_attribute("data-value"))
        cnn = float(driver.find_element(
            By.XPATH, "//table[@id='models']//tr[td[1][starts-with(., 'DL-resnet18')]]"
                      "/td[3]").get_attribute("data-value"))
        assert int(driver.find_element(By.ID, "roi-pixels").get_attribute("data-value")) \
            == roi.sum()
        assert driver.find_element(By.ID, "roi-used").is_displayed()
        assert canvas.get_attribute("data-roi-pixels") == str(roi.sum())  # the drawing stays
    expected = dlrn_predict_row(bundle_dir, case, roi, tmp_path)
    assert (probability, cnn) == (expected["DLRN"], expected["DL-resnet18"])


def test_the_page_s_brush_eraser_undo_and_clear_and_an_empty_roi(live_server, cohort,
                                                                 tmp_path):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    with chromium(tmp_path / "profile") as driver:
        canvas = open_with_image(driver, live_server, cohort.loc[CASE], roi_pixels="0")

        def pixels() -> int:
            return int(canvas.get_attribute("data-roi-pixels"))

        def stroke(tool: str, start: tuple[int, int], step: tuple[int, int]) -> None:
            """A drag from ``start`` (CSS pixels from the canvas' centre) by two ``step``s."""
            driver.find_element(By.CSS_SELECTOR, f'[data-tool="{tool}"]').click()
            (ActionChains(driver).move_to_element_with_offset(canvas, *start).click_and_hold()
             .move_by_offset(*step).move_by_offset(*step).release().perform())

        stroke("brush", (-120, 0), (80, 0))
        brushed = pixels()
        assert brushed > 0
        assert driver.find_element(By.CSS_SELECTOR, '[data-tool="brush"]') \
            .get_attribute("aria-pressed") == "true"
        stroke("eraser", (-40, -60), (0, 60))  # across the brush's line
        assert 0 < pixels() < brushed
        driver.find_element(By.ID, "undo").click()
        assert pixels() == brushed
        driver.find_element(By.ID, "clear").click()
        assert pixels() == 0
        driver.find_element(By.ID, "predict").click()  # no ROI: the page asks for one
        error = WebDriverWait(driver, 60).until(lambda d: d.find_elements(By.ID, "error"))[0]
        assert "No region of interest: outline the lesion on the image" in error.text
        assert canvas.is_displayed() and driver.find_element(By.ID, "undo").is_enabled()
        driver.find_element(By.ID, "undo").click()  # the drawing is still there to restore
        assert pixels() == brushed
