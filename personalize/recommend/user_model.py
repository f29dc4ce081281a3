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

from personalize.engine.gaussian import SupportPosterior, WeightPosterior
from personalize.errors import ConfigError, require
from personalize.recommend.ranking import pick_scores, ranking_scores
from personalize.recommend.similar import taste_vectors

if TYPE_CHECKING:
    import polars as pl

    from personalize.recommend.recommender import Recommender


class UserModel:
    """A user adapted by :meth:`Recommender.adapt` or :meth:`Recommender.adapt_many`.

    Attributes:
        user: the user's id (None for an anonymous history).
        posterior: mean [1, D] and covariance [1, D, D] of the user's taste weights.
        seen: catalogue positions of the items in the user's history.
        ratings: the user's ratings of those items.
    """

    def __init__(self, recommender: Recommender, posterior: WeightPosterior | SupportPosterior, seen: np.ndarray,
                 user: Hashable = None, ratings: np.ndarray | None = None) -> None:
        self.recommender = recommender
        self.posterior = posterior
        self.seen = np.asarray(seen, dtype=np.int64)
        self.ratings = np.asarray(ratings if ratings is not None else np.full(len(self.seen), np.nan), dtype=np.float64)
        self.user = user

    def __repr__(self) -> str:
        return f"UserModel(user={self.user!r}, ratings={len(self.seen)})"

    def predict(self, item_ids: Sequence[Hashable], *, return_std: bool = False, estimate: str = "mean") -> Any:
        """Predicted ratings of ``item_ids`` (numpy, within the training rating range); with
        ``return_std`` also the predictive standard deviation (noise plus what the model does not
        yet know about this user). Unknown ids raise SchemaError.

        ``estimate="mean"`` gives the expected rating (best for squared error and for ranking);
        ``"median"`` the median of :meth:`rating_distribution`, a rating level: the best single guess
        under absolute error (MAE) when ratings come in levels such as 1-5 stars.
        """
        require(not isinstance(item_ids, (str, bytes)), "item_ids must be a list of ids, not a single string")
        require(estimate in ("mean", "median"), f"estimate must be 'mean' or 'median', got {estimate!r}", ConfigError)
        positions = self.recommender.catalogue.indices(list(item_ids))
        mean, variance = self._scores(positions)
        if estimate == "median":
            levels, probabilities = self._distribution(mean, variance)
            mean = levels[(np.cumsum(probabilities, axis=1) >= 0.5).argmax(axis=1)]
        return (mean, np.sqrt(variance)) if return_std else mean

    def rating_distribution(self, item_ids: Sequence[Hashable]) -> tuple[np.ndarray, np.ndarray]:
        """The rating levels seen in training and each item's probability of each: ([L], [n, L]).

        The Gaussian predictive is cut at the midpoints between levels (the end levels take the tails).
        Needs a recommender whose training ratings came in at most 20 levels.
        """
        require(not isinstance(item_ids, (str, bytes)), "item_ids must be a list of ids, not a single string")
        mean, variance = self._scores(self.recommender.catalogue.indices(list(item_ids)))
        return self._distribution(mean, variance)

    def _distribution(self, mean: np.ndarray, variance: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        levels = self.recommender.rating_levels
        require(levels is not None, "this recommender's training ratings were not in a few levels (such as 1-5 "
                                    "stars): it has no rating distribution; use estimate='mean'", ConfigError)
        levels = np.asarray(levels, dtype=np.float64)
        cuts = (levels[1:] + levels[:-1]) / 2
        below = _normal_cdf((cuts[None, :] - mean[:, None]) / np.sqrt(variance)[:, None])
        cumulative = np.concatenate([np.zeros((len(mean), 1)), below, np.ones((len(mean), 1))], axis=1)
        return levels, np.diff(cumulative, axis=1)

    def recommend(self, n: int = 10, *, exclude_seen: bool = True, candidates: Sequence[Hashable] | None = None,
                  rating_weight: float | None = None) -> pl.DataFrame:
        """The ``n`` best items: a polars frame item_id, score, rating, std, rank (1 = best), and title
        when the catalogue has titles.

        ``rating`` is the predicted rating and ``std`` its predictive standard deviation; ``score``
        ranks them: how likely the user is to pick the item, from the items they rated, plus
        ``rating_weight`` times the scaled predicted rating (see :mod:`personalize.recommend.ranking`;
        default: the weight chosen in meta-training). ``candidates`` restricts the ranking to those ids.
        """
        import polars as pl

        require(isinstance(n, int) and n >= 1, f"n must be an int >= 1, got {n!r}", ConfigError)
        weight = self.recommender.rating_weight if rating_weight is None else rating_weight
        require(weight >= 0, f"rating_weight must be >= 0, got {weight!r}", ConfigError)
        catalogue = self.recommender.catalogue
        positions = np.arange(len(catalogue)) if candidates is None else catalogue.indices(list(candidates))
        if exclude_seen:
            positions = positions[~np.isin(positions, self.seen)]
        mean, variance = self._scores(positions)
        score = ranking_scores(mean, self.pick_scores(positions), weight, self.recommender.rating_range)
        order = np.argsort(-score, kind="stable")[:n]
        chosen = positions[order]
        frame = pl.DataFrame({"item_id": [catalogue.ids[p] for p in chosen], "score": score[order],
                              "rating": mean[order], "std": np.sqrt(variance[order]),
                              "rank": np.arange(1, len(order) + 1)})
        if catalogue.titles is not None:
            frame = frame.with_columns(pl.Series("title", [catalogue.titles[p] for p in chosen]))
        return frame

    def similar_rated(self, item_ids: Sequence[Hashable], n: int = 2) -> dict[Hashable, list[tuple[Hashable, float]]]:
        """For each item, the ``n`` items this user rated at or above their own average that resemble it
        most (cosine of the items' taste features, as :meth:`Recommender.similar_items`), with the
        similarity: a short "because you liked".

        An item that resembles none of them (similarity <= 0) gets fewer, possibly none.
        """
        catalogue = self.recommender.catalogue
        unit = taste_vectors(self.recommender.tables.features, constant_first=self.recommender.config.learner is None)
        liked = self.seen[self.ratings >= np.nanmean(self.ratings)] if len(self.seen) else self.seen
        result = {}
        for item, position in zip(item_ids, catalogue.indices(list(item_ids))):
            similarity = unit[liked] @ unit[position]
            order = [i for i in np.argsort(-similarity, kind="stable") if similarity[i] > 0 and liked[i] != position]
            result[item] = [(catalogue.ids[liked[i]], float(similarity[i])) for i in order[:n]]
        return result

    def pick_scores(self, positions: np.ndarray) -> np.ndarray:
        """How strongly the items at catalogue ``positions`` go with the items this user rated."""
        tables = self.recommender.tables
        return pick_scores(tables.implicit, tables.implicit_default, self.seen, positions)

    def _scores(self, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        tables = self.recommender.tables
        index = torch.as_tensor(positions, dtype=torch.long)
        with torch.no_grad():
            mean, variance = self.posterior.predictive(tables.features[index], tables.base[index],
                                                       tables.noise_variance)
        low, high = self.recommender.rating_range
        return np.clip(mean[0].numpy().astype(np.float64), low, high), variance[0].numpy().astype(np.float64)


def _normal_cdf(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + torch.special.erf(torch.as_tensor(z / np.sqrt(2.0))).numpy())
