"""Round trips for every supported format and the documented conversion rules."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from PIL import Image
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.pixels import get_decoder
from pydicom.uid import (
    MPEG4HP41,
    UID,
    ExplicitVRLittleEndian,
    JPEGBaseline8Bit,
    JPEGLosslessSV1,
    UltrasoundMultiFrameImageStorage,
    generate_uid,
)

from dlrn.imaging import (
    ImageReadError,
    image_size,
    read_image,
    read_image_and_mask,
    read_mask,
    spacing_is_known,
)

RNG = np.random.default_rng(0)
GREY = RNG.integers(0, 256, size=(12, 16), dtype=np.uint8)
RGB = RNG.integers(0, 256, size=(12, 16, 3), dtype=np.uint8)
LUMA = 0.299 * RGB[..., 0] + 0.587 * RGB[..., 1] + 0.114 * RGB[..., 2]


def pixels(image: sitk.Image) -> np.ndarray:
    return sitk.GetArrayFromImage(image)


def assert_true_2d(image: sitk.Image, shape: tuple[int, int]) -> None:
    assert image.GetDimension() == 2
    assert image.GetSize() == (shape[1], shape[0])


# --- raster formats -------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".png", ".bmp", ".tif"])
def test_grey_raster_round_trip_is_exact(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"grey{suffix}"
    Image.fromarray(GREY).save(path)
    image = read_image(path)
    assert_true_2d(image, GREY.shape)
    assert image.GetPixelID() == sitk.sitkFloat32
    np.testing.assert_array_equal(pixels(image), GREY)
    assert not spacing_is_known(image)
    assert image.GetSpacing() == (1.0, 1.0)


def test_sixteen_bit_png_keeps_full_range(tmp_path: Path) -> None:
    values = (GREY.astype(np.uint16) * 250).astype(np.uint16)
    path = tmp_path / "deep.png"
    Image.fromarray(values).save(path)
    np.testing.assert_array_equal(pixels(read_image(path)), values)


@pytest.mark.parametrize("suffix", [".png", ".bmp", ".tiff"])
def test_rgb_becomes_bt601_luma(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"colour{suffix}"
    Image.fromarray(RGB).save(path)
    np.testing.assert_allclose(pixels(read_image(path)), LUMA, atol=1e-3)


def test_rgba_alpha_is_ignored(tmp_path: Path) -> None:
    alpha = np.zeros(GREY.shape, np.uint8)  # fully transparent: must not matter
    path = tmp_path / "rgba.png"
    Image.fromarray(np.dstack([RGB, alpha])).save(path)
    np.testing.assert_allclose(pixels(read_image(path)), LUMA, atol=1e-3)


def test_palette_image_is_read_as_its_colours(tmp_path: Path) -> None:
    path = tmp_path / "palette.png"
    Image.fromarray(RGB).quantize(colors=16).save(path)
    expected = np.asarray(Image.open(path).convert("RGB")).astype(float) @ [0.299, 0.587, 0.114]
    np.testing.assert_allclose(pixels(read_image(path)), expected, atol=1e-3)


def test_jpeg_grey_round_trip_is_close(tmp_path: Path) -> None:
    smooth = np.tile(np.linspace(0, 255, 16, dtype=np.uint8), (12, 1))
    path = tmp_path / "grey.jpg"
    Image.fromarray(smooth).save(path, quality=95)
    image = read_image(path)
    assert_true_2d(image, smooth.shape)
    assert np.abs(pixels(image) - smooth).max() < 8


def test_multipage_tiff_reads_the_requested_frame(tmp_path: Path) -> None:
    path = tmp_path / "cine.tif"
    frames = [Image.fromarray(GREY), Image.fromarray(255 - GREY)]
    frames[0].save(path, save_all=True, append_images=frames[1:])
    np.testing.assert_array_equal(pixels(read_image(path)), GREY)
    np.testing.assert_array_equal(pixels(read_image(path, frame=1)), 255 - GREY)
    with pytest.raises(ImageReadError, match=r"2 frame\(s\); frame 5"):
        read_image(path, frame=5)


# --- NIfTI / NRRD / MHA ---------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".nii.gz", ".nrrd", ".mha", ".nii"])
def test_itk_snap_single_slice_volume_is_squeezed_to_2d(tmp_path: Path, suffix: str) -> None:
    volume = sitk.GetImageFromArray(GREY[np.newaxis].astype(np.int16))  # size (16, 12, 1)
    volume.SetSpacing((0.1, 0.2, 3.0))
    volume.SetOrigin((5.0, 6.0, 7.0))
    path = tmp_path / f"slice{suffix}"
    sitk.WriteImage(volume, str(path))
    image = read_image(path)
    assert_true_2d(image, GREY.shape)
    np.testing.assert_allclose(image.GetSpacing(), (0.1, 0.2))
    np.testing.assert_allclose(image.GetOrigin(), (5.0, 6.0))
    assert spacing_is_known(image)
    np.testing.assert_array_equal(pixels(image), GREY)


def test_volume_with_singleton_first_axis_is_squeezed(tmp_path: Path) -> None:
    """HxWx1 in numpy order: ITK size (1, W, H); the plane is spanned by ITK's y and z."""
    volume = sitk.GetImageFromArray(GREY[:, :, np.newaxis])  # size (1, 16, 12)
    volume.SetSpacing((9.0, 0.3, 0.4))
    path = tmp_path / "sideways.nii.gz"
    sitk.WriteImage(volume, str(path))
    image = read_image(path)
    assert_true_2d(image, GREY.shape)
    np.testing.assert_allclose(image.GetSpacing(), (0.3, 0.4))
    np.testing.assert_array_equal(pixels(image), GREY)


