"""The non-meta-learned baselines of the recommendation benchmark.

Every baseline is fitted on the training users' interactions and then predicts for ONE new user
(cold start: the user was not in ``fit``) from that user's support ratings, which may be empty (the
prediction then falls back to the part that needs no user). Items are integer indices
``0..n_items-1`` (the caller maps ids to indices); ``target_items`` may be the whole catalogue.

* :class:`GlobalMean` -- the training mean ``mu``.
* :class:`ItemMean` -- the item mean shrunk toward ``mu``.
* :class:`BiasBaseline` -- ``mu + b_i + b_u`` with shrunk item and user biases.
* :class:`Popularity` -- the item's number of training ratings (a ranking score, not a rating).
* :class:`MatrixFactorization` -- biased ALS; a new user is folded in from the support residuals.
* :class:`TextRidge` -- a ridge regression per user, from scratch, on frozen item-text embeddings
  (no meta-learning, no collaborative signal; not in :data:`BASELINES`: it needs the embeddings).

>>> users, items, ratings = np.array([0, 0, 1, 1]), np.array([0, 1, 0, 2]), np.array([5.0, 3.0, 4.0, 2.0])
>>> GlobalMean().fit(users, items, ratings, n_items=3).predict(np.array([]), np.array([]), np.arange(3))
array([3.5, 3.5, 3.5])
>>> ItemMean(shrinkage=0).fit(users, items, ratings, n_items=4).predict(np.array([]), np.array([]), np.arange(4))
array([4.5, 3. , 2. , 3.5])
>>> bias = BiasBaseline(item_shrinkage=0, user_shrinkage=0).fit(users, items, ratings, n_items=3)
>>> bias.predict(support_items=np.array([0]), support_ratings=np.array([5.0]), target_items=np.array([1, 2]))
array([3.5, 2.5])
>>> sorted(BASELINES)
['bias', 'global mean', 'item mean', 'mf (als)', 'popularity']
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar, Self

import numpy as np
from numpy.typing import ArrayLike

from personalize.errors import require
from personalize.recommend.als import checked_indices, fit_biased_als

# --- input checks and shared formulas -----------------------------------------------------------


def _ratings(values: ArrayLike, name: str, size: int) -> np.ndarray:
    array = np.asarray(values, dtype=float)
    require(array.shape == (size,), f"{name} must be 1-D of length {size} like its items, got shape {array.shape}")
    require(bool(np.all(np.isfinite(array))), f"{name} must be finite")
    return array


def _shrunk_mean(sums: np.ndarray, counts: np.ndarray, shrinkage: float, prior: float = 0.0) -> np.ndarray:
    """``(sums + shrinkage * prior) / (counts + shrinkage)``, and ``prior`` where the denominator is 0."""
    denominator = counts + shrinkage
    out = np.full(np.shape(sums), prior, dtype=float)
    return np.divide(sums + shrinkage * prior, denominator, out=out, where=denominator > 0)


def _biases(keys: np.ndarray, residuals: np.ndarray, n_keys: int, shrinkage: float) -> np.ndarray:
    """Per key (item or user) ``sum(residual) / (count + shrinkage)``; 0 for keys without ratings."""
    sums = np.bincount(keys, weights=residuals, minlength=n_keys)
    return _shrunk_mean(sums, np.bincount(keys, minlength=n_keys).astype(float), shrinkage)


def _user_bias(residuals: np.ndarray, shrinkage: float) -> float:
    """``sum(residual) / (n + shrinkage)`` over one user's ratings; 0 when there is none."""
    denominator = residuals.size + shrinkage
    return float(residuals.sum() / denominator) if denominator > 0 else 0.0


def _ridge_solve(factors: np.ndarray, targets: np.ndarray, ridge: float) -> np.ndarray:
    """``(FᵀF + ridge I)⁻¹ Fᵀ t``: the ridge-regression weights of ``targets`` on the rows of ``factors``."""
    gram = factors.T @ factors + ridge * np.eye(factors.shape[1])
    return np.linalg.solve(gram, factors.T @ targets)


# --- the interface ------------------------------------------------------------------------------


