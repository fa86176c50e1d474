"""Read any 2D image or mask file into a true 2D SimpleITK image.

PyRadiomics must see genuine 2D images (never 1-slice 3D volumes with
``force2D``), and the image and its mask must share one physical space. This
module is the single place where files become pixels, so every stage sees the
same conversion rules:

Formats
    * PNG, JPEG, BMP, TIFF (read with Pillow). These carry no physical spacing:
      the spacing is 1 pixel and is recorded as *unknown* (see
      :func:`spacing_is_known`). Multi-page TIFF: page ``frame``.
    * NIfTI (``.nii``, ``.nii.gz``), NRRD (``.nrrd``, ``.nhdr``), MetaImage
      (``.mha``, ``.mhd``) (read with SimpleITK). A detached header is followed only
      to a data file inside ``data_root`` (the cohort reader: the table's folder tree;
      default: the header's folder tree; :mod:`dlrn.data_files`). 3D volumes with a single slice
      (ITK-SNAP saves 2D segmentations as 1xHxW or HxWx1) are squeezed to 2D,
      keeping the spacing, origin and orientation of the two in-plane axes. A
      volume with more than one slice is an error naming the file.
    * DICOM (``.dcm``, ``.dicom``, or any file with the DICOM preamble; read
      with pydicom). Multi-frame files (cine loops): frame ``frame``, default
      0, the first frame (a single-frame *mask* serves any frame of its
      image). YBR colour is converted to RGB; MONOCHROME1 is inverted so that
      bright means high signal; rescale slope/intercept are applied. Spacing
      comes from PixelSpacing, else ImagerPixelSpacing, else the ultrasound
      region calibration (SequenceOfUltrasoundRegions, first region calibrated
      in cm, converted to mm). Without any of these the spacing is unknown.
      Compressed pixel data: JPEG baseline/extended and JPEG 2000 decode with
      Pillow; JPEG lossless and JPEG-LS need python-gdcm or pylibjpeg +
      pylibjpeg-libjpeg (the error names them); video transfer syntaxes
      (MPEG-2, H.264, HEVC) are refused.

Images
    Returned as float32 grey. Colour (RGB) is converted with the ITU-R BT.601
    luma rule ``0.299 R + 0.587 G + 0.114 B``; an alpha channel is ignored;
    palette images are expanded to their colours first.

Masks
    Returned as uint8 0/1. With ``label=None`` every non-zero pixel is the ROI
    (so 0/1, 0/255 and label maps all work); with ``label=k`` exactly the pixels
    equal to ``k``. Palette PNGs are read by index (label maps saved by
    annotation tools). Colour masks: a pixel is ROI when any channel is
    non-zero (colour masks whose channels are all equal are treated as grey,
    so ``label`` still works). JPEG is lossy, so a JPEG mask with
    ``label=None`` is thresholded at half its maximum instead of at non-zero
    (compression noise around a 0/255 outline would otherwise grow the ROI).

Geometry
    :func:`read_image_and_mask` returns a pair in the same physical space: a
    mask from a format without geometry (PNG...) takes the image's spacing,
    origin and orientation; two files that both carry geometry must agree
    (spacing within 1e-4 relative), otherwise a :class:`ImageReadError`
    explains the mismatch. Exception: ITK's DICOM reader, so ITK-SNAP, ignores
    the ultrasound region calibration and saves 1 mm pixels, so a 1 mm mask of
    a region-calibrated ultrasound image takes the image's spacing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from dlrn.data_files import DataFileError, check_data_files
from dlrn.errors import DlrnError

RASTER_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
VOLUME_SUFFIXES = (".nii", ".nii.gz", ".nrrd", ".nhdr", ".mha", ".mhd")
DICOM_SUFFIXES = (".dcm", ".dicom")
LOSSY_SUFFIXES = (".jpg", ".jpeg")
SUPPORTED_SUFFIXES = RASTER_SUFFIXES + VOLUME_SUFFIXES + DICOM_SUFFIXES

BT601_LUMA = np.array([0.299, 0.587, 0.114])
SPACING_SOURCE_KEY = "dlrn_spacing_source"
SPACING_UNKNOWN = "unknown"
US_REGION_SOURCE = "DICOM ultrasound region"
_SPACING_RTOL = 1e-4
_CM_UNITS = 3  # DICOM PhysicalUnitsXDirection code for centimetres
_PIP_NAMES = {"gdcm": "python-gdcm"}  # pydicom's plugin requirement -> PyPI name


class ImageReadError(DlrnError):
    """An image or mask file is missing, unreadable or not a usable 2D image."""


@dataclass(frozen=True)
class _Pixels:
    """Decoded pixels of one frame plus what the file says about physical space."""

    array: np.ndarray  # (rows, cols) or (rows, cols, channels)
    spacing: tuple[float, float] | None = None  # (x, y) in mm; None = unknown
    origin: tuple[float, float] = (0.0, 0.0)
    direction: tuple[float, float, float, float] = (1.0, 0.0, 0.0, 1.0)
    spacing_source: str = SPACING_UNKNOWN


def read_image(path: str | Path, *, frame: int = 0,
               data_root: Path | None = None) -> sitk.Image:
    """Read an image as a 2D float32 grey SimpleITK image (conversion rules: module doc).

    ``data_root``: the folder tree a detached header's data file must lie in (default:
    the header's own folder; :mod:`dlrn.data_files`).
    """
    path = Path(path)
    pixels = _read_pixels(path, frame, mask=False, data_root=data_root)
    grey = _to_grey(pixels.array, path)
    return _to_sitk(grey.astype(np.float32), pixels)


def read_mask(path: str | Path, *, label: int | None = None, frame: int = 0,
              data_root: Path | None = None) -> sitk.Image:
    """Read a mask as a 2D uint8 0/1 SimpleITK image (non-zero, or exactly ``label``, is ROI).

    ``frame`` picks the frame of a multi-frame mask; a single-frame mask is used as it is
    (one ROI drawn on frame ``frame`` of a cine loop). ``data_root``: as :func:`read_image`.
    """
    path = Path(path)
    pixels = _read_pixels(path, frame, mask=True, data_root=data_root)
    roi = _binarize(pixels.array, path, label, lossy=_suffix(path) in LOSSY_SUFFIXES)
    return _to_sitk(roi.astype(np.uint8), pixels)


def read_image_and_mask(
    image_path: str | Path,
    mask_path: str | Path,
    *,
    label: int | None = None,
    frame: int = 0,
) -> tuple[sitk.Image, sitk.Image]:
    """Read an image and its mask into the same physical space, ready for PyRadiomics."""
    image = read_image(image_path, frame=frame)
    mask = read_mask(mask_path, label=label, frame=frame)
    return image, align_mask_to_image(image, mask, image_path, mask_path)


def align_mask_to_image(
    image: sitk.Image, mask: sitk.Image, image_path: str | Path, mask_path: str | Path
) -> sitk.Image:
    """Give ``mask`` the image's geometry, refusing sizes or spacings that disagree."""
    if image.GetSize() != mask.GetSize():
        raise ImageReadError(
            f"mask {mask_path} has size {_size_text(mask)} but image {image_path} "
            f"has size {_size_text(image)}"
        )
    if not spacings_agree(image, mask):
        raise ImageReadError(
            f"mask {mask_path} has pixel spacing {_spacing_text(mask)} mm but image "
            f"{image_path} has {_spacing_text(image)} mm"
        )
    aligned = sitk.Image(mask)
    aligned.CopyInformation(image)
    aligned.SetMetaData(SPACING_SOURCE_KEY, image.GetMetaData(SPACING_SOURCE_KEY))
    return aligned