def test_2d_nifti_round_trip(tmp_path: Path) -> None:
    flat = sitk.GetImageFromArray(GREY.astype(np.float32))
    flat.SetSpacing((0.07, 0.07))
    path = tmp_path / "flat.nii.gz"
    sitk.WriteImage(flat, str(path))
    image = read_image(path)
    np.testing.assert_allclose(image.GetSpacing(), (0.07, 0.07))
    np.testing.assert_array_equal(pixels(image), GREY)


def test_rgb_metaimage_becomes_luma(tmp_path: Path) -> None:
    path = tmp_path / "colour.mha"
    sitk.WriteImage(sitk.GetImageFromArray(RGB, isVector=True), str(path))
    np.testing.assert_allclose(pixels(read_image(path)), LUMA, atol=1e-3)


def test_genuine_3d_volume_is_refused_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "volume.nii.gz"
    sitk.WriteImage(sitk.GetImageFromArray(np.zeros((3, 12, 16), np.uint8)), str(path))
    with pytest.raises(ImageReadError, match=r"volume\.nii\.gz is a 3D volume of size 16x12x3"):
        read_image(path)


# --- DICOM ----------------------------------------------------------------------------------


def write_dicom(
    path: Path,
    frames: np.ndarray,
    *,
    encoded_frames: list[bytes] | None = None,
    syntax: UID = ExplicitVRLittleEndian,
    **elements,
) -> Path:
    """A minimal valid DICOM file holding ``frames`` (f, rows, cols[, 3]).

    Uncompressed, unless ``encoded_frames`` (one compressed codestream per frame) and
    their transfer ``syntax`` are given.
    """
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = UltrasoundMultiFrameImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = syntax
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = "US"
    colour = frames.ndim == 4
    ds.NumberOfFrames = frames.shape[0]
    ds.Rows, ds.Columns = frames.shape[1:3]
    ds.SamplesPerPixel = 3 if colour else 1
    ds.PhotometricInterpretation = "RGB" if colour else "MONOCHROME2"
    if colour:
        ds.PlanarConfiguration = 0
    ds.BitsAllocated = ds.BitsStored = 8 * frames.itemsize
    ds.HighBit = ds.BitsStored - 1
    ds.PixelRepresentation = 0
    for keyword, value in elements.items():
        setattr(ds, keyword, value)
    if encoded_frames is None:
        ds.PixelData = np.ascontiguousarray(frames).tobytes()
    else:
        ds.PixelData = encapsulate(encoded_frames)
        ds["PixelData"].VR = "OB"
    ds.save_as(path, enforce_file_format=True)
    return path


def ultrasound_region(delta_x_cm: float, delta_y_cm: float) -> Dataset:
    region = Dataset()
    region.RegionSpatialFormat = 1
    region.PhysicalUnitsXDirection = 3
    region.PhysicalUnitsYDirection = 3
    region.PhysicalDeltaX = delta_x_cm
    region.PhysicalDeltaY = delta_y_cm
    return region


