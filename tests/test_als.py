"""The vectorised biased ALS and the sparse PureSVD against straightforward per-row / dense references."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from personalize.errors import ConfigError
from personalize.recommend.als import ITEM_SHRINKAGE, USER_SHRINKAGE, fit_biased_als
from personalize.recommend.baselines import MatrixFactorization
from personalize.recommend.ranking import implicit_item_vectors

N_USERS, N_ITEMS = 40, 30


# --- references: the maths written the plain way ------------------------------------------------


def reference_als(users: np.ndarray, items: np.ndarray, ratings: np.ndarray, n_users: int, n_items: int,
                  factors: int, ridge: float, iterations: int, seed: int) -> dict[str, np.ndarray]:
    """Biased ALS with one ``np.linalg.solve`` per user and per item (the loop the library replaced)."""

    def shrunk(keys: np.ndarray, values: np.ndarray, n_keys: int, shrinkage: float) -> np.ndarray:
        out = np.zeros(n_keys)
        for key in range(n_keys):
            mine = values[keys == key]
            if mine.size + shrinkage > 0:
                out[key] = mine.sum() / (mine.size + shrinkage)
        return out

    def half_step(owners: np.ndarray, n_owners: int, partners: np.ndarray, residuals: np.ndarray,
                  partner_factors: np.ndarray) -> np.ndarray:
        out = np.zeros((n_owners, partner_factors.shape[1]))
        for owner in range(n_owners):
            rows = owners == owner
            if rows.any():
                x = partner_factors[partners[rows]]
                out[owner] = np.linalg.solve(x.T @ x + ridge * np.eye(x.shape[1]), x.T @ residuals[rows])
        return out

    mu = ratings.mean()
    item_bias = shrunk(items, ratings - mu, n_items, ITEM_SHRINKAGE)
    residuals = ratings - mu - item_bias[items]
    user_bias = shrunk(users, residuals, n_users, USER_SHRINKAGE)
    residuals = residuals - user_bias[users]
    item_factors = np.random.default_rng(seed).normal(0.0, 0.1, size=(n_items, factors))
    for _ in range(iterations):
        user_factors = half_step(users, n_users, items, residuals, item_factors)
        item_factors = half_step(items, n_items, users, residuals, user_factors)
    return {"global_mean": mu, "item_bias": item_bias, "user_bias": user_bias,
            "item_factors": item_factors, "user_factors": user_factors}


def dense_implicit_vectors(users: np.ndarray, items: np.ndarray, n_items: int, factors: int, seed: int
                           ) -> tuple[torch.Tensor, torch.Tensor]:
    """PureSVD on the dense who-rated-what matrix (what ``implicit_item_vectors`` did before)."""
    user_index = np.unique(users, return_inverse=True)[1]
    matrix = torch.zeros(int(user_index.max()) + 1, n_items)
    matrix[user_index, items] = 1.0
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        _, _, right = torch.svd_lowrank(matrix, q=min(factors + 10, *matrix.shape), niter=6)
    vectors = right[:, :factors]
    return vectors, vectors.T @ matrix.sum(0)


@pytest.fixture(scope="module")
def log() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A random log in which the last 3 users and the last 4 items have no rating, with repeated pairs."""
    rng = np.random.default_rng(7)
    size = 600
    users = rng.integers(0, N_USERS - 3, size)
    items = rng.integers(0, N_ITEMS - 4, size)
    return users, items, rng.integers(1, 6, size).astype(float)


# --- ALS ------------------------------------------------------------------------------------------


