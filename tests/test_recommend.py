"""The recommendation API (``Recommender.meta_fit`` -> ``adapt`` -> ``UserModel``) on a tiny encoder.

One small synthetic log is meta-fitted once per module: two groups of users, one rating "action"
items high and "drama" items low, the other the reverse, and the two kinds of items have different
texts. A few catalogue items nobody rated (popularity 0) are scored from their text alone. Since the
structure is known, adapted users must move in the right direction, not merely return numbers.
"""

from __future__ import annotations

import json
import math

import numpy as np
import polars as pl
import pytest
import torch

import personalize as pz
from personalize.encoder import tiny_encoder
from personalize.engine.gaussian import gram_and_moment, weight_posterior, weight_predictive
from personalize.errors import CheckpointError, ConfigError, EncoderError, SchemaError
from personalize.recommend import Columns, Recommender, RecommenderConfig, UserModel
from personalize.recommend import recommender as recommender_module
from personalize.recommend.elicitation import information_gain, variance_reduction

ACTION = list(range(100, 120))
DRAMA = list(range(120, 140))
UNRATED_ACTION, UNRATED_DRAMA = [140, 141], [142, 143]  # in the catalogue, rated by nobody
UNRATED = UNRATED_ACTION + UNRATED_DRAMA
ALL_ITEMS = ACTION + DRAMA + UNRATED
CONFIG = RecommenderConfig(factors=4, steps=30, val_every=10, users_per_step=16)


def action_text(i: int) -> str:
    return f"action film with explosions and car chases, part {i}"


def drama_text(i: int) -> str:
    return f"quiet drama about a family and its grief, part {i}"


