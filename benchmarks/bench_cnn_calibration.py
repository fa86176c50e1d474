"""The CNN's cut-off with and without Platt scaling, on a finished deep stage.

Reads a deep stage's ``run/`` folder (``dlrn run`` or ``dlrn train-dl`` output with
``fusion_features: crossfit`` and ``select_on: validation``): the chosen backbone's
final CNN, its fold CNNs, their validation cases (model cards) and the crop cache.
Scores each CNN's validation cases, the fold CNNs' held-out folds and the final CNN's
test cases, and compares in one process:

- raw: the sigmoid of each CNN's logit (dlrn before Platt scaling);
- Platt: each CNN's map fitted on its own validation cases (what dlrn does now).

Prints the pooled out-of-fold AUC beside the folds' own, the Youden cut-off on the
pooled training scores and the sensitivity/specificity it gives on the training
(out-of-fold) and test cases. A run made before the scaling works too: the maps are
fitted here from the model cards' validation cases, as training fits them.

    python benchmarks/bench_cnn_calibration.py /work/busbra-full/stages/deep/run
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from sklearn.metrics import roc_auc_score

from dlrn.deep.classifier.calibration import fit_platt
from dlrn.deep.classifier.train import load_trained_model
from dlrn.deep.data import CropCache, CropSettings
from dlrn.deep.inference import batched_outputs
from dlrn.evaluation.threshold import youden_threshold


def logits_of(model_dir: Path, cache: CropCache, ids: list[str]) -> pd.Series:
    """The saved CNN's logits of ``ids`` (CPU, fp32)."""
    model, card = load_trained_model(model_dir)
    values = batched_outputs(model, lambda images: model(images).squeeze(1), cache,
                             cache.positions(ids), backbone=card["backbone"],
                             normalization=card["normalization"], device=torch.device("cpu"))
    return pd.Series(values.astype(np.float64), index=ids)


def sigmoid(values: pd.Series) -> pd.Series:
    return 1 / (1 + np.exp(-values))


def at_cutoff(cutoff: float, scores: pd.Series, labels: pd.Series) -> str:
    called = scores >= cutoff
    return (f"sensitivity {called[labels == 1].mean():.3f}, "
            f"specificity {(~called[labels == 0]).mean():.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="the deep stage's run/ folder")
    args = parser.parse_args()
    torch.set_num_threads(2)
    run = args.run
    meta = json.loads((run / "cache" / "crops.json").read_text())
    cache = CropCache(np.load(run / "cache" / "crops.npy"), meta["case_ids"],
                      CropSettings(**meta["settings"]))
    chosen = json.loads((run / "chosen.json").read_text())
    predictions = pd.read_csv(run / "predictions.csv", index_col="case_id")
    labels = predictions["label"]
    folds = pd.read_csv(run / "crossfit_folds.csv", index_col="case_id")["fold"]
    test_ids = list(predictions.index[predictions["set"] == "test"])

    def scored(model_dir: Path, ids: list[str]) -> dict[str, pd.Series]:
        """Raw and Platt-scaled P(positive) of ``ids``; the map from the CNN's val cases."""
        val_ids = json.loads((model_dir / "model.json").read_text())["val_ids"]
        logits = logits_of(model_dir, cache, val_ids + ids)
        platt = fit_platt(logits.loc[val_ids].to_numpy(), labels.loc[val_ids].to_numpy())
        own = logits.loc[ids]
        calibrated = own if platt is None else platt.intercept + platt.slope * own
        return {"raw": sigmoid(own), "platt": sigmoid(calibrated)}

    held_out = {"raw": [], "platt": []}
    for number, folder in enumerate(chosen["fold_model_dirs"], start=1):
        ids = list(folds.index[folds == number])
        for kind, scores in scored(run / folder, ids).items():
            held_out[kind].append(scores)
    final = scored(Path(chosen["model_dir"]), test_ids)
    print(f"{chosen['chosen']}: {len(folds)} training cases in {folds.nunique()} folds, "
          f"{len(test_ids)} test cases")
    for kind in ("raw", "platt"):
        pooled = pd.concat(held_out[kind]).loc[folds.index]
        train_labels = labels.loc[pooled.index]
        fold_aucs = [roc_auc_score(labels.loc[s.index], s) for s in held_out[kind]]
        cutoff = youden_threshold(train_labels, pooled)
        print(f"{kind:>5}: pooled out-of-fold AUC {roc_auc_score(train_labels, pooled):.4f} "
              f"(folds {min(fold_aucs):.4f}-{max(fold_aucs):.4f}); test AUC "
              f"{roc_auc_score(labels.loc[test_ids], final[kind]):.4f}; cut-off {cutoff:.4f}")
        print(f"       training (out-of-fold) {at_cutoff(cutoff, pooled, train_labels)}; "
              f"test {at_cutoff(cutoff, final[kind], labels.loc[test_ids])}")


if __name__ == "__main__":
    main()
