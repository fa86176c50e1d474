"""Image headers that name another file: NRRD's ``data file`` and MetaImage's
``ElementDataFile``, read to the header's end as ITK reads them.

A detached header (``.nhdr``, ``.mhd``, or a ``.nrrd`` / ``.mha`` with such a field)
makes ITK open the file it names, wherever it is: a header that names
``/home/user/.ssh/id_rsa`` turns an image reader into a file reader. The rule:

* the calculator (``dlrn serve``) never follows a header to another file: an upload
  whose header names one is refused (:func:`named_data_files` on its bytes);
* the cohort reader (``dlrn run``, ``dlrn validate``, ``dlrn predict``) follows one only
  to a file inside the cohort table's folder tree, symbolic links resolved
  (:func:`check_data_files`); the library's own reads, inside the header's folder tree.

The scan is deliberately wider than ITK's parser, never narrower: the whole header is
read (never a prefix of it), lines end at LF, CR LF or CR, field names are matched
without regard to case or spaces, and every occurrence counts, so a field ITK would
read cannot hide behind comments, padding, another spelling or a decoy ``LOCAL``.
"""

from __future__ import annotations

import re
from pathlib import Path

from dlrn.errors import DlrnError

_NRRD_FIELD = re.compile(rb"^\s*data\s*file\s*:=?\s*(.*?)\s*$", re.I)
_META_FIELD = re.compile(rb"^\s*element\s*data\s*file\s*[=:]\s*(.*?)\s*$", re.I)
_META_END = re.compile(rb"^\s*ElementDataFile\s*=")  # MetaIO's header ends at this field
_META_LAST_LINE = re.compile(rb"(?:^|[\r\n])[ \t]*ElementDataFile[ \t]*=[^\r\n]*[\r\n]")
_LINES = re.compile(rb"\r\n|\n|\r")
_NRRD_END = re.compile(rb"\n\r?\n")  # a blank line: the attached data starts after it
_LOCAL = (b"LOCAL", b"Local", b"local")  # MetaIO's words for "the data follow the header"
_CHUNK = 1 << 20


class DataFileError(DlrnError):
    """A header names a file that may not be read."""


def header_kind(head: bytes, suffix: str) -> str | None:
    """'nrrd', 'meta' or None: which text header ITK would parse for this file."""
    if head.startswith(b"NRRD") or suffix in (".nrrd", ".nhdr"):
        return "nrrd"
    if suffix in (".mha", ".mhd"):
        return "meta"
    return None


def named_data_files(data: bytes, kind: str) -> list[str]:
    """Every value a header of ``kind`` ('nrrd' or 'meta') gives for its data file, other
    than MetaImage's LOCAL (the data inside the file); empty for a single-file image."""
    if kind == "nrrd":
        end = _NRRD_END.search(data)
        header = data[:end.start()] if end else data
        return [found[1].decode("latin-1") for line in _LINES.split(header)
                if (found := _NRRD_FIELD.match(line))]
    named = []
    for line in _LINES.split(data):
        found = _META_FIELD.match(line)
        if found and found[1] not in _LOCAL:
            named.append(found[1].decode("latin-1"))
        if _META_END.match(line):
            break  # MetaIO reads no further: the pixels start on the next line
    return named


def check_data_files(path: Path, root: Path, where: str) -> None:
    """Refuse a header whose data file lies outside ``root`` (``where`` names that folder
    in the message), a list of data files, or a file name pattern leaving ``root``."""
    kind = header_kind(_first_bytes(path), path.suffix.lower())
    if kind is None:
        return
    root = root.resolve()
    for value in named_data_files(_whole_header(path, kind), kind):
        words = value.split()
        if not words or words[0].upper() == "LIST":
            raise DataFileError(f"{path}: its header names a list of data files "
                                f"({value or 'empty'}); dlrn reads a header with one data "
                                "file, or a single .nrrd / .mha file")
        for name in dict.fromkeys((value, words[0])):  # a name, or a pattern's format
            target = (path.parent / name).resolve()
            if not (target == root or root in target.parents):
                raise DataFileError(
                    f"{path}: its header names the data file {name}, which lies outside "
                    f"{where} ({root}); dlrn follows a header only to a file inside that "
                    "folder: move the data file there, or save the image as a single "
                    ".nrrd / .mha file")


def _first_bytes(path: Path) -> bytes:
    with open(path, "rb") as handle:
        return handle.read(8)


def _whole_header(path: Path, kind: str) -> bytes:
    """NRRD: to the first blank line; MetaImage: to MetaIO's last header field (the
    exact ``ElementDataFile`` line); the whole file when neither ends it."""
    end = _NRRD_END if kind == "nrrd" else _META_LAST_LINE
    data = b""
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            data += chunk
            if end.search(data):
                break
    return data
