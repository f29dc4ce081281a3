"""Rating and ranking metrics for per-user cold-start evaluation.

Rating metrics (:func:`mae`, :func:`rmse`) compare predicted and true ratings. Ranking metrics come in
two flavours: within one user's query (:func:`precision_at_k`, :func:`ndcg_at_k`: only the rated
query items are ranked) and over the whole catalogue (:func:`full_catalogue_topk`: every item the
user did not rate in the support is ranked, the held-out relevant items are the hits).
:func:`mean_ci` summarises per-user values as a mean and a 95% confidence half-width.

Ties in the predicted scores are broken by item order (a stable sort), so every metric is
deterministic.

>>> mae([3.0, 4.0], [4.0, 4.0]), rmse([2.0, 4.0], [4.0, 4.0])
(0.5, 1.4142135623730951)
>>> precision_at_k([0.9, 0.2, 0.5], [5, 4, 2], k=2)
0.5
>>> ndcg_at_k([0.9, 0.2, 0.5], [5, 2, 3], k=3)
1.0
>>> recall, ndcg = full_catalogue_topk(np.array([0.9, 0.8, 0.1, 0.5]), k=2,
...                                    seen_mask=np.array([True, False, False, False]),
...                                    relevant_mask=np.array([False, True, True, False]))
>>> recall, round(ndcg, 4)
(0.5, 0.6131)
>>> mean_ci([1.0, 3.0, float("nan")])
(2.0, 1.9599999999999997)
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike

from personalize.errors import require


def _vector(values: ArrayLike, name: str) -> np.ndarray:
    """``values`` as a non-empty 1-D float array, or ConfigError."""
    array = np.asarray(values, dtype=float)
    require(array.ndim == 1, f"{name} must be 1-D, got shape {array.shape}")
    require(array.size >= 1, f"{name} must not be empty")
    return array


def _pair(first: ArrayLike, second: ArrayLike, names: tuple[str, str]) -> tuple[np.ndarray, np.ndarray]:
    """Two non-empty 1-D float arrays of the same length, or ConfigError."""
    a, b = _vector(first, names[0]), _vector(second, names[1])
    require(a.shape == b.shape, f"{names[0]} and {names[1]} differ in length: {a.size} != {b.size}")
    return a, b


def _check_k(k: int) -> None:
    require(isinstance(k, int | np.integer) and k >= 1, f"k must be an integer >= 1, got {k!r}")


def _ranked(scores: np.ndarray) -> np.ndarray:
    """Indices of ``scores`` from highest to lowest; ties keep item order."""
    return np.argsort(-scores, kind="stable")


def _discounts(n: int) -> np.ndarray:
    """``1 / log2(rank + 1)`` for ranks 1..n."""
    return 1.0 / np.log2(np.arange(2, n + 2))


# --- rating metrics -----------------------------------------------------------------------------


def mae(pred: ArrayLike, true: ArrayLike) -> float:
    """Mean absolute error of predicted against true ratings."""
    p, t = _pair(pred, true, ("pred", "true"))
    return float(np.mean(np.abs(p - t)))


def rmse(pred: ArrayLike, true: ArrayLike) -> float:
    """Root mean squared error of predicted against true ratings."""
    p, t = _pair(pred, true, ("pred", "true"))
    return float(np.sqrt(np.mean((p - t) ** 2)))


# --- ranking within one user's query ------------------------------------------------------------


def precision_at_k(scores: ArrayLike, ratings: ArrayLike, k: int = 5, relevant: float = 4.0) -> float:
    """Fraction of the top ``min(k, n)`` query items by predicted score whose true rating is >= ``relevant``."""
    _check_k(k)
    s, r = _pair(scores, ratings, ("scores", "ratings"))
    top = _ranked(s)[:k]
    return float(np.mean(r[top] >= relevant))


def ndcg_at_k(scores: ArrayLike, ratings: ArrayLike, k: int = 5) -> float:
    """NDCG@k of the predicted order with gain ``2^r - 1``; 0.0 when the ideal DCG is 0 (all ratings 0)."""
    _check_k(k)
    s, r = _pair(scores, ratings, ("scores", "ratings"))
    n = min(k, r.size)
    discounts = _discounts(n)
    dcg = float(np.sum((2.0 ** r[_ranked(s)[:n]] - 1.0) * discounts))
    ideal = float(np.sum((2.0 ** np.sort(r)[::-1][:n] - 1.0) * discounts))
    return dcg / ideal if ideal > 0 else 0.0


# --- ranking over the whole catalogue -----------------------------------------------------------


def _mask(values: ArrayLike, name: str, size: int) -> np.ndarray:
    array = np.asarray(values)
    require(array.dtype == bool, f"{name} must be a boolean array, got dtype {array.dtype}")
    require(array.shape == (size,), f"{name} must have shape ({size},) like scores, got {array.shape}")
    return array


def full_catalogue_topk(scores: ArrayLike, seen_mask: ArrayLike, relevant_mask: ArrayLike,
                        k: int = 10) -> tuple[float, float]:
    """Recall@k and NDCG@k (binary gain) of one user's top-k over every unseen catalogue item.

    ``seen_mask`` marks the items excluded from ranking (rated in the support), ``relevant_mask`` the
    held-out relevant items (never also seen). Recall is ``hits / min(k, n_relevant)``; the ideal
    DCG puts ``min(k, n_relevant)`` hits at the top. Returns ``(nan, nan)`` when the user has no
    relevant item, so callers can skip them.
    """
    _check_k(k)
    s = _vector(scores, "scores")
    seen, relevant = _mask(seen_mask, "seen_mask", s.size), _mask(relevant_mask, "relevant_mask", s.size)
    require(not np.any(seen & relevant), "an item cannot be both seen (support) and relevant (held out)")
    n_relevant = int(relevant.sum())
    if n_relevant == 0:
        return math.nan, math.nan
    candidates = np.flatnonzero(~seen)
    top = candidates[_ranked(s[candidates])[:k]]
    hits = relevant[top].astype(float)
    best = min(k, n_relevant)
    recall = float(hits.sum()) / best
    ndcg = float(np.sum(hits * _discounts(hits.size))) / float(np.sum(_discounts(best)))
    return recall, ndcg


# --- summaries ----------------------------------------------------------------------------------


def mean_ci(values: ArrayLike) -> tuple[float, float]:
    """Mean and 95% confidence half-width ``1.96 * std(ddof=1) / sqrt(n)`` of the non-NaN values.

    The half-width is 0.0 for a single value; ``(nan, nan)`` when no value is left.
    """
    array = np.asarray(values, dtype=float)
    require(array.ndim == 1, f"values must be 1-D, got shape {array.shape}")
    kept = array[~np.isnan(array)]
    if kept.size == 0:
        return math.nan, math.nan
    if kept.size == 1:
        return float(kept[0]), 0.0
    return float(kept.mean()), float(1.96 * kept.std(ddof=1) / math.sqrt(kept.size))
