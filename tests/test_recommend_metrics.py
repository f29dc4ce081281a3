"""Rating and ranking metrics on tiny hand-computed arrays: values, ties, the NaN case and bad inputs."""

from __future__ import annotations

import math

import numpy as np
import pytest

from personalize.errors import ConfigError
from personalize.recommend.metrics import full_catalogue_topk, mae, mean_ci, ndcg_at_k, precision_at_k, rmse

# --- mae / rmse ---------------------------------------------------------------------------------


def test_mae_and_rmse_by_hand() -> None:
    pred, true = np.array([1.0, 2.0, 4.0, 4.0]), np.array([2.0, 2.0, 2.0, 4.0])
    assert mae(pred, true) == pytest.approx(0.75)           # (1 + 0 + 2 + 0) / 4
    assert rmse(pred, true) == pytest.approx(math.sqrt(1.25))  # sqrt((1 + 0 + 4 + 0) / 4)
    assert mae([3.0], [3.0]) == 0.0


@pytest.mark.parametrize("metric", [mae, rmse])
@pytest.mark.parametrize(("pred", "true"), [([], []), ([1.0, 2.0], [1.0]), ([[1.0]], [[1.0]])])
def test_rating_metrics_reject_empty_mismatched_or_2d(metric, pred: list, true: list) -> None:
    with pytest.raises(ConfigError):
        metric(pred, true)


# --- precision@k --------------------------------------------------------------------------------


def test_precision_at_k_counts_relevant_items_in_the_predicted_top() -> None:
    scores, ratings = [0.1, 0.9, 0.5, 0.7], [5, 4, 1, 3]
    assert precision_at_k(scores, ratings, k=1) == 1.0   # item 1 (rating 4)
    assert precision_at_k(scores, ratings, k=2) == 0.5   # items 1, 3 (ratings 4, 3)
    assert precision_at_k(scores, ratings, k=4) == 0.5   # all: 5 and 4 are relevant
    assert precision_at_k(scores, ratings, k=2, relevant=3.0) == 1.0


def test_precision_at_k_larger_than_the_query_uses_the_whole_query() -> None:
    assert precision_at_k([0.9, 0.1, 0.5], [5, 1, 4], k=10) == pytest.approx(2 / 3)


def test_precision_at_k_breaks_ties_by_item_order() -> None:
    assert precision_at_k([0.5, 0.5, 0.5], [1, 5, 5], k=1) == 0.0
    assert precision_at_k([0.5, 0.5, 0.5], [5, 1, 1], k=1) == 1.0
    assert precision_at_k([0.5, 0.5, 0.5], [1, 5, 5], k=2) == 0.5


@pytest.mark.parametrize("k", [0, -1, 2.5])
def test_ranking_metrics_reject_bad_k(k) -> None:
    with pytest.raises(ConfigError, match="k must be"):
        precision_at_k([0.1], [5], k=k)
    with pytest.raises(ConfigError, match="k must be"):
        ndcg_at_k([0.1], [5], k=k)


# --- ndcg@k -------------------------------------------------------------------------------------


def test_ndcg_of_a_perfect_ordering_is_one() -> None:
    assert ndcg_at_k([0.3, 0.9, 0.1, 0.5], [3, 5, 1, 4], k=4) == pytest.approx(1.0)
    assert ndcg_at_k([0.3, 0.9, 0.1, 0.5], [3, 5, 1, 4], k=2) == pytest.approx(1.0)


def test_ndcg_of_a_reversed_ordering_by_hand() -> None:
    # predicted order: ratings 1, 3, 5 -> gains 1, 7, 31; ideal order 5, 3, 1 -> gains 31, 7, 1
    dcg = 1 / math.log2(2) + 7 / math.log2(3) + 31 / math.log2(4)
    ideal = 31 / math.log2(2) + 7 / math.log2(3) + 1 / math.log2(4)
    assert ndcg_at_k([0.9, 0.5, 0.1], [1, 3, 5], k=3) == pytest.approx(dcg / ideal)
    assert ndcg_at_k([0.9, 0.5, 0.1], [1, 3, 5], k=3) == pytest.approx(0.58237, abs=1e-5)


