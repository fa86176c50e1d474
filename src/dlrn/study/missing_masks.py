"""Masks for new cases that come without one: ``dlrn predict`` asks the bundle's U-Net.

A table of new cases may lack the mask column, or leave some of its cells empty. Where
the study trained a segmentation model, each such case's mask is predicted from its image,
written as a file beside the predictions, and the table is read as if the user had given
it; the case's ``note`` says so. An image where the U-Net finds no lesion keeps its row
with no probability and a note saying what to do (draw the ROI, or give a mask). Without a
segmentation model nothing changes here: the cohort reader's error names the cases.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from dlrn.applicability import APPLICABILITY_NOTE, APPLICABLE, UNLIKE
from dlrn.errors import DlrnError
from dlrn.segmentation.masks import NO_LESION_NOTE

#: the table of the new cases with the predicted masks filled in (paths made absolute)
FILLED_TABLE = "cases_with_masks.csv"


@dataclass
class FilledMasks:
    """The table to read, and what the U-Net did for each case it was asked about."""

    table: Path
    #: case id -> note ("mask predicted by ..."), for every case whose mask was predicted
    predicted: dict[str, str] = field(default_factory=dict)
    #: case id -> why it has no prediction (no lesion found)
    missing: dict[str, str] = field(default_factory=dict)


def fill_missing_masks(bundle: Any, table: str | Path, masks_dir: Path | None, *,
                       progress: bool = True) -> FilledMasks:
    """The table with every missing mask predicted by the bundle's U-Net into ``masks_dir``.

    Unchanged (``table`` itself) when no mask is missing or the bundle has no U-Net.
    """
    from dlrn.io import read_table
    from dlrn.segmentation.masks import blank_cells, segment_table

    table = Path(table)
    columns = bundle.json("settings")["columns"]
    case_id, image, mask = columns["case_id"], columns["image"], columns["mask"]
    raw = read_table(table, what="table of new cases", text_columns=(case_id, image, mask))
    model = bundle.segmentation()
    if model is None or image not in raw.columns or case_id not in raw.columns:
        return FilledMasks(table)
    lacking = blank_cells(raw[mask]) if mask in raw.columns else pd.Series(True, raw.index)
    if not lacking.any():
        return FilledMasks(table)
    if masks_dir is None:
        raise DlrnError(f"{int(lacking.sum())} case(s) of {table} have no mask: the "
                        "bundle's U-Net can predict them, given a folder for the masks")
    filled_table, segmented = segment_table(model, raw, table.parent, masks_dir,
                                            case_id=case_id, image=image, mask=mask,
                                            only_missing=True, progress=progress)
    found = segmented["mask"].notna()
    filled = FilledMasks(masks_dir / FILLED_TABLE)
    for case in segmented.index[found]:
        filled.predicted[case] = (f"no mask given: the ROI was predicted by the study's "
                                  f"U-Net ({Path(segmented.at[case, 'mask']).name})")
    for case in segmented.index[~found]:
        filled.missing[case] = (f"no prediction: {segmented.at[case, 'note']}; draw the ROI "
                                "(dlrn serve) or give a mask file")
    keep = ~filled_table[case_id].astype(str).isin(list(filled.missing))
    filled_table[keep].to_csv(filled.table, index=False)
    return filled


def with_unpredicted(predictions: pd.DataFrame, filled: FilledMasks) -> pd.DataFrame:
    """The predictions with the U-Net's notes, and a row for each case it found no lesion
    in (no probability; the note says why), in case-id order."""
    out = predictions.copy()
    for case, note in filled.predicted.items():
        if case in out.index:
            earlier = out.at[case, "note"]
            out.at[case, "note"] = note + (f"; {earlier}" if earlier else "")
    if filled.missing:
        missing = pd.DataFrame({"note": pd.Series(filled.missing)}, dtype=object)
        if APPLICABLE in out.columns:  # the U-Net's "no lesion" is the check's answer too
            missing[APPLICABLE] = pd.array([False] * len(missing), dtype="boolean")
            missing[APPLICABILITY_NOTE] = [f"{UNLIKE}: {NO_LESION_NOTE}"] * len(missing)
        out = pd.concat([out, missing])
        out.index.name = "case_id"
        out = out.loc[sorted(out.index, key=str)]
    return out
