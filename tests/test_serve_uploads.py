"""Uploads: format by content, pixel counts read from headers before decoding, no paths."""

from __future__ import annotations

import gzip
import io
import struct
import zlib

import numpy as np
import pytest
import SimpleITK as sitk
from PIL import Image

from dlrn.imaging import read_image
from dlrn.serve.uploads import UploadError, UploadLimits, detect_suffix, save_upload

LIMITS = UploadLimits(max_bytes=10**6, max_pixels=10**6)


def _raster(fmt: str) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.arange(64 * 48, dtype=np.uint8).reshape(48, 64)).save(buffer, format=fmt)
    return buffer.getvalue()


def _itk(tmp_path, suffix: str) -> bytes:
    path = tmp_path / f"written{suffix}"
    image = sitk.GetImageFromArray(np.arange(48 * 64, dtype=np.int16).reshape(48, 64))
    sitk.WriteImage(image, str(path))
    return path.read_bytes()


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height pixels but that carries almost no data."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(b"\x00" * 100)) + chunk(b"IEND", b""))


@pytest.mark.parametrize(("fmt", "suffix"), [("PNG", ".png"), ("JPEG", ".jpg"), ("BMP", ".bmp"),
                                             ("TIFF", ".tif")])
def test_raster_formats_are_recognised_by_content_and_read_back(tmp_path, fmt, suffix):
    data = _raster(fmt)
    assert detect_suffix(data) == suffix
    path = save_upload(data, tmp_path, "image", LIMITS)
    assert path == tmp_path / f"image{suffix}"
    assert read_image(path).GetSize() == (64, 48)


@pytest.mark.parametrize("suffix", [".nii", ".nii.gz", ".nrrd", ".mha", ".dcm"])
def test_volume_and_dicom_files_are_recognised_by_content(tmp_path, suffix):
    data = _itk(tmp_path, suffix)
    assert detect_suffix(data) == suffix
    path = save_upload(data, tmp_path, "upload", LIMITS)
    assert path.name == f"upload{suffix}"
    assert read_image(path).GetSize() == (64, 48)


def test_unknown_content_is_refused_whatever_the_name(tmp_path):
    for data in (b"%PDF-1.7 ...", b"GIF89a....", b"#!/bin/sh\nrm -rf /\n", b"\x1f\x8bnot gzip"):
        with pytest.raises(UploadError, match="not an image format") as refused:
            save_upload(data, tmp_path, "image", LIMITS)
        assert refused.value.status == 415
    with pytest.raises(UploadError, match="empty"):
        save_upload(b"", tmp_path, "image", LIMITS)
    assert list(tmp_path.iterdir()) == []


def test_size_limit_is_checked_before_anything_is_written(tmp_path):
    data = _raster("BMP")
    with pytest.raises(UploadError, match="more than this server accepts") as refused:
        save_upload(data, tmp_path, "image", UploadLimits(max_bytes=len(data) - 1))
    assert refused.value.status == 413
    assert list(tmp_path.iterdir()) == []


def test_decompression_bombs_are_refused_from_the_header(tmp_path):
    bomb = _png_header_only(50_000, 50_000)
    assert len(bomb) < 200
    with pytest.raises(UploadError, match="pixels") as refused:
        save_upload(bomb, tmp_path, "image", LIMITS)
    assert refused.value.status == 413
    nifti = bytearray(_itk(tmp_path, ".nii"))
    nifti[42:46] = struct.pack("<2h", 30_000, 30_000)  # dim[1], dim[2]
    with pytest.raises(UploadError, match="30000 x 30000"):
        save_upload(bytes(nifti), tmp_path, "image", LIMITS)
    with pytest.raises(UploadError, match="30000 x 30000"):
        save_upload(gzip.compress(bytes(nifti)), tmp_path, "image", LIMITS)
    mha = _itk(tmp_path, ".mha").replace(b"DimSize = 64 48", b"DimSize = 64000 48000")
    with pytest.raises(UploadError, match="pixels"):
        save_upload(mha, tmp_path, "image", LIMITS)
    import pydicom

    dicom_path = tmp_path / "written.dcm"
    dicom = pydicom.dcmread(io.BytesIO(_itk(tmp_path, ".dcm")))
    dicom.Rows, dicom.Columns, dicom.NumberOfFrames = 4000, 4000, 100
    dicom.save_as(dicom_path)
    with pytest.raises(UploadError, match="pixels"):
        save_upload(dicom_path.read_bytes(), tmp_path, "image", LIMITS)


def test_headers_that_name_another_file_are_refused(tmp_path):
    nrrd = b"NRRD0004\ntype: short\ndimension: 2\nsizes: 64 48\ndata file: /etc/passwd\n\n"
    with pytest.raises(UploadError, match="names another file"):
        save_upload(nrrd, tmp_path, "image", LIMITS)
    mha = _itk(tmp_path, ".mha").replace(b"ElementDataFile = LOCAL",
                                         b"ElementDataFile = /etc/passwd")
    with pytest.raises(UploadError, match="ElementDataFile"):
        save_upload(mha, tmp_path, "image", LIMITS)
