"""The calculator's answer for a clinician (issue 31): the ROI the clinician accepted and
where it came from, the answer's sensitivity to the outline, values outside the
nomogram's scales, the study's names for people, the applicability warning, and the
nomogram explorer starting at the patient. The numbers are compared with ``dlrn
predict`` on the same image and masks."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import numpy as np
import pandas as pd
import pytest
from headless_chromium import chromium
from PIL import Image
from serve_cases import dlrn_predict_row, files_of, form_of, open_with_image, png_of

from dlrn.applicability import COLUMNS as APPLICABILITY_COLUMNS
from dlrn.display_labels import DisplayLabels
from dlrn.outline import outline_margin, outline_variants
from dlrn.serve.answer import Answer
from dlrn.serve.form import form_fields
from dlrn.study.bundle import Bundle
from dlrn.study.config import study_from_dict

CASE = "syn0004"


def _lesion(case: pd.Series) -> np.ndarray:
    return np.asarray(Image.open(case["mask"])) > 0


# --- the outline rule -------------------------------------------------------------------------

def test_the_outline_moves_by_5_percent_of_the_equivalent_diameter_in_every_direction():
    from scipy.ndimage import binary_dilation, binary_erosion
    from skimage.morphology import disk

    rows, columns = np.mgrid[0:200, 0:200]
    roi = (rows - 100) ** 2 / 60 ** 2 + (columns - 90) ** 2 / 35 ** 2 <= 1  # an ellipse
    margin = outline_margin(roi)
    assert margin == round(0.05 * 2 * np.sqrt(roi.sum() / np.pi)) == 5
    shapes = outline_variants(roi)
    assert shapes.margin == margin
    assert (shapes.eroded == binary_erosion(roi, disk(margin), border_value=0)).all()
    assert (shapes.dilated == binary_dilation(roi, disk(margin))).all()
    tiny = np.zeros((20, 20), bool)
    tiny[5:7, 5:7] = True
    assert outline_margin(tiny) == 1 and outline_variants(tiny).eroded is None  # nothing left


# --- the ROI's source and the sensitivity, API ------------------------------------------------

def test_the_answer_says_how_much_the_outline_moves_it(client, predictor, cohort, bundle_dir,
                                                      tmp_path):
    case = cohort.loc[CASE]
    answer = client.post("/api/predict", data=form_of(predictor, case), files=files_of(case))
    assert answer.status_code == 200, answer.text
    answer = answer.json()
    shapes = outline_variants(_lesion(case))
    found = answer["roi_sensitivity"]
    assert found["margin_pixels"] == shapes.margin
    assert (found["eroded_pixels"], found["dilated_pixels"]) == (shapes.eroded.sum(),
                                                                  shapes.dilated.sum())
    for name, roi in (("eroded", shapes.eroded), ("dilated", shapes.dilated)):
        expected = dlrn_predict_row(bundle_dir, case, roi, tmp_path)
        assert found[name] == expected.drop(["label", "note", *APPLICABILITY_COLUMNS],
                                            errors="ignore").to_dict()
    nomograms = [answer["dlrn_probability"], found["eroded"]["DLRN"], found["dilated"]["DLRN"]]
    assert (found["probability_low"], found["probability_high"]) == (min(nomograms),
                                                                      max(nomograms))
    # the outline matters to the image models (this small study's nomogram barely
    # weighs its image score)
    assert found["eroded"]["DL-resnet18"] != found["dilated"]["DL-resnet18"]
    assert "5 % of its equivalent diameter" in found["rule"]


def _drawing(roi: np.ndarray) -> tuple[str, bytes]:
    return ("roi.png", png_of(roi.astype(np.uint8) * 255))


@pytest.mark.parametrize(("claim", "changed", "segmentation", "source"), [
    ("automatic", False, True, "automatic"),  # equal to the server's own proposal
    ("automatic", True, True, "automatic_corrected"),  # said "as proposed", but is not
    ("automatic_corrected", False, True, "automatic"),  # unchanged after all
    ("drawn", False, True, "drawn"),
    ("mask_corrected", True, True, "mask_corrected"),
    ("automatic", False, False, "drawn"),  # no segmentation model: nothing was proposed
    (None, True, True, "drawn"),
])
def test_the_answer_names_the_roi_s_real_source(client, predictor, cohort, monkeypatch, claim,
                                               changed, segmentation, source):
    case = cohort.loc[CASE]
    lesion = _lesion(case)
    if segmentation:
        monkeypatch.setattr(predictor, "proposed_roi", lambda picture: lesion)
    drawn = lesion.copy()
    if changed:
        drawn[np.argwhere(lesion)[0][0]] = False  # the proposal's top row erased
    data = {**form_of(predictor, case), **({"roi_source": claim} if claim else {})}
    answer = client.post("/api/predict", data=data, files={"image": files_of(case)["image"],
                                                           "roi": _drawing(drawn)})
    assert answer.status_code == 200, answer.text
    roi = answer.json()["roi"]
    assert roi["source"] == source and roi["pixels"] == drawn.sum()


def test_a_mask_file_is_the_mask_file_whatever_the_client_says(client, predictor, cohort):
    case = cohort.loc[CASE]
    answer = client.post("/api/predict", data={**form_of(predictor, case),
                                                "roi_source": "automatic"},
                         files=files_of(case)).json()
    assert answer["roi"]["source"] == "mask"
    assert answer["roi"]["source_words"] == "from the mask file"
    both = client.post("/api/predict", data=form_of(predictor, case),
                       files={**files_of(case), "roi": _drawing(_lesion(case))})
    assert both.status_code == 422 and "a mask file and a drawing" in both.json()["detail"]
    odd = client.post("/api/predict", data={**form_of(predictor, case), "roi_source": "U-Net"},
                      files={"image": files_of(case)["image"], "roi": _drawing(_lesion(case))})
    assert odd.status_code == 422 and "roi_source 'U-Net' is not one of" in odd.json()["detail"]


# --- values outside the nomogram's scales, names for people -----------------------------------

def test_a_value_outside_the_nomogram_s_scale_is_predicted_with_a_caution(client, predictor,
                                                                         cohort):
    case = cohort.loc[CASE]
    size = next(f for f in predictor.fields if f.name == "max_diameter_mm")
    beyond = str(size.maximum + 15)
    answer = client.post("/api/predict", data=form_of(predictor, case, max_diameter_mm=beyond),
                         files=files_of(case))
    assert answer.status_code == 200, answer.text
    caution = answer.json()["cautions"]
    assert len(caution) == 1 and f"covers {size.minimum:g} to {size.maximum:g} mm" in caution[0]
    assert "extrapolates" in caution[0]
    page = client.post("/", data=form_of(predictor, case, max_diameter_mm=beyond),
                       files=files_of(case)).text
    assert 'id="cautions"' in page and "extrapolates beyond the data" in page
    assert f"the nomogram's scale covers {size.minimum:g} to {size.maximum:g} mm" in page
    assert f'max="{size.maximum}"' not in page  # no browser tooltip in place of words
    refusing = dataclasses.replace(size, out_of_range="refuse")
    with pytest.raises(Exception, match="this study does not predict outside it"):
        refusing.parse(beyond)
    assert refusing.parse(str(size.maximum)) == size.maximum


def test_the_study_s_labels_name_the_predictors_levels_and_scores(predictor, bundle_dir):
    bundle = Bundle.open(bundle_dir)
    labels = {"max_diameter_mm": {"name": "Largest diameter", "unit": "mm"},
              "sex": {"name": "Sex", "levels": {"female": "woman", "male": "man"}},
              "DLR_score": {"name": "Image score"}}
    settings = {**bundle.json("settings"), "labels": labels}
    fields = {f.name: f for f in form_fields(settings, bundle.json("clinical/encoder"),
                                             bundle.json("dlrn/nomogram"))}
    assert fields["max_diameter_mm"].label == "Largest diameter (mm)"  # the unit once
    assert fields["sex"].label == "Sex" and fields["sex"].wording("female") == "woman"
    assert fields["age"].label == "Age"  # not in the map: the column, readable
    display = DisplayLabels.of(labels)
    assert display.axis("DLR_score") == "Image score"
    assert display.axis("margin[missing]") == "margin: unknown"
    assert DisplayLabels.of({}).axis("DLR_score") == "Deep-learning radiomics score"
    unlabelled = {f.name: f for f in predictor.fields}
    assert unlabelled["max_diameter_mm"].label == "Max diameter (mm)"


def test_the_study_file_s_labels_are_checked():
    config = study_from_dict({"cohort": {"table": "x.csv"},
                              "labels": {"birads": {"levels": {"4a": "BI-RADS 4a"}}}})
    assert config.labels["birads"]["levels"]["4a"] == "BI-RADS 4a"
    assert config.out_of_range == "caution"
    with pytest.raises(Exception) as error:
        study_from_dict({"cohort": {"table": "x.csv"},
                         "labels": {"age": {"nam": "Age", "unit": 3}}})
    assert "labels.age.nam: unknown key" in str(error.value)
    assert "labels.age.unit: must be text" in str(error.value)


def test_the_template_documents_the_labels():
    from dlrn.study.template import study_template

    text = study_template()
    assert "\nlabels: {}" in text and "out_of_range: caution" in text


# --- the answer's layout ----------------------------------------------------------------------

@dataclasses.dataclass
class _Judged(Answer):
    """An answer carrying the applicability check's field (issue 31, the other half)."""

    applicability: dict[str, Any] | None = None


