"""Biased matrix factorisation fitted by alternating least squares (ALS), vectorised over users and items.

The model of a rating ``r`` of item ``i`` by user ``u`` is::

    r ≈ μ + b_i + b_u + p_u · q_i

and it is fitted in two stages on a log of ``(user, item, rating)`` triples:

1. **Biases**, as :class:`~personalize.recommend.baselines.BiasBaseline` does: ``μ`` is the mean
   rating; ``b_i = Σ (r - μ) / (n_i + item_shrinkage)`` over the item's ratings; then
   ``b_u = Σ (r - μ - b_i) / (n_u + user_shrinkage)`` over the user's ratings. A user or item
   without ratings has bias 0.
2. **Factors** on the residuals ``e = r - μ - b_i - b_u``. The item factors ``Q`` start as
   ``np.random.default_rng(seed).normal(0, 0.1, (n_items, factors))``; each iteration then solves
   every user's ridge regression of their residuals on the factors of the items they rated,
   ``p_u = (Q_uᵀ Q_u + ridge I)⁻¹ Q_uᵀ e_u``, and then every item's on the factors of its raters,
   ``q_i = (P_iᵀ P_i + ridge I)⁻¹ P_iᵀ e_i``. A user or item without ratings gets zero factors.

Each half-step is one batched solve, with no loop over users or items: the log is held as sparse
owners x partners matrices of counts and residuals (built once), so every owner's ``XᵀX`` is one
sparse product with the partners' outer products ``x xᵀ`` and its ``Xᵀe`` one with their factors;
all owners are then solved at once (:func:`~personalize.engine.gaussian.ridge_solve`). An owner
without ratings has a zero ``XᵀX`` and ``Xᵀe``, so its solution is zero. Memory is
``O(ratings + (users + items) · factors²)``; no users x items array is built.

Two users who agree on two items, and an item nobody rated (item 3). Item 0's ratings 5 and 4 are
3 above the mean 3 in all, so its bias is 3 / (2 ratings + ITEM_SHRINKAGE) = 0.25:

>>> users, items = np.array([0, 0, 1, 1, 2]), np.array([0, 1, 0, 1, 2])
>>> ratings = np.array([5.0, 1.0, 4.0, 2.0, 3.0])
>>> fit = fit_biased_als(users, items, ratings, n_users=3, n_items=4, factors=2, ridge=0.1, iterations=10)
>>> round(fit.global_mean, 2), fit.item_bias.round(2).tolist()
(3.0, [0.25, -0.25, 0.0, 0.0])
>>> fit.item_factors.shape, fit.user_factors.shape, fit.item_factors[3].tolist()
((4, 2), (3, 2), [0.0, 0.0])
>>> prediction = fit.predict(users, items)
>>> bool(np.abs(prediction - ratings).max() < 0.5)
True
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import torch
from numpy.typing import ArrayLike

from personalize.engine.gaussian import ridge_solve
from personalize.errors import require

ITEM_SHRINKAGE = 10.0
"""Default shrinkage of the item biases toward 0 (the count of pseudo-ratings of residual 0)."""

USER_SHRINKAGE = 5.0
"""Default shrinkage of the user biases toward 0."""

INIT_STD = 0.1
"""Standard deviation of the random initial item factors."""

@dataclass(frozen=True)
class ALSFactors:
    """A fitted biased matrix factorisation; every array is float64.

    Attributes:
        global_mean: ``μ``, the mean training rating.
        item_bias: ``b_i`` [n_items].
        user_bias: ``b_u`` [n_users].
        item_factors: ``q_i`` [n_items, factors].
        user_factors: ``p_u`` [n_users, factors] (from the last iteration's user half-step).
    """

    global_mean: float
    item_bias: np.ndarray
    user_bias: np.ndarray
    item_factors: np.ndarray
    user_factors: np.ndarray

    def predict(self, users: ArrayLike, items: ArrayLike) -> np.ndarray:
        """``μ + b_i + b_u + p_u · q_i`` for each (user, item) pair of training indices."""
        user_array, item_array = np.asarray(users), np.asarray(items)
        interaction = np.einsum("rd,rd->r", self.user_factors[user_array], self.item_factors[item_array])
        return self.global_mean + self.item_bias[item_array] + self.user_bias[user_array] + interaction


def fit_biased_als(users: ArrayLike, items: ArrayLike, ratings: ArrayLike, n_users: int, n_items: int, *,
                   factors: int = 10, ridge: float = 10.0, iterations: int = 15, seed: int = 0,
                   item_shrinkage: float = ITEM_SHRINKAGE, user_shrinkage: float = USER_SHRINKAGE) -> ALSFactors:
    """Fit ``μ + b_i + b_u + p_u · q_i`` to a rating log by biased ALS (see the module docstring).

    Args:
        users: [R] user index of each rating, in ``[0, n_users)``.
        items: [R] item index of each rating, in ``[0, n_items)``.
        ratings: [R] finite ratings.
        n_users, n_items: sizes of the index ranges (indices without ratings are allowed).
        factors: length of ``p_u`` and ``q_i``; ridge: > 0, the L2 penalty of every ridge solve;
        iterations: ALS rounds (user half-step, then item half-step); seed: of the initial item factors;
        item_shrinkage, user_shrinkage: >= 0, pseudo-counts of the biases.
    """
    user_array, item_array, rating_array = _checked_log(users, items, ratings, n_users, n_items)
    _check_settings(factors, ridge, iterations, item_shrinkage, user_shrinkage)
    global_mean = float(rating_array.mean())
    item_bias = _shrunk_sums(item_array, rating_array - global_mean, n_items, item_shrinkage)
    residuals = rating_array - global_mean - item_bias[item_array]
    user_bias = _shrunk_sums(user_array, residuals, n_users, user_shrinkage)
    residuals = residuals - user_bias[user_array]
    item_factors = np.random.default_rng(seed).normal(0.0, INIT_STD, size=(n_items, factors))
    user_factors, item_factors = _alternate(torch.as_tensor(user_array), torch.as_tensor(item_array),
                                            torch.as_tensor(residuals), torch.as_tensor(item_factors),
                                            n_users, ridge, iterations)
    return ALSFactors(global_mean=global_mean, item_bias=item_bias, user_bias=user_bias,
                      item_factors=item_factors.numpy(), user_factors=user_factors.numpy())


# --- input checks --------------------------------------------------------------------------------


def _checked_log(users: ArrayLike, items: ArrayLike, ratings: ArrayLike, n_users: int, n_items: int
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The log as int64 users, int64 items and float64 ratings, after checking shapes and ranges."""
    for name, size in (("n_users", n_users), ("n_items", n_items)):
        require(isinstance(size, int | np.integer) and size >= 1, f"{name} must be an int >= 1, got {size!r}")
    item_array = checked_indices(items, "items", int(n_items))
    require(item_array.size >= 1, "ratings must hold at least one rating, got none")
    user_array = checked_indices(users, "users", int(n_users))
    require(user_array.shape == item_array.shape,
            f"users must have the shape of items {item_array.shape}, got {user_array.shape}")
    rating_array = np.asarray(ratings, dtype=np.float64)
    require(rating_array.shape == item_array.shape,
            f"ratings must have the shape of items {item_array.shape}, got {rating_array.shape}")
    require(bool(np.all(np.isfinite(rating_array))), "ratings must be finite")
    return user_array, item_array, rating_array


def checked_indices(values: ArrayLike, name: str, size: int) -> np.ndarray:
    """``values`` as a 1-D int64 array of indices in ``[0, size)`` (an empty array of any dtype is fine);
    refused by ``name`` otherwise."""
    array = np.asarray(values)
    require(array.ndim == 1, f"{name} must be 1-D, got shape {array.shape}")
    if array.size == 0:
        return array.astype(np.int64)
    require(np.issubdtype(array.dtype, np.integer), f"{name} must hold integer indices, got dtype {array.dtype}")
    require(array.min() >= 0 and array.max() < size,
            f"{name} must lie in [0, {size}), got [{array.min()}, {array.max()}]")
    return array.astype(np.int64)


def _check_settings(factors: int, ridge: float, iterations: int, item_shrinkage: float, user_shrinkage: float
                    ) -> None:
    require(isinstance(factors, int | np.integer) and factors >= 1, f"factors must be an int >= 1, got {factors!r}")
    require(ridge > 0, f"ridge must be > 0, got {ridge!r}")
    require(isinstance(iterations, int | np.integer) and iterations >= 1,
            f"iterations must be an int >= 1, got {iterations!r}")
    require(item_shrinkage >= 0, f"item_shrinkage must be >= 0, got {item_shrinkage!r}")
    require(user_shrinkage >= 0, f"user_shrinkage must be >= 0, got {user_shrinkage!r}")


# --- the two stages ------------------------------------------------------------------------------


def _shrunk_sums(keys: np.ndarray, values: np.ndarray, n_keys: int, shrinkage: float) -> np.ndarray:
    """Per key ``Σ values / (count + shrinkage)``; 0 for a key without values."""
    sums = np.bincount(keys, weights=values, minlength=n_keys)
    denominator = np.bincount(keys, minlength=n_keys) + shrinkage
    return np.divide(sums, denominator, out=np.zeros(n_keys), where=denominator > 0)


def _alternate(users: torch.Tensor, items: torch.Tensor, residuals: torch.Tensor, item_factors: torch.Tensor,
               n_users: int, ridge: float, iterations: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``iterations`` rounds of (user half-step, item half-step) from the initial item factors."""
    n_items = len(item_factors)
    by_user = _SparseLog(users, items, residuals, n_users, n_items)
    by_item = _SparseLog(items, users, residuals, n_items, n_users)
    user_factors = torch.zeros(n_users, item_factors.shape[1], dtype=torch.float64)
    for _ in range(iterations):
        user_factors = by_user.solve(item_factors, ridge)
        item_factors = by_item.solve(user_factors, ridge)
    return user_factors, item_factors


class _SparseLog:
    """The log as two sparse owners x partners matrices, built once: how often each owner rated each
    partner (``counts``) and the sum of those residuals (``residuals``).

    An owner's ``XᵀX`` is then ``Σ_partners count · x xᵀ`` and its ``Xᵀe`` is ``Σ residual · x``:
    one sparse product each with the partners' outer products and factors, so a half-step costs
    ``O(ratings · factors²)`` without an array per rating.
    """

    def __init__(self, owners: torch.Tensor, partners: torch.Tensor, residuals: torch.Tensor, n_owners: int,
                 n_partners: int) -> None:
        index = torch.stack([owners, partners])
        shape = (n_owners, n_partners)
        with warnings.catch_warnings():  # CSR is "beta" in torch; it is 2-5x faster here than COO
            warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
            self.counts = _csr(torch.sparse_coo_tensor(index, torch.ones(len(owners), dtype=torch.float64), shape,
                                                       check_invariants=True))
            self.residuals = _csr(torch.sparse_coo_tensor(index, residuals, shape, check_invariants=True))

    def solve(self, partner_factors: torch.Tensor, ridge: float) -> torch.Tensor:
        """Every owner's ridge regression of its residuals on its partners' factors, in one batched solve."""
        size = partner_factors.shape[1]
        outer = (partner_factors[:, :, None] * partner_factors[:, None, :]).reshape(len(partner_factors), -1)
        gram = torch.sparse.mm(self.counts, outer).reshape(-1, size, size)
        return ridge_solve(gram, torch.sparse.mm(self.residuals, partner_factors), ridge)


def _csr(matrix: torch.Tensor) -> torch.Tensor:
    """A COO matrix with repeated entries summed, in CSR layout."""
    return matrix.coalesce().to_sparse_csr()
