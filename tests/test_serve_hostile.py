"""dlrn serve probed as an attacker and a careless client would (issue 28), on loopback.

The server runs as ``dlrn serve`` runs it (:func:`dlrn.serve.http.server_config`, a token),
on the serve tests' small bundle, with the header and body timeouts shortened to 1 s so
that the slow-client probes take seconds. Every probe asserts a clear 4xx (or a 500 with
the private headers and no internals), and the last one that the server still answers a
good request with the number ``dlrn predict`` gives. The detached-header and whole-image
probes also run against the cohort reader and ``dlrn predict``, which read the same files.
"""

from __future__ import annotations

import copy
import io
import json
import socket
import threading
import time
import tracemalloc
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from PIL import Image
from serve_cases import form_of

from dlrn.cohort import CohortValidationError
from dlrn.imaging import ImageReadError, read_image
from dlrn.serve import app as serve_app
from dlrn.serve import http as serve_http
from dlrn.serve.app import create_app
from dlrn.serve.roi import polygon_mask
from dlrn.serve.uploads import UploadError, UploadLimits
from dlrn.study.predict import predict_table, read_new_cases

TOKEN = "hostile-probe-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
SECRET = bytes(range(64))  # an 8 x 8 "server file" that must never come back
WHOLE_IMAGE = json.dumps([[0, 0], [128, 0], [128, 128], [0, 128]])
SQUARE = json.dumps([[32, 32], [96, 32], [96, 96], [32, 96]])


@pytest.fixture(scope="module")
def hostile_server(predictor):
    """``dlrn serve``'s server (token, timeouts, limits) in a thread on 127.0.0.1."""
    import uvicorn

    patch = pytest.MonkeyPatch()
    patch.setattr(serve_http, "HEADER_SECONDS", 1.0)
    patch.setattr(serve_app, "BODY_IDLE_SECONDS", 1.0)
    server = uvicorn.Server(serve_http.server_config(create_app(predictor, token=TOKEN),
                                                     "127.0.0.1", 0))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        thread.join(0.05)
    port = server.servers[0].sockets[0].getsockname()[1]
    yield "127.0.0.1", port
    server.should_exit = True
    thread.join(10)
    patch.undo()


@pytest.fixture(scope="module")
def url(hostile_server) -> str:
    host, port = hostile_server
    return f"http://{host}:{port}"


@pytest.fixture(scope="module")
def case(cohort) -> pd.Series:
    return cohort.loc["syn0004"]


@pytest.fixture(scope="module")
def form(predictor, case) -> dict:
    return form_of(predictor, case)


@pytest.fixture(scope="module")
def secret_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("server_files") / "secret.raw"
    path.write_bytes(SECRET)
    return path


def _post(url: str, path: str, files: dict, data: dict | None = None,
          headers: dict | None = None, params: dict | None = None) -> httpx.Response:
    return httpx.post(url + path, files=files, data=data or {}, headers=headers or AUTH,
                      params=params, timeout=120)


