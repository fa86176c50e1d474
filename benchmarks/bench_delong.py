"""DeLong speed: fast midrank algorithm (Sun & Xu 2014) vs the O(n^2) placement-matrix version.

Run: .venv/bin/python benchmarks/bench_delong.py
"""

from __future__ import annotations

import time

import numpy as np

from dlrn.evaluation.roc import delong_covariance


def pairwise_delong(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Textbook DeLong 1988: the m x n matrix of psi(x_i, y_j) per model (O(k m n) memory/time)."""
    pos, neg = scores[labels == 1].T, scores[labels == 0].T
    v10, v01 = [], []
    for p, n in zip(pos, neg, strict=True):
        psi = (p[:, None] > n[None, :]) + 0.5 * (p[:, None] == n[None, :])
        v10.append(psi.mean(axis=1))
        v01.append(psi.mean(axis=0))
    v10, v01 = np.array(v10), np.array(v01)
    return v10.mean(axis=1), np.cov(v10) / v10.shape[1] + np.cov(v01) / v01.shape[1]


def _data(n_cases: int, n_models: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = (rng.random(n_cases) < 0.3).astype(int)
    scores = np.round(labels[:, None] * np.linspace(0.2, 1.5, n_models)
                      + rng.normal(size=(n_cases, n_models)), 2)  # rounding makes ties
    return labels, scores


def _best_of(function, *args, repeats: int = 5) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function(*args)
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    labels, scores = _data(10_000, 10)
    fast = _best_of(delong_covariance, labels, scores)
    print(f"fast DeLong, 10 models x 10,000 cases: {fast * 1000:.1f} ms (best of 5)")
    small_labels, small_scores = _data(2_000, 10)
    auc_fast, cov_fast = delong_covariance(small_labels, small_scores)
    auc_slow, cov_slow = pairwise_delong(small_labels, small_scores)
    assert np.allclose(auc_fast, auc_slow) and np.allclose(cov_fast, cov_slow)
    fast_small = _best_of(delong_covariance, small_labels, small_scores)
    slow_small = _best_of(pairwise_delong, small_labels, small_scores, repeats=3)
    print(f"10 models x 2,000 cases: fast {fast_small * 1000:.1f} ms, "
          f"O(n^2) pairwise {slow_small * 1000:.1f} ms, ratio {slow_small / fast_small:.0f}x "
          "(same AUCs and covariance)")


if __name__ == "__main__":
    main()
