"""The clinical encoder in words: methods text and notes naming the cases, and its statistics.

:func:`methods_text` says what was done for the methods section (imputation
values, merged levels, tokens, ordinal scores, exclusions); :func:`fit_notes`
and :func:`transform_notes` say which cases each rule touched, for the report's
notes. :func:`statistics_table` is the smallest table from which the encoder's
imputers and encoders, refitted, learn exactly the saved state (used by
``ClinicalEncoder.from_dict``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from dlrn.clinical.reading import MISSING, OTHER, Reading, term
from dlrn.clinical.spec import MISSING_SETTING, ColumnSpec
from dlrn.errors import shown_items

if TYPE_CHECKING:
    from dlrn.clinical.encoding import ClinicalEncoder
    from dlrn.clinical.regression import LogisticAnalysis

__all__ = ["aliasing_notes", "fit_notes", "methods_text", "regression_methods_text",
           "statistics_table", "transform_notes"]


def fill_text(spec: ColumnSpec, state: Mapping[str, Any]) -> str:
    """The imputation value in words: 'the training median (52)'."""
    fill = state["fill"]
    if spec.type == "continuous":
        return f"the training median ({fill:g})"
    if spec.type == "ordinal":
        return f"the most frequent training level ({spec.order[int(fill) - 1]})"
    if spec.type == "categorical":
        return f"the most frequent training level ({fill})"
    present = [column[len(spec.name) + 1:-1] for column, value in fill.items() if value == 1]
    return ("the most frequent training value of each token "
            f"({'present: ' + ', '.join(present) if present else 'no token present'})")


def _folded_to(spec: ColumnSpec, state: Mapping[str, Any]) -> str:
    if spec.type == "multilabel":
        return "are ignored"
    return f"count as the most frequent level ({state['folded_into']})"


def _counted(counts: Mapping[str, int], names: list[str]) -> str:
    return ", ".join(f"{name} ({counts[name]})" for name in names)


def fit_notes(encoder: ClinicalEncoder, missing: Mapping[str, pd.Index]) -> list[str]:
    """What fitting did, naming the training cases: exclusions, imputation, merges, tokens."""
    notes = []
    excluded = encoder.excluded_
    for spec in encoder.specs_:
        state = encoder.state_[spec.name]
        left_out = excluded.loc[excluded["column"] == spec.name, "case"]
        if len(left_out):
            notes.append(f"{spec.name}: {len(left_out)} training case(s) without a value were "
                         f"excluded ({MISSING_SETTING}: exclude): {shown_items(left_out)}")
        cases = missing[spec.name]
        if len(cases):
            indicator = (f" and marked by the term {term(spec.name, MISSING)}"
                         if state["indicator"] else "")
            notes.append(f"{spec.name}: no value for {len(cases)} of {state['n_training']} "
                         f"training cases ({shown_items(cases)}); imputed with "
                         f"{fill_text(spec, state)}{indicator}")
        what = "tokens" if spec.type == "multilabel" else "levels"
        if state.get("merged"):
            notes.append(f"{spec.name}: {what} held by fewer than {encoder.min_level_count} "
                         f"training cases merged into {OTHER!r}: "
                         f"{_counted(state['counts'], state['merged'])}")
        if state.get("folded"):
            notes.append(f"{spec.name}: {what} held by fewer than {encoder.min_level_count} "
                         f"training cases, too few even together for an {OTHER!r} term, "
                         f"{_folded_to(spec, state)}: "
                         f"{_counted(state['counts'], state['folded'])}")
    return notes


def aliasing_notes(encoder: ClinicalEncoder, encoded: pd.DataFrame) -> list[str]:
    """Terms that are a combination of other terms in every training case, said at fitting.

    Exhaustive tokens (``circumscribed`` and the ``not circumscribed - ...`` tokens of a
    margin column add up to 1 in every row), or a token equal to another column's
    level, make a regression design rank-deficient: R's glm gives such a term no
    estimate (NA). The regressions do the same; this note says so before they run.
    """
    from dlrn.clinical.glm import alias_combination, alias_equation, aliased_columns

    design = encoded.copy()
    design.insert(0, "(Intercept)", 1.0)
    aliased = [design.columns[i] for i in aliased_columns(design.to_numpy(dtype=float))]
    kept = [c for c in design.columns if c not in aliased]
    column_of = {t: name for name, terms in encoder.terms_.items() for t in terms}
    notes = []
    for name in aliased:
        equation = alias_equation(design, name, kept)
        combination = alias_combination(design, name, kept)
        involved = {column_of.get(t) for t in combination}
        column = column_of[name]
        spec = next(s for s in encoder.specs_ if s.name == column)
        if list(combination) == ["(Intercept)"]:
            why = "it is the same for every training case"
        elif involved <= {column, None} and spec.type == "multilabel":
            why = "its tokens are exhaustive (every training case holds one of them)"
        else:
            why = "it duplicates other terms"
        notes.append(f"{column}: {equation} in every training case: {why}, so {name} is "
                     "aliased and the regressions give it no estimate of its own (NA, as R's "
                     "glm does)")
    return notes


def transform_notes(encoder: ClinicalEncoder, X: pd.DataFrame, *, where: str = "") -> list[str]:
    """For cases encoded with the training rules: imputed values and unseen levels, by case."""
    prefix = f"{where}: " if where else ""
    notes = []
    for spec in encoder.specs_:
        state = encoder.state_[spec.name]
        read = encoder._read(spec, X[spec.name])
        imputed = f"imputed with {fill_text(spec, state)}"
        if len(read.missing) and spec.missing == "impute":
            notes.append(f"{prefix}{spec.name}: no value for {len(read.missing)} case(s) "
                         f"({shown_items(read.missing)}); {imputed}")
        for cases, handled in _unseen_groups(spec, read, imputed):
            shown = shown_items(f"{case} ({read.unseen[case]})" for case in cases)
            notes.append(f"{prefix}{spec.name}: a value the training set never had for "
                         f"{len(cases)} case(s): {shown}; {handled}")
    return notes


def _unseen_groups(spec: ColumnSpec, read: Reading, imputed: str) -> list[tuple[list, str]]:
    """Unseen values by what became of them: to 'other', missing (if imputed), ignored."""
    if read.unseen_to_other:
        return [(list(read.unseen.index), f"mapped to {OTHER!r}")] if len(read.unseen) else []
    groups = []
    made_missing = [case for case in read.unseen.index if case in read.unseen_missing]
    if made_missing and spec.missing == "impute":
        groups.append((made_missing, f"treated as missing ({spec.name} has no {OTHER!r}) "
                                     f"and {imputed}"))
    ignored = [case for case in read.unseen.index if case not in read.unseen_missing]
    if ignored:
        groups.append((ignored, f"those tokens are ignored ({spec.name} has no {OTHER!r}); "
                                "the case's other tokens count"))
    return groups


def methods_text(encoder: ClinicalEncoder) -> str:
    """A methods paragraph on how the clinical variables were encoded."""
    specs, state = encoder.specs_, encoder.state_
    n_training = max(s["n_training"] for s in state.values())
    sentences = [f"Clinical variables were encoded with rules learned on the training set "
                 f"only (n = {n_training}) and applied unchanged to every other set."]
    imputed = [f"{s.name} ({state[s.name]['n_missing']} of {state[s.name]['n_training']}; "
               f"{fill_text(s, state[s.name])})"
               for s in specs if s.missing == "impute" and state[s.name]["n_missing"]]
    if imputed:
        sentences.append("Missing values were imputed with the training median (continuous "
                         "variables) or most frequent level, and each variable with missing "
                         "training values gained a missing-indicator term: "
                         + "; ".join(imputed) + ".")
    excluded = encoder.excluded_["case"].nunique()
    if excluded:
        columns = sorted(encoder.excluded_["column"].unique())
        sentences.append(f"{excluded} training case(s) with a missing value in "
                         f"{', '.join(columns)} were excluded (complete-case analysis).")
    merged = [f"{s.name}: {', '.join(state[s.name]['merged'])}" for s in specs
              if state[s.name].get("merged")]
    if merged:
        sentences.append(f"Levels and tokens held by fewer than {encoder.min_level_count} "
                         f"training cases were merged into '{OTHER}' ({'; '.join(merged)}).")
    folded = [f"{s.name}: {', '.join(state[s.name]['folded'])}, "
              + ("ignored" if s.type == "multilabel"
                 else f"counted as {state[s.name]['folded_into']}")
              for s in specs if state[s.name].get("folded")]
    if folded:
        sentences.append(f"Rare levels and tokens too few even together for an '{OTHER}' term "
                         f"were not given one ({'; '.join(folded)}).")
    tokens = [f"{s.name}, split at {s.separator!r}: {', '.join(state[s.name]['tokens'])}"
              for s in specs if s.type == "multilabel"]
    if tokens:
        sentences.append("Multi-valued descriptors entered as one yes/no term per token ("
                         + "; ".join(tokens) + ").")
    ordinal = [f"{s.name}: {' < '.join(s.order)}" for s in specs if s.type == "ordinal"]
    if ordinal:
        sentences.append("Ordinal variables entered as one score term, 1 for the lowest level "
                         f"({'; '.join(ordinal)}).")
    references = [f"{name}: {level}" for name, level in encoder.reference_levels_.items()]
    if references:
        sentences.append(f"Categorical variables were dummy-coded against a reference level, "
                         f"the most frequent training level unless stated "
                         f"({'; '.join(references)}).")
    sentences.append(f"A value met only outside the training set was mapped to '{OTHER}' "
                     "where the variable has one, and otherwise handled as a missing value.")
    return " ".join(sentences)


FIRTH_TEXT = ("Firth's penalised likelihood (as R's logistf), which gives finite estimates "
              "under separation, with profile penalised-likelihood confidence intervals and "
              "penalised likelihood-ratio p-values")


def regression_methods_text(analysis: LogisticAnalysis) -> str:
    """A methods paragraph on the univariate and multivariate logistic regression."""
    variables = analysis.variables
    if analysis.regression == "firth":
        fitting = f"Logistic regression used {FIRTH_TEXT}."
    else:
        fitting = ("Logistic regression used maximum likelihood (as R's glm), with Wald "
                   "confidence intervals and p-values")
        firth = variables.loc[variables["method"] == "Firth", "variable"].tolist()
        multivariate_firth = (analysis.model is not None
                              and getattr(analysis.model, "method", "ML") == "Firth")
        if analysis.regression == "auto" and (firth or multivariate_firth):
            models = ([f"the univariate models of {', '.join(firth)}"] if firth else []) + (
                ["the multivariate model"] if multivariate_firth else [])
            fitting += (f"; where a maximum-likelihood fit showed (quasi-)complete separation "
                        f"(detected by Konis' linear program), that model ({' and '.join(models)})"
                        f" was fitted by {FIRTH_TEXT}")
        fitting += "."
    several = variables.loc[variables["terms"] > 1, "variable"].tolist()
    joint = (f" A variable with several terms ({', '.join(several)}) was tested by a "
             "likelihood-ratio test of all its terms together, in the univariate and in the "
             "multivariate model." if several else "")
    aliased = ("" if analysis.univariate.empty or analysis.univariate["beta"].notna().all() else
               " A term that was a linear combination of the others (aliased) was given no "
               "estimate, as R's glm does.")
    return f"{fitting}{joint}{aliased} {selection_methods_text(analysis)}"


def selection_methods_text(analysis: LogisticAnalysis) -> str:
    """How the multivariate step chose the predictors (evaluation.clinical_selection)."""
    threshold = analysis.p_threshold
    if analysis.procedure == "none":
        return ("Every declared variable entered one pre-specified multivariate model (no "
                "selection); its drop-one likelihood-ratio p-values are reported, not used.")
    entered = f"Variables with a univariate p < {threshold:g} entered the multivariate model"
    if analysis.procedure == "enter":
        return (f"{entered}; those with a multivariate p < {threshold:g} were taken as "
                "independent predictors.")
    return (f"{entered}, which was reduced by backward elimination: the variable whose "
            "drop-one likelihood-ratio test (all its terms together; penalised for a Firth "
            "fit) had the largest p was removed and the model refitted, until every remaining "
            f"variable had p < {threshold:g} (R's drop1(fit, test = \"LRT\") in a loop; SPSS "
            "Backward: LR); the remaining variables were taken as independent predictors.")


def statistics_table(encoder: ClinicalEncoder) -> dict[str, Reading]:
    """Prepared columns whose imputers and encoders refit to the encoder's saved state."""
    min_count = max(int(encoder.min_level_count), 1)
    columns: dict[str, dict[str, tuple[list, object]]] = {}
    for spec in encoder.specs_:
        state = encoder.state_[spec.name]
        head = [np.nan] if state["indicator"] else []
        if spec.type == "categorical":
            kept = [level for level in state["levels"] if level not in state["merged"]]
            body = [level for level in kept for _ in range(min_count)] + state["merged"]
            columns[spec.name] = {spec.name: (head + body, state["fill"])}
        elif spec.type == "multilabel":
            columns[spec.name] = {column: (list(head), fill)
                                  for column, fill in state["fill"].items()}
        else:
            columns[spec.name] = {spec.name: (list(head), state["fill"])}
    length = max(len(v) for block in columns.values() for v, _ in block.values()) + min_count + 2
    readings = {}
    for name, block in columns.items():
        frame = pd.DataFrame({column: values + [fill] * (length - len(values))
                              for column, (values, fill) in block.items()})
        if encoder.state_[name]["type"] == "categorical":
            frame = frame.astype(object)
        readings[name] = Reading(frame, pd.Index([]))
    return readings
