"""``dlrn serve``: the clinic calculator, a local web app over a verified bundle."""

from __future__ import annotations

import argparse
import ipaddress
import re
import sys

from dlrn.cli._console import (
    NORMAL,
    QUIET,
    VERBOSE,
    Console,
    add_console_options,
    console_level,
)
from dlrn.errors import DlrnError

_TOKEN_PATTERN = re.compile(r"[A-Za-z0-9._~+/=-]{16,}")


def register(subparsers: argparse._SubParsersAction) -> None:
    from dlrn.serve.uploads import DEFAULT_MAX_MEGAPIXELS, DEFAULT_MAX_UPLOAD_MB

    parser = subparsers.add_parser(
        "serve", help="web calculator and JSON API over a study's bundle",
        description=(
            "Serve a form (generated from the bundle) that predicts one patient from the "
            "clinical values, an image and its ROI (drawn on the page, or a mask file): the "
            "nomogram's (DLRN or RadN) probability, points, the cut-off's verdict, each image "
            "model's probability, the CNN's Grad-CAM and the ROI used; and POST /api/predict "
            "for hospital systems (OpenAPI at /docs). Same numbers as `dlrn predict`."),
    )
    parser.add_argument("bundle", help="bundle folder written by `dlrn run` (checked at start)")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (default 127.0.0.1: this computer only; "
                             "any other address needs --token)")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--token", help="access token every request must carry (at least 16 "
                                        "characters; required with a non-local --host)")
    parser.add_argument("--max-upload-mb", type=float, default=DEFAULT_MAX_UPLOAD_MB,
                        help=f"largest image or mask file (default {DEFAULT_MAX_UPLOAD_MB})")
    parser.add_argument("--max-megapixels", type=float, default=DEFAULT_MAX_MEGAPIXELS,
                        help="largest image a header may declare, in millions of pixels, "
                             "and the most image rows a polygon's edges may span in all "
                             f"(default {DEFAULT_MAX_MEGAPIXELS})")
    parser.add_argument("--cutoff", type=float,
                        help="the study's nomogram cut-off (Table 7), for bundles that do not "
                             "carry it")
    parser.add_argument("--torch-threads", type=int,
                        help="CPU threads of the CNN (default: PyTorch's, as `dlrn predict`). "
                             "1 is faster on a busy machine, but the CNN's probability then "
                             "differs from `dlrn predict`'s in the 9th digit or so")
    parser.add_argument("--access-log", action="store_true",
                        help="print a line per request (default: only the address and errors)")
    add_console_options(parser)
    parser.set_defaults(func=run)


def is_local(host: str) -> bool:
    """True for loopback addresses and 'localhost'."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_access(host: str, token: str | None) -> None:
    """Refuse a network-wide server without a token, and tokens unsafe in a header/cookie."""
    if token is not None and not _TOKEN_PATTERN.fullmatch(token):
        raise DlrnError("--token must be at least 16 characters of letters, digits and ._~+/=- "
                        "(e.g. from `python -c 'import secrets; print(secrets.token_urlsafe())'`)")
    if is_local(host):
        return
    if token is None:
        raise DlrnError(f"--host {host} opens the calculator to the network: give --token TOKEN "
                        "too, so that only clients with the token get answers")
    print(f"warning: dlrn serve listens on {host}, reachable from the network. Requests need "
          "the token, but plain HTTP sends it and the patient data unencrypted: put the server "
          "behind an HTTPS reverse proxy on a hospital network.", file=sys.stderr)


def run(args: argparse.Namespace) -> int:
    check_access(args.host, args.token)
    if args.max_upload_mb <= 0 or args.max_megapixels <= 0:
        raise DlrnError("--max-upload-mb and --max-megapixels must be positive")
    import torch
    import uvicorn

    from dlrn.serve.app import create_app
    from dlrn.serve.http import server_config
    from dlrn.serve.predictor import Predictor
    from dlrn.serve.uploads import UploadLimits

    limits = UploadLimits(max_bytes=int(args.max_upload_mb * 1024 * 1024),
                          max_pixels=int(args.max_megapixels * 1_000_000))
    if args.torch_threads is not None:
        torch.set_num_threads(max(1, args.torch_threads))
    predictor = Predictor(args.bundle, cutoff=args.cutoff, limits=limits)
    app = create_app(predictor, token=args.token)
    address = f"http://{args.host}:{args.port}/"
    Console(args).say(f"dlrn serve: bundle {predictor.bundle.folder} verified; open {address}"
                      + ("?token=TOKEN" if args.token else "") + f" (API: {address}docs)")
    level = {QUIET: "error", NORMAL: "warning", VERBOSE: "info"}[console_level(args)]
    uvicorn.Server(server_config(app, args.host, args.port, log_level=level,
                                 access_log=args.access_log or level == "info")).run()
    return 0
