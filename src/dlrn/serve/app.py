"""The web app: a form generated from the bundle with the ROI editor, the answer page,
``POST /api/predict`` and ``POST /api/preview`` (the image to draw the ROI on).

Requests never share state beyond the :class:`~dlrn.serve.predictor.Predictor`
(which serializes the work on images with a lock); at most
:func:`~dlrn.serve.http.admission_slots` requests hold their uploads at once, the others
wait before their body is read. Any failure is answered (4xx with the reason, or 500
without internals), every answer with the private headers, and the server goes on
serving the other requests.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from fastapi import FastAPI, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, JSONResponse, Response
from jinja2 import Environment, PackageLoader, select_autoescape

from dlrn import __version__
from dlrn.errors import DlrnError
from dlrn.serve.answer import Answer
from dlrn.serve.display import patient_axes
from dlrn.serve.http import Admission, admission_slots
from dlrn.serve.models import (
    ImagePreview,
    Prediction,
    Problem,
    prediction_of,
    preview_of,
    preview_schema,
    request_schema,
)
from dlrn.serve.predictor import Predictor
from dlrn.serve.roi import roi_pixel_value
from dlrn.serve.sensitivity import ORIGIN_WORDS
from dlrn.serve.uploads import UploadError, check_size
from dlrn.study.bundle import BundleError

LOG = logging.getLogger(__name__)
TOKEN_COOKIE = "dlrn_token"
_FILE_FIELDS = ("image", "mask", "roi")  # roi: the page's drawing
_OPTION_FIELDS = ("gradcam", "token", "polygon", "roi_source")
_REFUSALS = {401: "missing or wrong token", 413: "file or image too large",
             415: "not an image format dlrn reads"}
BODY_IDLE_SECONDS = 15.0  # longest wait for the next part of a request's body
BODY_SECONDS = 120.0  # longest time to receive a whole request body
_PRIVATE_HEADERS = [(b"cache-control", b"no-store"), (b"x-content-type-options", b"nosniff"),
                    (b"x-frame-options", b"DENY"), (b"referrer-policy", b"no-referrer")]
Scope = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Callable, Callable], Awaitable[None]]


def create_app(predictor: Predictor, *, token: str | None = None) -> FastAPI:
    """The app over one verified bundle; with ``token`` every request must carry it."""
    app = FastAPI(title="dlrn serve", version=__version__,
                  description="Predict one patient with a dlrn study's bundle: the "
                              "nomogram's (DLRN or RadN) probability and points, each "
                              "image model's probability, the Grad-CAM overlay of the CNN. "
                              "The numbers are those of `dlrn predict`. Research use; not a "
                              "medical device.")
    pages = _templates()
    limit = 2 * predictor.limits.max_bytes + 1024 * 1024  # two files and the form fields
    admission = Admission(admission_slots(predictor.limits.max_bytes))

    @app.exception_handler(UploadError)
    async def _refused(request: Request, error: UploadError) -> Response:
        return _problem(request, pages, predictor, str(error), error.status)

    @app.exception_handler(BundleError)
    async def _bundle_changed(request: Request, error: BundleError) -> Response:
        return _problem(request, pages, predictor, str(error), 503)

    @app.exception_handler(DlrnError)
    async def _invalid(request: Request, error: DlrnError) -> Response:
        return _problem(request, pages, predictor, str(error), 422)

    @app.exception_handler(Exception)
    async def _failed(request: Request, error: Exception) -> Response:
        # outside the middleware (Starlette answers 500s last): the private headers here
        LOG.exception("request failed: %s %s", request.method, request.url.path)
        response = _problem(request, pages, predictor, "the server could not process this "
                            "case; it keeps running, and its log has the details", 500)
        response.headers.update({k.decode(): v.decode() for k, v in _PRIVATE_HEADERS})
        return response

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def form_page() -> str:
        return pages.render(predictor)

    @app.post("/", response_class=HTMLResponse, include_in_schema=False)
    async def answer_page(request: Request) -> str:
        async with admission.slot():  # the body is read, and held, only with a slot
            form, files = await _read_form(request, predictor)
            answer = await run_in_threadpool(_predict, predictor, form, files,
                                             gradcam="gradcam" in form)
        return pages.render(predictor, answer=answer)

    @app.post("/api/predict", response_model=Prediction,
              openapi_extra={"requestBody": request_schema(predictor)},
              responses={status: {"model": Problem, "description": text} for status, text in (
                  *_REFUSALS.items(),
                  (422, "missing predictor, unknown level, value out of range, mask does not "
                        "match the image, empty or too small ROI, bad polygon, no ROI and no "
                        "segmentation model..."))})
    async def predict(request: Request,
                      gradcam: bool = Query(False, description="include the Grad-CAM "
                                                                "overlay (PNG, base64)")) -> Any:
        """Predict one patient: multipart form with the image, its ROI (a mask file, a
        polygon, or neither for the bundle's segmentation model) and the clinical values."""
        async with admission.slot():
            form, files = await _read_form(request, predictor)
            answer = await run_in_threadpool(_predict, predictor, form, files,
                                             gradcam=gradcam)
        return prediction_of(answer)

    @app.post("/api/preview", response_model=ImagePreview,
              openapi_extra={"requestBody": preview_schema()},
              responses={status: {"model": Problem, "description": text} for status, text in (
                  *_REFUSALS.items(), (422, "unreadable image, mask of another size..."))})
    async def preview(request: Request) -> Any:
        """The image as the cohort reader reads it (PNG, any accepted format), to draw the
        ROI on at its pixel grid, with the ROI to start from (a mask file's, or the one
        the bundle's segmentation model proposes). The page calls it when an image or a
        mask file is chosen; the uploads are checked as for a prediction."""
        async with admission.slot():
            _, files = await _read_form(request, predictor, clinical=False)
            shown = await run_in_threadpool(predictor.preview, files["image"],
                                            files.get("mask"))
        return preview_of(shown)

    @app.get("/api/form")
    async def form_fields() -> dict[str, Any]:
        """The clinical predictors the model needs: levels, or number ranges and units."""
        return {"fields": [{"name": f.name, "kind": f.kind, "levels": list(f.levels) or None,
                            "minimum": f.minimum, "maximum": f.maximum, "unit": f.unit,
                            "optional": f.optional,
                            "separator": f.separator if f.is_tokens else None}
                           for f in predictor.fields],
                "nomogram": predictor.nomogram_name, "cutoff": predictor.cutoff,
                "cnn": predictor.has_cnn,
                "bundle": _bundle_facts(predictor)}

    app.add_middleware(_BodyLimit, limit=limit)
    if token:
        app.add_middleware(_TokenCheck, token=token)
    app.add_middleware(_PrivateHeaders)
    return app


def _predict(predictor: Predictor, form: dict[str, Any], files: dict[str, bytes], *,
             gradcam: bool) -> Answer:
    return predictor.predict(form, files["image"], files.get("mask"),
                             polygon=form.get("polygon") or None, drawing=files.get("roi"),
                             drawing_source=form.get("roi_source") or None, gradcam=gradcam)


async def _read_form(request: Request, predictor: Predictor, *, clinical: bool = True
                     ) -> tuple[dict[str, Any], dict[str, bytes]]:
    """Clinical values (with ``clinical``) and the files; anything unexpected is refused by
    name."""
    try:
        form = await request.form(max_files=len(_FILE_FIELDS), max_fields=64)
    except (_TooLarge, _TooSlow):
        raise
    except Exception as error:  # malformed multipart bodies raise several types
        raise UploadError(f"could not read the form: {error}", 400) from error
    try:
        return await _form_contents(request, form, predictor, clinical)
    finally:
        await form.close()  # removes the spooled upload files at once


async def _form_contents(request: Request, form: Any, predictor: Predictor,
                         clinical: bool) -> tuple[dict[str, Any], dict[str, bytes]]:
    from starlette.datastructures import UploadFile

    tokens = {f.name for f in predictor.fields if f.is_tokens}  # checkboxes: one value each
    values: dict[str, Any] = {key: [v for v in form.getlist(key) if isinstance(v, str)]
                              if key in tokens else value
                              for key, value in form.items() if isinstance(value, str)}
    request.state.values = values  # the page keeps them when it shows an error
    known = ({f.name for f in predictor.fields} | set(_OPTION_FIELDS) | set(_FILE_FIELDS)
             if clinical else {"token", "image", "mask"})
    unknown = sorted(set(form.keys()) - known)
    if unknown:
        raise UploadError(f"unknown field(s) {', '.join(unknown)}; this request takes: "
                          f"{', '.join(sorted(known - {'token', 'gradcam'}))}")
    files = {}
    for name in _FILE_FIELDS:
        upload = form.get(name)
        if isinstance(upload, UploadFile):
            if upload.size is not None:  # the whole file's size, not what fits the limit
                check_size(upload.size, name, predictor.limits)
            data = await upload.read(predictor.limits.max_bytes + 1)
            if data or upload.filename:  # a browser sends a file input left empty as ""
                files[name] = data
    if "image" not in files:
        raise UploadError("missing the image file (multipart field 'image')")
    return values, files


def _problem(request: Request, pages: _Pages, predictor: Predictor, message: str,
             status: int) -> Response:
    """JSON for the API, the form with the message for the page."""
    if request.url.path.startswith("/api/") or request.method != "POST":
        return JSONResponse({"detail": message}, status_code=status)
    values = getattr(request.state, "values", {})
    return HTMLResponse(pages.render(predictor, error=message, values=values),
                        status_code=status)


def _bundle_facts(predictor: Predictor) -> dict[str, Any]:
    manifest = predictor.bundle.manifest
    return {"folder": predictor.bundle.folder.name, "created": manifest.get("created"),
            "dlrn_version": manifest.get("dlrn_version")}


class _Pages:
    def __init__(self, environment: Environment) -> None:
        self.template = environment.get_template("page.html")
        self.nomogram_html: str | None = None

    def render(self, predictor: Predictor, *, answer: Answer | None = None,
               error: str | None = None, values: dict[str, Any] | None = None) -> str:
        if self.nomogram_html is None:
            self.nomogram_html = _nomogram_fragment(predictor)
        values = {k: v if isinstance(v, list) else "" if v is None else str(v)
                  for k, v in (answer.inputs if answer else values or {}).items()}
        return self.template.render(predictor=predictor, answer=answer, error=error,
                                    values=values,
                                    bundle=_bundle_facts(predictor), version=__version__,
                                    roi_value=roi_pixel_value(predictor.mask_label),
                                    nomogram_html=self.nomogram_html, repr=repr,
                                    patient_axes=patient_axes, origins=ORIGIN_WORDS)


def _templates() -> _Pages:
    environment = Environment(loader=PackageLoader("dlrn.serve", "templates"),
                              autoescape=select_autoescape(["html"]))
    return _Pages(environment)


def _nomogram_fragment(predictor: Predictor) -> str:
    if predictor.nomogram is None:
        return ""
    from dlrn.report.interactive import interactive_nomogram

    return interactive_nomogram(predictor.nomogram,
                                **predictor.words.nomogram_names(predictor.nomogram))


class _BodyLimit:
    """Refuse request bodies above ``limit`` bytes (declared or streamed) with 413, and
    bodies that stall (``BODY_IDLE_SECONDS`` without data) or take longer than
    ``BODY_SECONDS`` with 408."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope.get("headers", [])).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            return await _send_json(send, 413, f"request of {int(declared):,} bytes is larger "
                                    f"than this server accepts ({self.limit:,})")
        received = 0
        started = False
        deadline: float | None = None  # from the first read: waiting for a slot is not slow

        async def counted_receive() -> dict:
            nonlocal received, deadline
            deadline = deadline or time.monotonic() + BODY_SECONDS
            wait = min(BODY_IDLE_SECONDS, deadline - time.monotonic())
            try:
                message = await asyncio.wait_for(receive(), timeout=max(wait, 0.001))
            except TimeoutError:
                raise _TooSlow from None
            received += len(message.get("body", b""))
            if received > self.limit:
                raise _TooLarge
            return message

        async def tracked_send(message: dict) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted_receive, tracked_send)
        except _TooLarge:
            if not started:
                await _send_json(send, 413, f"request larger than this server accepts "
                                 f"({self.limit:,} bytes)")
        except _TooSlow:
            if not started:
                await _send_json(send, 408, "the request's body arrived too slowly (more "
                                 f"than {BODY_IDLE_SECONDS:g} s without data, or "
                                 f"{BODY_SECONDS:g} s in all); send it again",
                                 [(b"connection", b"close")])


class _PrivateHeaders:
    """Patient data: answers are never cached, sniffed, framed or sent as a referrer."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Callable, send: Callable) -> None:
        async def private_send(message: dict) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *_PRIVATE_HEADERS]
            await send(message)

        await self.app(scope, receive, private_send if scope["type"] == "http" else send)