def spacings_agree(image: sitk.Image, mask: sitk.Image) -> bool:
    """False only when both files state a spacing and the two differ.

    ITK-based tools such as ITK-SNAP do not read the DICOM ultrasound region
    calibration and save masks of such images with 1 mm pixels; a 1 mm mask of a
    region-calibrated image is therefore accepted (the image's calibration is used).
    """
    if not (spacing_is_known(image) and spacing_is_known(mask)):
        return True
    if _uncalibrated_by_itk(image, mask) or _uncalibrated_by_itk(mask, image):
        return True
    return bool(np.allclose(image.GetSpacing(), mask.GetSpacing(), rtol=_SPACING_RTOL))


def _uncalibrated_by_itk(calibrated: sitk.Image, other: sitk.Image) -> bool:
    return calibrated.GetMetaData(SPACING_SOURCE_KEY) == US_REGION_SOURCE and bool(
        np.allclose(other.GetSpacing(), 1.0)
    )


def spacing_is_known(image: sitk.Image) -> bool:
    """True when the pixel spacing came from the file (DICOM, NIfTI...), not a 1-pixel default."""
    return (
        image.HasMetaDataKey(SPACING_SOURCE_KEY)
        and image.GetMetaData(SPACING_SOURCE_KEY) != SPACING_UNKNOWN
    )