class RatingBaseline(ABC):
    """Fit on training users' ratings; predict for one new user from their (possibly empty) support."""

    name: ClassVar[str]
    _n_items: int | None = None  # set by fit

    def fit(self, users: ArrayLike, items: ArrayLike, ratings: ArrayLike, n_items: int) -> Self:
        """Fit on the training interactions (1-D arrays of equal length; ``users`` may be any ints)."""
        require(isinstance(n_items, int | np.integer) and n_items >= 1, f"n_items must be >= 1, got {n_items!r}")
        item_array = checked_indices(items, "items", int(n_items))
        require(item_array.size >= 1, "fit needs at least one rating")
        user_array = np.asarray(users)
        require(user_array.shape == item_array.shape and np.issubdtype(user_array.dtype, np.integer),
                f"users must be integers of the same length as items, got {user_array.dtype} {user_array.shape}")
        rating_array = _ratings(ratings, "ratings", item_array.size)
        dense_users = np.unique(user_array, return_inverse=True)[1].reshape(-1)
        self._fit(dense_users, item_array, rating_array, int(n_items))
        self._n_items = int(n_items)
        return self

    def predict(self, support_items: ArrayLike, support_ratings: ArrayLike, target_items: ArrayLike) -> np.ndarray:
        """Predicted scores of ``target_items`` for one new user given their support ratings."""
        require(self._n_items is not None, f"{type(self).__name__}: fit first, then predict")
        assert self._n_items is not None
        support = checked_indices(support_items, "support_items", self._n_items)
        support_r = _ratings(support_ratings, "support_ratings", support.size)
        return self._predict(support, support_r, checked_indices(target_items, "target_items", self._n_items))

    @abstractmethod
    def _fit(self, users: np.ndarray, items: np.ndarray, ratings: np.ndarray, n_items: int) -> None:
        """Fit on checked inputs; ``users`` are dense indices ``0..n_users-1``."""

    @abstractmethod
    def _predict(self, support_items: np.ndarray, support_ratings: np.ndarray, target_items: np.ndarray) -> np.ndarray:
        """Predict on checked inputs."""


# --- the baselines ------------------------------------------------------------------------------


@dataclass
class GlobalMean(RatingBaseline):
    """Every prediction is the mean training rating."""

    name: ClassVar[str] = "global mean"

    def _fit(self, users: np.ndarray, items: np.ndarray, ratings: np.ndarray, n_items: int) -> None:
        self.mu_ = float(ratings.mean())

    def _predict(self, support_items: np.ndarray, support_ratings: np.ndarray, target_items: np.ndarray) -> np.ndarray:
        return np.full(target_items.size, self.mu_)


@dataclass
class ItemMean(RatingBaseline):
    """The item's training mean shrunk toward the global mean: ``(sum + λ·μ) / (count + λ)``; μ for unseen items."""

    name: ClassVar[str] = "item mean"
    shrinkage: float = 5.0

    def __post_init__(self) -> None:
        require(self.shrinkage >= 0, f"ItemMean.shrinkage must be >= 0, got {self.shrinkage!r}")

    def _fit(self, users: np.ndarray, items: np.ndarray, ratings: np.ndarray, n_items: int) -> None:
        mu = float(ratings.mean())
        sums = np.bincount(items, weights=ratings, minlength=n_items)
        counts = np.bincount(items, minlength=n_items).astype(float)
        self.item_means_ = _shrunk_mean(sums, counts, self.shrinkage, prior=mu)

    def _predict(self, support_items: np.ndarray, support_ratings: np.ndarray, target_items: np.ndarray) -> np.ndarray:
        return self.item_means_[target_items]


@dataclass
class BiasBaseline(RatingBaseline):
    """``μ + b_i + b_u``: item bias shrunk by ``item_shrinkage``, the new user's bias from their support residuals."""

    name: ClassVar[str] = "bias"
    item_shrinkage: float = 10.0
    user_shrinkage: float = 5.0

    def __post_init__(self) -> None:
        require(self.item_shrinkage >= 0 and self.user_shrinkage >= 0,
                f"{type(self).__name__} shrinkages must be >= 0, got {self.item_shrinkage!r}, {self.user_shrinkage!r}")

    def _fit(self, users: np.ndarray, items: np.ndarray, ratings: np.ndarray, n_items: int) -> None:
        self.mu_ = float(ratings.mean())
        self.item_bias_ = _biases(items, ratings - self.mu_, n_items, self.item_shrinkage)

    def _baseline(self, items: np.ndarray) -> np.ndarray:
        return self.mu_ + self.item_bias_[items]

    def _predict(self, support_items: np.ndarray, support_ratings: np.ndarray, target_items: np.ndarray) -> np.ndarray:
        user_bias = _user_bias(support_ratings - self._baseline(support_items), self.user_shrinkage)
        return self._baseline(target_items) + user_bias


