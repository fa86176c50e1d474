"""dlrn serve: the form from the bundle, the same numbers as dlrn predict, refusals, access.

One small study (the session's synthetic cohort, one classifier, a tiny CNN, a
permissive clinical threshold so that the nomogram has numeric and categorical
predictors) serves every test here.
"""

from __future__ import annotations

import base64
import io
import re
import shutil
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from headless_chromium import chromium
from PIL import Image

from dlrn.cli import main
from dlrn.cli.serve import check_access
from dlrn.errors import DlrnError
from dlrn.serve.app import create_app
from dlrn.serve.predictor import Predictor
from dlrn.serve.uploads import UploadLimits
from dlrn.study.bundle import Bundle, BundleError
from dlrn.study.predict import predict_cases, predict_table, read_new_cases

STUDY = """\
cohort:
  table: {table}
  patient: patient_id
  clinical: {{age: continuous, max_diameter_mm: continuous, sex: categorical,
             margin: categorical}}
radiomics: {{preset: fast, jobs: 1}}
selection: {{lasso_folds: 3}}
classifiers: {{models: [LR], cv_folds: 3}}
dl: {{backbones: [resnet18], weights: null, epochs: 1, batch_size: 16, image_size: 32,
     pca_components: 4}}
evaluation: {{clinical_p_threshold: 0.9}}
output: study
seed: 0
"""
TOKEN = "a-long-enough-test-token"


@pytest.fixture(scope="module")
def bundle_dir(tmp_path_factory, synthetic_cohort_csv) -> Path:
    folder = tmp_path_factory.mktemp("serve_study")
    (folder / "study.yaml").write_text(STUDY.format(table=synthetic_cohort_csv))
    assert main(["run", str(folder / "study.yaml"), "--quiet"]) == 0
    return folder / "study" / "bundle"


@pytest.fixture(scope="module")
def predictor(bundle_dir) -> Predictor:
    return Predictor(bundle_dir, cutoff=0.5)


@pytest.fixture(scope="module")
def client(predictor) -> TestClient:
    return TestClient(create_app(predictor))


@pytest.fixture(scope="module")
def cohort(synthetic_cohort_csv) -> pd.DataFrame:
    table = pd.read_csv(synthetic_cohort_csv, dtype=str).set_index("case_id", drop=False)
    for column in ("image", "mask"):
        table[column] = [str(synthetic_cohort_csv.parent / p) for p in table[column]]
    return table


def _form(predictor: Predictor, case: pd.Series, **changes: str) -> dict[str, str]:
    return {**{f.name: case[f.name] for f in predictor.fields}, **changes}


def _files(case: pd.Series, *, image: bytes | None = None, mask: bytes | None = None) -> dict:
    # client file names are deliberately misleading: the content decides
    return {"image": ("scan.dcm", image or Path(case["image"]).read_bytes()),
            "mask": ("../../etc/mask.txt", mask or Path(case["mask"]).read_bytes())}


