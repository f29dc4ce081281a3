"""Items like an item: cosine of the taste features the model scores items with, over item blocks.

A user's rating of item ``i`` is ``base_i + x_i·θ`` (:mod:`personalize.recommend.tables`), so two
items are alike for the model when their rows ``x_i`` point the same way. The built-in model's
first column is the constant 1 that carries the user's bias: it is the same for every item and is
left out. Similarities are computed in float64, a block of items at a time (never a queries x
catalogue matrix); ties are broken by catalogue position.

>>> import torch
>>> unit = taste_vectors(torch.tensor([[1.0, 1.0, 0.0], [1.0, 2.0, 0.1], [1.0, 0.0, 3.0]]), constant_first=True)
>>> positions, scores = nearest_items(unit, np.array([0]), n=2, block=2)
>>> positions.tolist(), np.round(scores, 3).tolist()   # item 1 points almost as item 0 does; item 2 is orthogonal
([[1, 2]], [[0.999, 0.0]])
"""

from __future__ import annotations

import numpy as np
import torch


def taste_vectors(features: torch.Tensor, *, constant_first: bool) -> np.ndarray:
    """Unit-length taste rows [M, D'] (float64) of the item feature rows [M, D]; a zero row stays zero.

    ``constant_first``: drop the first column (the built-in model's constant 1)."""
    rows = features.detach().double().numpy()
    if constant_first:
        rows = rows[:, 1:]
    return rows / np.maximum(np.linalg.norm(rows, axis=1, keepdims=True), 1e-12)


def nearest_items(unit: np.ndarray, queries: np.ndarray, n: int, block: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    """For each query position, the ``n`` other items of highest cosine: positions [Q, n] and
    cosines [Q, n], best first (``n`` at most M - 1; the query itself is never among them)."""
    queries = np.asarray(queries, dtype=np.int64)
    count = len(unit)
    n = min(n, count - 1)
    query_rows = unit[queries]
    kept_positions, kept_scores = [], []
    for start in range(0, count, block):
        stop = min(start + block, count)
        scores = query_rows @ unit[start:stop].T                       # [Q, B]
        inside = (queries >= start) & (queries < stop)
        scores[np.flatnonzero(inside), queries[inside] - start] = -np.inf
        order = np.argsort(-scores, axis=1, kind="stable")[:, :n]      # ties: lower position first
        kept_positions.append(order + start)
        kept_scores.append(np.take_along_axis(scores, order, axis=1))
    positions, scores = np.concatenate(kept_positions, axis=1), np.concatenate(kept_scores, axis=1)
    order = np.argsort(-scores, axis=1, kind="stable")[:, :n]  # blocks in position order: still stable
    return np.take_along_axis(positions, order, axis=1), np.take_along_axis(scores, order, axis=1)


__all__ = ["nearest_items", "taste_vectors"]