def image_size(path: str | Path, *, frame: int = 0) -> tuple[int, int]:
    """(width, height) of a 2D image without decoding its pixels where the format allows."""
    path = Path(path)
    _check_exists(path)
    if _suffix(path) in RASTER_SUFFIXES:
        from PIL import Image

        try:
            with Image.open(path) as handle:
                return handle.size
        except Exception as error:  # Pillow raises many types for bad files
            raise _unreadable(path, error) from error
    return read_image(path, frame=frame).GetSize()


def _read_pixels(path: Path, frame: int, *, mask: bool, data_root: Path | None) -> _Pixels:
    """Decode one frame; palette PNGs give indices (masks) or colours (images)."""
    _check_exists(path)
    if frame < 0:
        raise ImageReadError(f"frame must be >= 0, got {frame} for {path}")
    suffix = _suffix(path)
    if suffix in VOLUME_SUFFIXES:  # ITK follows a header to the file it names: not anywhere
        try:
            check_data_files(path, data_root or path.parent, "the table's folder"
                             if data_root is not None else "the header's folder")
        except DataFileError as error:
            raise ImageReadError(str(error)) from None
    try:
        if suffix in RASTER_SUFFIXES:
            return _read_raster(path, frame, mask)
        if suffix in VOLUME_SUFFIXES:
            return _read_volume(path)
        if suffix in DICOM_SUFFIXES or _has_dicom_preamble(path):
            return _read_dicom(path, frame, mask)
    except ImageReadError:
        raise
    except Exception as error:  # decoders raise many types for corrupt files
        raise _unreadable(path, error) from error
    raise ImageReadError(
        f"{path}: unsupported image format {suffix or '(no suffix)'}; supported: "
        f"{', '.join(SUPPORTED_SUFFIXES)} and DICOM files"
    )


def _unreadable(path: Path, error: Exception) -> ImageReadError:
    """The decoder's complaint, naming the file once (decoders often quote it again)."""
    detail = str(error).replace(f" '{path}'", "").replace(f' "{path}"', "")
    return ImageReadError(f"cannot read image file {path}: {detail}")


def _check_exists(path: Path) -> None:
    if not path.is_file():
        raise ImageReadError(f"file not found: {path}")


def _suffix(path: Path) -> str:
    name = path.name.lower()
    return ".nii.gz" if name.endswith(".nii.gz") else path.suffix.lower()


def _has_dicom_preamble(path: Path) -> bool:
    with open(path, "rb") as handle:
        handle.seek(128)
        return handle.read(4) == b"DICM"


def _read_raster(path: Path, frame: int, mask: bool) -> _Pixels:
    from PIL import Image

    with Image.open(path) as handle:
        handle.seek(_frame_index(path, frame, getattr(handle, "n_frames", 1), mask))
        if handle.mode == "P" and mask:
            return _Pixels(np.asarray(handle))
        if handle.mode not in ("1", "L", "LA", "I", "I;16", "I;16B", "F", "RGB", "RGBA"):
            handle = handle.convert("RGB")  # CMYK, YCbCr...: to RGB first
        return _Pixels(np.asarray(handle))


