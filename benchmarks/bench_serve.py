"""dlrn serve under load: N concurrent clients against a server on 127.0.0.1.

Starts ``dlrn serve`` on a free local port for each bundle given, sends a bounded number
of ``POST /api/predict`` requests from ``--clients`` threads (stopping at ``--requests``
or ``--max-seconds``, whichever comes first), and prints requests/s, p50/p95 latency,
the error count, and the server's resident memory (RSS) every ``--rss-every`` requests.
The cases (image, mask, clinical values) come from a cohort table, e.g. the demo's:

    python benchmarks/bench_serve.py --cohort dlrn-demo/cohort/cohort.csv \\
        --bundle with-CNN=dlrn-demo/study/bundle --bundle without-CNN=nodl/study/bundle

``--worst`` then sends, one at a time, the costliest requests of issue 28's probes and
the costliest the server's limits let through: a 16-bit PNG and a float TIFF of
full-range noise, a 16-bit PNG at the grey-level limit, a 10,000-point zigzag polygon on
a blank 4000 x 4000 PNG, a whole-image polygon on a 4000 x 4000 noise PNG; it prints each
one's status, latency and the server's peak RSS while it ran (sampled every 10 ms).

Only 127.0.0.1 is ever contacted; the server is stopped at the end.
"""

from __future__ import annotations

import argparse
import io
import json
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import psutil

HOST = "127.0.0.1"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def _start(bundle: Path, port: int, torch_threads: int | None) -> subprocess.Popen:
    code = "import sys; from dlrn.cli import main; sys.exit(main(sys.argv[1:]))"
    threads = [] if torch_threads is None else ["--torch-threads", str(torch_threads)]
    return subprocess.Popen([sys.executable, "-c", code, "serve", str(bundle), "--host", HOST,
                             "--port", str(port), *threads], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)


def _wait_ready(url: str, server: subprocess.Popen, timeout: float) -> httpx.Response:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"dlrn serve exited with code {server.returncode}")
        try:
            return httpx.get(f"{url}/api/form", timeout=5)
        except httpx.TransportError:
            time.sleep(0.5)
    raise SystemExit(f"dlrn serve did not answer within {timeout:.0f} s")


def _requests(cohort: Path, fields: list[dict], count: int) -> list[tuple[dict, dict]]:
    """(form, files) of ``count`` distinct cases inside the form's ranges, cycled by clients."""
    table = pd.read_csv(cohort, dtype=str)
    for field in fields:
        if field["minimum"] is not None:
            values = table[field["name"]].astype(float)
            table = table[values.between(field["minimum"], field["maximum"])]
    table = table.head(count)
    folder = cohort.parent
    return [({field["name"]: row[field["name"]] for field in fields},
             {"image": ("image", (folder / row["image"]).read_bytes()),
              "mask": ("mask", (folder / row["mask"]).read_bytes())})
            for _, row in table.iterrows()]


def _load(url: str, cases: list, *, clients: int, total: int, max_seconds: float,
          gradcam: bool, rss_every: int, process: psutil.Process) -> dict:
    latencies: list[float] = []
    errors: list[str] = []
    rss: list[tuple[int, float]] = [(0, process.memory_info().rss / 2**20)]
    lock = threading.Lock()
    issued = iter(range(total))
    stop_at = time.monotonic() + max_seconds

    def client() -> None:
        with httpx.Client(timeout=300) as session:
            for index in issued:
                if time.monotonic() > stop_at:
                    return
                form, files = cases[index % len(cases)]
                start = time.perf_counter()
                response = session.post(f"{url}/api/predict", data=form, files=files,
                                        params={"gradcam": str(gradcam).lower()})
                with lock:
                    latencies.append(time.perf_counter() - start)
                    if response.status_code != 200:
                        errors.append(f"{response.status_code}: {response.text[:200]}")
                    if len(latencies) % rss_every == 0:
                        rss.append((len(latencies), process.memory_info().rss / 2**20))

    start = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        for future in [pool.submit(client) for _ in range(clients)]:
            future.result()
    elapsed = time.perf_counter() - start
    seconds = np.array(latencies)
    return {"requests": len(latencies), "seconds": round(elapsed, 1),
            "requests_per_s": round(len(latencies) / elapsed, 2),
            "p50_ms": round(1000 * float(np.percentile(seconds, 50)), 0),
            "p95_ms": round(1000 * float(np.percentile(seconds, 95)), 0),
            "errors": len(errors), "first_error": errors[0] if errors else None,
            "rss_mb": [(n, round(mb, 1)) for n, mb in rss]}