def _png(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def test_form_is_generated_from_the_bundle(client, predictor, bundle_dir):
    settings = Bundle.open(bundle_dir).json("settings")
    selected = settings["clinical"]["selected"]
    assert {"age", "sex", "margin"} <= set(selected)  # numeric and categorical predictors
    page = client.get("/").text
    fields = client.get("/api/form").json()["fields"]
    assert [f["name"] for f in fields] == selected
    for field in fields:
        assert f'name="{field["name"]}"' in page
        if field["name"] in settings["clinical"]["levels"]:
            assert field["levels"] == settings["clinical"]["levels"][field["name"]]
            for level in field["levels"]:
                assert f'<option value="{level}"' in page
        else:
            scale = next(s for s in Bundle.open(bundle_dir).json("dlrn/nomogram")["scales"]
                         if s["name"] == field["name"])
            assert (field["minimum"], field["maximum"]) == (min(scale["values"]),
                                                            max(scale["values"]))
            assert f'min="{field["minimum"]}" max="{field["maximum"]}"' in page
    assert next(f for f in fields if f["name"] == "max_diameter_mm")["unit"] == "mm"


def test_api_answer_equals_dlrn_predict_to_the_digit(client, predictor, cohort, bundle_dir,
                                                     tmp_path):
    ids = ["syn0004", "syn0017"]
    table = tmp_path / "new.csv"
    cohort.loc[ids].to_csv(table, index=False)
    expected = predict_table(bundle_dir, table, progress=False)
    for case_id in ids:
        case = cohort.loc[case_id]
        response = client.post("/api/predict", data=_form(predictor, case), files=_files(case))
        assert response.status_code == 200, response.text
        answer = response.json()
        row = expected.loc[case_id].drop("label")
        assert answer["predictions"] == row.to_dict()
        assert answer["dlrn_probability"] == row["DLRN"]
        assert answer["total_points"] == row["total_points"]
        assert answer["points"] == {c.removeprefix("points_"): v for c, v in row.items()
                                    if c.startswith("points_")}
        assert answer["above_cutoff"] == (row["DLRN"] >= 0.5)
        assert {m["name"] for m in answer["models"]} == {"HCR-LR", "DL-resnet18", "DLR-LR"}
        assert answer["gradcam_png_base64"] is None


def test_page_shows_probability_points_models_and_gradcam(client, predictor, cohort):
    case = cohort.loc["syn0004"]
    response = client.post("/", data={**_form(predictor, case), "gradcam": "1"},
                           files=_files(case))
    assert response.status_code == 200
    page = response.text
    api = client.post("/api/predict?gradcam=true", data=_form(predictor, case),
                      files=_files(case)).json()
    assert f'id="dlrn-probability" data-value="{api["dlrn_probability"]!r}"' in page
    assert f'data-value="{api["total_points"]!r}"' in page
    assert 'id="gradcam"' in page and api["gradcam_png_base64"] in page
    assert Image.open(io.BytesIO(base64.b64decode(
        api["gradcam_png_base64"]))).format == "PNG"
    assert "@media print" in page and "classified" in page
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["x-frame-options"] == "DENY"


@pytest.mark.parametrize(("change", "status", "reason"), [
    ({"margin": "fuzzy"}, 422, "unknown level 'fuzzy' for 'margin'"),
    ({"age": "300"}, 422, "value out of range for 'age'"),
    ({"age": "old"}, 422, "'age' must be a number"),
    ({"age": "nan"}, 422, "'age' must be a finite number"),
    ({"age": ""}, 422, "missing predictor 'age'"),
    ({"weight": "70"}, 422, "unknown field(s) weight"),
])
def test_bad_values_get_a_reason_from_the_api_and_the_page(client, predictor, cohort, change,
                                                           status, reason):
    case = cohort.loc["syn0004"]
    form = _form(predictor, case, **change)
    api = client.post("/api/predict", data=form, files=_files(case))
    assert api.status_code == status and reason in api.json()["detail"]
    page = client.post("/", data=form, files=_files(case))
    assert page.status_code == status
    assert 'id="error"' in page.text and reason.replace("'", "&#39;") in page.text
    numeric = {f.name for f in predictor.fields if not f.is_choice}
    for name, value in change.items():  # the form keeps what was typed
        if name in numeric and value:
            assert f'value="{value}"' in page.text


def test_bad_files_get_a_reason_and_no_server_path_leaks(client, predictor, cohort, tmp_path):
    case = cohort.loc["syn0004"]
    image = np.asarray(Image.open(case["image"]))
    form = _form(predictor, case)
    cases = {
        "mask does not match image": (_png(np.ones((40, 30), np.uint8)), 422, "size"),
        "empty mask": (_png(np.zeros(image.shape[:2], np.uint8)), 422, "empty"),
        "not an image": (b"%PDF-1.4 not an image", 415, "not an image format"),
    }
    for name, (mask, status, reason) in cases.items():
        response = client.post("/api/predict", data=form, files=_files(case, mask=mask))
        assert response.status_code == status, name
        detail = response.json()["detail"]
        assert reason in detail.lower(), (name, detail)
        assert "/tmp" not in detail and "dlrn-serve-" not in detail, detail
    missing = client.post("/api/predict", data=form,
                          files={"image": ("a.png", Path(case["image"]).read_bytes())})
    assert missing.status_code == 422 and "missing the mask file" in missing.json()["detail"]
    # the server still answers a good case afterwards
    assert client.post("/api/predict", data=form, files=_files(case)).status_code == 200


def test_an_unexpected_failure_is_answered_and_the_server_goes_on(predictor, cohort,
                                                                   monkeypatch):
    client = TestClient(create_app(predictor), raise_server_exceptions=False)
    case = cohort.loc["syn0004"]
    good = client.post("/api/predict", data=_form(predictor, case), files=_files(case)).json()

    def broken(*args, **kwargs):
        raise RuntimeError("a bug")

    monkeypatch.setattr(predictor, "predict", broken)
    failed = client.post("/api/predict", data=_form(predictor, case), files=_files(case))
    assert failed.status_code == 500 and "RuntimeError" in failed.json()["detail"]
    page = client.post("/", data=_form(predictor, case), files=_files(case))
    assert page.status_code == 500 and 'id="error"' in page.text
    monkeypatch.undo()
    again = client.post("/api/predict", data=_form(predictor, case), files=_files(case))
    assert again.status_code == 200 and again.json() == good


def test_upload_size_limit_is_enforced(bundle_dir, cohort, predictor):
    case = cohort.loc["syn0004"]
    small = Predictor(bundle_dir, limits=UploadLimits(max_bytes=1000, max_pixels=10**6))
    client = TestClient(create_app(small))
    response = client.post("/api/predict", data=_form(predictor, case), files=_files(case))
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
        "/api/predict", data=_form(predictor, case), files=_files(case))
    assert response.status_code == 413 and "pixels" in response.json()["detail"]


