"""dlrn serve: the form from the bundle, the same numbers as dlrn predict, refusals, access.

One small study (conftest's ``bundle_dir``: the session's synthetic cohort, one
classifier, a tiny CNN, numeric and categorical predictors in the nomogram) serves every
test here and in test_serve_roi.py.
"""

from __future__ import annotations

import base64
import io
import re
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from headless_chromium import chromium
from PIL import Image
from serve_cases import files_of, form_of

from dlrn.applicability import COLUMNS as APPLICABILITY_COLUMNS
from dlrn.cli import main
from dlrn.cli.serve import check_access
from dlrn.errors import DlrnError
from dlrn.serve.app import create_app
from dlrn.serve.form import Field
from dlrn.serve.predictor import Predictor
from dlrn.serve.uploads import UploadError, UploadLimits
from dlrn.study.bundle import Bundle, BundleError
from dlrn.study.predict import predict_cases, predict_table, read_new_cases

TOKEN = "a-long-enough-test-token"


@pytest.fixture(scope="module")
def radn_bundle_dir(bundle_dir) -> Path:
    """The same study without deep learning (the radiomics nomogram RadN): a copy of its
    output run again with ``dl.enabled: false``, so only the later stages run."""
    study = bundle_dir.parent.parent
    folder = study.parent / "radn"
    shutil.copytree(study / "study", folder / "study", ignore=shutil.ignore_patterns("bundle"))
    text = (study / "study.yaml").read_text()
    (folder / "study.yaml").write_text(re.sub(r"dl: \{", "dl: {enabled: false, ", text))
    assert main(["run", str(folder / "study.yaml"), "--quiet"]) == 0
    return folder / "study" / "bundle"


