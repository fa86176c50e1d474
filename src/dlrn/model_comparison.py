"""Table 7: the best model of each kind side by side, each with the cut-off its own stage chose.

A model with out-of-fold training predictions (the clinical, HCR and DLR models, the
DLRN) keeps the Youden cut-off chosen on them, as :mod:`dlrn.modeling` does, so its
row equals its own table's; a model without them (the CNN) keeps the cut-off chosen
on its training-set predictions, as :mod:`dlrn.deep` does. ``threshold_set`` says which.
"""

from __future__ import annotations

import pandas as pd

from dlrn.modeling import CV_SET, TRAIN


def comparison_metrics(predictions: pd.DataFrame, out_of_fold: pd.DataFrame,
                       scores: list[str]) -> pd.DataFrame:
    """Metrics of every score per set, in the order of ``scores``, training set first."""
    from dlrn.evaluation.summary import metrics_table

    training_first = predictions.sort_values("set", key=lambda sets: sets != TRAIN,
                                             kind="stable")
    with_oof = [score for score in scores if score in out_of_fold.columns]
    in_sample = [score for score in scores if score not in with_oof]
    tables = []
    if with_oof:
        tables.append(_metrics_with_oof_cutoffs(training_first, out_of_fold, with_oof))
    if in_sample:
        tables.append(metrics_table(training_first, in_sample, train_set=TRAIN))
    return pd.concat(tables, ignore_index=True).sort_values(
        "model", key=lambda models: models.map(scores.index), kind="stable", ignore_index=True)


def _metrics_with_oof_cutoffs(predictions: pd.DataFrame, out_of_fold: pd.DataFrame,
                              scores: list[str]) -> pd.DataFrame:
    """Cut-offs chosen on the out-of-fold rows, passed in as an extra set named CV_SET."""
    # TODO(metrics_table cutoffs=): pass the out-of-fold cut-offs instead of this fake set
    from dlrn.evaluation.summary import metrics_table

    combined = pd.concat([out_of_fold.assign(set=CV_SET), predictions], ignore_index=True)
    table = metrics_table(combined, scores, train_set=CV_SET)
    return table[table["set"] != CV_SET]