def synthetic_log(n_users: int = 120, per_user: int = 16, seed: int = 0) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Ratings (with a timestamp column, which is ignored) and the item table (with titles)."""
    rng = np.random.default_rng(seed)
    is_action = {item: item in ACTION + UNRATED_ACTION for item in ALL_ITEMS}
    items = pl.DataFrame({
        "item_id": ALL_ITEMS,
        "text": [action_text(i) if is_action[item] else drama_text(i) for i, item in enumerate(ALL_ITEMS)],
        "title": [f"{'Action' if is_action[item] else 'Drama'} #{item}" for item in ALL_ITEMS],
    })
    rows = []
    for user in range(n_users):
        likes_action = user % 2 == 0
        for item in rng.choice(ACTION + DRAMA, per_user, replace=False):
            mean = 4.3 if is_action[int(item)] == likes_action else 1.7
            rows.append((user, int(item), float(np.clip(np.round(mean + rng.normal(0, 0.5)), 1, 5)), len(rows)))
    ratings = pl.DataFrame(rows, schema=["user_id", "item_id", "rating", "timestamp"], orient="row")
    return ratings, items


@pytest.fixture(scope="module")
def data() -> tuple[pl.DataFrame, pl.DataFrame]:
    return synthetic_log()


@pytest.fixture(scope="module")
def rec(data) -> Recommender:
    ratings, items = data
    return Recommender.meta_fit(ratings, items, config=CONFIG, encoder=tiny_encoder(seed=0))


@pytest.fixture(scope="module")
def saved(rec, tmp_path_factory):
    return rec.save(tmp_path_factory.mktemp("recommender") / "rec")


@pytest.fixture
def fresh(saved) -> Recommender:
    """A private copy of the fitted recommender, for tests that add items to it."""
    return pz.load(saved, encoder=tiny_encoder(seed=0))


def history(items: list, ratings: list) -> pl.DataFrame:
    return pl.DataFrame({"item_id": items, "rating": [float(r) for r in ratings]})


ACTION_LOVER = history(ACTION[:3] + DRAMA[:3], [5, 5, 5, 1, 1, 1])
DRAMA_LOVER = history(ACTION[:3] + DRAMA[:3], [1, 1, 1, 5, 5, 5])


# --- adapting and predicting -----------------------------------------------------------------------------


def test_one_rating_is_enough_and_predictions_stay_in_the_training_range(rec, data) -> None:
    ratings, _ = data
    assert rec.rating_range == (ratings["rating"].min(), ratings["rating"].max())
    user = rec.adapt(history([ACTION[0]], [5]), user="alice")
    assert isinstance(user, UserModel) and user.user == "alice" and user.seen.tolist() == [0]
    predicted = user.predict(ALL_ITEMS)
    assert isinstance(predicted, np.ndarray) and predicted.dtype == np.float64 and predicted.shape == (len(ALL_ITEMS),)
    low, high = rec.rating_range
    assert ((predicted >= low) & (predicted <= high)).all()
    mean, std = user.predict(ALL_ITEMS, return_std=True)
    np.testing.assert_array_equal(mean, predicted)
    assert std.shape == mean.shape and (std > 0).all() and np.isfinite(std).all()
    # One high action rating already moves the unseen action items above the drama items.
    assert user.predict(ACTION[1:]).mean() > user.predict(DRAMA).mean()


def test_adapting_moves_predictions_toward_the_users_taste(rec) -> None:
    action_lover, drama_lover = rec.adapt(ACTION_LOVER), rec.adapt(DRAMA_LOVER)
    unseen_action, unseen_drama = ACTION[3:], DRAMA[3:]
    assert action_lover.predict(unseen_action).mean() > action_lover.predict(unseen_drama).mean() + 1.0
    assert drama_lover.predict(unseen_drama).mean() > drama_lover.predict(unseen_action).mean() + 1.0
    assert action_lover.predict(unseen_action).min() > action_lover.predict(unseen_drama).max()
    # Relative to the prior (no ratings), the adapted user moved the right way on both kinds of item.
    with pytest.warns(UserWarning, match="empty history"):
        prior = rec.adapt(history([], []))
    assert (action_lover.predict(unseen_action) > prior.predict(unseen_action)).all()
    assert (action_lover.predict(unseen_drama) < prior.predict(unseen_drama)).all()


def test_more_ratings_shrink_the_predictive_std(rec) -> None:
    order = [ACTION[0], DRAMA[0], ACTION[1], DRAMA[1], ACTION[2], DRAMA[2], ACTION[3], DRAMA[3]]
    values = [5, 1, 4, 2, 5, 1, 4, 2]
    held_out = ACTION[10:] + DRAMA[10:] + UNRATED
    stds = [rec.adapt(history(order[:k], values[:k])).predict(held_out, return_std=True)[1] for k in (1, 2, 4, 8)]
    for fewer, more in zip(stds, stds[1:]):
        assert (more < fewer).all(), (fewer, more)
    # The std never goes below the rating noise.
    assert (stds[-1] > math.sqrt(float(rec.tables.noise_variance)) - 1e-6).all()


def test_an_empty_history_gives_the_prior_with_a_warning(rec) -> None:
    with pytest.warns(UserWarning, match="empty history"):
        user = rec.adapt(history([], []))
    np.testing.assert_allclose(user.posterior.mean[0].numpy(), rec.tables.prior_mean.numpy(), atol=1e-5)
    np.testing.assert_allclose(user.posterior.covariance[0].diagonal().numpy(), rec.tables.prior_variance.numpy(),
                               rtol=1e-3)
    assert len(user.seen) == 0
    # A history of unknown items only is skipped item by item, then falls back to the prior too.
    with pytest.warns(UserWarning) as caught:
        unknown_only = rec.adapt(history([999, 998], [4, 5]))
    messages = " | ".join(str(w.message) for w in caught)
    assert "skipped 2 item id(s)" in messages and "empty history" in messages
    np.testing.assert_allclose(unknown_only.predict(ALL_ITEMS), user.predict(ALL_ITEMS), atol=1e-6)


def test_unknown_items_in_a_history_are_skipped_with_a_warning_or_refused(rec) -> None:
    with pytest.warns(UserWarning, match=r"skipped 1 item id\(s\) not in the catalogue, e.g. \[999\]"):
        skipping = rec.adapt(history([ACTION[0], 999, DRAMA[0]], [5, 3, 1]))
    clean = rec.adapt(history([ACTION[0], DRAMA[0]], [5, 1]))
    np.testing.assert_allclose(skipping.predict(ALL_ITEMS), clean.predict(ALL_ITEMS), atol=1e-6)
    assert sorted(skipping.seen.tolist()) == sorted(clean.seen.tolist())
    with pytest.raises(SchemaError, match=r"1 item id\(s\) are not in the catalogue, e.g. \[999\]"):
        rec.adapt(history([ACTION[0], 999], [5, 3]), unknown_items="raise")
    with pytest.raises(ConfigError, match="unknown_items must be"):
        rec.adapt(ACTION_LOVER, unknown_items="drop")


def test_predicting_unknown_ids_or_a_bare_string_is_refused(rec) -> None:
    user = rec.adapt(ACTION_LOVER)
    with pytest.raises(SchemaError, match=r"not in the catalogue, e.g. \[12345\]"):
        user.predict([ACTION[0], 12345])
    with pytest.raises(ConfigError, match="list of ids, not a single string"):
        user.predict("100")


# --- recommending ----------------------------------------------------------------------------------------


def test_recommend_returns_a_ranked_frame_without_seen_items(rec) -> None:
    user = rec.adapt(ACTION_LOVER)
    top = user.recommend(n=6)
    assert isinstance(top, pl.DataFrame)
    assert top.columns == ["item_id", "score", "rating", "std", "rank", "title"]
    assert top.height == 6 and top["rank"].to_list() == list(range(1, 7))
    assert (np.diff(top["score"].to_numpy()) <= 0).all() and (top["std"].to_numpy() > 0).all()
    assert not set(top["item_id"].to_list()) & set(ACTION_LOVER["item_id"].to_list())
    assert set(top["item_id"].to_list()) <= set(ACTION + UNRATED_ACTION)  # the taste was learned
    assert all(title.startswith("Action #") for title in top["title"].to_list())
    rating, std = user.predict(top["item_id"].to_list(), return_std=True)
    np.testing.assert_allclose(top["rating"].to_numpy(), rating, rtol=1e-6)
    np.testing.assert_allclose(top["std"].to_numpy(), std, rtol=1e-6)
    # Every unseen item is ranked when n is large; seen ones only with exclude_seen=False.
    assert user.recommend(n=1000).height == len(ALL_ITEMS) - ACTION_LOVER.height
    everything = user.recommend(n=len(ALL_ITEMS), exclude_seen=False)
    assert everything.height == len(ALL_ITEMS)
    assert set(ACTION_LOVER["item_id"].to_list()) <= set(everything["item_id"].to_list())
    assert everything["item_id"].to_list()[0] in ACTION + UNRATED_ACTION


def test_recommend_candidates_restrict_the_ranking(rec) -> None:
    user = rec.adapt(ACTION_LOVER)
    candidates = DRAMA[5:10] + [ACTION[0]]  # ACTION[0] is seen
    ranked = user.recommend(n=10, candidates=candidates)
    assert sorted(ranked["item_id"].to_list()) == DRAMA[5:10]
    assert ranked["rank"].to_list() == [1, 2, 3, 4, 5]
    with_seen = user.recommend(n=10, candidates=candidates, exclude_seen=False)
    assert with_seen["item_id"].to_list()[0] == ACTION[0]  # the one action item beats every drama
    assert user.recommend(n=2, candidates=DRAMA[5:10]).equals(ranked.head(2))
    with pytest.raises(SchemaError, match="not in the catalogue"):
        user.recommend(candidates=[ACTION[5], 777])
    for bad in (0, -1, 2.5):
        with pytest.raises(ConfigError, match="n must be an int >= 1"):
            user.recommend(n=bad)
    with pytest.raises(ConfigError, match="rating_weight must be >= 0"):
        user.recommend(rating_weight=-0.5)


def test_recommend_scores_are_pick_scores_plus_the_weighted_rating(rec) -> None:
    assert rec.record["ranking"]["rating_weight"] == rec.rating_weight  # chosen on validation users
    user = rec.adapt(DRAMA_LOVER)
    for weight in (0.0, 3.0):
        ranked = user.recommend(n=len(ALL_ITEMS), rating_weight=weight)
        positions = rec.catalogue.indices(ranked["item_id"].to_list())
        picks = user.pick_scores(positions)
        low, high = rec.rating_range
        expected = picks / np.abs(picks).max() + weight * (ranked["rating"].to_numpy() - low) / (high - low)
        np.testing.assert_allclose(ranked["score"].to_numpy(), expected, rtol=1e-5)
        assert (np.diff(ranked["score"].to_numpy()) <= 0).all()
    # Items nobody rated have a zero pick score; with the rating ignored, every item that goes with the
    # user's history (a positive pick score) ranks above them.
    by_picks = user.recommend(n=len(ALL_ITEMS), rating_weight=0.0)
    unrated = by_picks.filter(pl.col("item_id").is_in(UNRATED))
    assert np.allclose(unrated["score"].to_numpy(), 0.0, atol=1e-6)
    assert by_picks.filter(pl.col("score") > 1e-3)["rank"].max() < unrated["rank"].min()
    # A large rating weight ranks by the predicted rating, which puts drama first for a drama lover.
    by_rating = user.recommend(n=5, rating_weight=1000.0)
    assert set(by_rating["item_id"].to_list()) <= set(DRAMA + UNRATED_DRAMA)


def test_pick_scores_follow_who_rated_what() -> None:
    """PureSVD: items rated by the same users as the history's items score higher than others."""
    from personalize.recommend.ranking import implicit_item_vectors, pick_scores

    users = np.repeat(np.arange(40), 3)
    items = np.tile([0, 1, 2], 40) + np.where(users < 20, 0, 3)  # users 0-19 rate 0, 1, 2; the others 3, 4, 5
    vectors, default = implicit_item_vectors(users, items, n_items=7, factors=2)
    scores = pick_scores(vectors, default, np.array([0]), np.arange(7))
    assert scores[1] > scores[4] and scores[2] > scores[5]   # 0 goes with 1 and 2, not with 4 and 5
    assert scores[6] == pytest.approx(0.0, abs=1e-6)         # nobody rated item 6
    popular = pick_scores(vectors, default, np.array([], dtype=np.int64), np.arange(7))
    assert popular[6] == pytest.approx(0.0, abs=1e-6) and popular[:6].min() > 0