def _png(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def test_form_is_generated_from_the_bundle(client, predictor, bundle_dir):
    bundle = Bundle.open(bundle_dir)
    settings, encoder = bundle.json("settings"), bundle.json("clinical/encoder")
    selected = settings["clinical"]["selected"]
    assert {"age", "sex", "margin"} <= set(selected)  # numeric and categorical predictors
    page = client.get("/").text
    fields = client.get("/api/form").json()["fields"]
    assert [f["name"] for f in fields] == selected
    for field in fields:
        assert f'name="{field["name"]}"' in page
        if field["kind"] == "choice":
            state = encoder["state"][field["name"]]
            assert field["levels"] == [*state["levels"], *state.get("folded", [])]
            for level in field["levels"]:
                assert f'<option value="{level}"' in page
        else:
            scale = next(s for s in Bundle.open(bundle_dir).json("dlrn/nomogram")["scales"]
                         if s["name"] == field["name"])
            assert (field["minimum"], field["maximum"]) == (min(scale["values"]),
                                                            max(scale["values"]))
            assert (f'data-minimum="{field["minimum"]}" data-maximum="{field["maximum"]}"'
                    in page)
    assert next(f for f in fields if f["name"] == "max_diameter_mm")["unit"] == "mm"


def test_api_answer_equals_dlrn_predict_to_the_digit(client, predictor, cohort, bundle_dir,
                                                     tmp_path):
    ids = ["syn0004", "syn0017"]
    table = tmp_path / "new.csv"
    cohort.loc[ids].to_csv(table, index=False)
    expected = predict_table(bundle_dir, table, progress=False)
    for case_id in ids:
        case = cohort.loc[case_id]
        response = client.post("/api/predict", data=form_of(predictor, case), files=files_of(case))
        assert response.status_code == 200, response.text
        answer = response.json()
        row = expected.loc[case_id].drop("label")
        assert answer["predictions"] == row.drop(["note", *APPLICABILITY_COLUMNS]).to_dict()
        assert answer["applicability"]["applicable"] == bool(row["applicable"])
        assert answer["applicability"]["feature_distance"] == row["feature_distance"]
        assert answer["notes"] == ([row["note"]] if row["note"] else [])
        assert answer["nomogram"] == "DLRN"
        assert answer["dlrn_probability"] == row["DLRN"]
        assert answer["total_points"] == row["total_points"]
        assert answer["points"] == {c.removeprefix("points_"): v for c, v in row.items()
                                    if c.startswith("points_")}
        assert answer["above_cutoff"] == (row["DLRN"] >= answer["cutoff"])
        assert {m["name"] for m in answer["models"]} == {"HCR-LR", "DL-resnet18", "DLR-LR"}
        assert answer["gradcam_png_base64"] is None


def test_page_shows_probability_points_models_and_gradcam(client, predictor, cohort):
    case = cohort.loc["syn0004"]
    response = client.post("/", data={**form_of(predictor, case), "gradcam": "1"},
                           files=files_of(case))
    assert response.status_code == 200
    page = response.text
    api = client.post("/api/predict?gradcam=true", data=form_of(predictor, case),
                      files=files_of(case)).json()
    assert f'id="dlrn-probability" data-value="{api["dlrn_probability"]!r}"' in page
    assert f'data-value="{api["total_points"]!r}"' in page
    assert 'id="gradcam"' in page and api["gradcam_png_base64"] in page
    assert Image.open(io.BytesIO(base64.b64decode(
        api["gradcam_png_base64"]))).format == "PNG"
    assert "@media print" in page and "classified" in page
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["x-frame-options"] == "DENY"


@pytest.mark.parametrize(("change", "status", "reason"), [
    ({"margin": "fuzzy"}, 422, "Margin: unknown choice 'fuzzy'"),
    ({"age": "old"}, 422, "Age must be a number"),
    ({"age": "nan"}, 422, "Age must be a finite number"),
    ({"weight": "70"}, 422, "unknown field(s) weight"),
])
def test_bad_values_get_a_reason_from_the_api_and_the_page(client, predictor, cohort, change,
                                                           status, reason):
    case = cohort.loc["syn0004"]
    form = form_of(predictor, case, **change)
    api = client.post("/api/predict", data=form, files=files_of(case))
    assert api.status_code == status and reason in api.json()["detail"]
    page = client.post("/", data=form, files=files_of(case))
    assert page.status_code == status
    assert 'id="error"' in page.text and reason.replace("'", "&#39;") in page.text
    numeric = {f.name for f in predictor.fields if not f.is_choice}
    for name, value in change.items():  # the form keeps what was typed
        if name in numeric and value:
            assert f'value="{value}"' in page.text


def test_the_cutoff_is_the_one_the_study_chose_for_its_nomogram(predictor, bundle_dir):
    metrics = pd.read_csv(bundle_dir.parent / "stages" / "comparison" / "evaluation"
                          / "metrics.csv")
    chosen = metrics.loc[(metrics["model"] == "DLRN") & (metrics["set"] == "test"), "threshold"]
    assert predictor.nomogram_name == "DLRN"
    assert predictor.cutoff == chosen.item()
    with pytest.raises(DlrnError, match=r"--cutoff 0\.99 disagrees"):
        Predictor(bundle_dir, cutoff=0.99)


def test_a_blank_value_is_imputed_with_the_note_of_dlrn_predict(client, predictor, cohort,
                                                                bundle_dir, tmp_path):
    assert next(f for f in predictor.fields if f.name == "age").optional  # cohort.missing
    case = cohort.loc["syn0004"].copy()
    form = form_of(predictor, case, age="")
    api = client.post("/api/predict", data=form, files=files_of(case))
    assert api.status_code == 200, api.text
    case["age"] = ""
    table = tmp_path / "blank.csv"
    case.to_frame().T.to_csv(table, index=False)
    expected = predict_table(bundle_dir, table, progress=False).iloc[0]
    note = expected["note"].replace("syn0004", "patient")  # the server's one case
    assert "imputed" in note and api.json()["notes"] == [note]
    assert api.json()["dlrn_probability"] == expected["DLRN"]
    assert api.json()["inputs"]["age"] is None
    page = client.post("/", data=form, files=files_of(case)).text
    assert 'id="notes"' in page and note.replace("'", "&#39;") in page


def test_a_required_predictor_left_blank_is_refused():
    with pytest.raises(UploadError, match="size: a value is needed"):
        Field("size").parse("")
    assert Field("size", optional=True).parse(" ") is None
    tokens = Field("margin", levels=("angular", "indistinct"), kind="tokens", separator="&")
    assert tokens.parse(["indistinct", "angular&indistinct"]) == "indistinct&angular"
    with pytest.raises(UploadError, match="unknown choice"):
        tokens.parse("angular&fuzzy")


def test_a_long_lived_bundle_builds_each_cnn_once(predictor, cohort, monkeypatch):
    from dlrn.deep import networks as nets

    backbone = predictor.settings["deep"]["backbone"]
    assert predictor.bundle.cnn(backbone) is predictor.bundle.cnn(backbone)

    def no_rebuild(*args, **kwargs):
        raise AssertionError("the CNN was built again")

    monkeypatch.setattr(nets, "build_model", no_rebuild)
    case = cohort.loc["syn0004"]
    assert predictor.predict(form_of(predictor, case), Path(case["image"]).read_bytes(),
                             Path(case["mask"]).read_bytes()).probability is not None


def test_a_radiomics_nomogram_bundle_is_served_by_its_name(radn_bundle_dir, cohort, tmp_path):
    radn = Predictor(radn_bundle_dir)
    assert (radn.nomogram_name, radn.has_cnn, radn.score_model) == ("RadN", False, "HCR-LR")
    metrics = pd.read_csv(radn_bundle_dir.parent / "stages" / "comparison" / "evaluation"
                          / "metrics.csv")
    assert radn.cutoff == metrics.loc[(metrics["model"] == "RadN")
                                      & (metrics["set"] == "test"), "threshold"].item()
    client = TestClient(create_app(radn))
    case = cohort.loc["syn0017"]
    answer = client.post("/api/predict", data=form_of(radn, case), files=files_of(case)).json()
    table = tmp_path / "one.csv"
    cohort.loc[["syn0017"]].to_csv(table, index=False)
    expected = predict_table(radn_bundle_dir, table, progress=False).iloc[0]
    assert answer["nomogram"] == "RadN" and answer["dlrn_probability"] == expected["RadN"]
    assert answer["above_cutoff"] == (expected["RadN"] >= radn.cutoff)
    assert [m["name"] for m in answer["models"]] == ["HCR-LR"]
    page = client.post("/", data=form_of(radn, case), files=files_of(case)).text
    assert "<h1>RadN nomogram calculator</h1>" in page and "(RadN nomogram)" in page
    assert "DLRN nomogram" not in page
    assert f'data-value="{float(expected["RadN"])!r}"' in page and 'id="gradcam"' not in page


def test_bad_files_get_a_reason_and_no_server_path_leaks(client, predictor, cohort, tmp_path):
    case = cohort.loc["syn0004"]
    image = np.asarray(Image.open(case["image"]))
    form = form_of(predictor, case)
    cases = {
        "mask does not match image": (_png(np.ones((40, 30), np.uint8)), 422,
                                      "30 x 40 pixels but the image is 128 x 128"),
        "empty mask": (_png(np.zeros(image.shape[:2], np.uint8)), 422, "the roi is empty"),
        "not an image": (b"%PDF-1.4 not an image", 415, "not an image format"),
    }
    for name, (mask, status, reason) in cases.items():
        response = client.post("/api/predict", data=form, files=files_of(case, mask=mask))
        assert response.status_code == status, name
        detail = response.json()["detail"]
        assert reason in detail.lower(), (name, detail)
        assert "/tmp" not in detail and "dlrn-serve-" not in detail, detail
        for cohort_words in ("cohort table", "row", "on_error", "exclusions", "validate"):
            assert cohort_words not in detail, detail  # the clinician's words, not the study's
    missing = client.post("/api/predict", data=form, files={"mask": ("m.png", b"")})
    assert missing.status_code == 422 and "missing the image file" in missing.json()["detail"]
    # the server still answers a good case afterwards
    assert client.post("/api/predict", data=form, files=files_of(case)).status_code == 200


def test_an_unexpected_failure_is_answered_and_the_server_goes_on(predictor, cohort,
                                                                   monkeypatch):
    client = TestClient(create_app(predictor), raise_server_exceptions=False)
    case = cohort.loc["syn0004"]
    good = client.post("/api/predict", data=form_of(predictor, case), files=files_of(case)).json()

    def broken(*args, **kwargs):
        raise RuntimeError("a bug")

    monkeypatch.setattr(predictor, "predict", broken)
    failed = client.post("/api/predict", data=form_of(predictor, case), files=files_of(case))
    assert failed.status_code == 500 and "could not process" in failed.json()["detail"]
    assert "RuntimeError" not in failed.text and failed.headers["cache-control"] == "no-store"
    page = client.post("/", data=form_of(predictor, case), files=files_of(case))
    assert page.status_code == 500 and 'id="error"' in page.text
    monkeypatch.undo()
    again = client.post("/api/predict", data=form_of(predictor, case), files=files_of(case))
    assert again.status_code == 200 and again.json() == good


def test_upload_size_limit_is_enforced(bundle_dir, cohort, predictor):
    case = cohort.loc["syn0004"]
    small = Predictor(bundle_dir, limits=UploadLimits(max_bytes=1000, max_pixels=10**6))
    client = TestClient(create_app(small))
    response = client.post("/api/predict", data=form_of(predictor, case), files=files_of(case))
    assert response.status_code == 413 and "more than this server accepts" in response.text
    huge = client.post("/api/predict", content=b"x" * (3 * 1024 * 1024),
                       headers={"content-type": "multipart/form-data; boundary=x"})
    assert huge.status_code == 413

    def streamed():  # no Content-Length: counted as it arrives
        for _ in range(3):
            yield b"--x\r\n" + b"y" * 1024 * 1024

    streamed_answer = client.post("/api/predict", content=streamed(), headers={
        "content-type": "multipart/form-data; boundary=x"})
    assert streamed_answer.status_code == 413
    assert streamed_answer.headers["cache-control"] == "no-store"  # refusals too
    tiny_pixels = Predictor(bundle_dir, limits=UploadLimits(max_pixels=100))
    response = TestClient(create_app(tiny_pixels)).post(
        "/api/predict", data=form_of(predictor, case), files=files_of(case))
    assert response.status_code == 413 and "pixels" in response.json()["detail"]


def test_openapi_documents_the_predict_form_from_the_bundle(client, predictor):
    spec = client.get("/openapi.json").json()
    operation = spec["paths"]["/api/predict"]["post"]
    schema = operation["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert set(schema["required"]) == {"image", *(f.name for f in predictor.fields
                                                  if not f.optional)}
    assert {"mask", "polygon"} <= set(schema["properties"])
    assert schema["properties"]["margin"]["enum"] == list(
        next(f for f in predictor.fields if f.name == "margin").levels)
    age = next(f for f in predictor.fields if f.name == "age")
    assert "maximum" not in schema["properties"]["age"]  # outside: a caution, not a refusal
    assert f"the nomogram's scale covers {age.scale_text}" in schema["properties"]["age"][
        "description"]
    assert {"200", "401", "413", "415", "422"} <= set(operation["responses"])
    preview = spec["paths"]["/api/preview"]["post"]["requestBody"]["content"]
    assert preview["multipart/form-data"]["schema"]["required"] == ["image"]