def _read_volume(path: Path) -> _Pixels:
    image = sitk.ReadImage(str(path))
    size = image.GetSize()
    in_plane = [axis for axis, length in enumerate(size) if length > 1]
    if len(in_plane) > 2:
        raise ImageReadError(
            f"{path} is a {image.GetDimension()}D volume of size {'x'.join(map(str, size))}; "
            "dlrn needs 2D images (one slice). Export the slice with the largest lesion "
            "diameter as a 2D image."
        )
    kept = _kept_axes(size, in_plane)
    array = sitk.GetArrayFromImage(image)  # axes reversed: (..., y, x[, channels])
    components = image.GetNumberOfComponentsPerPixel()
    plane_shape = tuple(size[axis] for axis in reversed(kept))
    array = array.reshape(plane_shape + ((components,) if components > 1 else ()))
    spacing = tuple(image.GetSpacing()[axis] for axis in kept)
    origin = tuple(image.GetOrigin()[axis] for axis in kept)
    return _Pixels(
        array,
        spacing=(spacing[0], spacing[1]),
        origin=(origin[0], origin[1]),
        direction=_in_plane_direction(image, kept),
        spacing_source=_suffix(path).lstrip(".") + " header",
    )


def _kept_axes(size: tuple[int, ...], in_plane: list[int]) -> list[int]:
    """The two axes that span the plane (a 1x1 extent keeps the first axes)."""
    kept = list(in_plane)
    for axis in range(len(size)):
        if len(kept) == 2:
            break
        if axis not in kept:
            kept.append(axis)
    return sorted(kept)


def _in_plane_direction(image: sitk.Image, kept: list[int]) -> tuple[float, float, float, float]:
    """Direction cosines of the two kept axes; identity if they do not form a rotation."""
    dimension = image.GetDimension()
    matrix = np.asarray(image.GetDirection()).reshape(dimension, dimension)
    sub = matrix[np.ix_(kept, kept)]
    if np.allclose(sub @ sub.T, np.eye(2), atol=1e-6):
        return tuple(float(value) for value in sub.ravel())  # type: ignore[return-value]
    return (1.0, 0.0, 0.0, 1.0)


def _frame_index(path: Path, frame: int, n_frames: int, mask: bool) -> int:
    """``frame``, or 0 for a single-frame mask (it serves every frame of its image)."""
    if mask and n_frames == 1:
        return 0
    if frame >= n_frames:
        raise ImageReadError(f"{path} has {n_frames} frame(s); frame {frame} requested")
    return frame


def _read_dicom(path: Path, frame: int, mask: bool) -> _Pixels:
    from pydicom import dcmread
    from pydicom.pixels import apply_rescale, pixel_array

    header = dcmread(path, stop_before_pixels=True)
    _check_dicom_decoder(path, header)
    n_frames = int(header.get("NumberOfFrames", 1) or 1)
    index = _frame_index(path, frame, n_frames, mask)
    array = pixel_array(str(path), index=index if n_frames > 1 else None)
    photometric = str(header.get("PhotometricInterpretation", "MONOCHROME2"))
    if photometric.startswith("MONOCHROME"):
        if "RescaleSlope" in header or "RescaleIntercept" in header:
            array = apply_rescale(array, header)
        if photometric == "MONOCHROME1":
            array = array.max() - array
    spacing, source = _dicom_spacing(header)
    return _Pixels(array, spacing=spacing, spacing_source=source)


def _check_dicom_decoder(path: Path, header) -> None:
    """Refuse compressed pixel data that no installed package decodes, naming what to install."""
    from pydicom.pixels import get_decoder

    file_meta = getattr(header, "file_meta", None)
    syntax = file_meta.get("TransferSyntaxUID") if file_meta is not None else None
    if syntax is None or not syntax.is_transfer_syntax or not syntax.is_compressed:
        return
    try:
        decoder = get_decoder(syntax)
    except NotImplementedError:
        raise ImageReadError(
            f"DICOM file {path} is compressed as {syntax.name!r}, a video format that cannot be "
            "decoded; export the frame as an uncompressed DICOM or a PNG"
        ) from None
    if not decoder.is_available:
        raise ImageReadError(
            f"DICOM file {path} is compressed as {syntax.name!r} and no installed package "
            f"decodes it; install one of: {_install_hints(decoder.missing_dependencies)}"
        )