# --- many users, ids, frames -----------------------------------------------------------------------------


def test_adapt_many_equals_adapting_one_by_one(rec, data, monkeypatch) -> None:
    monkeypatch.setattr(recommender_module, "ADAPT_CHUNK", 3)  # several chunks of padded batches
    ratings, _ = data
    some = ratings.filter(pl.col("user_id").is_in([0, 1, 2, 3, 4, 5, 6]))
    # Histories of different lengths, so padding differs from user to user.
    some = some.filter((pl.col("user_id") != 3) | (pl.int_range(pl.len()).over("user_id") < 2))
    users = rec.adapt_many(some)
    assert list(users) == [0, 1, 2, 3, 4, 5, 6]
    for user_id, model in users.items():
        own = some.filter(pl.col("user_id") == user_id).select("item_id", "rating")
        alone = rec.adapt(own, user=user_id)
        assert model.user == user_id and sorted(model.seen.tolist()) == sorted(alone.seen.tolist())
        mean, std = model.predict(ALL_ITEMS, return_std=True)
        alone_mean, alone_std = alone.predict(ALL_ITEMS, return_std=True)
        np.testing.assert_allclose(mean, alone_mean, atol=1e-5)
        np.testing.assert_allclose(std, alone_std, atol=1e-5)
    assert len(users[3].seen) == 2


def test_adapt_many_skips_unknown_items_and_checks_its_frame(rec) -> None:
    log = pl.DataFrame({"user_id": [1, 1, 2], "item_id": [ACTION[0], 999, DRAMA[0]], "rating": [5.0, 4.0, 1.0]})
    with pytest.warns(UserWarning, match=r"skipped 1 item id"):
        users = rec.adapt_many(log)
    np.testing.assert_allclose(users[1].predict(ALL_ITEMS), rec.adapt(history([ACTION[0]], [5])).predict(ALL_ITEMS),
                               atol=1e-5)
    with pytest.raises(SchemaError, match="not in the catalogue"):
        rec.adapt_many(log, unknown_items="raise")
    with pytest.raises(SchemaError, match=r"ratings frame lacks column\(s\) 'user_id'"):
        rec.adapt_many(log.drop("user_id"))


def test_pandas_frames_give_the_same_results_as_polars(rec) -> None:
    pd = pytest.importorskip("pandas")
    from_pandas = rec.adapt(pd.DataFrame({"item_id": ACTION_LOVER["item_id"].to_list(),
                                          "rating": ACTION_LOVER["rating"].to_list()}))
    np.testing.assert_array_equal(from_pandas.predict(ALL_ITEMS), rec.adapt(ACTION_LOVER).predict(ALL_ITEMS))
    nan_history = pd.DataFrame({"item_id": [ACTION[0], ACTION[1]], "rating": [5.0, float("nan")]})
    with pytest.raises(SchemaError, match="null"):  # pandas NaN arrives as a null
        rec.adapt(nan_history)


