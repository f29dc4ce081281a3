"""Ranking a catalogue for a user: predicted rating plus a learned preference for well-known items.

A top-N list is judged by whether the user will pick its items, and people mostly pick items they
have heard of: a rating model alone fills the top with obscure items it happens to score high. The
ranking score adds ``weight · log(1 + popularity) / log(1 + max popularity)`` (0 to ``weight``) to the
predicted rating; ``meta_fit`` chooses ``weight`` on the validation users (NDCG@10 over the whole
catalogue against their held-out ratings >= 4).

>>> import numpy as np
>>> ranking_scores(np.array([4.0, 4.0, 3.0]), np.array([0, 100, 100]), weight=1.0).round(2).tolist()
[4.0, 5.0, 4.0]
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from personalize.recommend.metrics import full_catalogue_topk

POPULARITY_WEIGHTS = (0.0, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0)
"""The ranking weights ``meta_fit`` tries."""


def ranking_scores(ratings: np.ndarray, popularity: np.ndarray, weight: float) -> np.ndarray:
    """Predicted ratings plus ``weight`` times the items' log popularity scaled to [0, 1]."""
    scale = np.log1p(max(1, int(np.max(popularity, initial=0))))
    return ratings + weight * np.log1p(popularity) / scale


def tune_popularity_weight(users: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]],
                           predict_all: Callable[[np.ndarray, np.ndarray], np.ndarray],
                           popularity: np.ndarray, weights: Sequence[float] = POPULARITY_WEIGHTS
                           ) -> tuple[float, dict[float, float]]:
    """The weight with the best mean NDCG@10, and every weight's NDCG@10.

    Args:
        users: per validation user, (support positions, support ratings, held-out relevant positions).
        predict_all: (support positions, support ratings) -> predicted ratings of the whole catalogue.
        popularity: training rating counts of the catalogue's items.
    """
    predictions = [(support, predict_all(support, ratings), relevant) for support, ratings, relevant in users]
    results = {}
    for weight in weights:
        ndcgs = []
        for support, predicted, relevant in predictions:
            seen = np.zeros(len(predicted), dtype=bool)
            seen[support] = True
            wanted = np.zeros(len(predicted), dtype=bool)
            wanted[relevant] = True
            wanted &= ~seen  # an item a user rated twice can sit in both halves: it counts as seen
            ndcgs.append(full_catalogue_topk(ranking_scores(predicted, popularity, weight), seen, wanted, k=10)[1])
        results[weight] = float(np.nanmean(ndcgs)) if ndcgs else float("nan")
    best = max(results, key=lambda weight: (results[weight], -weight))
    return best, results