def _install_hints(missing_dependencies: list[str]) -> str:
    """pydicom's 'plugin - requires a>=1 and b>=2' lines as 'pip install a b' commands."""
    commands = []
    for line in missing_dependencies:
        requirements = line.partition("requires")[2].split(" and ")
        names = [re.split(r"[<>=\s]", requirement.strip())[0] for requirement in requirements]
        packages = [_PIP_NAMES.get(name, name) for name in names if name and name != "numpy"]
        if packages:
            commands.append("pip install " + " ".join(packages))
    return " or ".join(f"'{command}'" for command in commands) or "a pydicom pixel data plugin"


def _dicom_spacing(header) -> tuple[tuple[float, float] | None, str]:
    """(x, y) spacing in mm and where it came from (PixelSpacing is row, column)."""
    for keyword in ("PixelSpacing", "ImagerPixelSpacing"):
        value = header.get(keyword)
        if value is not None and len(value) == 2:
            row_spacing, column_spacing = (float(v) for v in value)
            return (column_spacing, row_spacing), f"DICOM {keyword}"
    for region in header.get("SequenceOfUltrasoundRegions", []):
        units = (region.get("PhysicalUnitsXDirection"), region.get("PhysicalUnitsYDirection"))
        if units == (_CM_UNITS, _CM_UNITS):
            delta_x, delta_y = float(region.PhysicalDeltaX), float(region.PhysicalDeltaY)
            return (abs(delta_x) * 10.0, abs(delta_y) * 10.0), US_REGION_SOURCE
    return None, SPACING_UNKNOWN


def _to_grey(array: np.ndarray, path: Path) -> np.ndarray:
    if array.ndim == 2:
        return array.astype(np.float64) if array.dtype == bool else array
    if array.ndim != 3:
        raise ImageReadError(f"{path}: cannot interpret pixel array of shape {array.shape}")
    channels = array.shape[2]
    if channels in (1, 2):  # grey, grey + alpha
        return array[..., 0]
    if channels in (3, 4):  # RGB, RGB + alpha
        return array[..., :3].astype(np.float64) @ BT601_LUMA
    raise ImageReadError(f"{path}: {channels} colour channels; expected grey, RGB or RGBA")


def _binarize(array: np.ndarray, path: Path, label: int | None, *, lossy: bool) -> np.ndarray:
    if array.ndim == 3:
        array = _mask_channels(array, path, label)
    if label is not None:
        return array == label
    if lossy and array.max() > 1:
        return array >= array.max() / 2
    return array != 0


def _mask_channels(array: np.ndarray, path: Path, label: int | None) -> np.ndarray:
    colour = array[..., : min(array.shape[2], 3)]
    if np.all(colour == colour[..., :1]):
        return colour[..., 0]
    if label is not None:
        raise ImageReadError(
            f"mask {path} is a colour image; a label value ({label}) can only be chosen "
            "in grey or label-map masks"
        )
    return np.any(colour != 0, axis=2)


def _to_sitk(array: np.ndarray, pixels: _Pixels) -> sitk.Image:
    image = sitk.GetImageFromArray(np.ascontiguousarray(array), isVector=False)
    if pixels.spacing is not None:
        image.SetSpacing(pixels.spacing)
    image.SetOrigin(pixels.origin)
    image.SetDirection(pixels.direction)
    image.SetMetaData(SPACING_SOURCE_KEY, pixels.spacing_source)
    return image


def _size_text(image: sitk.Image) -> str:
    return "x".join(str(length) for length in image.GetSize())


def _spacing_text(image: sitk.Image) -> str:
    return " x ".join(f"{value:g}" for value in image.GetSpacing())