def test_string_ids_pandas_and_custom_columns_end_to_end(data, tmp_path) -> None:
    pd = pytest.importorskip("pandas")
    ratings, items = data
    columns = Columns(user="who", item="movie", rating="stars", text="blurb")
    as_string = {item: f"m{item}" for item in ALL_ITEMS}
    log = pd.DataFrame({"who": [f"user-{u}" for u in ratings["user_id"].to_list()],
                        "movie": [as_string[i] for i in ratings["item_id"].to_list()],
                        "stars": ratings["rating"].to_list()})
    table = pd.DataFrame({"movie": [as_string[i] for i in ALL_ITEMS], "blurb": items["text"].to_list()})
    rec = Recommender.meta_fit(log, table, config=CONFIG, encoder=tiny_encoder(seed=0), columns=columns)
    assert rec.catalogue.ids == [as_string[i] for i in ALL_ITEMS]

    lover = pd.DataFrame({"movie": [as_string[i] for i in ACTION[:3] + DRAMA[:3]], "stars": [5.0] * 3 + [1.0] * 3})
    user = rec.adapt(lover)
    action_ids, drama_ids = [as_string[i] for i in ACTION[3:]], [as_string[i] for i in DRAMA[3:]]
    assert user.predict(action_ids).mean() > user.predict(drama_ids).mean() + 1.0
    top = user.recommend(n=3)
    assert top.columns == ["item_id", "score", "rating", "std", "rank"]  # no title in the item table
    assert all(isinstance(item, str) and item.startswith("m") for item in top["item_id"].to_list())
    with pytest.raises(SchemaError, match=r"history frame lacks column\(s\) 'movie'"):
        rec.adapt(ACTION_LOVER)  # default column names are not this recommender's
    users = rec.adapt_many(log.iloc[:40])
    assert set(users) == set(log.iloc[:40]["who"])
    suggested = rec.suggest_to_rate(None, n=2)
    assert suggested.height == 2 and all(isinstance(item, str) for item in suggested["item_id"].to_list())

    reloaded = pz.load(rec.save(tmp_path / "strings"))
    assert reloaded.columns == columns and reloaded.catalogue.ids == rec.catalogue.ids
    np.testing.assert_array_equal(reloaded.adapt(lover).predict(action_ids), user.predict(action_ids))


def test_custom_columns_per_call(rec) -> None:
    columns = Columns(item="movie", rating="stars")
    renamed = ACTION_LOVER.rename({"item_id": "movie", "rating": "stars"})
    np.testing.assert_array_equal(rec.adapt(renamed, columns=columns).predict(ALL_ITEMS),
                                  rec.adapt(ACTION_LOVER).predict(ALL_ITEMS))
    assert rec.suggest_to_rate(None, n=2, columns=columns).height == 2
    assert rec.suggest_to_rate(renamed, n=2, columns=columns)["item_id"].to_list() == \
        rec.suggest_to_rate(ACTION_LOVER, n=2)["item_id"].to_list()
    with pytest.raises(ConfigError, match="Columns.item must be a non-empty string"):
        Columns(item="")
    with pytest.raises(ConfigError, match="Columns.rating must be a non-empty string"):
        Columns(rating=None)


# --- new items -------------------------------------------------------------------------------------------


def test_added_items_are_predictable_and_recommendable(fresh) -> None:
    before = fresh.adapt(ACTION_LOVER)  # adapted before the items exist: it still scores them
    fresh.add_items(pl.DataFrame({"item_id": [500, 501], "text": [action_text(500), drama_text(501)],
                                  "title": ["New action", "New drama"]}))
    fresh.add_items(pl.DataFrame({"item_id": [502], "text": [drama_text(502)]}))  # no title: its id is shown
    assert len(fresh.catalogue) == len(ALL_ITEMS) + 3
    assert fresh.catalogue.popularity[-3:].tolist() == [0, 0, 0]
    mean, std = before.predict([500, 501, 502], return_std=True)
    assert mean.shape == (3,) and np.isfinite(mean).all() and (std > 0).all()
    ranked = before.recommend(n=10, candidates=[500, 501, 502])
    assert set(ranked["item_id"].to_list()) == {500, 501, 502}
    assert dict(zip(ranked["item_id"].to_list(), ranked["title"].to_list())) == {
        500: "New action", 501: "New drama", 502: "502"}
    assert 500 in fresh.adapt(ACTION_LOVER).recommend(n=len(fresh.catalogue))["item_id"].to_list()


def test_a_new_action_item_suits_an_action_lover_better_than_a_new_drama(fresh) -> None:
    # The tiny encoder is random, but the two kinds of text differ in every character n-gram, so the
    # text-to-item-vector regression separates them; a reversed order would mean the text path is broken.
    fresh.add_items(pl.DataFrame({"item_id": [600, 601], "text": [action_text(600), drama_text(601)]}))
    action_lover, drama_lover = fresh.adapt(ACTION_LOVER), fresh.adapt(DRAMA_LOVER)
    new_action, new_drama = action_lover.predict([600, 601])
    assert new_action > new_drama
    new_action, new_drama = drama_lover.predict([600, 601])
    assert new_drama > new_action


def test_adding_items_that_exist_or_are_malformed_is_refused(fresh) -> None:
    with pytest.raises(SchemaError, match=r"already in the catalogue: \[100\]"):
        fresh.add_items(pl.DataFrame({"item_id": [100, 700], "text": ["x", "y"]}))
    with pytest.raises(SchemaError, match="appear more than once"):
        fresh.add_items(pl.DataFrame({"item_id": [700, 700], "text": ["x", "y"]}))
    with pytest.raises(SchemaError, match="empty or null"):
        fresh.add_items(pl.DataFrame({"item_id": [700], "text": ["  "]}))
    with pytest.raises(SchemaError, match=r"items frame lacks column\(s\) 'text'"):
        fresh.add_items(pl.DataFrame({"item_id": [700]}))
    assert len(fresh.catalogue) == len(ALL_ITEMS) and 700 not in fresh.catalogue  # nothing half-added


