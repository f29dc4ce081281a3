"""User attributes condition the recommender's prior: a user with no rating gets a personal prior.

The synthetic log of ``test_recommend`` with one twist: a user's taste is told by an attribute
(``crowd``: "thrill" users love action, "calm" users love drama), plus a noise attribute (``age``)
that says nothing. Meta-fitted with the users frame, a new user with no rating but a known crowd
must be predicted in the right direction; the noise attribute must not matter much; bad users
frames and attribute dicts are refused by name.
"""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

import personalize as pz
from personalize.encoder import tiny_encoder
from personalize.errors import CheckpointError, ConfigError, SchemaError
from personalize.recommend import Recommender, RecommenderConfig
from personalize.recommend.attributes import UserAttributes
from tests.test_recommend import ACTION, DRAMA, history, synthetic_log

CONFIG = RecommenderConfig(factors=4, steps=60, val_every=20, users_per_step=16, learning_rate=0.05)
EMPTY = history([], [])


def users_frame(n_users: int = 120, seed: int = 0) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    return pl.DataFrame({"user_id": range(n_users),
                         "crowd": ["thrill" if user % 2 == 0 else "calm" for user in range(n_users)],
                         "age": rng.integers(18, 70, n_users)})


@pytest.fixture(scope="module")
def fitted() -> tuple[Recommender, Recommender]:
    """The same log meta-fitted with and without the users frame."""
    ratings, items = synthetic_log()
    with_attributes = Recommender.meta_fit(ratings, items, config=CONFIG, users=users_frame(),
                                           encoder=tiny_encoder(seed=0))
    without = Recommender.meta_fit(ratings, items, config=CONFIG, encoder=tiny_encoder(seed=0))
    return with_attributes, without


def gap(user) -> float:
    """How much more the user is predicted to like action than drama."""
    return float(user.predict(ACTION).mean() - user.predict(DRAMA).mean())


def test_a_user_with_no_rating_gets_the_prior_of_their_crowd(fitted) -> None:
    rec, plain = fitted
    assert rec.attributes is not None and rec.attributes.columns == ["crowd", "age"]
    thrill = rec.adapt(EMPTY, attributes={"crowd": "thrill", "age": 30})
    calm = rec.adapt(EMPTY, attributes={"crowd": "calm", "age": 30})
    assert gap(thrill) > 0.5 and gap(calm) < -0.5
    # Without attributes the same model has nothing to go on: the average user, no taste either way.
    with pytest.warns(UserWarning, match="empty history"):
        average = rec.adapt(EMPTY)
    assert abs(gap(average)) < 0.3 * min(gap(thrill), -gap(calm))
    # A model fitted without the users frame cannot tell the two crowds apart at all.
    with pytest.warns(UserWarning, match="empty history"):
        assert abs(gap(plain.adapt(EMPTY))) < 0.3 * gap(thrill)


def test_ratings_still_move_a_user_away_from_their_crowd(fitted) -> None:
    rec, _ = fitted
    contrarian = rec.adapt(history(ACTION[:4] + DRAMA[:4], [1, 1, 1, 1, 5, 5, 5, 5]),
                           attributes={"crowd": "thrill", "age": 40})
    assert gap(contrarian) < 0


def test_adapt_many_reads_the_users_frame_and_matches_adapt(fitted) -> None:
    rec, _ = fitted
    log = pl.DataFrame({"user_id": [500, 500, 501], "item_id": [ACTION[0], DRAMA[0], ACTION[1]],
                        "rating": [4.0, 2.0, 3.0]})
    users = pl.DataFrame({"user_id": [501, 500, 999], "crowd": ["calm", "thrill", "calm"], "age": [20, 60, 33]})
    many = rec.adapt_many(log, users=users)  # user 999 has no rating: ignored
    assert list(many) == [500, 501]
    one = rec.adapt(history([ACTION[1]], [3]), attributes={"crowd": "calm", "age": 20})
    np.testing.assert_allclose(many[501].predict(ACTION + DRAMA), one.predict(ACTION + DRAMA), atol=1e-5)
    with pytest.warns(UserWarning, match=r"no training user held.*'crowd': \['punk'\]"):
        rec.adapt_many(log, users=users.with_columns(crowd=pl.Series(["punk", "thrill", "calm"])))
    with pytest.raises(SchemaError, match=r"1 user\(s\) have no row in the users frame, e.g. \[501\]"):
        rec.adapt_many(log, users=users.filter(pl.col("user_id") != 501))
    with pytest.raises(SchemaError, match=r"lacks attribute column\(s\) \['age'\]"):
        rec.adapt_many(log, users=users.drop("age"))
    with pytest.raises(SchemaError, match=r"more than one row for user\(s\) \[500\]"):
        rec.adapt_many(log, users=pl.concat([users, users.filter(pl.col("user_id") == 500)]))