def _png(array: np.ndarray) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def _worst_requests() -> list[tuple[str, dict, dict]]:
    """(name, files, extra form fields) of the costliest requests the limits let through."""
    from PIL import Image

    side = 4000
    xs = np.linspace(0, side, 10_000)
    zigzag = [[round(float(x), 3), float(side if i % 2 else 0)] for i, x in enumerate(xs)]
    noise = np.random.default_rng(0)
    grey16 = noise.integers(0, 65536, size=(128, 128)).astype(np.uint16)
    tiff = io.BytesIO()
    Image.fromarray(noise.uniform(-1e6, 1e6, size=(128, 128)).astype(np.float32)).save(
        tiff, format="TIFF")
    square = json.dumps([[16, 16], [112, 16], [112, 112], [16, 112]])
    return [("16-bit PNG 128 x 128, full-range noise", {"image": ("16.png", _png(grey16))},
             {"polygon": square}),
            ("float32 TIFF 128 x 128, noise in +-1e6",
             {"image": ("float.tif", tiff.getvalue())}, {"polygon": square}),
            ("16-bit PNG 128 x 128, noise 0-1279 (256 levels: the limit)",
             {"image": ("16.png", _png((grey16 % 1280).astype(np.uint16)))},
             {"polygon": square}),
            ("zigzag polygon, 10,000 points, 4000 x 4000 PNG",
             {"image": ("blank.png", _png(np.zeros((side, side), np.uint8)))},
             {"polygon": json.dumps(zigzag)}),
            ("whole-image polygon, 4000 x 4000 8-bit noise PNG",
             {"image": ("noise.png", _png(noise.integers(0, 256, (side, side), np.uint8)))},
             {"polygon": json.dumps([[0, 0], [side, 0], [side, side], [0, side]])})]


def _worst(url: str, form: dict, process: psutil.Process, timeout: float) -> list[dict]:
    """Each worst request alone: status (or "timeout" after ``timeout`` s), latency, the
    server's peak RSS while it ran."""
    results = []
    for name, files, extra in _worst_requests():
        base = process.memory_info().rss
        peak = [base]
        done = threading.Event()

        def sample(peak: list = peak, done: threading.Event = done) -> None:
            while not done.wait(0.01):
                peak[0] = max(peak[0], process.memory_info().rss)

        sampler = threading.Thread(target=sample)
        sampler.start()
        start = time.perf_counter()
        try:
            response = httpx.post(f"{url}/api/predict", data={**form, **extra}, files=files,
                                  timeout=timeout)
            status, detail = response.status_code, ("" if response.status_code == 200
                                                     else response.json().get("detail", ""))
        except httpx.TimeoutException:
            status, detail = "timeout", f"no answer within {timeout:g} s"
        seconds = time.perf_counter() - start
        done.set()
        sampler.join()
        results.append({"request": name, "status": status,
                        "seconds": round(seconds, 2),
                        "rss_before_mb": round(base / 2**20), "peak_rss_mb": round(
                            peak[0] / 2**20), "detail": detail[:160]})
        print(json.dumps(results[-1]), flush=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cohort", type=Path, required=True, help="cohort table of the cases")
    parser.add_argument("--bundle", action="append", required=True, metavar="NAME=DIR",
                        help="a bundle to serve (repeatable)")
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--requests", type=int, default=200, help="requests per run (bound)")
    parser.add_argument("--max-seconds", type=float, default=600, help="time bound per run")
    parser.add_argument("--gradcam", action="store_true", help="also a run with Grad-CAM")
    parser.add_argument("--rss-every", type=int, default=100)
    parser.add_argument("--cases", type=int, default=20, help="distinct cases to cycle")
    parser.add_argument("--torch-threads", type=int, help="passed to dlrn serve")
    parser.add_argument("--worst", action="store_true",
                        help="then the costliest requests the limits allow, one at a time")
    parser.add_argument("--worst-timeout", type=float, default=300,
                        help="seconds to wait for each of them")
    args = parser.parse_args()
    results, worst = [], []
    for spec in args.bundle:
        name, folder = spec.split("=", 1)
        port = _free_port()
        server = _start(Path(folder), port, args.torch_threads)
        try:
            url = f"http://{HOST}:{port}"
            fields = _wait_ready(url, server, 300).json()["fields"]
            cases = _requests(args.cohort, fields, args.cases)
            process = psutil.Process(server.pid)
            variants = [False, True] if args.gradcam else [False]
            for gradcam in variants:
                _load(url, cases, clients=1, total=2, max_seconds=60, gradcam=gradcam,
                      rss_every=args.rss_every, process=process)  # warm-up
                result = _load(url, cases, clients=args.clients, total=args.requests,
                               max_seconds=args.max_seconds, gradcam=gradcam,
                               rss_every=args.rss_every, process=process)
                result.update(bundle=name, gradcam=gradcam, clients=args.clients)
                print(json.dumps(result), flush=True)
                results.append(result)
            if args.worst:
                worst += [{"bundle": name, **row} for row in _worst(url, cases[0][0], process,
                                                                 args.worst_timeout)]
        finally:
            server.terminate()
            try:
                server.wait(30)
            except subprocess.TimeoutExpired:  # still busy with a worst request
                server.kill()
                server.wait(30)
    print("\n| bundle | Grad-CAM | clients | requests | req/s | p50 ms | p95 ms | errors | "
          "RSS MB (start -> end) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r['bundle']} | {'yes' if r['gradcam'] else 'no'} | {r['clients']} | "
              f"{r['requests']} | {r['requests_per_s']} | {r['p50_ms']:.0f} | {r['p95_ms']:.0f} "
              f"| {r['errors']} | {r['rss_mb'][0][1]} -> {r['rss_mb'][-1][1]} |")
    if worst:
        print("\n| bundle | request | status | seconds | server RSS MiB (before -> peak) |")
        print("|---|---|---|---|---|")
        for r in worst:
            print(f"| {r['bundle']} | {r['request']} | {r['status']} | {r['seconds']} | "
                  f"{r['rss_before_mb']} -> {r['peak_rss_mb']} |")


if __name__ == "__main__":
    main()
