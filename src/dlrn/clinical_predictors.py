"""Which clinical features the clinical models and the nomogram use, and how they become numbers.

The reference study uses the independent predictors of the multivariate logistic
regression (:mod:`dlrn.clinical`); these helpers turn that analysis into the list of
features the models see, and encode categorical features with the levels seen in
training (the first level is the reference, as in the logistic analysis).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from dlrn.errors import DlrnError


@dataclass
class ClinicalChoice:
    """The clinical features the models and the nomogram use, why, and their levels.

    ``levels``: the training levels of each categorical feature (the first is the
    reference); ``note`` says why a fallback was taken or no feature is used.
    """

    selected: list[str] = field(default_factory=list)
    basis: str = "none"  # multivariate, univariate or none
    note: str | None = None
    levels: dict[str, list[str]] = field(default_factory=dict)
    univariate: list[str] = field(default_factory=list)
    independent: list[str] = field(default_factory=list)

    @property
    def categorical(self) -> list[str]:
        return list(self.levels)

    def use(self) -> str:
        """The features in words, for the report."""
        if not self.selected:
            return "none (no clinical model; nomogram of the DLR score alone)"
        return f"{', '.join(self.selected)} ({self.basis}ly significant)"


def independent_predictors(multivariate: pd.DataFrame, variables: list[str],
                           p_threshold: float) -> list[str]:
    """Variables with a multivariate term (``name`` or ``name[level]``) below the threshold."""
    if multivariate.empty:
        return []
    significant = multivariate.loc[multivariate["p_value"] < p_threshold, "term"]
    return [v for v in variables
            if any(t == v or t.startswith(f"{v}[") for t in significant)]


def clinical_choice(univariate: list[str], independent: list[str], *, fallback: str,
                    p_threshold: float) -> tuple[list[str], str, str | None]:
    """The clinical features the models and the nomogram use, on what basis, and a note.

    The reference study uses the independent predictors (multivariate p below the
    threshold). Small cohorts often have none; then, with ``fallback="univariate"``,
    the univariately significant features are used and the note says so; otherwise
    (or with none of those either) no clinical model is built and the nomogram has
    the DLR score alone.
    """
    if independent:
        return independent, "multivariate", None
    if fallback == "univariate" and univariate:
        return univariate, "univariate", (
            f"No clinical feature was significant in the multivariate analysis (p < "
            f"{p_threshold}); the clinical models and the nomogram use the features "
            f"significant in the univariate analysis instead ({', '.join(univariate)}), as "
            "evaluation.clinical_fallback is univariate.")
    where = ("in the univariate analysis" if not univariate else
             "in the multivariate analysis and evaluation.clinical_fallback is none")
    return [], "none", (f"No clinical feature was significant {where} (p < {p_threshold}): "
                        "no clinical model is built and the nomogram uses the DLR score alone.")


def training_levels(training: pd.DataFrame, categorical: list[str]) -> dict[str, list[str]]:
    """Levels of each categorical column seen in training (sorted as text)."""
    return {name: sorted(map(str, pd.unique(training[name].astype(str))))
            for name in categorical}


def encode_clinical(cases: pd.DataFrame, columns: list[str],
                    levels: dict[str, list[str]]) -> pd.DataFrame:
    """Clinical features as numbers.

    A categorical column becomes one 0/1 column ``<column>_<level>`` per level after the
    first (the reference, as in the logistic analysis). Unknown levels and missing values
    are errors naming the case and column.
    """
    encoded = {}
    for column in columns:
        values = cases[column]
        missing = cases.index[values.isna()]
        if len(missing):
            raise DlrnError(f"clinical column {column!r} is missing for case(s) "
                            f"{', '.join(map(str, missing[:10]))}")
        if column not in levels:
            encoded[column] = pd.to_numeric(values, errors="raise").astype(float)
            continue
        text = values.astype(str)
        unknown = cases.index[~text.isin(levels[column])]
        if len(unknown):
            raise DlrnError(f"clinical column {column!r} has a value the study never saw for "
                            f"case(s) {', '.join(map(str, unknown[:10]))} (known: "
                            f"{', '.join(levels[column])})")
        for level in levels[column][1:]:
            encoded[f"{column}_{level}"] = (text == level).astype(float)
    return pd.DataFrame(encoded, index=cases.index)