@pytest.mark.parametrize("applicable", [False, True, None])
def test_an_image_unlike_the_study_s_gets_the_warning_first(client, predictor, cohort,
                                                           monkeypatch, applicable):
    case = cohort.loc[CASE]
    predict = predictor.predict
    verdict = None if applicable is None else {
        "applicable": applicable, "reasons": ["its grey levels are far outside the training "
                                              "images'", "no lesion-like region"]}

    def judged(*args: Any, **kwargs: Any) -> Answer:
        found = predict(*args, **kwargs)
        return _Judged(**{f.name: getattr(found, f.name) for f in dataclasses.fields(found)},
                       applicability=verdict)

    monkeypatch.setattr(predictor, "predict", judged)
    page = client.post("/", data=form_of(predictor, case), files=files_of(case)).text
    result = page[page.index('id="result"'):]
    if applicable is False:
        warning = result.index('id="applicability"')
        assert warning < result.index('id="dlrn-probability"')  # before the number
        assert ("this image is unlike the images this model was built on: its grey levels "
                "are far outside the training images&#39;; no lesion-like region") in result
    else:
        assert 'id="applicability"' not in page


def test_the_answer_comes_first_and_the_details_are_folded(client, predictor, cohort):
    case = cohort.loc[CASE]
    page = client.post("/", data={**form_of(predictor, case), "gradcam": "1"},
                       files=files_of(case)).text
    order = [page.index(anchor) for anchor in (
        'id="dlrn-probability"', 'id="cutoff"', 'id="roi-range"', 'id="roi-source"',
        'id="roi-used"', 'id="gradcam"', '<details id="details">', 'id="models"')]
    assert order == sorted(order)
    assert "Region of interest: " in page and "from the mask file" in page
    assert "label unknown" not in page and "(API:" not in page
    assert "Where the image model looked" in page
    form = page[page.index('id="case-form"'):]
    assert form.index('id="predict"') < form.index("PNG, JPEG, BMP")  # formats folded below
    assert form.index('<details class="files">') < form.index('id="mask-file"')
    axes = json.loads(page.split('id="patient-axes">')[1].split("</script>")[0])
    assert axes["max_diameter_mm"] == pytest.approx(float(case["max_diameter_mm"]))
    assert axes["sex"] == case["sex"]


