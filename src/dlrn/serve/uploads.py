"""Uploaded image and mask files: type by content, size and pixel limits before decoding.

An upload is only ever written under a private temporary folder, under a name the
server chooses (``image`` or ``mask`` plus the suffix of the detected format), so
no client-supplied name or path reaches the file system. The format is recognised
from the file's first bytes (never its name) and the pixel count is read from the
header before any decoder allocates memory, so a small file that claims a huge
image (a decompression bomb) is refused cheaply.

Formats are those ``dlrn validate`` reads, as single files: PNG, JPEG, BMP, TIFF,
DICOM, NIfTI (``.nii``, ``.nii.gz``), NRRD and MetaImage (``.mha``) with their data
inside. A header that names another file (NRRD ``data file``, MetaImage
``ElementDataFile`` other than LOCAL, found anywhere in the whole header as
:mod:`dlrn.data_files` reads it; a NIfTI pair's ``ni1`` header) is refused: the
calculator never reads a file other than the upload itself.
"""

from __future__ import annotations

import gzip
import io
import re
import struct
from dataclasses import dataclass
from pathlib import Path

from dlrn.data_files import named_data_files
from dlrn.errors import DlrnError

DEFAULT_MAX_UPLOAD_MB = 50
_MB = 1024 * 1024
DEFAULT_MAX_MEGAPIXELS = 40
_SNIFF_BYTES = 64 * 1024  # enough to recognise every format (never to judge a header)


class UploadError(DlrnError):
    """An upload the server refuses; ``status`` is the HTTP status that says why."""

    def __init__(self, message: str, status: int = 422) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class UploadLimits:
    max_bytes: int = DEFAULT_MAX_UPLOAD_MB * _MB
    max_pixels: int = DEFAULT_MAX_MEGAPIXELS * 1_000_000


def detect_suffix(head: bytes) -> str | None:
    """The file suffix of the format the first bytes show, or None when unknown."""
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return ".png"
    if head.startswith(b"\xff\xd8\xff"):
        return ".jpg"
    if head.startswith(b"BM"):
        return ".bmp"
    if head.startswith((b"II*\x00", b"MM\x00*")):
        return ".tif"
    if head[128:132] == b"DICM":
        return ".dcm"
    if head.startswith(b"NRRD000"):
        return ".nrrd"
    if re.match(rb"\s*(ObjectType|NDims)\s*=", head[:64]):
        return ".mha"
    if _nifti_dims(head) is not None:
        return ".nii"
    if head.startswith(b"\x1f\x8b"):
        try:
            inner = gzip.GzipFile(fileobj=io.BytesIO(head)).read(544)
        except (OSError, EOFError):
            return None
        return ".nii.gz" if _nifti_dims(inner) is not None else None
    return None


def check_pixels(data: bytes, suffix: str, what: str, limits: UploadLimits) -> None:
    """Refuse an image whose header declares more pixels than allowed, before decoding."""
    dims = _declared_dims(data, suffix, what)
    pixels = 1
    for length in dims:
        pixels *= max(int(length), 1)
    if pixels > limits.max_pixels:
        raise UploadError(f"the {what} declares {' x '.join(map(str, dims))} = {pixels:,} "
                          f"pixels, more than this server accepts ({limits.max_pixels:,}); "
                          "upload the 2D frame alone", status=413)


def check_size(size: int, what: str, limits: UploadLimits) -> None:
    """Refuse a file of ``size`` bytes above the limit, both said in the same unit."""
    if size > limits.max_bytes:
        raise UploadError(f"the {what} file is {_megabytes(size)}, more than this server "
                          f"accepts ({_megabytes(limits.max_bytes)})", status=413)


def _megabytes(size: int) -> str:
    """Bytes as MB (2**20) with the digits that tell sizes apart near a limit."""
    return f"{size / _MB:,.2f}".rstrip("0").rstrip(".") + f" MB ({size:,} bytes)"