def test_openapi_documents_the_predict_form_from_the_bundle(client, predictor):
    spec = client.get("/openapi.json").json()
    operation = spec["paths"]["/api/predict"]["post"]
    schema = operation["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert set(schema["required"]) == {"image", "mask", *(f.name for f in predictor.fields)}
    assert schema["properties"]["margin"]["enum"] == list(
        next(f for f in predictor.fields if f.name == "margin").levels)
    assert schema["properties"]["age"]["maximum"] == next(
        f for f in predictor.fields if f.name == "age").maximum
    assert {"200", "401", "413", "415", "422"} <= set(operation["responses"])


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
    response = client.post("/api/predict", data=_form(predictor, case), files=_files(case))
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
                         ("get", "/api/form"), ("post", "/api/predict")):
        assert getattr(client, method)(path).status_code == 401, path
    assert client.get("/", headers={"Authorization": "Bearer wrong-token-wrong-token"}) \
        .status_code == 401
    response = client.post("/api/predict", data=_form(predictor, case), files=_files(case),
                           headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200
    browser = TestClient(create_app(predictor, token=TOKEN))
    assert browser.get(f"/?token={TOKEN}").status_code == 200  # sets the cookie
    assert browser.get("/").status_code == 200


@pytest.fixture(scope="module")
def live_server(predictor):
    """The app under uvicorn on a free local port, in a thread; stopped afterwards."""
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(create_app(predictor), host="127.0.0.1", port=0,
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        thread.join(0.05)
    port = server.servers[0].sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)


def test_concurrent_requests_are_all_answered_correctly(live_server, predictor, cohort):
    import httpx

    good, bad = cohort.loc["syn0004"], cohort.loc["syn0017"]

    def call(index: int) -> httpx.Response:
        case = good if index % 2 else bad
        form = _form(predictor, case) if index % 2 else _form(predictor, case, margin="x")
        return httpx.post(f"{live_server}/api/predict", data=form, files=_files(case),
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
