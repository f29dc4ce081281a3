"""Users as engine tasks (``personalize.recommend.user_tasks``): batches, episodes, meta-fit and prediction.

Synthetic ratings with a planted structure: every item has a quality (its bias) and a genre; every
user likes one genre. A tiny random encoder reads item texts that name the genre.
"""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
import torch

from personalize.encoder import tiny_encoder
from personalize.engine.config import AdapterConfig
from personalize.errors import ConfigError, EpisodeError, SchemaError
from personalize.meta_fit import MetaFitConfig
from personalize.recommend.user_tasks import (
    ItemVectorConfig,
    UserEpisodes,
    UserItems,
    UserTaskBatches,
    meta_fit_users,
    predict_users,
    user_learner,
)
from personalize.tasks.interactions import InteractionPool

ADAPTER = AdapterConfig(rank=2, layers=(1,))
ITEMS = 40
GENRES = ("comedy", "drama")


def planted_ratings(users: int, per_user: int, seed: int) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    quality = np.random.default_rng(99).normal(0, 0.8, ITEMS)
    rows = []
    for user in range(users):
        liked = user % 2
        for item in rng.choice(ITEMS, per_user, replace=False):
            taste = 1.0 if item % 2 == liked else -1.0
            rows.append((user + 1000 * seed, int(item), float(np.clip(np.round(3.2 + quality[item] + taste), 1, 5))))
    return pl.DataFrame(rows, schema=["user_id", "item_id", "rating"], orient="row")


@pytest.fixture(scope="module")
def encoder():
    return tiny_encoder(seed=0)


@pytest.fixture(scope="module")
def items():
    texts = [f"a {GENRES[i % 2]} film, number {i}" for i in range(ITEMS)]
    return UserItems.fit(planted_ratings(60, 25, seed=0), texts, item_ids=list(range(ITEMS)),
                         config=ItemVectorConfig(factors=2, iterations=5))


def test_item_vectors_hold_factors_then_the_bias_and_the_baseline_is_mean_plus_bias(items) -> None:
    assert items.vectors.shape == (ITEMS, 3) and items.side_features == 3
    torch.testing.assert_close(torch.as_tensor(items.baseline - items.baseline.mean(), dtype=torch.float32),
                               items.vectors[:, -1] - items.vectors[:, -1].mean())
    assert items.rating_range == (1.0, 5.0)


def test_batches_carry_each_items_vector_and_the_residual_target(encoder, items) -> None:
    batches = UserTaskBatches(user_learner("bayes", encoder, items, adapter=ADAPTER), items)
    batch = batches.batch([np.array([3, 7]), np.array([5])], [np.array([5.0, 1.0]), np.array([2.0])])
    assert batch.side.shape == (2, 2, 3)
    torch.testing.assert_close(batch.side[0, 1], items.vectors[7])
    expected = torch.tensor([5.0 - items.baseline[3], 1.0 - items.baseline[7]], dtype=torch.float32)
    torch.testing.assert_close(batch.targets[0], expected)
    assert batch.example_mask.tolist() == [[True, True], [True, False]]


def test_a_learner_whose_head_does_not_match_the_items_is_refused(encoder, items) -> None:
    text_only = UserItems(items.item_ids, items.texts, torch.zeros(ITEMS, 0), items.baseline, items.rating_range)
    with pytest.raises(ConfigError, match="takes 0 side features, the items have 3"):
        UserTaskBatches(user_learner("bayes", encoder, text_only, adapter=ADAPTER), items)
    with pytest.raises(SchemaError, match="1 item id"):
        items.positions([1, 999])


def test_user_episodes_sample_only_users_with_enough_ratings(items) -> None:
    ratings = planted_ratings(10, 12, seed=1)
    short = ratings.filter(pl.col("user_id") == 1000).head(5)
    pool = InteractionPool(pl.concat([ratings.filter(pl.col("user_id") != 1000), short]))
    episodes = UserEpisodes(pool, pool, query_size=5, shots=(3,))
    drawn = {episodes.sample("train", shots=5, rng=seed).user for seed in range(40)}
    assert 1000 not in drawn and len(drawn) > 3
    # no user has 30 + 5 ratings: the support is whatever a user has beyond the query (never the short user)
    capped = [episodes.sample("train", shots=30, rng=seed) for seed in range(20)]
    assert all(e.user != 1000 and len(e.support_rows) == 12 - 5 and len(e.query_rows) == 5 for e in capped)
    only_short = UserEpisodes(InteractionPool(short), InteractionPool(short), query_size=5, shots=(3,))
    with pytest.raises(EpisodeError, match="no train user has more than 5 ratings"):
        only_short.sample("train", shots=1, rng=0)
    with pytest.raises(ConfigError, match="splits 'train' and 'val'"):
        episodes.episodes("test", shots=3)


def test_meta_fit_then_predict_beats_the_item_baseline_on_held_out_users(encoder, items) -> None:
    """The planted taste (which genre a user likes) is learnable from a few ratings: adapted users
    must beat the item baseline (what the model predicts with no user at all) on held-out users."""
    train = InteractionPool(planted_ratings(60, 25, seed=0))
    val = InteractionPool(planted_ratings(12, 25, seed=2))
    learner = user_learner("bayes", encoder, items, adapter=ADAPTER, initial_prior_std=0.3, initial_noise_std=0.9)
    fit = MetaFitConfig(steps=30, meta_batch_size=8, shots=(5,), val_every=10, val_episodes=12, outer_lr=1e-2,
                        warmup_steps=2, progress=False)
    learner = meta_fit_users(learner, items, UserEpisodes(train, val, query_size=10, min_ratings=13), fit)
    assert learner.record["steps_done"] == 30
    test = planted_ratings(20, 25, seed=3)
    supports, targets, truths = [], [], []
    for _, frame in test.group_by("user_id", maintain_order=True):
        positions = items.positions(frame["item_id"].to_list())
        values = frame["rating"].to_numpy()
        supports.append((positions[:10], values[:10]))
        targets.append(positions[10:])
        truths.append(values[10:])
    predicted = predict_users(learner, items, supports, targets, max_examples=64)  # several batches
    error = np.abs(np.concatenate(predicted) - np.concatenate(truths)).mean()
    baseline = np.abs(np.concatenate([items.baseline[t] for t in targets]) - np.concatenate(truths)).mean()
    assert error < baseline - 0.2, (error, baseline)
    # Batching changes nothing: one user at a time gives the same predictions.
    alone = predict_users(learner, items, supports[:3], targets[:3], max_examples=1)
    for a, b in zip(alone, predicted[:3]):
        np.testing.assert_allclose(a, b, atol=1e-4)


def test_predict_users_refuses_an_empty_support(encoder, items) -> None:
    learner = user_learner("protonet", encoder, items, adapter=ADAPTER)
    with pytest.raises(ConfigError, match="needs >= 1 support rating"):
        predict_users(learner, items, [(np.array([], dtype=np.int64), np.array([]))], [np.array([1])])
