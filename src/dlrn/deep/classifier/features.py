"""Deep features from a trained backbone, and their PCA fitted on training cases only."""

from __future__ import annotations

import json
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import torch
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.decomposition import PCA
from sklearn.utils.validation import check_is_fitted

from dlrn.deep.data import CropCache, Normalization
from dlrn.deep.inference import batched_outputs
from dlrn.deep.networks import feature_map
from dlrn.errors import DlrnError
from dlrn.notes import Note

FeatureMode = Literal["pooled", "map"]


def extract_deep_features(
    model: torch.nn.Module,
    backbone: str,
    cache: CropCache,
    case_ids: Sequence[str] | None = None,
    *,
    normalization: Normalization,
    mode: FeatureMode = "pooled",
    device: torch.device | str = "cpu",
    batch_size: int = 32,
    amp: bool = False,
) -> pd.DataFrame:
    """Features of the last feature map, one row per case, columns ``DL_<backbone>_<i>``.

    ``pooled``: global average pool (DenseNet121 1024, ResNet50 2048, VGG19 512 values);
    ``map``: the flattened map (DenseNet121 at 224 px: 1024 x 7 x 7 = 50,176, as in the study).
    """
    if mode not in ("pooled", "map"):
        raise DlrnError(f"deep feature mode {mode!r} is not 'pooled' or 'map'")
    device = torch.device(device)
    case_ids = list(cache.case_ids if case_ids is None else case_ids)

    def read(images: torch.Tensor) -> torch.Tensor:
        maps = feature_map(model, backbone, images)
        return maps.mean(dim=(2, 3)) if mode == "pooled" else maps.flatten(1)

    values = batched_outputs(model.to(device), read, cache, cache.positions(case_ids),
                             backbone=backbone, normalization=normalization, device=device,
                             batch_size=batch_size, amp=amp)
    columns = [f"DL_{backbone}_{i}" for i in range(values.shape[1])]
    return pd.DataFrame(values, index=pd.Index(case_ids, name="case_id"), columns=columns)


class DeepFeaturePCA(TransformerMixin, BaseEstimator):
    """PCA of deep features, fitted on training cases only.

    ``n_components`` (default 512, the study's) is capped at
    ``min(n_train - 1, n_features)`` with a warning: a PCA fitted on n cases has at
    most n - 1 informative components, so 512 components from the study's 368
    training cases could only come from fitting on more cases than the training set.
    Fitted state is numpy arrays, saved with :meth:`save` as ``.npz`` + JSON (no pickle).
    """

    def __init__(self, n_components: int = 512, prefix: str = "DL_PC",
                 random_state: int = 0) -> None:
        self.n_components = n_components
        self.prefix = prefix
        self.random_state = random_state

    def fit(self, X: pd.DataFrame | np.ndarray, y: object = None) -> DeepFeaturePCA:
        values = self._values(X, fitting=True)
        cap = min(values.shape[0] - 1, values.shape[1])
        if cap < 1:
            raise DlrnError(f"PCA needs at least 2 training cases, got {values.shape[0]}")
        n_components = self.n_components
        if n_components > cap:
            warnings.warn(Note(
                "deep-feature PCA components reduced to what the training cases allow (more "
                "would need test cases in the fit: leakage)",
                message=f"PCA n_components={n_components} reduced to {cap}: with "
                        f"{values.shape[0]} training cases and {values.shape[1]} features at "
                        f"most {cap} components exist; more would need test cases in the fit "
                        "(leakage)"), stacklevel=2)
            n_components = cap
        pca = PCA(n_components=n_components, random_state=self.random_state).fit(values)
        self.mean_ = pca.mean_
        self.components_ = pca.components_
        self.explained_variance_ratio_ = pca.explained_variance_ratio_
        self.n_components_ = n_components
        return self

    def _values(self, X: pd.DataFrame | np.ndarray, *, fitting: bool = False) -> np.ndarray:
        if isinstance(X, pd.DataFrame):
            names = np.asarray(X.columns, dtype=object)
            if fitting:
                self.feature_names_in_ = names
            elif hasattr(self, "feature_names_in_") and list(names) != list(
                    self.feature_names_in_):
                raise DlrnError("deep feature columns differ from those the PCA was fitted on")
        values = np.asarray(X, dtype=np.float64)
        if not np.isfinite(values).all():
            raise DlrnError("deep features contain NaN or infinite values")
        if fitting:
            self.n_features_in_ = values.shape[1]
        elif values.shape[1] != self.n_features_in_:
            raise DlrnError(
                f"PCA fitted on {self.n_features_in_} features, got {values.shape[1]}")
        return values

    def transform(self, X: pd.DataFrame | np.ndarray) -> pd.DataFrame | np.ndarray:
        check_is_fitted(self, "components_")
        scores = (self._values(X) - self.mean_) @ self.components_.T
        if isinstance(X, pd.DataFrame):
            return pd.DataFrame(scores, index=X.index, columns=self.get_feature_names_out())
        return scores

    def get_feature_names_out(self, input_features: object = None) -> np.ndarray:
        check_is_fitted(self, "components_")
        return np.array([f"{self.prefix}{i + 1}" for i in range(self.n_components_)],
                        dtype=object)

    def save(self, directory: str | Path) -> Path:
        """Write ``pca.npz`` (arrays) and ``pca.json`` (settings, feature names)."""
        check_is_fitted(self, "components_")
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        np.savez(directory / "pca.npz", mean=self.mean_, components=self.components_,
                 explained_variance_ratio=self.explained_variance_ratio_)
        names = getattr(self, "feature_names_in_", None)
        (directory / "pca.json").write_text(json.dumps({
            **self.get_params(), "n_components_": self.n_components_,
            "n_features_in_": self.n_features_in_,
            "feature_names_in_": None if names is None else [str(n) for n in names],
        }, indent=1))
        return directory

    @classmethod
    def from_arrays(cls, mean: np.ndarray, components: np.ndarray,
                    feature_names: Sequence[str], prefix: str = "DL_PC") -> DeepFeaturePCA:
        """A fitted PCA from its mean and components (as a model bundle stores them)."""
        pca = cls(components.shape[0], prefix)
        pca.mean_, pca.components_ = mean, components
        pca.n_components_, pca.n_features_in_ = components.shape
        pca.feature_names_in_ = np.asarray(list(feature_names), dtype=object)
        return pca

    @classmethod
    def load(cls, directory: str | Path) -> DeepFeaturePCA:
        """The fitted PCA written by :meth:`save`."""
        directory = Path(directory)
        try:
            meta = json.loads((directory / "pca.json").read_text())
            arrays = np.load(directory / "pca.npz", allow_pickle=False)
        except (OSError, ValueError) as error:
            raise DlrnError(f"cannot read the saved PCA in {directory}: {error}") from error
        pca = cls(meta["n_components"], meta["prefix"], meta["random_state"])
        pca.mean_, pca.components_ = arrays["mean"], arrays["components"]
        pca.explained_variance_ratio_ = arrays["explained_variance_ratio"]
        pca.n_components_, pca.n_features_in_ = meta["n_components_"], meta["n_features_in_"]
        if meta["feature_names_in_"] is not None:
            pca.feature_names_in_ = np.asarray(meta["feature_names_in_"], dtype=object)
        return pca
