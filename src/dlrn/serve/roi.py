"""The patient's ROI at the image's own pixel grid: a polygon rasterised, a mask written
for ``dlrn predict``, and the pictures the page shows (the image, the ROI used).

Coordinates (the API's ``polygon`` and the page's drawing) are image pixels with the
origin at the top-left corner of the top-left pixel, x to the right (columns) and y
down (rows), so the image spans [0, width] x [0, height]: the convention of DICOM's
graphic annotations (SCOORD) and of the HTML canvas.

The rule: pixel (column c, row r) is in the ROI when its centre (c + 0.5, r + 0.5) is
inside the polygon by the even-odd rule, decided as W. R. Franklin's crossing test
(pnpoly) decides it: an edge from vertex j = i - 1 to vertex i crosses the centre's row
when ``(y_i > cy) != (y_j > cy)``, at ``x = (x_j - x_i) * (cy - y_i) / (y_j - y_i) + x_i``,
and the centre is inside when an odd number of crossings lie strictly right of it. A
centre exactly on the outline is therefore inside on left and top edges and outside on
right and bottom ones (the top-left rule of graphics rasterisers), and a rectangle with
integer corners covers exactly the pixels within it. The page rasterises its polygons
with the same arithmetic in ``templates/roi_editor.js`` (tested equal in Chromium).
"""

from __future__ import annotations

import base64
import io
import itertools
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from dlrn.serve.uploads import UploadError

MAX_POLYGON_POINTS = 10_000
MAX_POLYGON_CHARACTERS = 64 * MAX_POLYGON_POINTS  # 30 digits a coordinate, and spaces
_CROSSINGS_AT_ONCE = 1 << 20  # candidate (edge, row) pairs rasterised per block
# JSON's number, and the only shape accepted: [[x, y], ...], decoded only once it matches
_NUMBER = r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?"
_POINT = rf"\[[ \t\r\n]*{_NUMBER}[ \t\r\n]*,[ \t\r\n]*{_NUMBER}[ \t\r\n]*\]"
_POLYGON = re.compile(rf"[ \t\r\n]*\[[ \t\r\n]*(?:{_POINT}[ \t\r\n]*"
                      rf"(?:,[ \t\r\n]*{_POINT}[ \t\r\n]*)*)?\][ \t\r\n]*")
_POLYGON_FORMAT = ("The polygon must be a JSON list of [x, y] points in image pixels, "
                   "e.g. [[10, 12], [40, 12], [25, 30]]")
_OUTLINE = (255, 210, 0)  # the ROI's outline on the overlay (yellow)


@dataclass(frozen=True)
class Roi:
    """The ROI a prediction used: where it came from, its size and its pictures (PNG)."""

    source: str
    pixels: int
    mask_png: bytes
    overlay_png: bytes

    @property
    def mask_base64(self) -> str:
        return base64_text(self.mask_png)

    @property
    def overlay_base64(self) -> str:
        return base64_text(self.overlay_png)


@dataclass(frozen=True)
class Preview:
    """An uploaded image as the cohort reader reads it, for drawing on, and an ROI to start
    from (a mask file's, or the segmentation model's proposal), PNG in base64."""

    width: int
    height: int
    image_png_base64: str
    roi_png_base64: str | None
    roi_source: str | None
    message: str