def test_rgb_multiframe_ultrasound_dicom(tmp_path: Path) -> None:
    frames = np.stack([RGB, 255 - RGB])
    path = write_dicom(
        tmp_path / "cine.dcm", frames, SequenceOfUltrasoundRegions=[ultrasound_region(0.01, 0.02)]
    )
    first = read_image(path)
    assert_true_2d(first, GREY.shape)
    np.testing.assert_allclose(pixels(first), LUMA, atol=1e-3)
    second = read_image(path, frame=1)
    np.testing.assert_allclose(pixels(second), 255 - LUMA, atol=1e-3)
    np.testing.assert_allclose(first.GetSpacing(), (0.1, 0.2))  # cm -> mm
    assert spacing_is_known(first)
    with pytest.raises(ImageReadError, match=r"2 frame\(s\)"):
        read_image(path, frame=2)


def test_ybr_full_dicom_is_converted_to_rgb_first(tmp_path: Path) -> None:
    from pydicom.pixels import convert_color_space

    ybr = convert_color_space(RGB, "RGB", "YBR_FULL")
    path = write_dicom(tmp_path / "ybr.dcm", ybr[np.newaxis])
    from pydicom import dcmread

    ds = dcmread(path)
    ds.PhotometricInterpretation = "YBR_FULL"
    ds.save_as(path)
    np.testing.assert_allclose(pixels(read_image(path)), LUMA, atol=2.0)


def test_monochrome_dicom_pixel_spacing_is_row_then_column(tmp_path: Path) -> None:
    path = write_dicom(tmp_path / "grey", GREY[np.newaxis], PixelSpacing=[0.2, 0.1])
    image = read_image(path)  # no suffix: recognised by the DICOM preamble
    np.testing.assert_array_equal(pixels(image), GREY)
    np.testing.assert_allclose(image.GetSpacing(), (0.1, 0.2))


def test_dicom_without_calibration_has_unknown_spacing(tmp_path: Path) -> None:
    image = read_image(write_dicom(tmp_path / "plain.dcm", GREY[np.newaxis]))
    assert not spacing_is_known(image)


def jpeg_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, "JPEG", quality=95)
    return buffer.getvalue()


def test_jpeg_baseline_ultrasound_dicom_decodes_with_pillow(tmp_path: Path) -> None:
    """Colour cine loops are often stored JPEG-compressed as YBR_FULL_422; no extra package."""
    rows, cols = np.mgrid[0:32, 0:48]
    smooth = np.stack([cols * 5, rows * 7, (rows + cols) * 3], axis=-1).astype(np.uint8)
    frames = np.stack([smooth, 255 - smooth])
    encoded = [jpeg_bytes(frame) for frame in frames]
    path = write_dicom(tmp_path / "jpeg.dcm", frames, encoded_frames=encoded,
                       syntax=JPEGBaseline8Bit, PhotometricInterpretation="YBR_FULL_422",
                       SequenceOfUltrasoundRegions=[ultrasound_region(0.01, 0.01)])
    for frame, codestream in enumerate(encoded):
        image = read_image(path, frame=frame)
        assert_true_2d(image, smooth.shape[:2])
        decoded = np.asarray(Image.open(io.BytesIO(codestream)).convert("RGB"), dtype=float)
        luma = decoded @ [0.299, 0.587, 0.114]
        np.testing.assert_allclose(pixels(image), luma, atol=1e-3)
        original = frames[frame].astype(float) @ [0.299, 0.587, 0.114]
        assert np.abs(pixels(image) - original).max() < 3.0  # quality 95 JPEG
    np.testing.assert_allclose(image.GetSpacing(), (0.1, 0.1))


def test_jpeg_baseline_grey_dicom(tmp_path: Path) -> None:
    ramp = np.tile(np.arange(0, 240, 5, dtype=np.uint8), (20, 1))
    path = write_dicom(tmp_path / "grey.dcm", ramp[np.newaxis], syntax=JPEGBaseline8Bit,
                       encoded_frames=[jpeg_bytes(ramp)])
    assert np.abs(pixels(read_image(path)) - ramp).max() <= 1.0


@pytest.mark.skipif(get_decoder(JPEGLosslessSV1).is_available,
                    reason="a JPEG lossless decoder is installed")