def save_upload(data: bytes, folder: Path, stem: str, limits: UploadLimits) -> Path:
    """Check one upload (size, type by content, pixel count) and write it as ``folder/stem``."""
    what = stem
    if not data:
        raise UploadError(f"the {what} file is empty")
    check_size(len(data), what, limits)
    suffix = detect_suffix(data[:_SNIFF_BYTES])
    if suffix is None:
        raise UploadError(f"the {what} file is not an image format dlrn reads (PNG, JPEG, BMP, "
                          "TIFF, DICOM, NIfTI, NRRD, MetaImage .mha); its content, not its "
                          "name, decides", status=415)
    check_pixels(data, suffix, what, limits)
    path = folder / f"{stem}{suffix}"
    path.write_bytes(data)
    return path


def _declared_dims(data: bytes, suffix: str, what: str) -> tuple[int, ...]:
    try:
        if suffix in (".png", ".jpg", ".bmp", ".tif"):
            return _raster_dims(data)
        if suffix == ".dcm":
            return _dicom_dims(data)
        if suffix in (".nii", ".nii.gz"):
            head = data[:544] if suffix == ".nii" else gzip.GzipFile(
                fileobj=io.BytesIO(data)).read(544)
            if head[344:347] in (b"ni1", b"ni2") or head[4:7] in (b"ni1", b"ni2"):
                raise UploadError(f"the {what} is the header of a NIfTI pair (.hdr + .img: "
                                  "it names another file); upload a single .nii file")
            return _nifti_dims(head) or ()
        return _text_header_dims(data, suffix, what)
    except UploadError:
        raise
    except Exception as error:  # decoders raise many types for corrupt headers
        raise UploadError(f"the {what} file starts like a {suffix} file but its header is "
                          f"damaged or incomplete ({type(error).__name__}): save or export "
                          f"the {what} again and upload the new file") from error


def _raster_dims(data: bytes) -> tuple[int, ...]:
    """Width, height and frames from Pillow's header parse (pixels are not decoded)."""
    import warnings

    from PIL import Image

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            with Image.open(io.BytesIO(data)) as handle:
                return (*handle.size, getattr(handle, "n_frames", 1))
        except Image.DecompressionBombError as error:
            raise UploadError(f"the image is too large to decode safely: {error}",
                              status=413) from error


def _dicom_dims(data: bytes) -> tuple[int, ...]:
    import pydicom

    header = pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True)
    return (int(header.get("Rows", 0)), int(header.get("Columns", 0)),
            int(header.get("NumberOfFrames", 1) or 1), int(header.get("SamplesPerPixel", 1)))


def _nifti_dims(head: bytes) -> tuple[int, ...] | None:
    """dim[1..dim[0]] of a NIfTI-1 or NIfTI-2 header, or None when it is not one."""
    for order in ("<", ">"):
        if len(head) >= 348 and struct.unpack(f"{order}i", head[:4])[0] == 348 \
                and head[344:347] in (b"n+1", b"ni1"):
            dim = struct.unpack(f"{order}8h", head[40:56])
            return tuple(dim[1:1 + max(0, min(dim[0], 7))])
        if len(head) >= 540 and struct.unpack(f"{order}i", head[:4])[0] == 540 \
                and head[4:7] in (b"n+2", b"ni2"):
            dim = struct.unpack(f"{order}8q", head[16:80])
            return tuple(dim[1:1 + max(0, min(dim[0], 7))])
    return None


def _text_header_dims(data: bytes, suffix: str, what: str) -> tuple[int, ...]:
    """NRRD ``sizes:`` or MetaImage ``DimSize =``, read from the whole header; a header
    naming another file is refused wherever the name stands in it."""
    kind = "nrrd" if suffix == ".nrrd" else "meta"
    named = named_data_files(data, kind)
    if named:
        raise UploadError(f"the {what} file's header names another file (NRRD 'data file' "
                          "or MetaImage 'ElementDataFile'); the calculator reads only the "
                          f"file uploaded: upload a single {suffix} file with its data inside")
    header = data.split(b"\n\n", 1)[0] if kind == "nrrd" else data.split(
        b"ElementDataFile", 1)[0]
    pattern = rb"^\s*sizes\s*:\s*([^\r\n]*)" if kind == "nrrd" else rb"^\s*DimSize\s*=\s*([^\r\n]*)"
    found = re.search(pattern, header, re.M | re.I)
    dims = tuple(int(size) for size in (found[1].split() if found else ()))
    if not dims:
        raise UploadError(f"the {what} file's {suffix} header declares no image size")
    return dims
