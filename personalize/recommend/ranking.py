"""Ranking a catalogue for a user: what they are likely to pick, then what they would think of it.

A top-N list is judged by whether the user will pick its items, and a rating model alone fills the
top with obscure items it happens to score high. So the ranking score adds two things:

- a *pick* score from the items the user rated, whatever the ratings: PureSVD, i.e. the top right
  singular vectors ``V`` of the training users' who-rated-what matrix, scoring item ``j`` by
  ``V_j · Σ_{i rated} V_i`` (a new user with no rating gets the popularity direction instead);
  scaled to at most 1 in absolute value over the candidates;
- ``rating_weight`` times the predicted rating scaled to [0, 1] over the rating range.

``meta_fit`` chooses ``rating_weight`` on the validation users (NDCG@10 over the whole catalogue
against their held-out ratings in the top quarter of the range).

>>> import numpy as np
>>> ranking_scores(np.array([5.0, 1.0, 3.0]), np.array([0.0, 2.0, 1.0]), 1.0, (1.0, 5.0)).tolist()
[1.0, 1.0, 1.0]
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch

from personalize.recommend.metrics import full_catalogue_topk

RATING_WEIGHTS = (0.0, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0)
"""The weights of the predicted rating that ``meta_fit`` tries."""


def implicit_item_vectors(users: np.ndarray, items: np.ndarray, n_items: int, factors: int,
                          seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """PureSVD item vectors [n_items, factors] of a who-rated-what log, and the popularity profile [factors].

    The users x items matrix holds 1 where the user rated the item (once, however often they did)
    and is kept sparse; the profile is ``Vᵀ`` times each item's number of raters, i.e. the sum of
    the matrix's rows projected on the vectors.

    >>> vectors, default = implicit_item_vectors(np.array([0, 0, 1, 1, 2]), np.array([0, 1, 0, 1, 2]), 4, 2)
    >>> vectors.shape, default.shape
    (torch.Size([4, 2]), torch.Size([2]))
    """
    rows, columns = _rated_pairs(np.asarray(users), np.asarray(items), n_items)
    n_rows = int(rows.max()) + 1 if len(rows) else 1
    indices = torch.as_tensor(np.stack([rows, columns]))
    matrix = torch.sparse_coo_tensor(indices, torch.ones(len(rows)), (n_rows, n_items),
                                     is_coalesced=True, check_invariants=False)  # sorted, distinct by construction
    factors = min(factors, n_rows, n_items)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        _, _, right = torch.svd_lowrank(matrix, q=min(factors + 10, n_rows, n_items), niter=6)
    vectors = right[:, :factors].contiguous()
    raters = torch.as_tensor(np.bincount(columns, minlength=n_items), dtype=vectors.dtype)
    return vectors, vectors.T @ raters


def _rated_pairs(users: np.ndarray, items: np.ndarray, n_items: int) -> tuple[np.ndarray, np.ndarray]:
    """The distinct (dense user index, item) pairs of a log, sorted by user then item, as two int64 arrays."""
    user_index = np.unique(users, return_inverse=True)[1].reshape(-1).astype(np.int64)
    codes = np.sort(user_index * n_items + items.astype(np.int64))  # one int per pair, in (user, item) order
    first = np.ones(len(codes), dtype=bool)
    first[1:] = codes[1:] != codes[:-1]  # a user who rated an item twice picked it once
    codes = codes[first]
    return codes // n_items, codes % n_items


def pick_scores(vectors: torch.Tensor, default_profile: torch.Tensor, seen: np.ndarray,
                positions: np.ndarray) -> np.ndarray:
    """PureSVD scores of the items at ``positions`` for a user who rated the items at ``seen``."""
    profile = vectors[torch.as_tensor(seen, dtype=torch.long)].sum(0) if len(seen) else default_profile
    return (vectors[torch.as_tensor(positions, dtype=torch.long)] @ profile).numpy().astype(np.float64)


def ranking_scores(ratings: np.ndarray, picks: np.ndarray, rating_weight: float,
                   rating_range: tuple[float, float]) -> np.ndarray:
    """Pick scores scaled to at most 1 in absolute value plus ``rating_weight`` times the ratings
    scaled to [0, 1]."""
    low, high = rating_range
    scale = max(float(np.max(np.abs(picks), initial=0.0)), 1e-12)
    return picks / scale + rating_weight * (ratings - low) / max(high - low, 1e-12)


def tune_rating_weight(users: Sequence[tuple[np.ndarray, np.ndarray]],
                       predict_all: Callable[[int], tuple[np.ndarray, np.ndarray]],
                       rating_range: tuple[float, float], weights: Sequence[float] = RATING_WEIGHTS
                       ) -> tuple[float, dict[float, float]]:
    """The rating weight with the best mean NDCG@10, and every weight's NDCG@10.

    Args:
        users: per validation user, (support positions, held-out relevant positions).
        predict_all: the user's position in ``users`` -> (predicted ratings, pick scores) of the
            whole catalogue, adapted to that user's support.
    """
    predictions = [(support, *predict_all(position), relevant) for position, (support, relevant) in enumerate(users)]
    results = {}
    for weight in weights:
        ndcgs = []
        for support, predicted, picks, relevant in predictions:
            seen = np.zeros(len(predicted), dtype=bool)
            seen[support] = True
            wanted = np.zeros(len(predicted), dtype=bool)
            wanted[relevant] = True
            wanted &= ~seen  # an item a user rated twice can sit in both halves: it counts as seen
            scores = ranking_scores(predicted, picks, weight, rating_range)
            ndcgs.append(full_catalogue_topk(scores, seen, wanted, k=10)[1])
        results[weight] = float(np.nanmean(ndcgs)) if ndcgs else float("nan")
    best = max(results, key=lambda weight: (results[weight], -weight))
    return best, results
