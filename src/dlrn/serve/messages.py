"""What the calculator says when an uploaded image or ROI cannot be used: what is wrong
with the image or the ROI, and what to do on the page.

The checks are the cohort reader's (:mod:`dlrn.case_files`, through ``read_new_cases``),
so the calculator refuses exactly what ``dlrn predict`` refuses; only the words change.
The reader's message names a table row and advises on cohort settings (``on_error``,
``dlrn validate --exclusions``), which a clinician at the form cannot use.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterable, Iterator
from pathlib import Path

from dlrn.errors import DlrnError
from dlrn.serve.uploads import UploadError

# where the ROI came from
MASK = "mask"  # a mask file, or the page's drawing (sent as a mask at the image's grid)
POLYGON = "polygon"  # the API's polygon, rasterised by the server
AUTOMATIC = "automatic"  # the bundle's segmentation model

DRAW = ("draw the lesion's outline on the image (Polygon or Brush), or upload its ROI mask "
        "file")
NO_SEGMENTATION_MODEL = ("This model cannot outline the lesion by itself (its bundle has no "
                         f"segmentation model): {DRAW}.")
DRAW_PROMPT = ("Draw the lesion's outline on the image (Polygon or Brush), or choose its ROI "
               "mask file: this model does not outline lesions by itself.")
MASK_FILE_SHOWN = ("The mask file's ROI is shown: check it, correct it with the tools if "
                   "needed, then Predict.")
PROPOSAL_SHOWN = ("The ROI proposed automatically is shown: check it, correct it with the "
                  "tools if needed, then Predict.")
NO_LESION_FOUND = f"No lesion was found automatically on this image: {DRAW}."
_EMPTY = {
    MASK: "The ROI is empty (it marks no pixel of this image): draw the lesion's outline on "
          "the image, or upload the mask file that marks the lesion.",
    POLYGON: "The polygon encloses no pixel centre (its points lie on a line or very close "
             "together): outline the lesion with 3 or more points around it.",
    AUTOMATIC: NO_LESION_FOUND,
}
_ROI = {MASK: "The ROI", POLYGON: "The polygon's ROI", AUTOMATIC: "The ROI found automatically"}
_LARGER = ("outline the whole lesion (a larger ROI), or upload a mask file that covers it")
_OTHER_MASK = ("so it was not made on this image: upload the mask saved with this image, or "
               "draw the ROI on the image instead")


def mask_size_message(mask_size: str, image_size: str) -> str:
    return (f"The ROI mask is {mask_size} pixels but the image is {image_size} pixels, "
            f"{_OTHER_MASK}.")


# the decoder's words, without the server's internals: SimpleITK's prefix, source and
# temporary file paths with their line numbers, heap addresses
_INTERNALS = (re.compile(r"Exception thrown in SimpleITK \w+:\s*"),
              re.compile(r"\(0x[0-9a-fA-F]+\)"),
              re.compile(r"(?:[A-Za-z]:)?(?:[/\\][^\s/\\:'\"]+){2,}[/\\]?(?::\d+)*:?"))
_MAX_REASON = 240


def plain_reason(reason: str) -> str:
    """A library's error text as the page may show it: no paths, addresses or build lines."""
    for internal in _INTERNALS:
        reason = internal.sub("", reason)
    reason = " ".join(reason.split()).strip(" :")
    return reason if len(reason) <= _MAX_REASON else reason[:_MAX_REASON].rstrip() + "..."


def unreadable_message(what: str, reason: str) -> str:
    reason = plain_reason(reason) or "damaged or incomplete file"
    if what == "image":
        return (f"The image file could not be read ({reason}): upload the image again, as "
                "exported by the ultrasound system (PNG, JPEG, BMP, TIFF, DICOM, NIfTI, NRRD "
                "or .mha).")
    return (f"The ROI mask file could not be read ({reason}): upload it again, or draw the "
            "ROI on the image instead.")


def empty_roi_message(source: str) -> str:
    return _EMPTY[source]


def problem_message(what: str, problem: str, source: str) -> str:
    """One problem of the reader (:mod:`dlrn.case_files` wording) about the uploaded image
    (``what`` "image") or its ROI ("mask"), in the clinician's words."""
    if match := re.fullmatch(r"unreadable: (.*)", problem, re.S):
        return unreadable_message(what, match[1])
    if match := re.fullmatch(r"mask size (\S+) differs from image size (\S+)", problem):
        return mask_size_message(*(size.replace("x", " x ") for size in match.groups()))
    if match := re.fullmatch(r"mask spacing (.+) mm differs from image spacing (.+) mm",
                             problem):
        return (f"The ROI mask's pixel spacing ({match[1]} mm) differs from the image's "
                f"({match[2]} mm), {_OTHER_MASK}.")
    if problem == "empty mask (no ROI pixels)":
        return empty_roi_message(source)
    if match := re.fullmatch(r"ROI has (\d+) pixels, fewer than min_roi_pixels=(\d+)",
                             problem):
        pixels = f"{match[1]} pixel" + ("" if match[1] == "1" else "s")
        return (f"{_ROI[source]} covers {pixels}; this model needs at least {match[2]}: "
                f"{_LARGER}.")
    if match := re.fullmatch(r"ROI maximum diameter (\S+) mm is below min_roi_mm=(\S+)",
                             problem):
        return (f"{_ROI[source]} is {match[1]} mm across; this model needs at least "
                f"{match[2]} mm: {_LARGER}.")
    return f"The {'image' if what == 'image' else 'ROI'} cannot be used: {plain_reason(problem)}."


def problems_message(problems: Iterable[tuple[str, str]], source: str) -> str:
    """Every (what, problem) pair in the clinician's words, each said once."""
    return " ".join(dict.fromkeys(problem_message(what, problem, source)
                                  for what, problem in problems))


@contextlib.contextmanager
def clinician_messages(root: Path, image_column: str, source: str) -> Iterator[None]:
    """Errors of ``dlrn predict``'s functions said for the page: the reader's problems in
    the clinician's words; any other message naming 'the uploaded image/mask', never the
    server's temporary paths."""
    from dlrn.cohort import CohortValidationError
    from dlrn.study.bundle import BundleError

    try:
        yield
    except (UploadError, BundleError):
        raise
    except CohortValidationError as error:
        problems = [("image" if column == image_column else "mask", problem)
                    for column, problem in zip(error.problems["column"],
                                               error.problems["problem"], strict=True)]
        raise UploadError(problems_message(problems, source)) from error
    except DlrnError as error:
        raise UploadError(_without_paths(str(error), root)) from error


def _without_paths(message: str, root: Path) -> str:
    """The message with the server's files named as the clinician knows them."""
    names = {"image": "the uploaded image", "mask": "the uploaded mask", "case": "the form"}
    for path in root.iterdir():
        name = names.get(path.name.split(".")[0], "the upload")
        message = message.replace(str(path.resolve()), name).replace(str(path), name)
    return message.replace(str(root.resolve()), "the upload").replace(str(root), "the upload")