class _TooLarge(Exception):
    pass


class _TooSlow(Exception):
    pass


class _TokenCheck:
    """Every request carries the token: ``Authorization: Bearer TOKEN`` (the scheme in any
    case, RFC 7235), the cookie, or ``?token=``.

    A page opened with a valid ``?token=`` sets the cookie to the server's token (never
    to text the client sent), so the form's later posts carry it.
    """

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app, self.token = app, token.encode()

    def _valid(self, offered: str) -> bool:
        return bool(offered) and hmac.compare_digest(offered.encode(), self.token)

    async def __call__(self, scope: Scope, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        request = Request(scope)
        scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
        bearer = credentials.strip() if scheme.lower() == "bearer" else ""
        query = request.query_params.get("token", "")
        if not any(self._valid(o) for o in (bearer, request.cookies.get(TOKEN_COOKIE, ""),
                                             query)):
            return await _send_json(send, 401, "this server needs its access token: "
                                    "'Authorization: Bearer TOKEN' (API) or open "
                                    "/?token=TOKEN once (browser)",
                                    [(b"www-authenticate", b"Bearer")])
        if not self._valid(query):
            return await self.app(scope, receive, send)
        cookie = (TOKEN_COOKIE.encode() + b"=" + self.token
                  + b"; HttpOnly; SameSite=Strict; Path=/")

        async def with_cookie(message: dict) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), (b"set-cookie", cookie)]
            await send(message)

        return await self.app(scope, receive, with_cookie)


async def _send_json(send: Callable, status: int, detail: str,
                     headers: list[tuple[bytes, bytes]] | None = None) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode()), *(headers or [])]})
    await send({"type": "http.response.body", "body": body})
