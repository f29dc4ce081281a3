"""The shipped task suites on the real data sets."""

from __future__ import annotations

import numpy as np
import pytest

from personalize.tasks import load_suite

pytestmark = pytest.mark.slow


def test_clothing_sentiment_keeps_test_classes_out_of_training(real_data) -> None:
    suite = load_suite("clothing-sentiment")
    splits = suite.splits()
    assert set(splits.test) == {"Jackets", "Sweaters", "Skirts"}
    assert not set(splits.train) & (set(splits.val) | set(splits.test))
    train_episodes = [suite.sample("train", shots=4, rng=seed) for seed in range(200)]
    assert {episode.task for episode in train_episodes} <= set(splits.train)
    test_episodes = suite.episodes("test", shots=16, n=100, seed=0)
    assert {episode.task for episode in test_episodes} == set(splits.test)
    for episode in test_episodes[:20]:
        assert np.bincount(episode.support_labels).tolist() == [16, 16]
        assert np.bincount(episode.query_labels).tolist() == [32, 32]
        assert not set(episode.support_rows) & set(episode.query_rows)


def test_clothing_labels_follow_the_rating_rule(real_data) -> None:
    from personalize import data

    reviews = data.load("clothing-reviews")["reviews"]
    suite = load_suite("clothing-sentiment")
    counts = suite.pool.class_counts("Jackets")
    jackets = reviews.filter(reviews["domain"] == "Jackets", reviews["text"].is_not_null())
    assert counts == {"negative": int((jackets["rating"] <= 2).sum()), "positive": int((jackets["rating"] >= 4).sum())}
    episode = suite.episodes("test", shots=2, n=1, seed=0, task="Jackets")[0]
    by_text = dict(zip(jackets["text"].to_list(), jackets["rating"].to_list()))
    for text, label in zip(episode.query_texts, episode.query_labels):
        assert (by_text[text] >= 4) == (episode.classes[label] == "positive")


def test_three_class_clothing_keeps_rating_3_as_neutral(real_data) -> None:
    from personalize import data

    reviews = data.load("clothing-reviews")["reviews"]
    skirts = reviews.filter(reviews["domain"] == "Skirts", reviews["text"].is_not_null())
    by_text = dict(zip(skirts["text"].to_list(), skirts["rating"].to_list()))
    episode = load_suite("clothing-sentiment-3way").episodes("test", shots=8, n=1, seed=0, task="Skirts")[0]
    assert episode.classes == ("negative", "neutral", "positive")
    assert np.bincount(episode.query_labels).tolist() == [32, 32, 32]
    expected = {"negative": (1, 2), "neutral": (3,), "positive": (4, 5)}
    for text, label in zip(episode.query_texts, episode.query_labels):
        assert by_text[text] in expected[episode.classes[label]]


def test_movies_sentiment_is_one_balanced_test_domain(real_data) -> None:
    suite = load_suite("movies-sentiment")
    assert suite.splits().test == ("movies",) and not suite.splits().train
    assert suite.pool.class_counts("movies") == {"negative": 5405, "positive": 7403}


def test_movielens_users_follow_the_melu_protocol(real_data) -> None:
    from personalize import data

    suite = load_suite("movielens-users")
    ratings = data.load("movielens-100k")["ratings"]
    per_user = ratings.group_by("user_id").len()
    eligible = set(per_user.filter((per_user["len"] >= 13) & (per_user["len"] <= 100))["user_id"].to_list())
    assert set(suite.pool.tasks) == eligible
    splits = suite.splits()
    assert sorted(map(len, (splits.train, splits.val, splits.test))) == sorted(
        [len(eligible) - 2 * round(len(eligible) * 0.1), round(len(eligible) * 0.1), round(len(eligible) * 0.1)])
    episodes = suite.episodes("test", shots=None, seed=0)
    assert {episode.user for episode in episodes} == set(splits.test)
    assert all(len(episode.query_rows) == 10 for episode in episodes)
    assert suite.splits(seed=1).test != splits.test
