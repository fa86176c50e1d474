"""Table 7: the best model of each kind side by side, each with the cut-off its own stage chose.

A model with out-of-fold training predictions (the clinical, HCR and DLR models, the
DLRN) has its training-set row and its Youden cut-off computed on them (set
``"train (out-of-fold)"``), as :mod:`dlrn.modeling` chooses it, so its cut-off equals
its own table's. A model whose cut-off was chosen elsewhere (the CNN's, by the deep
learning stage) gets it through ``cutoffs``; ``cutoff_source`` says where it came
from. A model without out-of-fold predictions keeps its apparent training rows, in
set ``"train (apparent)"``, noted as optimistic.
"""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd

from dlrn.modeling import TRAIN


def comparison_oof(out_of_fold: pd.DataFrame | None, scores: list[str]) -> pd.DataFrame | None:
    """The out-of-fold table restricted to compared models that have one, or None if none."""
    if out_of_fold is None:
        return None
    columns = [score for score in scores if score in out_of_fold.columns]
    return out_of_fold[columns] if columns else None


def comparison_metrics(predictions: pd.DataFrame, out_of_fold: pd.DataFrame | None,
                       scores: list[str], *, cutoffs: Mapping[str, float] | None = None,
                       cutoff_source: str | Mapping[str, str] = "given",
                       groups: object = None, **options: object) -> pd.DataFrame:
    """Table 7: metrics of every score per set, in the order of ``scores``, training set first.

    ``options``: :func:`dlrn.evaluation.metrics.metrics_table`'s AUC and CI options.
    """
    from dlrn.evaluation.metrics import metrics_table

    return metrics_table(predictions, scores, train_set=TRAIN,
                         oof=comparison_oof(out_of_fold, scores), cutoffs=cutoffs,
                         cutoff_source=cutoff_source, groups=groups, **options)
