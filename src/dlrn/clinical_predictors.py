"""Which clinical features the clinical models and the nomogram use, and the study's encoder.

The reference study uses the independent predictors of the multivariate logistic
regression (:mod:`dlrn.clinical`: those its selection procedure kept, by likelihood-ratio
tests of each variable's terms); these helpers turn that analysis into the list of
features the models see. Every model encodes them with the one
:class:`~dlrn.clinical.ClinicalEncoder` the clinical stage fitted on the training cases
and saved as JSON
(:func:`encoder_for` restricts it to the selected columns, :func:`nomogram_columns`
gives the nomogram the same column rules).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from dlrn.clinical import ClinicalEncoder
from dlrn.errors import DlrnError


@dataclass
class ClinicalChoice:
    """The clinical features the models and the nomogram use, and why.

    ``note`` says why a fallback was taken or no feature is used.
    """

    selected: list[str] = field(default_factory=list)
    basis: str = "none"  # multivariate, backward, pre-specified, univariate or none
    note: str | None = None
    univariate: list[str] = field(default_factory=list)
    independent: list[str] = field(default_factory=list)

    def use(self) -> str:
        """The features in words, for the report."""
        if not self.selected:
            return "none (no clinical model; nomogram of the DLR score alone)"
        why = {"backward": "kept by backward elimination",
               "pre-specified": "pre-specified: every declared variable"}.get(
                   self.basis, f"{self.basis}ly significant")
        return f"{', '.join(self.selected)} ({why})"


def independent_predictors(multivariate: pd.DataFrame, variables: list[str],
                           p_threshold: float) -> list[str]:
    """Variables whose multivariate p (``p_variable``: the joint likelihood-ratio p of a
    several-term variable, else its Wald p) is below the threshold."""
    if multivariate.empty:
        return []
    significant = set(multivariate.loc[multivariate["p_variable"] < p_threshold, "variable"])
    return [v for v in variables if v in significant]


#: The basis of the independent predictors under each selection procedure.
PROCEDURE_BASIS = {"backward": "backward", "enter": "multivariate", "none": "pre-specified"}


def clinical_choice(univariate: list[str], independent: list[str], *, fallback: str,
                    p_threshold: float, procedure: str = "enter"
                    ) -> tuple[list[str], str, str | None]:
    """The clinical features the models and the nomogram use, on what basis, and a note.

    The reference study uses the independent predictors (those the selection
    ``procedure`` kept: backward elimination, multivariate p below the threshold, or
    every declared variable). Small cohorts often have none; then, with ``fallback="univariate"``,
    the univariately significant features are used and the note says so; otherwise
    (or with none of those either) no clinical model is built and the nomogram has
    the DLR score alone.
    """
    if independent:
        return independent, PROCEDURE_BASIS[procedure], None
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


def encoder_for(saved: Mapping[str, Any], columns: list[str]) -> ClinicalEncoder:
    """The study's fitted encoder (``to_dict`` form) restricted to ``columns``.

    The restricted encoder applies exactly the rules learned for those columns on
    the training cases (imputation, levels, merges, tokens), and a value missing in
    a column the models do not use cannot stop a case.
    """
    unknown = [c for c in columns if c not in saved["state"]]
    if unknown:
        raise DlrnError(f"the study's clinical encoder has no column(s) {unknown}")
    kept = {**saved, "columns": [c for c in saved["columns"] if c["name"] in columns],
            "state": {name: saved["state"][name] for name in columns},
            "notes": [n for n in saved.get("notes", []) if n.split(":")[0] in columns],
            "excluded": []}
    return ClinicalEncoder.from_dict(kept)


def clinical_features(saved: Mapping[str, Any], columns: list[str],
                      cases: pd.DataFrame) -> pd.DataFrame:
    """The terms of ``columns`` for ``cases``, encoded with the study's training rules,
    under names every classifier accepts (:func:`model_feature_names`)."""
    if not columns:
        return pd.DataFrame(index=cases.index)
    terms = encoder_for(saved, columns).transform(cases)
    return terms.set_axis(model_feature_names(list(terms.columns)), axis=1)


#: Characters XGBoost (``[``, ``]``, ``<``) and LightGBM (JSON's ``"``, ``,``, ``:``, ``{``,
#: ``}``, ``[``, ``]``) refuse in feature names; a descriptor token such as
#: "heterogeneous: predominantly fat" has one.
_REFUSED = str.maketrans({character: "_" for character in '[]<":,{}'})


def model_feature_names(terms: list[str]) -> list[str]:
    """``shape[irregular]`` -> ``shape_irregular``: the terms under names the seven
    classifiers accept, each still unique (a clash gets ``_2``, ``_3``...)."""
    names: list[str] = []
    for name in terms:
        plain = name.replace("]", "").translate(_REFUSED)
        unique, number = plain, 1
        while unique in names:
            number += 1
            unique = f"{plain}_{number}"
        names.append(unique)
    return names


def nomogram_columns(saved: Mapping[str, Any], columns: list[str],
                     score: str) -> dict[str, Any]:
    """The nomogram's column declarations: the image score, then the clinical columns as the
    study's encoder declared them (type, missing rule, order, separator, reference)."""
    declared = {c["name"]: {k: v for k, v in c.items() if k != "name" and v not in (None, [])}
                for c in saved["columns"] if c["name"] in columns}
    return {score: "continuous", **{name: declared[name] for name in columns}}