def test_bad_attribute_dicts_are_refused_by_name_and_unseen_values_fall_back_to_the_average(fitted) -> None:
    rec, plain = fitted
    with pytest.raises(SchemaError, match=r"attribute\(s\) \['age'\] missing"):
        rec.adapt(EMPTY, attributes={"crowd": "calm"})
    with pytest.raises(SchemaError, match=r"unknown attribute\(s\) \['crowed'\]"):
        rec.adapt(EMPTY, attributes={"crowed": "calm", "crowd": "calm", "age": 3})
    with pytest.raises(SchemaError, match="'age' is numeric in training"):
        rec.adapt(EMPTY, attributes={"crowd": "calm", "age": "old"})
    with pytest.raises(ConfigError, match="meta-fitted without user attributes"):
        plain.adapt(EMPTY, attributes={"crowd": "calm", "age": 3})
    with pytest.warns(UserWarning, match=r"no training user held.*'crowd': \['punk'\]"):
        punk = rec.adapt(EMPTY, attributes={"crowd": "punk", "age": 30})
    unknown = rec.adapt(EMPTY, attributes={"crowd": None, "age": 30})  # None: unknown, no warning needed
    np.testing.assert_allclose(punk.predict(ACTION), unknown.predict(ACTION))
    thrill = rec.adapt(EMPTY, attributes={"crowd": "thrill", "age": 30})
    calm = rec.adapt(EMPTY, attributes={"crowd": "calm", "age": 30})
    assert gap(calm) < gap(unknown) < gap(thrill)  # the average lies between the crowds


def test_meta_fit_refuses_users_frames_that_do_not_cover_the_log() -> None:
    ratings, items = synthetic_log(n_users=40)
    users = users_frame(40)
    small = RecommenderConfig(factors=2, steps=2, val_every=1, users_per_step=4)
    with pytest.raises(SchemaError, match=r"have no row in the users frame"):
        Recommender.meta_fit(ratings, items, config=small, users=users.filter(pl.col("user_id") != 3),
                             encoder=tiny_encoder(seed=0))
    with pytest.raises(SchemaError, match=r"no attribute column\(s\) \['height'\]"):
        Recommender.meta_fit(ratings, items, config=small, users=users, attribute_columns=["height"],
                             encoder=tiny_encoder(seed=0))
    with pytest.raises(ConfigError, match="attribute_columns= needs users="):
        Recommender.meta_fit(ratings, items, config=small, attribute_columns=["age"], encoder=tiny_encoder(seed=0))


def test_save_and_load_keep_the_attributes_and_refuse_mismatched_tables(fitted, tmp_path) -> None:
    rec, _ = fitted
    folder = rec.save(tmp_path / "rec")
    loaded = pz.load(folder, encoder=tiny_encoder(seed=0))
    assert loaded.attributes is not None and loaded.attributes.names == rec.attributes.names
    who = {"crowd": "calm", "age": 61}
    np.testing.assert_allclose(loaded.adapt(EMPTY, attributes=who).predict(ACTION),
                               rec.adapt(EMPTY, attributes=who).predict(ACTION), rtol=1e-6)
    import json

    document = json.loads((folder / "recommender.json").read_text())
    assert document["format_version"] >= 3  # attributes are saved since format 3
    document["attributes"]["columns"] = document["attributes"]["columns"][:1]  # the weights no longer fit
    (folder / "recommender.json").write_text(json.dumps(document))
    with pytest.raises(CheckpointError, match="attribute weights for"):
        pz.load(folder, encoder=tiny_encoder(seed=0))


def test_the_encoding_is_centred_and_rare_values_share_one_indicator() -> None:
    users = pl.DataFrame({"user_id": range(6), "job": ["a", "a", "a", "b", "b", "c"], "vip": [True] * 3 + [False] * 3})
    codes = UserAttributes.fit(users, min_users=2, bins=3)
    assert codes.names == ["job=a", "job=b", "job=<rare>", "vip=False", "vip=True", "vip=<rare>"]
    vectors = codes.encode_frame(users, list(range(6)))
    np.testing.assert_allclose(vectors.mean(0).numpy(), 0.0, atol=1e-6)  # centred over the training users
    np.testing.assert_allclose(vectors[5, :3].numpy(), [-0.5, -1 / 3, 1 - 1 / 6], atol=1e-6)  # "c" is rare
    restored = UserAttributes.from_dict(codes.to_dict())
    np.testing.assert_allclose(restored.encode_frame(users, list(range(6))), vectors)
