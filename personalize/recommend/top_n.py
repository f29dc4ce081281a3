"""Top-N items for many users at once, over item blocks: never a users x items matrix in memory.

The score is the one :meth:`UserModel.recommend` ranks by (see :mod:`personalize.recommend.ranking`):
the user's pick score scaled by its largest absolute value over the items the user has not rated,
plus ``rating_weight`` times the predicted rating (clipped to the rating range) scaled to [0, 1].
Two passes over blocks of ``block`` items: the first finds each user's pick scale, the second
scores the block and merges it into each user's running top N. Rated items are not recommended
(``exclude_seen=False`` ranks them too).

>>> import torch
>>> from types import SimpleNamespace
>>> tables = SimpleNamespace(features=torch.tensor([[1.0, 0.0], [1.0, 1.0], [1.0, -1.0]]),
...                          base=torch.tensor([3.0, 3.0, 3.0]), implicit=torch.eye(3),
...                          implicit_default=torch.ones(3))
>>> positions, scores = top_items(tables, torch.tensor([[0.0, 1.0]]), torch.tensor([0]), torch.tensor([0]),
...                               n=2, rating_weight=1.0, rating_range=(1.0, 5.0))
>>> positions.tolist()                  # item 0 was rated; item 1 rates higher than item 2
[[1, 2]]
"""

from __future__ import annotations

from typing import Any

import torch


def top_items(tables: Any, means: torch.Tensor, seen_users: torch.Tensor, seen_items: torch.Tensor, *, n: int,
              rating_weight: float, rating_range: tuple[float, float], block: int = 4096,
              exclude_seen: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Each user's ``n`` best unrated items: catalogue positions [U, n] and scores [U, n].

    Args:
        tables: the recommender's ItemTables (features, base, implicit, implicit_default).
        means: posterior means of the users' taste weights [U, D].
        seen_users, seen_items: one entry per rating: which user (0..U-1) rated which item position.
        n: items per user; a user with fewer unrated items gets -inf scores (position -1) at the end.
        exclude_seen: False ranks the rated items too (as ``UserModel.recommend(exclude_seen=False)``).
    """
    num_users, num_items = means.shape[0], tables.features.shape[0]
    low, high = rating_range
    weight = rating_weight / max(high - low, 1e-12)  # the rating term is weight * (clamp(r, low, high) - low)
    implicit = tables.implicit.float()
    profile = torch.zeros(num_users, implicit.shape[1]).index_add_(0, seen_users, implicit[seen_items])
    rated_nothing = torch.bincount(seen_users, minlength=num_users) == 0
    profile[rated_nothing] = tables.implicit_default.float()
    blocks = [(start, min(start + block, num_items)) for start in range(0, num_items, block)]

    def rated_in(start: int, stop: int) -> tuple[torch.Tensor, torch.Tensor]:
        inside = (seen_items >= start) & (seen_items < stop) & exclude_seen
        return seen_users[inside], seen_items[inside] - start

    buffer = torch.empty(num_users, min(block, num_items))  # reused: a fresh large tensor per block costs page faults
    scale = torch.zeros(num_users)
    for start, stop in blocks:
        picks = torch.mm(profile, implicit[start:stop].T, out=buffer[:, : stop - start]).abs_()
        picks.index_put_(rated_in(start, stop), torch.tensor(0.0))
        torch.maximum(scale, picks.amax(dim=1), out=scale)
    profile = profile / scale.clamp_min(1e-12)[:, None]  # scaled pick scores come out of one product
    features, offsets = weight * tables.features.float(), weight * (tables.base.float() - low)

    kept_scores, kept_positions = [], []
    for start, stop in blocks:
        scores = torch.addmm(offsets[start:stop], means, features[start:stop].T, out=buffer[:, : stop - start])
        scores.clamp_(0.0, rating_weight)
        scores.addmm_(profile, implicit[start:stop].T)
        scores.index_put_(rated_in(start, stop), torch.tensor(float("-inf")))
        best, order = torch.topk(scores, min(n, stop - start), dim=1)
        kept_scores.append(best)
        kept_positions.append(order + start)
    best_scores, order = torch.topk(torch.cat(kept_scores, dim=1), min(n, num_items), dim=1)
    best_positions = torch.cat(kept_positions, dim=1).gather(1, order)
    best_positions = best_positions.masked_fill(torch.isinf(best_scores), -1)
    return best_positions, best_scores


__all__ = ["top_items"]