# --- in the browser ---------------------------------------------------------------------------

def _predicted(driver, previous=None):
    """Press Predict; the new answer (or error) once it replaced ``previous``."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    driver.find_element(By.ID, "predict").click()
    return WebDriverWait(driver, 120).until(
        lambda d: (found := d.find_elements(By.CSS_SELECTOR, "#result, #error"))
        and found[0] != previous and found[0])


def test_the_page_predicts_with_the_roi_on_the_canvas_and_says_where_it_came_from(
        live_server, predictor, cohort, monkeypatch, tmp_path):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    case = cohort.loc[CASE]
    lesion = _lesion(case)
    monkeypatch.setattr(predictor, "proposed_roi", lambda picture: lesion)  # a U-Net's
    with chromium(tmp_path / "profile") as driver:
        canvas = open_with_image(driver, live_server, case)
        assert int(canvas.get_attribute("data-roi-pixels")) == lesion.sum()  # the proposal
        shown = _predicted(driver)
        source = driver.find_element(By.ID, "roi-source")
        assert source.get_attribute("data-value") == "automatic"
        assert "used as proposed" in source.text
        probability = float(driver.find_element(By.ID, "dlrn-probability")
                            .get_attribute("data-value"))
        # the explorer starts at the patient: its risk is the answer's
        risk = driver.find_element(By.CSS_SELECTOR, ".dlrn-interactive-nomogram .dlrn-risk")
        assert float(risk.get_attribute("data-value")) == pytest.approx(probability, rel=1e-9)
        assert driver.find_element(By.ID, "roi-range").is_displayed()
        assert not driver.find_element(By.ID, "models").is_displayed()  # folded in details

        driver.execute_script("arguments[0].scrollIntoView();", canvas)  # the answer moved it
        driver.find_element(By.CSS_SELECTOR, '[data-tool="eraser"]').click()
        (ActionChains(driver).move_to_element(canvas).click_and_hold()
         .move_by_offset(30, 0).release().perform())
        erased = int(canvas.get_attribute("data-roi-pixels"))
        assert 0 < erased < lesion.sum()
        shown = _predicted(driver, shown)
        assert driver.find_element(By.ID, "roi-source").get_attribute("data-value") \
            == "automatic_corrected"
        assert int(driver.find_element(By.ID, "roi-pixels").get_attribute("data-value")) \
            == erased

        driver.find_element(By.ID, "clear").click()
        assert canvas.get_attribute("data-roi-pixels") == "0"
        shown = _predicted(driver, shown)
        assert shown.get_attribute("id") == "error"  # asked for an ROI, nothing sent
        assert "No region of interest" in shown.text
        assert not driver.find_elements(By.ID, "dlrn-probability")

        driver.execute_script("arguments[0].scrollIntoView();", canvas)
        driver.find_element(By.CSS_SELECTOR, '[data-tool="brush"]').click()
        (ActionChains(driver).move_to_element(canvas).click_and_hold()
         .move_by_offset(40, 10).release().perform())
        brushed = int(canvas.get_attribute("data-roi-pixels"))
        _predicted(driver, shown)
        assert driver.find_element(By.ID, "roi-source").get_attribute("data-value") == "drawn"
        assert int(driver.find_element(By.ID, "roi-pixels").get_attribute("data-value")) \
            == brushed
        driver.save_screenshot(str(tmp_path / "drawn.png"))
