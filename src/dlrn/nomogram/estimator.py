"""The nomogram as a scikit-learn classifier: a logistic model, its rms scales and points.

``Nomogram().fit(X, y)`` encodes the predictors with a
:class:`~dlrn.clinical.ClinicalEncoder` (learned on the training rows: imputation,
merged and unseen levels, ordinal scores, multilabel tokens), fits the logistic
model on its terms by the clinical analysis' rule
(:func:`dlrn.clinical.fit_logistic_model`: R's glm with aliased terms set aside,
Firth's penalised regression where separation needs it) and builds the scales of
:mod:`dlrn.nomogram.scales`;
``predict_proba(X)`` and ``points(X)`` apply it to any cases.
``from_coefficients`` builds the scales of a model fitted elsewhere, on raw
predictor values.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy.special import expit, logit
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.validation import check_is_fitted

from dlrn.errors import DlrnError
from dlrn.nomogram.scales import PredictorScale, encoded_scales, r_pretty, scale_from_data

__all__ = ["Nomogram"]

FORMAT_VERSION = 2  # 2: with the clinical encoder; 1 (raw predictor values) still reads
_RISK_GRID_POINTS = 1000
INTERCEPT = "(Intercept)"


class Nomogram(ClassifierMixin, BaseEstimator):
    """Points scales of a logistic model, a per-patient breakdown, and the drawing.

    ``columns`` declares the predictors as the clinical encoder does (type,
    ``missing``, ``order``, ``separator``); without it, non-numeric columns of X
    and those in ``categorical`` are categorical, the others continuous, with the
    first level in sorted order as reference unless ``reference`` says otherwise.
    ``missing`` and ``min_level_count`` are the encoder's rules (the defaults,
    ``stop`` and 1, keep every level and refuse a blank or unseen value; a study
    passes its ``cohort.missing`` and ``cohort.min_level_count``);
    ``regression`` is "auto" (R glm, or Firth's regression when the glm shows
    separation: every axis then has a finite coefficient), "standard" (R glm) or
    "firth" (R logistf).
    """

    def __init__(self, maxscale: float = 100, nint: int = 10, max_discrete: int = 10,
                 fun_at: Sequence[float] | None = None, categorical: Sequence[str] = (),
                 reference: Mapping[str, str] | None = None,
                 columns: Mapping[str, Any] | None = None, missing: str = "stop",
                 min_level_count: int = 1, regression: str = "auto") -> None:
        self.maxscale = maxscale
        self.nint = nint
        self.max_discrete = max_discrete
        self.fun_at = fun_at
        self.categorical = categorical
        self.reference = reference
        self.columns = columns
        self.missing = missing
        self.min_level_count = min_level_count
        self.regression = regression

    # ------------------------------------------------------------- building
    def _encoder(self, X: pd.DataFrame):
        from dlrn.clinical import ClinicalEncoder

        columns = self.columns or {
            c: "categorical" if c in self.categorical or not pd.api.types.is_numeric_dtype(X[c])
            else "continuous" for c in X.columns}
        return ClinicalEncoder(columns, missing=self.missing,
                               min_level_count=self.min_level_count, reference=self.reference)

    def fit(self, X: pd.DataFrame, y: object) -> Nomogram:
        """Encode the training cases, fit the logistic model, build the scales.

        Cases an ``exclude`` rule leaves out are not fitted (``excluded_``); an aliased
        term gets no points (``fit_notes_`` says what it equals).
        """
        from dlrn.clinical import fit_logistic_model
        from dlrn.evaluation._checks import binary_labels

        labels = pd.Series(binary_labels(y), index=X.index)
        self.encoder_ = self._encoder(X).fit(X)
        self.excluded_ = self.encoder_.exclusions(X)
        kept = X.drop(index=self.excluded_["case"].unique())
        design = self.encoder_.transform(kept)
        design.insert(0, INTERCEPT, 1.0)
        model = fit_logistic_model(labels.loc[kept.index], design, self.encoder_.terms_,
                                   self.encoder_.reference_levels_,
                                   regression=self.regression, what="nomogram model")
        self.model_, self.method_, self.fit_notes_ = model.fit, model.method, dict(model.notes)
        for term in model.fit.aliased:
            if term in self.fit_notes_:
                self.fit_notes_[term] += "; it has no axis in the nomogram"
        params = model.fit.params.fillna(0.0)
        self.scales_ = encoded_scales(self.encoder_, design, params, self.max_discrete,
                                      self.nint, model.fit.aliased)
        self.intercept_ = float(params[INTERCEPT])
        linear_predictor = design @ params
        self.lp_range_ = (float(linear_predictor.min()), float(linear_predictor.max()))
        self.classes_ = np.array([0, 1])
        self._derive_axes()
        return self

    @classmethod
    def from_coefficients(cls, intercept: float, coefficients: Mapping[str, float | Mapping],
                          data: pd.DataFrame, lp_range: tuple[float, float] | None = None,
                          **params: object) -> Nomogram:
        """Scales for given coefficients; ``data`` (training predictors) sets the axes' ranges.

        ``lp_range`` defaults to the range of the linear predictor over ``data``.
        Cases are then read as raw values (numbers, or levels of a categorical axis).
        """
        nomogram = cls(**params)
        missing = [name for name in coefficients if name not in data.columns]
        if missing:
            raise DlrnError(f"data lacks predictor column(s) {missing}")
        nomogram.intercept_ = float(intercept)
        nomogram.scales_ = [
            scale_from_data(name, data[name], coefficient, nomogram.max_discrete, nomogram.nint)
            for name, coefficient in coefficients.items()]
        if lp_range is None:
            lp = intercept + sum(scale.xbeta(data[scale.name]) for scale in nomogram.scales_)
            lp_range = (float(np.min(lp)), float(np.max(lp)))
        nomogram.lp_range_ = lp_range
        nomogram.classes_ = np.array([0, 1])
        nomogram._derive_axes()
        return nomogram

    def _derive_axes(self) -> None:
        ranges = [np.ptp(scale.axis_xbeta) for scale in self.scales_]
        if max(ranges) == 0:
            raise DlrnError("all coefficients are zero: a nomogram has no scale")
        self.points_per_unit_ = self.maxscale / max(ranges)
        self.lp_at_zero_points_ = self.intercept_ + sum(s.axis_xbeta.min() for s in self.scales_)
        max_total = sum(np.ptp(s.axis_xbeta) for s in self.scales_) * self.points_per_unit_
        self.total_points_axis_ = r_pretty(0.0, max_total, self.nint)
        lp_at = r_pretty(*self.lp_range_, self.nint)
        self.lp_axis_ = pd.DataFrame({"lp": lp_at, "total_points": self._points_of_lp(lp_at)})
        self.risk_axis_ = self._risk_axis(lp_at)

    def _points_of_lp(self, lp: np.ndarray) -> np.ndarray:
        return (np.asarray(lp) - self.lp_at_zero_points_) * self.points_per_unit_

    def _risk_axis(self, lp_at: np.ndarray) -> pd.DataFrame:
        """Risk ticks placed as rms does (approx on a 1000-point lp grid) and exactly."""
        grid = np.linspace(lp_at.min(), lp_at.max(), _RISK_GRID_POINTS)
        risk = expit(grid)
        fun_at = np.asarray(
            self.fun_at if self.fun_at is not None
            else r_pretty(float(risk.min()), float(risk.max()), self.nint), dtype=float,
        )
        inside = (fun_at >= risk.min()) & (fun_at <= risk.max())
        probability = fun_at[inside]
        return pd.DataFrame({
            "probability": probability,
            "total_points": self._points_of_lp(np.interp(probability, risk, grid)),
            "total_points_exact": self._points_of_lp(logit(probability)),
        })

    # ------------------------------------------------------------- use
    def _xbeta(self, X: pd.DataFrame) -> dict[str, np.ndarray]:
        """β·x of each axis for the cases of X (through the encoder where there is one)."""
        encoder = getattr(self, "encoder_", None)
        if encoder is not None:
            design = encoder.transform(X)
            return {scale.name: scale.design_xbeta(design) for scale in self.scales_}
        missing = [s.name for s in self.scales_ if s.name not in X.columns]
        if missing:
            raise DlrnError(f"cases lack predictor column(s) {missing}")
        for scale in self.scales_:
            if X[scale.name].isna().any():
                bad = X.index[X[scale.name].isna()][:5].tolist()
                raise DlrnError(f"predictor {scale.name!r} is missing for case(s) {bad}")
        return {scale.name: scale.xbeta(X[scale.name]) for scale in self.scales_}

    def points(self, X: pd.DataFrame) -> pd.DataFrame:
        """Per-patient breakdown: points of each axis, total points, linear predictor, risk."""
        check_is_fitted(self, "scales_")
        xbeta = self._xbeta(X)
        table = pd.DataFrame(index=X.index)
        for scale in self.scales_:
            table[f"points_{scale.name}"] = ((xbeta[scale.name] - scale.axis_xbeta.min())
                                             * self.points_per_unit_)
        table["total_points"] = table.sum(axis=1)
        table["linear_predictor"] = (
            self.lp_at_zero_points_ + table["total_points"] / self.points_per_unit_
        )
        table["probability"] = expit(table["linear_predictor"])
        return table

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        """[P(0), P(1)] per case, as the nomogram reads it."""
        probability = self.points(X)["probability"].to_numpy()
        return np.column_stack([1 - probability, probability])

    def decision_function(self, X: pd.DataFrame) -> np.ndarray:
        return self.points(X)["linear_predictor"].to_numpy()

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return (self.predict_proba(X)[:, 1] >= 0.5).astype(int)

    def notes(self, X: pd.DataFrame, *, where: str = "") -> list[str]:
        """What the encoder's training rules did to these cases (imputations, unseen levels)."""
        encoder = getattr(self, "encoder_", None)
        return [] if encoder is None else encoder.transform_notes(X, where=where)

    def scale_table(self) -> pd.DataFrame:
        """Points of every tick of every predictor (the numbers behind the drawing)."""
        rows = []
        for scale in self.scales_:
            points = (scale.axis_xbeta - scale.axis_xbeta.min()) * self.points_per_unit_
            rows += [{"predictor": scale.name, "value": v, "xbeta": xb, "points": p}
                     for v, xb, p in zip(scale.values, scale.axis_xbeta, points, strict=True)]
        return pd.DataFrame(rows)

    def point_shares(self) -> pd.DataFrame:
        """Each axis' points range, its share of all axes' ranges, and the fewest training
        cases at either end of a categorical axis (what its range rests on)."""
        check_is_fitted(self, "scales_")
        rows = []
        for scale in self.scales_:
            xbeta = scale.axis_xbeta
            ends = (None if not scale.counts else
                    min(scale.counts.get(str(scale.values[int(np.argmin(xbeta))]), 0),
                        scale.counts.get(str(scale.values[int(np.argmax(xbeta))]), 0)))
            rows.append({"predictor": scale.name, "points": np.ptp(xbeta) * self.points_per_unit_,
                         "fewest_cases_at_an_end": ends})
        table = pd.DataFrame(rows)
        table["share"] = table["points"] / table["points"].sum()
        return table

    def readability_notes(self, n_training: int, *, dominant_share: float = 0.5,
                          few_cases: int = 20) -> list[str]:
        """Warnings for an axis that takes most of the points range on a handful of cases.

        An axis whose range is at least ``dominant_share`` of all axes' ranges together,
        one end of which is held by at most ``few_cases`` training cases, leaves the
        other predictors (the image score among them) a sliver of the scale: the reader
        should know that a few cases decide it.
        """
        notes = []
        for row in self.point_shares().itertuples():
            ends = row.fewest_cases_at_an_end
            if row.share >= dominant_share and pd.notna(ends) and ends <= few_cases:
                notes.append(
                    f"warning: {row.predictor} takes {row.share:.0%} of the nomogram's points "
                    f"range, and one end of its axis rests on {int(ends)} of {n_training} "
                    f"training cases: the other predictors share {1 - row.share:.0%} of the "
                    "scale; merge the sparse level (cohort.min_level_count) or check it "
                    "before reading the nomogram")
        return notes

    # ------------------------------------------------------------- persistence
    def to_dict(self) -> dict:
        """JSON-safe description (no pickle) from which :meth:`from_dict` rebuilds the nomogram."""
        encoder = getattr(self, "encoder_", None)
        return {
            "format": "dlrn-nomogram", "version": FORMAT_VERSION,
            "params": {"maxscale": self.maxscale, "nint": self.nint,
                       "max_discrete": self.max_discrete,
                       "fun_at": None if self.fun_at is None else [float(v) for v in self.fun_at]},
            "intercept": self.intercept_, "lp_range": list(self.lp_range_),
            "scales": [asdict(scale) for scale in self.scales_],
            "encoder": None if encoder is None else encoder.to_dict(),
        }

    @classmethod
    def from_dict(cls, state: Mapping) -> Nomogram:
        from dlrn.clinical import ClinicalEncoder

        if state.get("format") != "dlrn-nomogram" or state.get("version") not in (1, 2):
            raise DlrnError("not a dlrn nomogram description (format/version mismatch)")
        nomogram = cls(**state["params"])
        nomogram.intercept_ = float(state["intercept"])
        nomogram.lp_range_ = tuple(state["lp_range"])
        nomogram.scales_ = [PredictorScale(**scale) for scale in state["scales"]]
        if state.get("encoder") is not None:
            nomogram.encoder_ = ClinicalEncoder.from_dict(state["encoder"])
        nomogram.classes_ = np.array([0, 1])
        nomogram._derive_axes()
        return nomogram

    # ------------------------------------------------------------- drawing
    def plot(self, path: str | Path | None = None, *, labels: Mapping[str, str] | None = None,
             levels: Mapping[str, Mapping[str, str]] | None = None,
             formats: tuple[str, ...] = ("png", "svg")):
        """Classic nomogram (Points, predictors, Total Points, Linear Predictor, Risk).

        ``labels`` renames rows, ``levels`` a row's tick labels ({row: {value: wording}}).
        With ``path``, writes PNG (300 dpi) and SVG (or ``formats``) and returns the
        paths; otherwise returns the Figure.
        """
        from dlrn.nomogram.drawing import draw

        figure = draw(self, labels or {}, levels or {})
        if path is None:
            return figure
        from dlrn.evaluation.figures import save_figure

        return save_figure(figure, Path(path).with_suffix(""), formats)