# --- what to ask next ------------------------------------------------------------------------------------


@pytest.mark.parametrize("criterion", ["variance", "information"])
def test_suggest_to_rate_ranks_unseen_items_by_decreasing_gain(rec, criterion) -> None:
    suggested = rec.suggest_to_rate(ACTION_LOVER, n=5, criterion=criterion)
    assert suggested.columns == ["item_id", "gain", "rank", "title"]
    assert suggested.height == 5 and suggested["rank"].to_list() == [1, 2, 3, 4, 5]
    picked = suggested["item_id"].to_list()
    assert len(set(picked)) == 5 and not set(picked) & set(ACTION_LOVER["item_id"].to_list())
    gains = suggested["gain"].to_numpy()
    # Non-increasing: exact for information gain (submodular); for variance reduction it holds on this
    # catalogue (greedy picks the largest reduction first, and each rating shrinks the covariance).
    assert (gains > 0).all() and (np.diff(gains) <= 1e-9).all()
    # With no history every item is a candidate and the first pick is worth more than after 6 ratings.
    cold = rec.suggest_to_rate(None, n=3, criterion=criterion)
    assert cold.height == 3 and cold["gain"][0] > gains[0]
    restricted = rec.suggest_to_rate(ACTION_LOVER, n=10, candidates=ACTION[:5], criterion=criterion)
    assert sorted(restricted["item_id"].to_list()) == ACTION[3:5]  # ACTION[:3] are already rated


@pytest.mark.parametrize("criterion", ["variance", "information"])
def test_popularity_weight_zero_lets_unrated_items_be_suggested(rec, criterion) -> None:
    assert rec.catalogue.popularity[rec.catalogue.indices(UNRATED)].sum() == 0
    by_default = rec.suggest_to_rate(None, n=4, candidates=UNRATED, criterion=criterion)
    assert sorted(by_default["item_id"].to_list()) == UNRATED
    assert (by_default["gain"].to_numpy() == 0).all()  # nobody has seen them: no one could rate them
    ignoring = rec.suggest_to_rate(None, n=4, candidates=UNRATED, popularity_weight=0, criterion=criterion)
    assert (ignoring["gain"].to_numpy() > 0).all()
    mixed = rec.suggest_to_rate(None, n=3, candidates=UNRATED + ACTION[:3], criterion=criterion)
    assert set(mixed["item_id"].to_list()) == set(ACTION[:3])


def test_suggest_to_rate_refuses_bad_arguments(rec) -> None:
    for kwargs, message in (({"n": 0}, "n must be an int >= 1"), ({"popularity_weight": -1}, "popularity_weight"),
                            ({"criterion": "entropy"}, "criterion must be 'variance' or 'information'")):
        with pytest.raises(ConfigError, match=message):
            rec.suggest_to_rate(None, **kwargs)
    with pytest.raises(SchemaError, match="not in the catalogue"):
        rec.suggest_to_rate(None, candidates=[ACTION[0], 4242])


# --- saving and loading ----------------------------------------------------------------------------------


def test_save_and_load_round_trip_gives_identical_predictions(rec, saved) -> None:
    reloaded = pz.load(saved)  # scoring known items needs no encoder
    assert isinstance(reloaded, Recommender)
    assert reloaded.config == rec.config and reloaded.columns == rec.columns
    assert reloaded.rating_range == rec.rating_range and reloaded.catalogue.ids == rec.catalogue.ids
    assert reloaded.catalogue.titles == rec.catalogue.titles
    np.testing.assert_array_equal(reloaded.catalogue.popularity, rec.catalogue.popularity)
    for frame in (ACTION_LOVER, history([DRAMA[4]], [2])):
        original, loaded = rec.adapt(frame), reloaded.adapt(frame)
        np.testing.assert_array_equal(loaded.predict(ALL_ITEMS, return_std=True),
                                      original.predict(ALL_ITEMS, return_std=True))
        assert loaded.recommend(n=5).equals(original.recommend(n=5))
    assert reloaded.suggest_to_rate(ACTION_LOVER, n=3).equals(rec.suggest_to_rate(ACTION_LOVER, n=3))


def test_added_items_survive_a_round_trip(fresh, tmp_path) -> None:
    fresh.add_items(pl.DataFrame({"item_id": [800, 801], "text": [action_text(800), drama_text(801)]}))
    reloaded = pz.load(fresh.save(tmp_path / "grown"), encoder=tiny_encoder(seed=0))
    assert reloaded.catalogue.ids[-2:] == [800, 801]
    np.testing.assert_array_equal(reloaded.adapt(DRAMA_LOVER).predict([800, 801, ACTION[0]]),
                                  fresh.adapt(DRAMA_LOVER).predict([800, 801, ACTION[0]]))
    reloaded.add_items(pl.DataFrame({"item_id": [802], "text": [action_text(802)]}))  # the encoder still fits
    assert 802 in reloaded.catalogue


def test_loading_with_another_encoder_is_refused(saved) -> None:
    with pytest.raises(EncoderError, match="load it with the encoder it was trained on"):
        pz.load(saved, encoder=tiny_encoder(seed=1))