def _png(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def _private(response: httpx.Response) -> bool:
    return (response.headers.get("cache-control") == "no-store"
            and response.headers.get("x-frame-options") == "DENY"
            and response.headers.get("x-content-type-options") == "nosniff"
            and response.headers.get("referrer-policy") == "no-referrer")


# --- 1. a header that names a server file -----------------------------------------------

def _nrrd(data_file: str, *, padding: int = 0, field: str = "data file",
          newline: str = "\n") -> bytes:
    lines = ["NRRD0004", "type: uint8", "dimension: 2", "sizes: 8 8", "encoding: raw",
             *["# " + "x" * 78] * (padding // 80), f"{field}: {data_file}"]
    return (newline.join(lines) + newline).encode()


def _meta(data_file: str, *, padding: int = 0, decoy: bool = False,
          separator: str = "=") -> bytes:
    lines = ["ObjectType = Image", "NDims = 2", "DimSize = 8 8", "ElementType = MET_UCHAR",
             *[f"Extra{i} = {'y' * 70}" for i in range(padding // 80)]]
    if decoy:  # a LOCAL that a case-insensitive, first-match reader stops at
        lines.append("elementdatafile = LOCAL")
    lines.append(f"ElementDataFile {separator} {data_file}")
    return ("\n".join(lines) + "\n").encode()


def _detached_uploads(secret: Path) -> dict[str, bytes]:
    return {"nrrd, 83 KB of comments first": _nrrd(str(secret), padding=83_000),
            "nrrd, 'DataFile' in capitals, CR LF": _nrrd(str(secret), field="DataFile",
                                                         newline="\r\n"),
            "nrrd, CR line ends (teem reads them)": _nrrd(str(secret), newline="\r"),
            "nrrd, relative path out of the folder": _nrrd("../../../../" + str(secret)),
            "mha, extra fields first": _meta(str(secret), padding=83_000),
            "mha, a LOCAL decoy first (MetaIO skips it)": _meta(str(secret), decoy=True),
            "mha, 'ElementDataFile:' (MetaIO reads it)": _meta(str(secret), separator=":")}


def test_a_header_naming_a_server_file_is_refused_and_the_file_never_sent(url, form,
                                                                         secret_file):
    for name, upload in _detached_uploads(secret_file).items():
        for path in ("/api/preview", "/api/predict"):
            response = _post(url, path, {"image": ("scan.nrrd", upload)},
                             data=form if path == "/api/predict" else None)
            assert response.status_code == 422, (name, path, response.text)
            assert "names another file" in response.json()["detail"], name
            assert str(secret_file) not in response.text
    nifti_pair = bytearray(348)
    nifti_pair[:4] = (348).to_bytes(4, "little")
    nifti_pair[40:56] = np.array([2, 8, 8, 1, 1, 1, 1, 1], "<i2").tobytes()
    nifti_pair[344:348] = b"ni1\x00"
    response = _post(url, "/api/preview", {"image": ("scan.nii", bytes(nifti_pair))})
    assert response.status_code == 422 and "NIfTI pair" in response.json()["detail"]


def _as_nhdr(folder: Path, image: Path, data_file: str) -> Path:
    pixels = np.asarray(Image.open(image).convert("L"))
    (folder / "scan.raw").write_bytes(pixels.tobytes())
    header = folder / "scan.nhdr"
    header.write_text(f"NRRD0004\ntype: uint8\ndimension: 2\nsizes: {pixels.shape[1]} "
                      f"{pixels.shape[0]}\nencoding: raw\ndata file: {data_file}\n")
    return header


def test_the_cohort_reader_and_dlrn_predict_follow_a_header_only_inside_the_table_folder(
        predictor, bundle_dir, case, tmp_path, secret_file):
    folder = tmp_path / "study"
    folder.mkdir()
    (folder / "mask.png").write_bytes(Path(case["mask"]).read_bytes())
    row = {**case.to_dict(), "image": "scan.nhdr", "mask": "mask.png"}
    table = folder / "new.csv"
    pd.DataFrame([row]).to_csv(table, index=False)
    _as_nhdr(folder, Path(case["image"]), "scan.raw")  # a study's own detached header
    inside = read_new_cases(table, predictor.settings, progress=False)
    assert read_image(inside.iloc[0]["image"]).GetSize() == (128, 128)
    expected = predict_table(bundle_dir, table, progress=False)
    assert np.isfinite(expected["DLRN"]).all()
    _as_nhdr(folder, Path(case["image"]), str(secret_file))  # a header pointing out
    with pytest.raises(CohortValidationError, match="outside the table's folder"):
        read_new_cases(table, predictor.settings, progress=False)
    with pytest.raises(CohortValidationError, match="outside the table's folder"):
        predict_table(bundle_dir, table, progress=False)
    with pytest.raises(ImageReadError, match="outside the header's folder"):
        read_image(folder / "scan.nhdr")  # the library's own default


# --- 2. polygons that crashed a request -----------------------------------------------

@pytest.mark.parametrize(("polygon", "reason"), [
    ("[[1" + "0" * 400 + ", 2], [3, 4], [5, 6]]", "too large to be a number"),
    ("[" * 50_000 + "]" * 50_000, "JSON list of [x, y] points"),
    ("[[[1, 2], [3, 4], [5, 6]]]", "JSON list of [x, y] points"),
    ('{"x": 1}', "JSON list of [x, y] points"),
    ("[[NaN, 1], [2, 3], [4, 5]]", "JSON list of [x, y] points"),
    ("[[1e999, 1], [2, 3], [4, 5]]", "too large to be a number"),
    ("[[1, 1], [2, 2]]", "at least 3"),
    (json.dumps([[1, 1]] * 10_001), "more than this server accepts"),
    (" " * 700_000, "characters, more than this server reads"),
])
def test_hostile_polygons_get_a_422_on_the_api_and_the_page(url, case, form, polygon,
                                                           reason):
    image = {"image": ("scan.png", Path(case["image"]).read_bytes())}
    api = _post(url, "/api/predict", image, data={**form, "polygon": polygon})
    assert api.status_code == 422 and reason in api.json()["detail"], api.text[:300]
    page = _post(url, "/", image, data={**form, "polygon": polygon})
    assert page.status_code == 422 and 'id="error"' in page.text


def test_a_polygon_s_rasterising_is_bounded_before_any_allocation():
    side = 1000
    zigzag = np.array([[x, side * (i % 2)] for i, x in enumerate(np.linspace(0, side, 10_000))])
    with pytest.raises(UploadError, match="span 10,0"):
        polygon_mask(zigzag, side, side, max_crossings=1_000_000)
    tracemalloc.start()
    roi = polygon_mask(zigzag, side, side, max_crossings=side * side * 10)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert roi.shape == (side, side) and roi.any()
    assert peak < 160 * 2**20  # the image's bytes and a fixed block, not 10 M crossings x 80


def test_a_ragged_roi_that_would_take_hours_of_shape_features_is_refused(url, form):
    side = 2000  # a 10,000-point zigzag: 2,000 x 1,000 rows rasterised, then refused
    zigzag = [[float(x), float(side * (i % 2))]
              for i, x in enumerate(np.linspace(0, side, 10_000))]
    blank = {"image": ("blank.png", _png(np.zeros((side, side), np.uint8)))}
    start = time.perf_counter()
    response = _post(url, "/api/predict", blank, data={**form, "polygon": json.dumps(zigzag)})
    assert response.status_code == 422 and "outline" in response.json()["detail"]
    assert time.perf_counter() - start < 60  # PyRadiomics would compare 10**12 point pairs


# --- 3. a 500 keeps the private headers and shows no internals -------------------------

def test_an_internal_failure_is_a_plain_500_with_the_private_headers(predictor, case,
                                                                     monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("at /build/itk/src/itkFoo.cxx:12 (0x55d5c1a0)")

    monkeypatch.setattr(predictor, "preview", broken)
    client = TestClient(create_app(predictor), raise_server_exceptions=False)
    response = client.post("/api/preview", files={"image": Path(case["image"]).read_bytes()})
    assert response.status_code == 500 and _private(response)
    assert "RuntimeError" not in response.text and "itkFoo" not in response.text


# --- 4 and 10. the token: cookie, scheme ---------------------------------------------

def test_the_cookie_is_set_only_from_a_valid_token_and_only_to_it(url):
    wrong = "wrong; Domain=evil.example; Max-Age=99999999"
    response = httpx.get(url + "/", params={"token": wrong}, headers=AUTH)
    assert response.status_code == 200 and "set-cookie" not in response.headers
    response = httpx.get(url + "/?token=x%0d%0aX-Evil:%201", headers=AUTH)
    assert response.status_code == 200 and "x-evil" not in response.headers
    response = httpx.get(url + "/", params={"token": TOKEN})
    assert response.headers["set-cookie"].startswith(f"dlrn_token={TOKEN}; HttpOnly")
    assert httpx.get(url + "/", params={"token": wrong}).status_code == 401


@pytest.mark.parametrize(("header", "status"), [
    (f"bearer {TOKEN}", 200), (f"BEARER  {TOKEN}", 200), (TOKEN, 401),
    (f"Basic {TOKEN}", 401), ("Bearer", 401), (f"Bearer {TOKEN}x", 401)])
def test_the_authorization_scheme_is_read_as_rfc_7235_says(url, header, status):
    response = httpx.get(url + "/api/form", headers={"Authorization": header})
    assert response.status_code == status and _private(response)


# --- 5 to 8. budgets, sizes, whole-image ROI --------------------------------------------

def test_images_a_study_s_discretisation_would_blow_up_are_refused_with_the_reason(url, form):
    noise = np.random.default_rng(0)
    grey16 = noise.integers(0, 65536, size=(128, 128)).astype(np.uint16)
    tiff = io.BytesIO()
    Image.fromarray(noise.uniform(-1e6, 1e6, (128, 128)).astype(np.float32)).save(
        tiff, format="TIFF")
    for name, data in (("16.png", _png(grey16)), ("float.tif", tiff.getvalue())):
        start = time.perf_counter()
        response = _post(url, "/api/predict", {"image": (name, data)},
                         data={**form, "polygon": SQUARE})
        assert response.status_code == 422, response.text[:300]
        assert "grey levels" in response.json()["detail"]
        assert time.perf_counter() - start < 30  # refused before extraction


def test_a_whole_image_roi_is_predicted_by_the_server_and_dlrn_predict(url, case, form,
                                                                       bundle_dir, tmp_path):
    image = {"image": ("scan.png", Path(case["image"]).read_bytes())}
    api = _post(url, "/api/predict", image, data={**form,
                                                  "polygon": WHOLE_IMAGE})
    assert api.status_code == 200, api.text[:300]
    assert api.json()["roi"]["pixels"] == 128 * 128
    (tmp_path / "mask.png").write_bytes(_png(np.full((128, 128), 255, np.uint8)))
    table = tmp_path / "whole.csv"
    pd.DataFrame([{**case.to_dict(), "mask": "mask.png"}]).to_csv(table, index=False)
    expected = predict_table(bundle_dir, table, progress=False).iloc[0]
    assert api.json()["dlrn_probability"] == expected["DLRN"]


def test_an_upload_over_the_limit_is_refused_with_its_real_size(predictor, case):
    small = copy.copy(predictor)
    small.limits = UploadLimits(max_bytes=2**20, max_pixels=predictor.limits.max_pixels)
    client = TestClient(create_app(small))
    big = Path(case["image"]).read_bytes() + b"\0" * (3 * 2**19)
    response = client.post("/api/preview", files={"image": ("scan.png", big)})
    assert response.status_code == 413 and _private(response)
    assert f"{len(big):,} bytes" in response.json()["detail"]
    assert "more than this server accepts (1 MB (1,048,576 bytes))" in response.json()["detail"]


@pytest.mark.parametrize("value", ["2_2", "\u0662\u0662", "0x16", "1,5", "22 years", "\u00b922"])
def test_numbers_are_read_as_the_study_s_reader_reads_them(url, case, form, value):
    response = _post(url, "/api/predict", {"image": ("scan.png",
                                                     Path(case["image"]).read_bytes())},
                     data={**form, "age": value, "polygon": SQUARE})
    assert response.status_code == 422 and "digits 0-9" in response.json()["detail"]


# --- 10. slow clients, damaged files ---------------------------------------------------

def test_half_open_connections_and_stalled_bodies_are_closed(hostile_server):
    sockets = []
    for _ in range(20):
        sock = socket.create_connection(hostile_server, timeout=5)
        sock.sendall(b"POST /api/predict HTTP/1.1\r\nHost: x\r\n")  # headers never end
        sockets.append(sock)
    time.sleep(2.5)  # HEADER_SECONDS is 1 s here
    for sock in sockets:
        assert sock.recv(100) == b""  # closed by the server
        sock.close()
    with socket.create_connection(hostile_server, timeout=10) as sock:
        sock.sendall(b"POST /api/preview HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
                     + TOKEN.encode() + b"\r\nContent-Type: multipart/form-data; boundary=b"
                     b"\r\nContent-Length: 1000\r\n\r\n--b\r\n")
        answer = b""
        while chunk := sock.recv(4096):  # headers and body may come in two segments
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 408") and b"too slowly" in answer


def test_a_damaged_file_s_message_shows_no_build_path_or_heap_address(url):
    damaged = _nrrd("LOCAL")[:-len("data file: LOCAL\n")] + b"\n" + b"\x01" * 10
    response = _post(url, "/api/preview", {"image": ("scan.nrrd", damaged)})
    assert response.status_code == 422, response.text[:300]
    detail = response.json()["detail"]
    assert "0x" not in detail and ".cxx" not in detail and "/tmp" not in detail, detail


def test_after_every_probe_the_server_answers_as_dlrn_predict(url, predictor, cohort,
                                                              bundle_dir, tmp_path):
    case = cohort.loc["syn0017"]
    files = {"image": ("scan.png", Path(case["image"]).read_bytes()),
             "mask": ("mask.png", Path(case["mask"]).read_bytes())}
    response = _post(url, "/api/predict", files, data=form_of(predictor, case))
    assert response.status_code == 200 and _private(response)
    table = tmp_path / "one.csv"
    cohort.loc[["syn0017"]].to_csv(table, index=False)
    assert response.json()["dlrn_probability"] == predict_table(
        bundle_dir, table, progress=False).iloc[0]["DLRN"]