def test_vectorised_als_equals_the_per_row_loop(log: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
    users, items, ratings = log
    fitted = fit_biased_als(users, items, ratings, N_USERS, N_ITEMS, factors=4, ridge=2.0, iterations=6, seed=3)
    expected = reference_als(users, items, ratings, N_USERS, N_ITEMS, factors=4, ridge=2.0, iterations=6, seed=3)
    assert fitted.global_mean == pytest.approx(expected["global_mean"], abs=1e-12)
    for name in ("item_bias", "user_bias", "item_factors", "user_factors"):
        np.testing.assert_allclose(getattr(fitted, name), expected[name], atol=1e-8, rtol=0, err_msg=name)
    assert np.abs(fitted.item_factors).max() > 0.01  # the comparison above is not between two zero arrays
    np.testing.assert_array_equal(fitted.item_factors[-4:], 0.0)
    np.testing.assert_array_equal(fitted.user_factors[-3:], 0.0)
    np.testing.assert_array_equal(fitted.user_bias[-3:], 0.0)


def test_the_mf_baseline_keeps_the_fit_of_the_loop(log: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
    users, items, ratings = log
    baseline = MatrixFactorization(factors=3, ridge=5.0, iterations=4, seed=1).fit(users, items, ratings, N_ITEMS)
    expected = reference_als(users, items, ratings, int(users.max()) + 1, N_ITEMS, 3, 5.0, 4, 1)
    np.testing.assert_allclose(baseline.item_factors_, expected["item_factors"], atol=1e-8, rtol=0)
    np.testing.assert_allclose(baseline.item_bias_, expected["item_bias"], atol=1e-12, rtol=0)


@pytest.mark.parametrize(("change", "message"), [
    ({"items": np.array([0, N_ITEMS])}, rf"items must lie in \[0, {N_ITEMS}\), got \[0, {N_ITEMS}\]"),
    ({"users": np.array([-1, 0])}, r"users must lie in \[0, 40\), got \[-1, 0\]"),
    ({"users": np.array([0, 1, 2])}, r"users must have the shape of items \(2,\), got \(3,\)"),
    ({"ratings": np.array([[1.0, 2.0]])}, r"ratings must have the shape of items \(2,\), got \(1, 2\)"),
    ({"ratings": np.array([1.0, np.nan])}, "ratings must be finite"),
    ({"items": np.array([0.0, 1.0])}, "items must hold integer indices, got dtype float64"),
    ({"ridge": 0.0}, "ridge must be > 0, got 0.0"),
    ({"n_items": 0}, "n_items must be an int >= 1, got 0"),
])
def test_bad_inputs_are_refused_by_name(change: dict[str, object], message: str) -> None:
    arguments: dict[str, object] = {"users": np.array([0, 1]), "items": np.array([0, 1]),
                                    "ratings": np.array([4.0, 2.0]), "n_users": N_USERS, "n_items": N_ITEMS,
                                    "ridge": 1.0} | change
    with pytest.raises(ConfigError, match=message):
        fit_biased_als(**arguments)  # type: ignore[arg-type]


# --- PureSVD --------------------------------------------------------------------------------------


def test_sparse_puresvd_equals_the_dense_one_up_to_sign() -> None:
    rng = np.random.default_rng(11)
    # a low-rank taste structure, so the leading singular values are distinct; user ids are sparse ints
    taste = rng.random((120, 3)) @ rng.random((3, 50))
    users, items = np.nonzero(rng.random(taste.shape) < taste / taste.max() * 0.6)
    users, items = np.concatenate([users, users[:40]]) * 5 + 3, np.concatenate([items, items[:40]])  # repeats
    vectors, profile = implicit_item_vectors(users, items, n_items=55, factors=6, seed=4)
    expected, expected_profile = dense_implicit_vectors(users, items, n_items=55, factors=6, seed=4)
    signs = torch.sign((vectors * expected).sum(0))
    torch.testing.assert_close(vectors, expected * signs, atol=1e-4, rtol=0)
    torch.testing.assert_close(profile, expected_profile * signs, atol=1e-3, rtol=1e-5)
    assert torch.all(vectors[50:] == 0) and vectors.shape == (55, 6)  # items nobody rated


def test_the_profile_counts_each_rater_once() -> None:
    users, items = np.array([0, 0, 0, 1, 2]), np.array([0, 0, 1, 1, 2])
    vectors, profile = implicit_item_vectors(users, items, n_items=3, factors=2)
    torch.testing.assert_close(profile, vectors.T @ torch.tensor([1.0, 2.0, 1.0]))