def test_broken_or_incomplete_folders_raise_checkpoint_errors(saved, tmp_path) -> None:
    import shutil

    broken = shutil.copytree(saved, tmp_path / "broken")
    (broken / "recommender.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        pz.load(broken)
    document = json.loads((saved / "recommender.json").read_text())
    (broken / "recommender.json").write_text(json.dumps({**document, "format_version": 99}))
    with pytest.raises(CheckpointError,
                       match=r"recommender v1 or v2 or v3 or v4 file \(found format .personalize-recommender. v99"):
        pz.load(broken)
    (broken / "recommender.json").unlink()
    with pytest.raises(CheckpointError, match="not saved by personalize"):
        pz.load(broken)
    with pytest.raises(CheckpointError, match="recommender.json is missing"):
        Recommender.load(broken)
    no_tables = shutil.copytree(saved, tmp_path / "no_tables")
    (no_tables / "tables.safetensors").unlink()
    with pytest.raises(CheckpointError, match="lacks tables.safetensors"):
        pz.load(no_tables)


# --- refusing bad input ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("frame", "message"), [
    (pl.DataFrame({"item_id": [100]}), r"history frame lacks column\(s\) 'rating'; it has 'item_id'"),
    (pl.DataFrame({"item_id": [100, 101], "rating": [5.0, float("nan")]}), r"1 NaN or infinite rating\(s\)"),
    (pl.DataFrame({"item_id": [100, 101], "rating": [float("inf"), float("-inf")]}), r"2 NaN or infinite"),
    (pl.DataFrame({"item_id": [100, 101], "rating": [5.0, 6.0]}), r"1 rating\(s\) outside the range \[1, 5\]"),
    (pl.DataFrame({"item_id": [100, 101], "rating": [0.0, 3.0]}), r"outside the range \[1, 5\].*\[0.0\]"),
    (pl.DataFrame({"item_id": [100, 101], "rating": [5.0, None]}), r"column 'rating' of the history frame has 1 null"),
    (pl.DataFrame({"item_id": [100, None], "rating": [5.0, 4.0]}), r"column 'item_id' .* has 1 null"),
    (pl.DataFrame({"item_id": [100], "rating": ["five"]}), "rating column 'rating' must be numeric"),
    ({"item_id": [100], "rating": [5.0]}, "expected a polars or pandas DataFrame, got dict"),
])
def test_bad_histories_are_refused_with_a_clear_message(rec, frame, message) -> None:
    with pytest.raises(SchemaError, match=message):
        rec.adapt(frame)


def test_bad_training_frames_are_refused_with_a_clear_message(data) -> None:
    ratings, items = data
    encoder = tiny_encoder(seed=0)

    def fit(ratings_frame, items_frame):
        return Recommender.meta_fit(ratings_frame, items_frame, config=CONFIG, encoder=encoder)

    with pytest.raises(SchemaError, match=r"ratings frame lacks column\(s\) 'rating'"):
        fit(ratings.drop("rating"), items)
    with pytest.raises(SchemaError, match=r"items frame lacks column\(s\) 'text'"):
        fit(ratings, items.drop("text"))
    with pytest.raises(SchemaError, match="NaN or infinite"):
        fit(ratings.with_columns(rating=pl.when(pl.col("user_id") == 3).then(float("inf")).otherwise("rating")),
            items)
    with pytest.raises(SchemaError, match=r"not in the catalogue, e.g. \[100"):
        fit(ratings, items.filter(pl.col("item_id") != 100))
    with pytest.raises(SchemaError, match="appear more than once"):
        fit(ratings, pl.concat([items, items.head(1)]))
    with pytest.raises(SchemaError, match="the ratings frame is empty"):
        fit(ratings.head(0), items)
    with pytest.raises(SchemaError, match="at least 2 users with more than 10 ratings"):
        fit(ratings.filter(pl.int_range(pl.len()).over("user_id") < 5), items)


@pytest.mark.parametrize(("fields", "message"), [
    ({"factors": 0}, r"factors must be an int >= 1, got 0"),
    ({"steps": 2.5}, r"steps must be an int >= 1, got 2.5"),
    ({"users_per_step": True}, r"users_per_step must be an int >= 1"),
    ({"item_dropout": 1.0}, r"item_dropout must be in \[0, 1\)"),
    ({"meta_user_share": -0.1}, r"meta_user_share must be in \[0, 1\)"),
    ({"validation_fraction": 0.0}, r"validation_fraction must be in \(0, 1\)"),
    ({"learning_rate": 0.0}, r"learning_rate must be > 0"),
    ({"patience": -1}, r"patience must be an int >= 0"),
    ({"time_budget_s": 0}, r"time_budget_s must be None or > 0"),
    ({"use_text": False, "use_item_parameters": False}, "cannot both be False"),
])
def test_invalid_recommender_configs_are_refused(fields, message) -> None:
    with pytest.raises(ConfigError, match=message):
        RecommenderConfig(**fields)


def test_config_round_trips_through_a_dict_and_refuses_unknown_fields() -> None:
    assert RecommenderConfig.from_dict(CONFIG.to_dict()) == CONFIG
    with pytest.raises(ConfigError, match=r"unknown field\(s\) \['factor'\]"):
        RecommenderConfig.from_dict({"factor": 3})


def test_a_text_free_recommender_cannot_add_items(data) -> None:
    ratings, items = data
    config = RecommenderConfig(factors=4, steps=5, val_every=5, users_per_step=16, use_text=False)
    rec = Recommender.meta_fit(ratings, items, config=config, encoder=tiny_encoder(seed=0))
    assert rec.adapt(ACTION_LOVER).predict(ACTION[3:]).mean() > rec.adapt(ACTION_LOVER).predict(DRAMA[3:]).mean()
    with pytest.raises(ConfigError, match="trained without item text"):
        rec.add_items(pl.DataFrame({"item_id": [900], "text": [action_text(900)]}))


# --- the closed-form posterior ---------------------------------------------------------------------------