def parse_polygon(text: str, width: int, height: int) -> np.ndarray:
    """The ``polygon`` field as an (n, 2) array of (x, y), refused with the reason when it
    is not a list of 3 to ``MAX_POLYGON_POINTS`` finite points on the image.

    The text is bounded in length and must have the shape ``[[x, y], ...]`` with JSON
    numbers (ASCII digits only) before it is decoded, so no nesting, size or number
    (integers are read as floats: a 400-digit one is infinite, hence refused) reaches
    the JSON decoder or NumPy unchecked.
    """
    if len(text) > MAX_POLYGON_CHARACTERS:
        raise UploadError(f"The polygon's text has {len(text):,} characters, more than this "
                          f"server reads ({MAX_POLYGON_CHARACTERS:,}): simplify the outline "
                          f"(at most {MAX_POLYGON_POINTS:,} points).")
    if not _POLYGON.fullmatch(text):
        if re.search(r"NaN|Infinity", text):
            raise UploadError(f"{_POLYGON_FORMAT}; NaN and infinity are not coordinates.")
        raise UploadError(f"{_POLYGON_FORMAT}: numbers as JSON writes them, nothing nested "
                          "deeper.")
    points = json.loads(text, parse_int=float)
    if len(points) < 3:
        raise UploadError(f"The polygon has {len(points)} point(s); an outline needs at least "
                          "3: place 3 or more points around the lesion.")
    if len(points) > MAX_POLYGON_POINTS:
        raise UploadError(f"The polygon has {len(points):,} points, more than this server "
                          f"accepts ({MAX_POLYGON_POINTS:,}): simplify the outline.")
    vertices = np.asarray(points, dtype=float)
    if not np.isfinite(vertices).all():
        raise UploadError(f"{_POLYGON_FORMAT}; a coordinate is too large to be a number.")
    x, y = vertices[:, 0], vertices[:, 1]
    outside = np.flatnonzero((x < 0) | (x > width) | (y < 0) | (y > height))
    if outside.size:
        index = int(outside[0])
        raise UploadError(f"Point {index + 1} of the polygon, (x={x[index]:g}, "
                          f"y={y[index]:g}), lies outside the image, which spans 0 to {width} "
                          f"(x) by 0 to {height} (y) pixels: place every point on the image "
                          f"({outside.size} point(s) outside).")
    return vertices


def polygon_mask(vertices: np.ndarray, height: int, width: int, *,
                 max_crossings: int | None = None) -> np.ndarray:
    """The (height, width) boolean ROI of a polygon by the module's rule (pnpoly's
    crossings at pixel centres).

    The work is the rows each edge spans, counted before anything is allocated and
    refused above ``max_crossings`` (the server's pixel budget); it is then done in
    blocks of ``_CROSSINGS_AT_ONCE``, so memory is the image's bytes plus a fixed block,
    whatever the polygon.
    """
    x, y = vertices[:, 0], vertices[:, 1]
    x_prev, y_prev = np.roll(x, 1), np.roll(y, 1)
    # candidate rows of each edge, one too many on each side; the exact test below decides
    low = np.floor(np.minimum(y, y_prev) - 0.5).astype(np.int64) - 1
    high = np.ceil(np.maximum(y, y_prev) - 0.5).astype(np.int64) + 2
    first = np.clip(low, 0, height)
    counts = np.clip(high, 0, height) - first
    total = int(counts.sum())
    if max_crossings is not None and total > max_crossings:
        raise UploadError(f"The polygon's edges span {total:,} image rows in all, more than "
                          f"this server rasterises ({max_crossings:,}, its pixel limit): "
                          "outline the lesion with fewer back-and-forth edges.")
    toggles = np.zeros((height, width + 1), dtype=np.uint8)
    for edges, rows in _candidate_blocks(first, counts):
        _toggle_crossings(toggles, rows, x[edges], y[edges], x_prev[edges], y_prev[edges])
    # counts modulo 256 (uint8 wraps) keep their parity, all the rule needs, in a byte a pixel
    crossings_right = np.cumsum(toggles[:, :0:-1], axis=1, dtype=np.uint8)[:, ::-1]
    return crossings_right % 2 == 1