def test_tampered_bundle_is_refused(bundle_dir, tmp_path, capsys):
    copy = tmp_path / "bundle"
    shutil.copytree(bundle_dir, copy)
    with (copy / "dlrn" / "nomogram.json").open("a") as handle:
        handle.write(" ")
    with pytest.raises(BundleError, match="does not match its checksum"):
        Predictor(copy)
    assert main(["serve", str(copy)]) == 2
    assert "checksum" in capsys.readouterr().err


def test_cnn_weights_changed_after_start_are_refused(bundle_dir, tmp_path, predictor, cohort):
    copy = tmp_path / "bundle"
    shutil.copytree(bundle_dir, copy)
    client = TestClient(create_app(Predictor(copy)))
    case = cohort.loc["syn0004"]
    weights = copy / "deep" / "cnn.safetensors"
    weights.write_bytes(weights.read_bytes())  # same bytes, but written again
    response = client.post("/api/predict", data=form_of(predictor, case), files=files_of(case))
    assert response.status_code == 503 and "restart dlrn serve" in response.json()["detail"]


def test_network_host_needs_a_token_and_warns(capsys):
    check_access("127.0.0.1", None)
    check_access("localhost", None)
    with pytest.raises(DlrnError, match="--token"):
        check_access("0.0.0.0", None)
    with pytest.raises(DlrnError, match="at least 16"):
        check_access("0.0.0.0", "short")
    check_access("0.0.0.0", TOKEN)
    assert "warning" in capsys.readouterr().err
    assert main(["serve", "no-such-bundle", "--host", "0.0.0.0"]) == 2