def test_user_posterior_matches_the_bayesian_linear_regression_formula() -> None:
    rng = np.random.default_rng(1)
    users, rows, dim = 4, 7, 3
    features = rng.normal(size=(users, rows, dim))
    residuals = rng.normal(size=(users, rows))
    mask = (rng.random((users, rows)) < 0.7).astype(float)
    mask[0] = 0.0                          # a user with no ratings gets the prior
    mask[1] = 1.0                          # one with no padding
    prior_mean, prior_variance, noise = rng.normal(size=dim), rng.uniform(0.2, 2.0, dim), 0.4
    features_t, residuals_t, mask_t = (torch.as_tensor(a) for a in (features, residuals, mask))
    posterior = weight_posterior(*gram_and_moment(features_t, residuals_t, mask_t), torch.as_tensor(prior_mean),
                                 torch.as_tensor(prior_variance), torch.tensor(noise, dtype=torch.float64))
    for u in range(users):
        x, r = features[u][mask[u] == 1], residuals[u][mask[u] == 1]
        precision = np.diag(1 / prior_variance) + x.T @ x / noise
        covariance = np.linalg.inv(precision)
        mean = covariance @ (prior_mean / prior_variance + x.T @ r / noise)
        np.testing.assert_allclose(posterior.mean[u].numpy(), mean, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(posterior.covariance[u].numpy(), covariance, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(posterior.mean[0].numpy(), prior_mean, rtol=1e-4)  # up to the Cholesky jitter
    # Predictive: base + x·mean, variance σ² + xᵀΣx, for shared items [N, D].
    items, base = rng.normal(size=(5, dim)), rng.normal(size=5)
    mean, variance = weight_predictive(posterior, torch.as_tensor(items), torch.as_tensor(base), torch.tensor(noise))
    for u in range(users):
        expected = noise + np.einsum("nd,de,ne->n", items, posterior.covariance[u].numpy(), items)
        np.testing.assert_allclose(mean[u].numpy(), base + items @ posterior.mean[u].numpy(), atol=1e-8)
        np.testing.assert_allclose(variance[u].numpy(), expected, atol=1e-8)


def test_information_gain_picks_distinct_rows_starting_from_the_most_uncertain() -> None:
    rng = np.random.default_rng(2)
    root = rng.normal(size=(4, 4))
    covariance = torch.as_tensor(root @ root.T + 0.1 * np.eye(4), dtype=torch.float32)
    candidates = torch.as_tensor(rng.normal(size=(12, 4)), dtype=torch.float32)
    candidates[5] = candidates[3]          # an exact duplicate must not be picked as the same row
    spread = torch.einsum("cd,de,ce->c", candidates, covariance, candidates)
    chosen, gains = information_gain(covariance, candidates, noise_variance=0.5, count=20)
    assert sorted(chosen) == list(range(12))  # count > rows: each row exactly once
    assert chosen[0] == int(torch.argmax(spread))
    assert gains[0] == pytest.approx(0.5 * math.log1p(float(spread.max()) / 0.5), rel=1e-5)
    assert all(a >= b - 1e-6 for a, b in zip(gains, gains[1:]))
    # Picking a row makes its duplicate (and every row) less informative: the duplicate is not next.
    first_of_pair = min(chosen.index(3), chosen.index(5))
    assert chosen[first_of_pair + 1] not in (3, 5)
    # A zero weight sends its row to the end.
    weights = torch.ones(12)
    weights[chosen[0]] = 0.0
    reweighted, _ = information_gain(covariance, candidates, noise_variance=0.5, count=12, weights=weights)
    assert reweighted[-1] == chosen[0] and reweighted[0] != chosen[0]


def test_greedy_gains_equal_the_actual_shrinkage_of_the_posterior() -> None:
    """Each gain is what rating the picked row really does to Σ: information = ½ log det Σ / det Σ',
    variance reduction = the weighted drop of the targets' predictive variances."""
    rng = np.random.default_rng(3)
    root = rng.normal(size=(3, 3))
    covariance = root @ root.T + 0.2 * np.eye(3)
    candidates, targets = rng.normal(size=(8, 3)), rng.normal(size=(10, 3))
    target_weights, noise = rng.uniform(0.1, 1.0, 10), 0.3

    def rated(sigma: np.ndarray, x: np.ndarray) -> np.ndarray:
        return np.linalg.inv(np.linalg.inv(sigma) + np.outer(x, x) / noise)

    as_tensor = {"dtype": torch.float64}
    chosen, gains = information_gain(torch.tensor(covariance, **as_tensor), torch.tensor(candidates, **as_tensor),
                                     noise, 3)
    sigma = covariance
    for row, gain in zip(chosen, gains):
        after = rated(sigma, candidates[row])
        assert gain == pytest.approx(0.5 * np.log(np.linalg.det(sigma) / np.linalg.det(after)), rel=1e-6)
        sigma = after

    chosen, gains = variance_reduction(torch.tensor(covariance, **as_tensor), torch.tensor(candidates, **as_tensor),
                                       noise, 3, torch.tensor(targets, **as_tensor),
                                       torch.tensor(target_weights, **as_tensor))
    assert len(set(chosen)) == 3
    sigma = covariance

    def weighted_variance(s: np.ndarray) -> float:
        return float(target_weights @ np.einsum("td,de,te->t", targets, s, targets))

    for row, gain in zip(chosen, gains):
        drops = [weighted_variance(sigma) - weighted_variance(rated(sigma, x)) for x in candidates]
        assert gain == pytest.approx(drops[row], rel=1e-6)
        assert drops[row] == pytest.approx(max(drops[i] for i in range(len(candidates)) if i not in
                                               chosen[: chosen.index(row)]), rel=1e-9)
        sigma = rated(sigma, candidates[row])


def test_a_log_with_repeated_ratings_still_meta_fits(data) -> None:
    """Real logs hold re-ratings; a validation user's item can then land in both the support and the
    held-out half when ``meta_fit`` tunes its ranking, and must count as seen there, not crash."""
    from personalize.recommend.ranking import tune_rating_weight

    ratings, items = data
    twice = pl.concat([ratings, ratings]).sort("user_id", maintain_order=True)
    rec = Recommender.meta_fit(twice, items, config=RecommenderConfig(factors=4, steps=5, val_every=5),
                               encoder=tiny_encoder(seed=0))
    assert rec.adapt(ACTION_LOVER).predict(ACTION[3:]).mean() > rec.adapt(ACTION_LOVER).predict(DRAMA[3:]).mean()
    # Directly: item 1 is both in the support and relevant; it is left out of the relevant items.
    weight, scores = tune_rating_weight([(np.array([0, 1]), np.array([1, 2]))],
                                        lambda position: (np.array([0.0, 9.0, 1.0, 3.0]), np.zeros(4)),
                                        rating_range=(1.0, 5.0), weights=(0.0, 1.0))
    assert set(scores) == {0.0, 1.0} and weight == 0.0
    assert scores[0.0] == pytest.approx(1.0)               # all tied: catalogue order puts item 2 first
    assert scores[1.0] == pytest.approx(1 / math.log2(3))  # by rating: item 2 second after item 3 (unseen)


# --- point estimates and the rating distribution ------------------------------------------------------------


def test_rating_distribution_is_a_distribution_over_the_training_levels(rec) -> None:
    user = rec.adapt(ACTION_LOVER)
    levels, probabilities = user.rating_distribution(ACTION[6:9] + DRAMA[6:9])
    assert levels.tolist() == rec.rating_levels == sorted(set(rec.rating_levels))
    assert probabilities.shape == (6, len(levels))
    np.testing.assert_allclose(probabilities.sum(1), 1.0, atol=1e-9)
    assert (probabilities >= 0).all()
    # An action lover puts more mass on the top level for action items than for drama items.
    assert probabilities[:3, -1].min() > probabilities[3:, -1].max()


def test_median_estimate_is_the_level_where_the_distribution_crosses_one_half(rec) -> None:
    user = rec.adapt(DRAMA_LOVER)
    items = ACTION[6:10] + DRAMA[6:10]
    median = user.predict(items, estimate="median")
    levels, probabilities = user.rating_distribution(items)
    assert set(median.tolist()) <= set(levels.tolist())
    for row, value in zip(probabilities, median):
        position = levels.tolist().index(value)
        assert row[: position + 1].sum() >= 0.5 and row[:position].sum() < 0.5
    # For a Gaussian predictive the median level is the level nearest the mean.
    mean = user.predict(items)
    nearest = levels[np.abs(mean[:, None] - levels[None, :]).argmin(1)]
    np.testing.assert_array_equal(median, nearest)
    with pytest.raises(ConfigError, match="estimate must be"):
        user.predict(items, estimate="mode")


def test_ratings_on_a_continuous_scale_have_no_distribution(data) -> None:
    ratings, items = data
    noisy = ratings.with_columns(pl.col("rating") + pl.Series(np.linspace(0, 0.5, ratings.height)))
    rec = Recommender.meta_fit(noisy, items, config=RecommenderConfig(factors=4, steps=5, val_every=5),
                               encoder=tiny_encoder(seed=0))
    assert rec.rating_levels is None
    user = rec.adapt(ACTION_LOVER.head(2))
    assert user.predict(ACTION[5:7]).shape == (2,)
    with pytest.raises(ConfigError, match="no rating distribution"):
        user.predict(ACTION[5:7], estimate="median")


# --- the batch command ----------------------------------------------------------------------------------------


def test_adapt_users_command_writes_every_users_top_n_or_refuses(saved, data, tmp_path, capsys) -> None:
    from personalize.bank import StateBank
    from personalize.cli import main

    ratings, _ = data
    log = tmp_path / "log.csv"
    ratings.filter(pl.col("user_id") < 5).rename({"user_id": "uid"}).write_csv(log)
    bank = tmp_path / "bank"
    assert main(["adapt-users", str(log), "--out", str(bank), "--model", str(saved), "--top", "3",
                 "--user-column", "uid", "--no-progress"]) == 0
    top = pl.read_parquet(bank / "top" / "*.parquet")
    assert sorted(top["user_id"].unique().to_list()) == [0, 1, 2, 3, 4]
    assert top.group_by("user_id").len()["len"].to_list() == [3] * 5
    single = pz.load(saved).adapt(ratings.filter(pl.col("user_id") == 2).select("item_id", "rating")).recommend(n=3)
    assert top.filter(pl.col("user_id") == 2).sort("rank")["item_id"].to_list() == single["item_id"].to_list()
    # A log without the named user column: one line, exit code 1, and the bank as it was.
    capsys.readouterr()
    assert main(["adapt-users", str(log), "--out", str(bank), "--model", str(saved), "--top", "3"]) == 1
    assert "lacks column(s) ['user_id']" in capsys.readouterr().err
    assert StateBank(bank).verify().ok and len(StateBank(bank)) == 5


def test_similar_rated_names_liked_items_of_the_same_kind(rec) -> None:
    """The reason given for an action film is an action film the user liked, never a disliked drama."""
    user = rec.adapt(history(ACTION[:3] + DRAMA[:3], [5, 5, 4, 1, 1, 2]))
    assert user.ratings.tolist() == [5.0, 5.0, 4.0, 1.0, 1.0, 2.0]
    because = user.similar_rated([ACTION[10], DRAMA[10]], n=2)
    assert set(because) == {ACTION[10], DRAMA[10]}
    assert 1 <= len(because[ACTION[10]]) <= 2
    assert all(item in ACTION[:3] for item, _ in because[ACTION[10]])
    assert all(item not in DRAMA[:3] for items in because.values() for item, _ in items)  # disliked: never a reason
    similarities = [value for _, value in because[ACTION[10]]]
    assert similarities == sorted(similarities, reverse=True) and all(0 < value <= 1 + 1e-6 for value in similarities)