def test_undecodable_compression_names_the_package_to_install(tmp_path: Path) -> None:
    path = write_dicom(tmp_path / "lossless.dcm", GREY[np.newaxis], syntax=JPEGLosslessSV1,
                       encoded_frames=[b"\xff\xd8\xff\xd9"])
    with pytest.raises(ImageReadError) as raised:
        read_image(path)
    message = str(raised.value)
    assert str(path) in message and "JPEG Lossless" in message
    assert "'pip install pylibjpeg pylibjpeg-libjpeg'" in message
    assert "'pip install python-gdcm'" in message


def test_video_dicom_is_refused_with_advice(tmp_path: Path) -> None:
    path = write_dicom(tmp_path / "cine.dcm", GREY[np.newaxis], syntax=MPEG4HP41,
                       encoded_frames=[b"\x00\x00\x01"])
    with pytest.raises(ImageReadError, match=r"video format .* uncompressed DICOM or a PNG"):
        read_image(path)


# --- masks ----------------------------------------------------------------------------------

SQUARE = np.zeros((12, 16), np.uint8)
SQUARE[3:8, 4:10] = 1


@pytest.mark.parametrize("scale", [1, 255])
def test_binary_masks_saved_as_0_1_or_0_255(tmp_path: Path, scale: int) -> None:
    path = tmp_path / "mask.png"
    Image.fromarray(SQUARE * scale).save(path)
    mask = read_mask(path)
    assert mask.GetPixelID() == sitk.sitkUInt8
    np.testing.assert_array_equal(pixels(mask), SQUARE)


def test_label_map_any_nonzero_or_chosen_label(tmp_path: Path) -> None:
    labels = SQUARE.copy()
    labels[9:11, 1:3] = 2
    path = tmp_path / "labels.nrrd"
    sitk.WriteImage(sitk.GetImageFromArray(labels), str(path))
    np.testing.assert_array_equal(pixels(read_mask(path)), labels > 0)
    np.testing.assert_array_equal(pixels(read_mask(path, label=2)), labels == 2)


def test_palette_label_mask_uses_indices(tmp_path: Path) -> None:
    path = tmp_path / "palette_mask.png"
    indexed = Image.fromarray(SQUARE * 3, mode="L").convert("P")
    indexed.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0, 0, 0, 255] + [0] * 756)
    indexed.save(path)
    np.testing.assert_array_equal(pixels(read_mask(path, label=3)), SQUARE)


def test_rgb_mask_is_non_zero_in_any_channel(tmp_path: Path) -> None:
    colour = np.zeros((12, 16, 3), np.uint8)
    colour[3:8, 4:10, 0] = 200  # red outline tool
    colour[0, 0, 2] = 1  # one blue pixel
    path = tmp_path / "rgb_mask.png"
    Image.fromarray(colour).save(path)
    expected = SQUARE.copy()
    expected[0, 0] = 1
    np.testing.assert_array_equal(pixels(read_mask(path)), expected)
    with pytest.raises(ImageReadError, match="colour image"):
        read_mask(path, label=1)


def test_grey_saved_as_rgb_mask_still_accepts_a_label(tmp_path: Path) -> None:
    path = tmp_path / "grey_rgb_mask.png"
    Image.fromarray(np.dstack([SQUARE * 2] * 3)).save(path)
    np.testing.assert_array_equal(pixels(read_mask(path, label=2)), SQUARE)


def test_jpeg_mask_ignores_compression_noise(tmp_path: Path) -> None:
    path = tmp_path / "mask.jpg"
    Image.fromarray(SQUARE * 255).save(path, quality=75)
    assert np.count_nonzero(np.asarray(Image.open(path))) > SQUARE.sum()  # noise exists
    np.testing.assert_array_equal(pixels(read_mask(path)), SQUARE)


def test_itk_snap_mask_volume_is_squeezed(tmp_path: Path) -> None:
    path = tmp_path / "seg.nii.gz"
    sitk.WriteImage(sitk.GetImageFromArray(SQUARE[np.newaxis]), str(path))
    mask = read_mask(path)
    assert mask.GetDimension() == 2
    np.testing.assert_array_equal(pixels(mask), SQUARE)


# --- image and mask together ----------------------------------------------------------------


def test_png_mask_takes_the_dicom_image_geometry(tmp_path: Path) -> None:
    image_path = write_dicom(tmp_path / "us.dcm", GREY[np.newaxis], PixelSpacing=[0.2, 0.1])
    mask_path = tmp_path / "mask.png"
    Image.fromarray(SQUARE * 255).save(mask_path)
    image, mask = read_image_and_mask(image_path, mask_path)
    assert mask.GetSpacing() == image.GetSpacing() == pytest.approx((0.1, 0.2))
    assert mask.GetOrigin() == image.GetOrigin()
    assert mask.GetDirection() == image.GetDirection()
    assert spacing_is_known(mask)


