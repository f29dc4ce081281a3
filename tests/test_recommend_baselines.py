"""Recommendation baselines on a small synthetic low-rank rating matrix and on hand-computed examples."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from personalize.errors import ConfigError
from personalize.recommend.baselines import (
    BASELINES,
    BiasBaseline,
    GlobalMean,
    ItemMean,
    MatrixFactorization,
    Popularity,
    RatingBaseline,
)
from personalize.recommend.metrics import mae

N_TRAIN, N_TEST, N_ITEMS, SUPPORT = 100, 50, 100, 15


@dataclass(frozen=True)
class Ratings:
    """A dense synthetic matrix, the mask of observed entries, and the training interactions."""

    matrix: np.ndarray
    observed: np.ndarray
    users: np.ndarray
    items: np.ndarray
    ratings: np.ndarray


@pytest.fixture(scope="module")
def synthetic() -> Ratings:
    """``3.5 + b_u + b_i + p_u·q_i + noise`` (rank 3), 40% observed; the first N_TRAIN users train."""
    rng = np.random.default_rng(0)
    n_users = N_TRAIN + N_TEST
    p, q = rng.normal(0, 0.6, (n_users, 3)), rng.normal(0, 0.6, (N_ITEMS, 3))
    matrix = (3.5 + rng.normal(0, 0.4, (n_users, 1)) + rng.normal(0, 0.5, (1, N_ITEMS)) + p @ q.T
              + rng.normal(0, 0.3, (n_users, N_ITEMS)))
    observed = rng.random((n_users, N_ITEMS)) < 0.4
    users, items = np.nonzero(observed[:N_TRAIN])
    return Ratings(matrix, observed, users, items, matrix[users, items])


def cold_start_mae(model: RatingBaseline, data: Ratings) -> float:
    """Mean over the new users of the MAE on their held-out ratings, folded in from SUPPORT support ratings."""
    errors = []
    for user in range(N_TRAIN, N_TRAIN + N_TEST):
        rated = np.flatnonzero(data.observed[user])
        support, query = rated[:SUPPORT], rated[SUPPORT:]
        pred = model.predict(support, data.matrix[user, support], query)
        errors.append(mae(pred, data.matrix[user, query]))
    return float(np.mean(errors))


def fitted(cls: type[RatingBaseline], data: Ratings, **fields) -> RatingBaseline:
    return cls(**fields).fit(data.users, data.items, data.ratings, N_ITEMS)


# --- quality on the synthetic matrix ------------------------------------------------------------


def test_mf_beats_bias_beats_item_mean_beats_global_mean(synthetic: Ratings) -> None:
    scores = {name: cold_start_mae(fitted(cls, synthetic), synthetic)
              for name, cls in BASELINES.items() if name != "popularity"}
    assert scores["mf (als)"] < scores["bias"] - 0.02
    assert scores["bias"] < scores["item mean"] < scores["global mean"] - 0.05


def test_mf_with_the_true_rank_gets_close_to_the_noise(synthetic: Ratings) -> None:
    mf = cold_start_mae(fitted(MatrixFactorization, synthetic, factors=3, ridge=1.0), synthetic)
    assert mf < cold_start_mae(fitted(MatrixFactorization, synthetic), synthetic)
    assert mf < 0.4   # noise sd 0.3 -> its MAE alone is about 0.24


def test_mf_is_reproducible_and_ignores_how_users_are_numbered(synthetic: Ratings) -> None:
    first = fitted(MatrixFactorization, synthetic, iterations=3)
    again = MatrixFactorization(iterations=3).fit(synthetic.users * 7 - 500, synthetic.items, synthetic.ratings,
                                                  N_ITEMS)
    support, targets = np.array([0, 5, 9]), np.arange(N_ITEMS)
    np.testing.assert_allclose(first.predict(support, np.array([5.0, 1.0, 4.0]), targets),
                               again.predict(support, np.array([5.0, 1.0, 4.0]), targets))
    other_seed = fitted(MatrixFactorization, synthetic, iterations=3, seed=1)
    assert not np.allclose(first.predict(support, np.array([5.0, 1.0, 4.0]), targets),
                           other_seed.predict(support, np.array([5.0, 1.0, 4.0]), targets))


# --- hand-computed behaviour --------------------------------------------------------------------

USERS, ITEMS, RATINGS = np.array([0, 0, 1, 1, 2]), np.array([0, 1, 0, 1, 2]), np.array([4.0, 2.0, 4.0, 2.0, 5.0])
MU = 17.0 / 5


def test_item_mean_shrinks_a_one_rating_item_toward_the_global_mean() -> None:
    targets = np.array([0, 2, 3])   # item 0: two 4s; item 2: one 5; item 3: never rated
    pred = ItemMean(shrinkage=5).fit(USERS, ITEMS, RATINGS, n_items=4).predict([], [], targets)
    np.testing.assert_allclose(pred, [(8 + 5 * MU) / 7, (5 + 5 * MU) / 6, MU])
    assert MU < pred[1] < 5.0
    unshrunk = ItemMean(shrinkage=0).fit(USERS, ITEMS, RATINGS, n_items=4).predict([], [], targets)
    np.testing.assert_allclose(unshrunk, [4.0, 5.0, MU])


def test_bias_baseline_by_hand() -> None:
    model = BiasBaseline(item_shrinkage=1, user_shrinkage=2).fit(USERS, ITEMS, RATINGS, n_items=3)
    item_bias = np.array([2 * (4 - MU) / 3, 2 * (2 - MU) / 3, (5 - MU) / 2])
    user_bias = ((3 - MU - item_bias[0]) + (1 - MU - item_bias[1])) / (2 + 2)
    pred = model.predict(np.array([0, 1]), np.array([3.0, 1.0]), np.arange(3))
    np.testing.assert_allclose(pred, MU + item_bias + user_bias)
    assert user_bias < 0


def test_popularity_counts_training_ratings_and_ignores_the_support() -> None:
    model = Popularity().fit(USERS, ITEMS, RATINGS, n_items=4)
    np.testing.assert_array_equal(model.predict([2], [1.0], np.arange(4)), [2.0, 2.0, 1.0, 0.0])
    assert model.predict([], [], np.array([3, 0])).dtype == float


def test_global_mean() -> None:
    np.testing.assert_allclose(GlobalMean().fit(USERS, ITEMS, RATINGS, 3).predict([0], [1.0], [1, 2]), [MU, MU])


@pytest.mark.parametrize("name", sorted(BASELINES))
def test_every_baseline_predicts_the_whole_catalogue_from_an_empty_support(name: str, synthetic: Ratings) -> None:
    model = fitted(BASELINES[name], synthetic, **({"iterations": 2} if name == "mf (als)" else {}))
    pred = model.predict(np.array([]), np.array([]), np.arange(N_ITEMS))
    assert pred.shape == (N_ITEMS,) and np.all(np.isfinite(pred))
    assert BASELINES[name].name == name


def test_mf_with_an_empty_support_is_the_bias_baseline(synthetic: Ratings) -> None:
    mf = fitted(MatrixFactorization, synthetic, iterations=2)
    bias = fitted(BiasBaseline, synthetic)
    np.testing.assert_allclose(mf.predict([], [], np.arange(N_ITEMS)), bias.predict([], [], np.arange(N_ITEMS)))
    assert not np.allclose(mf.predict([0, 1], [5.0, 1.0], np.arange(N_ITEMS)),
                           bias.predict([0, 1], [5.0, 1.0], np.arange(N_ITEMS)))


# --- errors -------------------------------------------------------------------------------------


@pytest.mark.parametrize("cls", list(BASELINES.values()))
def test_predict_before_fit_raises(cls: type[RatingBaseline]) -> None:
    with pytest.raises(ConfigError, match="fit first"):
        cls().predict([], [], [0])


@pytest.mark.parametrize(("cls", "fields"), [
    (ItemMean, {"shrinkage": -1}),
    (BiasBaseline, {"item_shrinkage": -0.5}),
    (BiasBaseline, {"user_shrinkage": -1}),
    (MatrixFactorization, {"factors": 0}),
    (MatrixFactorization, {"ridge": 0.0}),
    (MatrixFactorization, {"iterations": 0}),
    (MatrixFactorization, {"user_shrinkage": -1}),
])
def test_invalid_hyper_parameters_raise(cls: type[RatingBaseline], fields: dict) -> None:
    with pytest.raises(ConfigError):
        cls(**fields)


def test_bad_inputs_raise() -> None:
    with pytest.raises(ConfigError, match=r"lie in \[0, 2\)"):
        GlobalMean().fit(USERS, ITEMS, RATINGS, n_items=2)
    with pytest.raises(ConfigError, match="integer"):
        GlobalMean().fit(USERS, ITEMS.astype(float), RATINGS, n_items=3)
    with pytest.raises(ConfigError, match="length"):
        GlobalMean().fit(USERS, ITEMS, RATINGS[:-1], n_items=3)
    with pytest.raises(ConfigError, match="at least one rating"):
        GlobalMean().fit([], [], [], n_items=3)
    model = BiasBaseline().fit(USERS, ITEMS, RATINGS, n_items=3)
    with pytest.raises(ConfigError, match="target_items"):
        model.predict([], [], [3])
    with pytest.raises(ConfigError, match="support_ratings"):
        model.predict([0, 1], [4.0], [0])
    with pytest.raises(ConfigError, match="finite"):
        model.predict([0], [float("nan")], [0])