def test_ndcg_at_k_truncates_both_the_predicted_and_the_ideal_list() -> None:
    # top-1 predicted: rating 3 (gain 7); ideal top-1: rating 5 (gain 31)
    assert ndcg_at_k([0.1, 0.9, 0.5], [5, 3, 1], k=1) == pytest.approx(7 / 31)


def test_ndcg_breaks_ties_by_item_order() -> None:
    assert ndcg_at_k([0.5, 0.5], [5, 1], k=1) == 1.0
    assert ndcg_at_k([0.5, 0.5], [1, 5], k=1) == pytest.approx(1 / 31)


def test_ndcg_is_zero_when_the_ideal_dcg_is_zero() -> None:
    assert ndcg_at_k([0.9, 0.1], [0, 0], k=2) == 0.0


# --- full-catalogue top-k -----------------------------------------------------------------------


def test_full_catalogue_topk_excludes_seen_items_and_scores_hits_by_hand() -> None:
    scores = np.array([0.99, 0.9, 0.8, 0.7, 0.6, 0.5])
    seen = np.array([True, False, False, False, False, False])          # the best-scored item is not ranked
    relevant = np.array([False, False, True, False, True, True])
    recall, ndcg = full_catalogue_topk(scores, seen, relevant, k=3)       # top 3 unseen: items 1, 2, 3
    assert recall == pytest.approx(1 / 3)                                  # one hit of min(3, 3)
    ideal = 1 + 1 / math.log2(3) + 1 / math.log2(4)
    assert ndcg == pytest.approx((1 / math.log2(3)) / ideal)               # the hit is at rank 2


def test_full_catalogue_recall_divides_by_min_of_k_and_relevant_count() -> None:
    scores = np.array([0.9, 0.8, 0.7, 0.6])
    seen = np.zeros(4, dtype=bool)
    relevant = np.array([True, False, False, False])
    assert full_catalogue_topk(scores, seen, relevant, k=3) == pytest.approx((1.0, 1.0))
    everything = np.ones(4, dtype=bool)
    recall, ndcg = full_catalogue_topk(scores, seen, everything, k=2)
    assert (recall, ndcg) == pytest.approx((1.0, 1.0))


def test_full_catalogue_breaks_ties_by_item_order() -> None:
    scores, seen = np.zeros(4), np.zeros(4, dtype=bool)
    assert full_catalogue_topk(scores, seen, np.array([False, False, False, True]), k=2) == (0.0, 0.0)
    assert full_catalogue_topk(scores, seen, np.array([True, False, False, False]), k=2)[0] == 1.0


def test_full_catalogue_without_relevant_items_is_nan() -> None:
    recall, ndcg = full_catalogue_topk(np.array([0.5, 0.1]), np.array([True, False]), np.zeros(2, dtype=bool))
    assert math.isnan(recall) and math.isnan(ndcg)


def test_full_catalogue_rejects_bad_masks() -> None:
    scores = np.array([0.5, 0.1, 0.3])
    with pytest.raises(ConfigError, match="both seen"):
        full_catalogue_topk(scores, np.array([True, False, False]), np.array([True, False, False]))
    with pytest.raises(ConfigError, match="boolean"):
        full_catalogue_topk(scores, np.array([1, 0, 0]), np.array([False, True, False]))
    with pytest.raises(ConfigError, match="shape"):
        full_catalogue_topk(scores, np.array([True, False]), np.array([False, True, False]))


# --- mean_ci ------------------------------------------------------------------------------------


def test_mean_ci_by_hand_ignoring_nan() -> None:
    mean, half = mean_ci([1.0, 2.0, 3.0, 6.0, float("nan")])
    assert mean == pytest.approx(3.0)
    assert half == pytest.approx(1.96 * math.sqrt(14 / 3) / 2)   # std(ddof=1) = sqrt(14/3), n = 4


def test_mean_ci_of_one_value_and_of_none() -> None:
    assert mean_ci([2.5, float("nan")]) == (2.5, 0.0)
    mean, half = mean_ci([float("nan")])
    assert math.isnan(mean) and math.isnan(half)
    with pytest.raises(ConfigError):
        mean_ci([[1.0, 2.0]])