def _toggle_crossings(toggles: np.ndarray, rows: np.ndarray, xi: np.ndarray, yi: np.ndarray,
                      xj: np.ndarray, yj: np.ndarray) -> None:
    """Add each edge's crossing of its candidate row's centre line where it crosses it."""
    centre_y = rows + 0.5
    crosses = (yi > centre_y) != (yj > centre_y)
    rows, centre_y = rows[crosses], centre_y[crosses]
    xi, yi, xj, yj = xi[crosses], yi[crosses], xj[crosses], yj[crosses]
    crossing = (xj - xi) * (centre_y - yi) / (yj - yi) + xi
    # how many centres c + 0.5 lie strictly left of each crossing: c < crossing - 0.5
    # (exact: 0.5 is a multiple of the spacing of doubles below 2**52)
    width = toggles.shape[1] - 1
    left_of = np.clip(np.ceil(crossing - 0.5), 0, width).astype(np.int64)
    # each edge's cells ascend: a stable sort (timsort, merging those runs) is near linear
    cells = np.sort(rows * (width + 1) + left_of, kind="stable")
    first_of_run = np.flatnonzero(np.diff(cells, prepend=-1))
    times = np.diff(first_of_run, append=len(cells))
    toggles.reshape(-1)[cells[first_of_run]] += times.astype(np.uint8)  # distinct cells


def _candidate_blocks(first: np.ndarray, counts: np.ndarray
                      ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(edge, row) pairs of every edge's candidate rows, in blocks of at most twice
    ``_CROSSINGS_AT_ONCE`` pairs: long edges cut into pieces, pieces grouped."""
    step = _CROSSINGS_AT_ONCE
    pieces = -(-counts // step)
    piece_edge = np.repeat(np.arange(len(counts)), pieces)
    offset = (np.arange(len(piece_edge)) - np.repeat(np.cumsum(pieces) - pieces, pieces)) * step
    piece_first = first[piece_edge] + offset
    piece_count = np.minimum(step, counts[piece_edge] - offset)
    starts = np.cumsum(piece_count) - piece_count
    bounds = np.searchsorted(starts, np.arange(0, int(piece_count.sum()) + step, step))
    for low, high in itertools.pairwise(bounds):
        if high > low:
            size = piece_count[low:high]
            within = np.arange(int(size.sum())) - np.repeat(np.cumsum(size) - size, size)
            yield (np.repeat(piece_edge[low:high], size),
                   np.repeat(piece_first[low:high], size) + within)


def roi_pixel_value(mask_label: int | None) -> int:
    """The value ROI pixels get in a mask written for ``dlrn predict``: the study's
    ``mask_label`` when it reads one label, else 255 (any non-zero pixel is ROI)."""
    return 255 if mask_label is None else int(mask_label)


def mask_file_png(roi: np.ndarray, mask_label: int | None) -> bytes:
    """A mask file the cohort reader reads back as exactly ``roi`` (a PNG has no geometry,
    so the reader gives it the image's spacing and orientation)."""
    value = roi_pixel_value(mask_label)
    dtype = np.uint8 if value <= 255 else np.uint16
    return png_bytes(np.where(roi, value, 0).astype(dtype))


def display_grey(image: np.ndarray) -> np.ndarray:
    """The reader's grey pixels as 8 bits for the screen: unchanged where they already lie
    in 0-255, else stretched from their minimum to their maximum (display only)."""
    low, high = float(image.min()), float(image.max())
    if low >= 0 and high <= 255:
        return np.rint(image).astype(np.uint8)
    scale = 255 / (high - low) if high > low else 0.0
    return np.rint((image - low) * scale).astype(np.uint8)


def overlay_png(image: np.ndarray, roi: np.ndarray) -> bytes:
    """The image with the ROI outlined just outside its margin (the ROI's own pixels, the
    lesion's margin, stay as they are), a line 1 pixel wide per 300 of the image's side."""
    from scipy.ndimage import binary_dilation

    grey = display_grey(image)
    picture = np.repeat(grey[..., None], 3, axis=2)
    width = max(1, round(min(roi.shape) / 300))
    outline = binary_dilation(roi, iterations=width) & ~roi
    picture[outline] = _OUTLINE
    return png_bytes(picture)


def png_bytes(array: np.ndarray) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def base64_text(data: bytes) -> str:
    return base64.b64encode(data).decode()
