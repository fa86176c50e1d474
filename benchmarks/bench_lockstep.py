"""What choosing the epoch on cross-fitted AUC costs (``dl.select_on: crossfit``).

For one backbone (ResNet18 from random initialisation, no augmentation) on the
fusion-optimism cohort (``bench_fusion_optimism.make_cohort``), the two ways the deep
stage cross-fits a backbone, timed one after the other in one process:

- sequential (``select_on: validation`` and the chosen backbone): the final CNN keeps
  its best epoch on a validation split; then K fold CNNs, each with its own inner
  split and best epoch (``crossfit_deep``);
- lockstep (``select_on: crossfit``, every backbone): K fold CNNs without inner split,
  trained side by side, the epoch E* with the best pooled out-of-fold AUC kept
  (``crossfit_deep(lockstep=True)``); then the final CNN on all training cases,
  stopped after E* (``train_backbone(stop_after=E*)``).

Printed: seconds of each part, E*, pooled out-of-fold AUC and the final CNN's test AUC.

    nice -n 10 .venv/bin/python benchmarks/bench_lockstep.py [--cases 160] [--size 24]
        [--epochs 8] [--folds 5] [--seed 0] [--threads 1] [--normalization zscore|imagenet]

(``imagenet``: fixed scaling, so the CNN can learn the cohort's grey-level signal; with
the default per-image z-score it can only memorise.)
"""

from __future__ import annotations

import time
import warnings

import pandas as pd
from bench_fusion_optimism import cohort_arguments, make_cohort, resnet18_settings
from sklearn.metrics import roc_auc_score

from dlrn.deep.classifier.crossfit import crossfit_deep, crossfit_folds
from dlrn.deep.classifier.scores import cnn_probabilities
from dlrn.deep.classifier.train import train_backbone


def _timed(function, *args, **kwargs):
    started = time.perf_counter()
    result = function(*args, **kwargs)
    return result, time.perf_counter() - started


def _test_auc(final, cache, cases: pd.DataFrame) -> float:
    test = list(cases.index[cases["set"] == "test"])
    scores = cnn_probabilities(final.model, "resnet18", cache, test,
                               normalization=final.normalization, device=final.device)
    return float(roc_auc_score(cases.loc[test, "label"], scores))


def main() -> None:
    args = cohort_arguments(__doc__.split("\n")[0])
    warnings.filterwarnings("ignore")

    cache, cases, _ = make_cohort(args.cases, args.size, args.seed)
    train_ids = list(cases.index[cases["set"] == "train"])
    settings = resnet18_settings(args, cache.settings)
    folds = crossfit_folds(cases, train_ids, n_splits=args.folds, seed=args.seed)
    print(f"{len(train_ids)} training cases, {args.folds} folds, {args.epochs} epochs, "
          f"{args.size} px, ResNet18 from random init, {args.normalization} normalisation, "
          f"{args.threads} thread(s)")

    final, final_s = _timed(train_backbone, "resnet18", cache, cases, train_ids,
                            weights=None, settings=settings.train)
    folds_seq, folds_seq_s = _timed(crossfit_deep, cases, folds, settings,
                                    backbone="resnet18", cache=cache)
    lock, lock_s = _timed(crossfit_deep, cases, folds, settings, backbone="resnet18",
                          cache=cache, lockstep=True)
    cut, cut_s = _timed(train_backbone, "resnet18", cache, cases, train_ids, weights=None,
                        settings=settings.train, stop_after=lock.epoch)
    rows = [
        {"mode": "sequential (validation)", "final_s": final_s, "folds_s": folds_seq_s,
         "total_s": final_s + folds_seq_s, "final_epoch": final.best_epoch,
         "fold_epochs": "/".join(map(str, folds_seq.fold_table["best_epoch"])),
         "pooled_oof_auc": folds_seq.auc, "final_test_auc": _test_auc(final, cache, cases)},
        {"mode": "lockstep (crossfit)", "final_s": cut_s, "folds_s": lock_s,
         "total_s": cut_s + lock_s, "final_epoch": cut.best_epoch,
         "fold_epochs": str(lock.epoch), "pooled_oof_auc": lock.auc,
         "final_test_auc": _test_auc(cut, cache, cases)},
    ]
    print(pd.DataFrame(rows).round(3).to_string(index=False))
    print("pooled out-of-fold AUC per lockstep epoch:",
          " ".join(f"{auc:.3f}" for auc in lock.epochs["pooled_oof_auc"]))
    print(f"lockstep / sequential time: {rows[1]['total_s'] / rows[0]['total_s']:.2f}")


if __name__ == "__main__":
    main()