def test_size_mismatch_names_both_files(tmp_path: Path) -> None:
    image_path, mask_path = tmp_path / "image.png", tmp_path / "mask.png"
    Image.fromarray(GREY).save(image_path)
    Image.fromarray(SQUARE[:10]).save(mask_path)
    with pytest.raises(ImageReadError, match=r"mask .*mask\.png has size 16x10 .*image\.png"):
        read_image_and_mask(image_path, mask_path)


def test_spacing_mismatch_between_calibrated_files(tmp_path: Path) -> None:
    image_path = write_dicom(tmp_path / "us.dcm", GREY[np.newaxis], PixelSpacing=[0.1, 0.1])
    mask_image = sitk.GetImageFromArray(SQUARE)
    mask_image.SetSpacing((0.3, 0.3))
    mask_path = tmp_path / "seg.nrrd"
    sitk.WriteImage(mask_image, str(mask_path))
    with pytest.raises(ImageReadError, match=r"pixel spacing 0\.3 x 0\.3 mm"):
        read_image_and_mask(image_path, mask_path)


def test_itk_snap_mask_of_calibrated_ultrasound_takes_the_calibration(tmp_path: Path) -> None:
    """ITK (so ITK-SNAP) ignores the ultrasound region calibration and writes 1 mm pixels."""
    image_path = write_dicom(tmp_path / "us.dcm", GREY[np.newaxis],
                             SequenceOfUltrasoundRegions=[ultrasound_region(0.01, 0.01)])
    mask_image = sitk.GetImageFromArray(SQUARE[np.newaxis])  # 1xHxW, 1 mm, as ITK-SNAP saves
    mask_path = tmp_path / "seg.nii.gz"
    sitk.WriteImage(mask_image, str(mask_path))
    image, mask = read_image_and_mask(image_path, mask_path)
    assert mask.GetSpacing() == image.GetSpacing() == pytest.approx((0.1, 0.1))
    mask_image.SetSpacing((0.3, 0.3, 1.0))  # a real disagreement is still refused
    sitk.WriteImage(mask_image, str(mask_path))
    with pytest.raises(ImageReadError, match=r"pixel spacing 0\.3 x 0\.3 mm"):
        read_image_and_mask(image_path, mask_path)


def test_single_frame_mask_serves_any_frame_of_a_cine_loop(tmp_path: Path) -> None:
    image_path = write_dicom(tmp_path / "cine.dcm", np.stack([GREY, 255 - GREY]))
    mask_path = tmp_path / "roi.png"
    Image.fromarray(SQUARE * 255).save(mask_path)
    image, mask = read_image_and_mask(image_path, mask_path, frame=1)
    np.testing.assert_array_equal(pixels(image), 255 - GREY)
    np.testing.assert_array_equal(pixels(mask), SQUARE)
    multi_mask = tmp_path / "roi.tif"
    pages = [Image.fromarray(SQUARE * 0), Image.fromarray(SQUARE * 255)]
    pages[0].save(multi_mask, save_all=True, append_images=pages[1:])
    np.testing.assert_array_equal(pixels(read_mask(multi_mask, frame=1)), SQUARE)
    assert pixels(read_mask(multi_mask, frame=0)).sum() == 0
    with pytest.raises(ImageReadError, match=r"2 frame\(s\); frame 2 requested"):
        read_mask(multi_mask, frame=2)


# --- errors ---------------------------------------------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ImageReadError, match=r"file not found: .*nothing\.png"):
        read_image(tmp_path / "nothing.png")


def test_corrupt_file_is_reported_as_unreadable(tmp_path: Path) -> None:
    path = tmp_path / "broken.png"
    path.write_bytes(b"not a png at all")
    with pytest.raises(ImageReadError, match=r"cannot read image file .*broken\.png"):
        read_image(path)
    with pytest.raises(ImageReadError, match="cannot read image file"):
        image_size(path)


def test_unsupported_format(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("hello")
    with pytest.raises(ImageReadError, match="unsupported image format"):
        read_image(path)


def test_image_size_without_decoding(tmp_path: Path) -> None:
    path = tmp_path / "grey.png"
    Image.fromarray(GREY).save(path)
    assert image_size(path) == (16, 12)