@dataclass
class Popularity(RatingBaseline):
    """The item's number of training ratings, as a float: a top-N ranking score, NOT a rating (no MAE)."""

    name: ClassVar[str] = "popularity"

    def _fit(self, users: np.ndarray, items: np.ndarray, ratings: np.ndarray, n_items: int) -> None:
        self.counts_ = np.bincount(items, minlength=n_items).astype(float)

    def _predict(self, support_items: np.ndarray, support_ratings: np.ndarray, target_items: np.ndarray) -> np.ndarray:
        return self.counts_[target_items]


@dataclass
class MatrixFactorization(BiasBaseline):
    """Biased ALS: ``μ + b_i + b_u + p_u·q_i``, with biases as in :class:`BiasBaseline`.

    Training ratings are centred by μ, the item bias and each training user's bias, then ``iterations``
    rounds of alternating ridge regressions fit the user and item factors (:func:`fit_biased_als`,
    one batched solve per half-step). A new user is folded in:
    ``b_u`` from the support as in :class:`BiasBaseline`, then ``p_u`` by the same ridge solve on the
    support residuals; with an empty support the prediction is the bias baseline's.
    """

    name: ClassVar[str] = "mf (als)"
    factors: int = 10
    ridge: float = 10.0
    iterations: int = 15
    seed: int = 0

    def __post_init__(self) -> None:
        super().__post_init__()
        require(self.factors >= 1, f"MatrixFactorization.factors must be >= 1, got {self.factors!r}")
        require(self.ridge > 0, f"MatrixFactorization.ridge must be > 0, got {self.ridge!r}")
        require(self.iterations >= 1, f"MatrixFactorization.iterations must be >= 1, got {self.iterations!r}")

    def _fit(self, users: np.ndarray, items: np.ndarray, ratings: np.ndarray, n_items: int) -> None:
        fitted = fit_biased_als(users, items, ratings, n_users=int(users.max()) + 1, n_items=n_items,
                                factors=self.factors, ridge=self.ridge, iterations=self.iterations, seed=self.seed,
                                item_shrinkage=self.item_shrinkage, user_shrinkage=self.user_shrinkage)
        self.mu_, self.item_bias_, self.item_factors_ = fitted.global_mean, fitted.item_bias, fitted.item_factors

    def _predict(self, support_items: np.ndarray, support_ratings: np.ndarray, target_items: np.ndarray) -> np.ndarray:
        biased = super()._predict(support_items, support_ratings, target_items)
        if support_items.size == 0:
            return biased
        residuals = support_ratings - super()._predict(support_items, support_ratings, support_items)
        user_factors = _ridge_solve(self.item_factors_[support_items], residuals, self.ridge)
        return biased + self.item_factors_[target_items] @ user_factors


@dataclass
class TextRidge(RatingBaseline):
    """Per-user ridge regression on frozen, unit-length item-text embeddings (rows = item indices).

    A user's ratings minus their mean are regressed on the embeddings of the rated items; with no
    rating the prediction is the training mean. Clipped to ``rating_range``.

    >>> embeddings = np.eye(3)
    >>> ridge = TextRidge(embeddings, ridge=1.0).fit(np.array([0, 1]), np.array([0, 1]), np.array([5.0, 1.0]), 3)
    >>> ridge.predict(np.array([0, 1]), np.array([5.0, 1.0]), np.array([0, 1, 2]))
    array([4., 2., 3.])
    >>> ridge.predict(np.array([]), np.array([]), np.array([2]))
    array([3.])
    """

    embeddings: np.ndarray
    ridge: float = 1.0
    rating_range: tuple[float, float] = (1.0, 5.0)
    name: ClassVar[str] = "fresh head on frozen text"
    mean_: float = 0.0

    def _fit(self, users: np.ndarray, items: np.ndarray, ratings: np.ndarray, n_items: int) -> None:
        require(self.embeddings.ndim == 2 and len(self.embeddings) == n_items,
                f"embeddings must be [n_items={n_items}, dim], got shape {self.embeddings.shape}")
        require(self.ridge > 0, f"ridge must be > 0, got {self.ridge!r}")
        self.mean_ = float(ratings.mean())

    def _predict(self, support_items: np.ndarray, support_ratings: np.ndarray, target_items: np.ndarray) -> np.ndarray:
        offset = float(support_ratings.mean()) if support_ratings.size else self.mean_
        weights = _ridge_solve(self.embeddings[support_items], support_ratings - offset, self.ridge)
        return np.clip(offset + self.embeddings[target_items] @ weights, *self.rating_range)


BASELINES: dict[str, type[RatingBaseline]] = {
    cls.name: cls for cls in (GlobalMean, ItemMean, BiasBaseline, Popularity, MatrixFactorization)
}
"""The baselines by display name, in benchmark-table order."""
