"""One adapted user: predicted ratings with their uncertainty, and a ranked catalogue.

A :class:`UserModel` is the posterior over one user's taste weights (a mean of ``factors + 1``
numbers and their covariance) plus the items the user already rated. It reads the item tables of the
recommender it came from, so items added to the recommender later are scored too.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from personalize.errors import ConfigError, require
from personalize.recommend.posterior import Posterior, predictive
from personalize.recommend.ranking import ranking_scores

if TYPE_CHECKING:
    import polars as pl

    from personalize.recommend.recommender import Recommender


class UserModel:
    """A user adapted by :meth:`Recommender.adapt` or :meth:`Recommender.adapt_many`.

    Attributes:
        user: the user's id (None for an anonymous history).
        posterior: mean [1, D] and covariance [1, D, D] of the user's taste weights.
        seen: catalogue positions of the items in the user's history.
    """

    def __init__(self, recommender: Recommender, posterior: Posterior, seen: np.ndarray, user: Hashable = None) -> None:
        self.recommender = recommender
        self.posterior = posterior
        self.seen = np.asarray(seen, dtype=np.int64)
        self.user = user

    def __repr__(self) -> str:
        return f"UserModel(user={self.user!r}, ratings={len(self.seen)})"

    def predict(self, item_ids: Sequence[Hashable], *, return_std: bool = False) -> Any:
        """Predicted ratings of ``item_ids`` (numpy, clipped to the training rating range); with
        ``return_std`` also the predictive standard deviation (noise plus what the model does not
        yet know about this user). Unknown ids raise SchemaError."""
        require(not isinstance(item_ids, (str, bytes)), "item_ids must be a list of ids, not a single string")
        positions = self.recommender.catalogue.indices(list(item_ids))
        mean, variance = self._scores(positions)
        return (mean, np.sqrt(variance)) if return_std else mean

    def recommend(self, n: int = 10, *, exclude_seen: bool = True, candidates: Sequence[Hashable] | None = None,
                  popularity_weight: float | None = None) -> pl.DataFrame:
        """The ``n`` best items: a polars frame item_id, score, rating, std, rank (1 = best), and title
        when the catalogue has titles.

        ``rating`` is the predicted rating and ``std`` its predictive standard deviation; ``score``
        ranks them: the rating plus ``popularity_weight`` times the item's scaled log popularity (see
        :mod:`personalize.recommend.ranking`; default: the weight chosen in meta-training, 0 ranks by
        rating alone). ``candidates`` restricts the ranking to those ids.
        """
        import polars as pl

        require(isinstance(n, int) and n >= 1, f"n must be an int >= 1, got {n!r}", ConfigError)
        weight = self.recommender.popularity_weight if popularity_weight is None else popularity_weight
        require(weight >= 0, f"popularity_weight must be >= 0, got {weight!r}", ConfigError)
        catalogue = self.recommender.catalogue
        positions = np.arange(len(catalogue)) if candidates is None else catalogue.indices(list(candidates))
        if exclude_seen:
            positions = positions[~np.isin(positions, self.seen)]
        mean, variance = self._scores(positions)
        score = ranking_scores(mean, catalogue.popularity[positions], weight)
        order = np.argsort(-score, kind="stable")[:n]
        chosen = positions[order]
        frame = pl.DataFrame({"item_id": [catalogue.ids[p] for p in chosen], "score": score[order],
                              "rating": mean[order], "std": np.sqrt(variance[order]),
                              "rank": np.arange(1, len(order) + 1)})
        if catalogue.titles is not None:
            frame = frame.with_columns(pl.Series("title", [catalogue.titles[p] for p in chosen]))
        return frame

    def _scores(self, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        tables = self.recommender.tables
        index = torch.as_tensor(positions, dtype=torch.long)
        with torch.no_grad():
            mean, variance = predictive(self.posterior, tables.features[index], tables.base[index],
                                        tables.noise_variance)
        low, high = self.recommender.rating_range
        return np.clip(mean[0].numpy().astype(np.float64), low, high), variance[0].numpy().astype(np.float64)