def test_token_is_required_on_every_route(predictor, cohort):
    client = TestClient(create_app(predictor, token=TOKEN))
    case = cohort.loc["syn0004"]
    for method, path in (("get", "/"), ("get", "/openapi.json"), ("get", "/docs"),
                         ("get", "/api/form"), ("post", "/api/predict"),
                         ("post", "/api/preview")):
        assert getattr(client, method)(path).status_code == 401, path
    assert client.get("/", headers={"Authorization": "Bearer wrong-token-wrong-token"}) \
        .status_code == 401
    response = client.post("/api/predict", data=form_of(predictor, case), files=files_of(case),
                           headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200
    browser = TestClient(create_app(predictor, token=TOKEN))
    assert browser.get(f"/?token={TOKEN}").status_code == 200  # sets the cookie
    assert browser.get("/").status_code == 200


def test_concurrent_requests_are_all_answered_correctly(live_server, predictor, cohort):
    import httpx

    good, bad = cohort.loc["syn0004"], cohort.loc["syn0017"]

    def call(index: int) -> httpx.Response:
        case = good if index % 2 else bad
        form = form_of(predictor, case) if index % 2 else form_of(predictor, case, margin="x")
        return httpx.post(f"{live_server}/api/predict", data=form, files=files_of(case),
                          timeout=120)

    with ThreadPoolExecutor(4) as pool:
        responses = list(pool.map(call, range(6)))
    answers = [r.json()["dlrn_probability"] for r in responses[1::2]]
    assert [r.status_code for r in responses] == [422, 200] * 3
    assert len(set(answers)) == 1


def test_browser_fills_the_form_and_reads_the_probability(live_server, predictor, cohort,
                                                          bundle_dir, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait

    case = cohort.loc["syn0023"]
    with chromium(tmp_path / "profile") as driver:
        driver.get(live_server + "/")
        for field in predictor.fields:
            element = driver.find_element(By.NAME, field.name)
            if field.is_choice:
                Select(element).select_by_value(case[field.name])
            else:
                element.send_keys(case[field.name])
        driver.find_element(By.NAME, "image").send_keys(case["image"])
        driver.find_element(By.NAME, "mask").send_keys(case["mask"])
        driver.find_element(By.ID, "predict").click()
        shown = WebDriverWait(driver, 120).until(
            lambda d: d.find_elements(By.ID, "dlrn-probability"))[0]
        page_probability = float(shown.get_attribute("data-value"))
        assert driver.find_elements(By.ID, "gradcam")
        printed = base64.b64decode(driver.print_page())  # the one-page summary
        assert len(re.findall(rb"/Type\s*/Page[^s]", printed)) == 1
    table = tmp_path / "one.csv"
    cohort.loc[["syn0023"]].to_csv(table, index=False)
    bundle = Bundle.open(bundle_dir)
    cases = read_new_cases(table, bundle.json("settings"), progress=False)
    assert page_probability == predict_cases(bundle, cases, progress=False)["DLRN"].iloc[0]


def test_the_report_s_interactive_nomogram_runs_and_loads_nothing(bundle_dir, tmp_path):
    from selenium.webdriver.common.by import By

    report = bundle_dir.parent / "report" / "report.html"
    with chromium(tmp_path / "profile") as driver:
        driver.get(report.as_uri())
        root = driver.find_element(By.CSS_SELECTOR, "h2#dlrn ~ .dlrn-interactive-nomogram")
        assert root.get_attribute("data-ready") == "true"
        assert float(root.find_element(By.CLASS_NAME, "dlrn-risk").get_attribute(
            "data-value")) > 0
        loaded = driver.execute_script(
            "return performance.getEntriesByType('resource').map(e => e.name);")
    assert not [name for name in loaded if not name.startswith(("data:", "file:"))]


def test_the_form_follows_the_encoder_v2_rules():
    from dlrn.clinical import ClinicalEncoder
    from dlrn.serve.form import form_fields

    table = pd.DataFrame({"age": [40.0, np.nan, 55.0, 61.0, 47.0, 52.0],
                          "grade": ["low", "high", "mid", "low", "high", "mid"],
                          "site": ["a", "a", "b", "b", "a", "c"],
                          "signs": ["pain&fever", "pain", "fever", "pain", "none", "fever"]})
    encoder = ClinicalEncoder({"age": "continuous",
                               "grade": {"type": "ordinal", "order": ["low", "mid", "high"]},
                               "site": {"type": "categorical", "missing": "stop"},
                               "signs": {"type": "multilabel", "separator": "&"}},
                              missing="impute", min_level_count=2).fit(table)
    nomogram = {"scales": [{"name": "age", "values": [40, 50, 60, 70]}]}
    fields = {f.name: f for f in form_fields({"clinical": {"selected": list(table)}},
                                             encoder.to_dict(), nomogram)}
    assert (fields["age"].kind, fields["age"].minimum, fields["age"].maximum) == (
        "number", 40, 70)
    assert fields["grade"].kind == "ordinal" and fields["grade"].levels == ("low", "mid", "high")
    site = fields["site"]
    assert site.kind == "choice" and not site.optional and "c" in site.levels  # merged: other
    signs = fields["signs"]
    assert signs.kind == "tokens" and signs.separator == "&" and signs.optional
    assert set(signs.levels) == {"pain", "fever", "none"}
    assert all(fields[name].optional for name in ("age", "grade", "signs"))


def test_the_page_offers_checkboxes_ordered_levels_and_unknown():
    from types import SimpleNamespace

    from dlrn.serve.app import _templates

    fields = [Field("signs", levels=("pain", "fever"), kind="tokens", separator="&",
                    optional=True),
              Field("grade", levels=("low", "mid", "high"), kind="ordinal", optional=True),
              Field("site", levels=("a", "b"), kind="choice")]
    predictor = SimpleNamespace(fields=fields, nomogram_name="RadN", limits=UploadLimits(),
                                has_cnn=False, score_model="HCR-LR", mask_label=None,
                                bundle=SimpleNamespace(folder=Path("bundle"), manifest={}))
    pages = _templates()
    pages.nomogram_html = ""
    page = " ".join(pages.render(predictor, values={"signs": "pain&fever", "grade": "mid"})
                    .split())
    for token in ("pain", "fever"):
        assert f'<input type="checkbox" name="signs" value="{token}" checked>' in page
    options = re.findall(r'<select name="grade"\s*>(.*?)</select>', page)[0]
    assert re.findall(r'<option value="([^"]*)"', options) == ["", "low", "mid", "high"]
    assert '<option value="mid" selected>' in options and "unknown" in options
    assert '<select name="site" required>' in page  # no blank where the rule is not impute
