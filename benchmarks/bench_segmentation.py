"""Lesion segmentation on BUS-BRA: the U-Net trained with the defaults, scored on the test set.

All 1875 BUS-BRA images (1064 patients) split 70/30 by patient, stratified by label, as
dlrn splits a cohort (:func:`dlrn.splitting.split_cohort`, seed 0); the U-Net trains on
the training split's masks (its own fit/validation split by patient) and segments the
test images. Prints the epochs, training time, seconds per epoch, and the test set's
Dice, IoU and HD95 (pixels: PNGs carry no spacing) with 95% CIs by bootstrapping
patients, overall and per scanner; writes the model, the predicted masks, per-case
metrics, the summary and overlays of the best and worst test cases into ``--out``.

    nice -n 10 .venv/bin/python benchmarks/bench_segmentation.py --out /work/busbra-seg
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

import pandas as pd
import SimpleITK as sitk
from real_cohort import busbra_cases

from dlrn.imaging import read_image, read_mask
from dlrn.segmentation import (
    SegmentationModel,
    SegmentationResult,
    SegmentationSettings,
    mask_metrics,
    metric_summary,
    overlay_figure,
    segment_cases,
    train_segmentation,
)
from dlrn.segmentation.data import fit_validation_split
from dlrn.splitting import split_cohort


def overlays(cases: pd.DataFrame, predicted: pd.DataFrame, per_case: pd.DataFrame,
             folder: Path, n: int = 2) -> list[Path]:
    """The ``n`` best and ``n`` worst test cases by Dice, both contours on the image."""
    ranked = per_case.sort_values(["dice", "hd95"], ascending=[False, True])
    paths = []
    for kind, ids in (("best", ranked.index[:n]), ("worst", ranked.index[::-1][:n])):
        for rank, case_id in enumerate(ids, start=1):
            image = read_image(cases.at[case_id, "image"])
            expert = sitk.GetArrayFromImage(read_mask(cases.at[case_id, "mask"])) != 0
            path = predicted.at[case_id, "mask"]
            found = None if pd.isna(path) else sitk.GetArrayFromImage(read_mask(path)) != 0
            row = per_case.loc[case_id]
            title = (f"{kind} {rank}: {case_id}, Dice {row['dice']:.3f}, "
                     f"HD95 {row['hd95']:.1f} {row['hd95_unit']}")
            paths.append(overlay_figure(image, expert, found,
                                        folder / f"{kind}-{rank}-{case_id}.png", title))
    return paths


def from_resume_state(folder: Path, settings: SegmentationSettings) -> SegmentationResult:
    """The best epoch so far of the training whose resume state is in ``folder``."""
    import torch

    from dlrn.segmentation.model import build_network

    state = torch.load(folder / "resume.pt", map_location="cpu", weights_only=True)
    network = build_network(settings)
    network.load_state_dict(state["best_state"])
    history = pd.DataFrame(state["history"])
    model = SegmentationModel(network.eval(), settings, epochs_trained=int(state["epoch"]),
                              best_epoch=int(state["best_epoch"]))
    print(f"from the resume state of {folder}: {state['epoch']} epochs trained so far",
          flush=True)
    return SegmentationResult(model, history, [], [], int(state["best_epoch"]),
                              float(history["seconds"].sum()))


def summary_lines(summary: pd.DataFrame) -> list[str]:
    return [f"  {name:5s} mean {row['mean']:.3f}  median {row['median']:.3f}  95% CI "
            f"[{row['ci_low']:.3f}, {row['ci_high']:.3f}]  ({int(row['n_cases'])} cases, "
            f"{int(row['n_patients'])} patients)" for name, row in summary.iterrows()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("/work/busbra-seg"))
    parser.add_argument("--epochs", type=int, default=None, help="default: the settings'")
    parser.add_argument("--image-size", type=int, default=None, help="default: the settings'")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--limit", type=int, default=None,
                        help="first N patients only (a quick trial)")
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--from-resume", action="store_true",
                        help="no training: score the best epoch so far of the resume state "
                             "in --out/model (a run still training, or stopped)")
    args = parser.parse_args()

    cases = busbra_cases()
    if args.limit:
        keep = cases["patient_id"].drop_duplicates().iloc[:args.limit]
        cases = cases[cases["patient_id"].isin(keep)]
    split = split_cohort(cases, test_size=0.3, seed=0)
    train_ids = list(split.index[split == "train"])
    test_ids = list(split.index[split == "test"])
    settings = SegmentationSettings()
    changes = {"epochs": args.epochs, "image_size": args.image_size, "threads": args.threads}
    settings = replace(settings, **{k: v for k, v in changes.items() if v is not None})
    print(f"BUS-BRA: {len(cases)} images, {cases['patient_id'].nunique()} patients; "
          f"train {len(train_ids)}, test {len(test_ids)}; settings {settings}", flush=True)

    if args.from_resume:
        result = from_resume_state(args.out / "model", settings)
        result.fit_ids, result.val_ids = fit_validation_split(cases, train_ids,
                                                              settings.val_fraction, settings.seed)
    else:
        result = train_segmentation(cases, train_ids, settings, out_dir=args.out / "model",
                                    resume=args.resume)
    history = result.history
    epoch_seconds = history["seconds"] if "seconds" in history else pd.Series(dtype=float)
    print(f"fit {len(result.fit_ids)} / validation {len(result.val_ids)} images; "
          f"{len(history)} epochs, best epoch {result.best_epoch} (validation Dice "
          f"{result.best_val_dice:.3f}); reading images {result.read_time_s:.0f} s, training "
          f"{result.train_time_s:.0f} s, {epoch_seconds.median():.1f} s per epoch (median)",
          flush=True)

    started = time.perf_counter()
    predicted = segment_cases(result.model, cases, test_ids, args.out / "masks")
    segment_time = time.perf_counter() - started
    per_case = mask_metrics(cases, predicted)
    per_case = per_case.join(predicted["note"]).join(cases[["patient_id", "device"]])
    per_case.to_csv(args.out / "test_metrics.csv")
    summary = metric_summary(per_case, cases["patient_id"], seed=0)
    summary.to_csv(args.out / "test_summary.csv")
    no_lesion = int((~per_case["lesion_found"]).sum())
    print(f"test set: {len(test_ids)} images segmented in {segment_time:.0f} s; no lesion found "
          f"in {no_lesion}; HD95 in {per_case['hd95_unit'].iloc[0]}", flush=True)
    print("\n".join(summary_lines(summary)))
    by_device = {}
    for device, rows in per_case.groupby("device"):
        by_device[device] = metric_summary(rows, cases["patient_id"], seed=0)
        print(f"scanner {device}:")
        print("\n".join(summary_lines(by_device[device])))
    figures = overlays(cases, predicted, per_case, args.out / "figures")
    record = {"settings": settings.to_dict(), "from_resume_state": args.from_resume,
              "train": len(train_ids), "test": len(test_ids),
              "fit": len(result.fit_ids), "validation": len(result.val_ids),
              "epochs_run": len(history), "best_epoch": result.best_epoch,
              "read_time_s": result.read_time_s, "train_time_s": result.train_time_s,
              "median_epoch_s": float(epoch_seconds.median()), "segment_time_s": segment_time,
              "no_lesion": no_lesion, "summary": summary.to_dict(orient="index"),
              "by_device": {str(k): v.to_dict(orient="index") for k, v in by_device.items()},
              "figures": [str(path) for path in figures]}
    (args.out / "benchmark.json").write_text(json.dumps(record, indent=2, default=str) + "\n")
    print(f"written: {args.out}", flush=True)


if __name__ == "__main__":
    main()
