"""Inputs that used to give silently wrong results are refused, or handled and said so (tiny encoder).

- ``predict("great")`` read a bare string as five one-character texts;
- a history rating the same item several times counted each copy as another rating;
- ``adapt_many`` dropped a user whose items were all unknown, warning about the items only.
"""

from __future__ import annotations

import warnings

import numpy as np
import polars as pl
import pytest

from personalize.encoder import tiny_encoder
from personalize.errors import ConfigError, SchemaError
from personalize.learners import create_learner
from personalize.recommend import Recommender, RecommenderConfig
from personalize.sentiment import SentimentClassifier


@pytest.fixture(scope="module")
def classifier() -> SentimentClassifier:
    return SentimentClassifier.build(create_learner("protonet", tiny_encoder(seed=0)), ["good", "bad"], [1, 0])


@pytest.fixture(scope="module")
def rec() -> Recommender:
    rng = np.random.default_rng(0)
    items = pl.DataFrame({"item_id": range(30), "text": [f"film number {i}" for i in range(30)]})
    ratings = pl.DataFrame({"user_id": np.repeat(np.arange(40), 12), "item_id": np.tile(np.arange(12), 40),
                            "rating": rng.integers(1, 6, 480)})
    return Recommender.meta_fit(ratings, items, config=RecommenderConfig(factors=4, steps=4, val_every=2),
                                encoder=tiny_encoder(seed=0))


@pytest.mark.parametrize("method", ["predict", "predict_proba", "predict_with_uncertainty"])
@pytest.mark.parametrize("texts", ["great", b"great"])
def test_a_bare_string_is_refused_by_predict(classifier, method, texts) -> None:
    model = classifier.adapt(["love it", "hate it"], ["yes", "no"])
    kind = type(texts).__name__
    with pytest.raises(ConfigError, match=rf"texts must be a list of strings, got a single {kind} .*wrap it in a list"):
        getattr(model, method)(texts)
    assert len(model.predict(["great"])) == 1  # the fix the message names works


def test_a_bare_string_is_refused_by_adapt_with_the_same_message(classifier) -> None:
    with pytest.raises(ConfigError, match="texts must be a list of strings, got a single str 'great'"):
        classifier.adapt("great", ["yes", "no", "yes", "no", "yes"])
    with pytest.raises(ConfigError, match="texts must be a list of strings, got generator"):
        classifier.adapt(["love it", "hate it"], ["yes", "no"]).predict(text for text in ["a", "b"])


def test_a_history_rating_an_item_twice_is_refused_naming_it(rec) -> None:
    history = pl.DataFrame({"item_id": [3, 7, 3, 3], "rating": [5, 1, 4, 5]})
    with pytest.raises(SchemaError, match=r"the history of user 'ann' rates item 3 3 times .*keep one rating per item"):
        rec.adapt(history, user="ann")
    with pytest.raises(SchemaError, match=r"^the history rates item 3 3 times"):
        rec.adapt(history)


def test_a_log_rating_an_item_twice_for_one_user_is_refused_naming_both(rec) -> None:
    log = pl.DataFrame({"user_id": [1, 1, 2, 2, 2], "item_id": [3, 4, 3, 5, 5], "rating": [5, 1, 4, 2, 3]})
    with pytest.raises(SchemaError, match=r"user 2 rates item 5 2 times \(1 repeated item\(s\) in all"):
        rec.adapt_many(log)
    distinct = log.filter(~((pl.col("user_id") == 2) & (pl.col("item_id") == 5) & (pl.col("rating") == 3)))
    assert set(rec.adapt_many(distinct)) == {1, 2}  # the same item for two users is fine


def test_adapt_many_keeps_a_user_whose_items_are_all_unknown_and_names_them(rec) -> None:
    log = pl.DataFrame({"user_id": ["a", "b", "b", "c"], "item_id": [3, 999, 998, 4], "rating": [5, 1, 4, 2]})
    with pytest.warns(UserWarning) as caught:
        users = rec.adapt_many(log)
    messages = [str(warning.message) for warning in caught]
    assert "skipped 2 item id(s) not in the catalogue, e.g. [999, 998]" in messages
    assert "1 user(s) have no item in the catalogue, e.g. ['b']: they get the meta-learned prior " \
           "(the same scores as any new user)" in messages
    assert list(users) == ["a", "b", "c"]  # every user of the log, in order
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        empty = pl.DataFrame({"item_id": [], "rating": []}, schema={"item_id": pl.Int64, "rating": pl.Float64})
        prior = rec.adapt(empty)
    np.testing.assert_array_equal(users["b"].predict([3, 4, 5]), prior.predict([3, 4, 5]))
    assert not np.array_equal(users["a"].predict([3]), prior.predict([3]))
    with pytest.raises(SchemaError, match=r"2 item id\(s\) are not in the catalogue, e.g. \[999, 998\]"):
        rec.adapt_many(log, unknown_items="raise")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # "ignore" means no warning at all, and still every user
        assert list(rec.adapt_many(log, unknown_items="ignore")) == ["a", "b", "c"]
