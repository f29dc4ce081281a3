"""Splits, classification episodes, interaction episodes and suite specs, on small in-memory frames."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from personalize.errors import ConfigError, EpisodeError, SchemaError, SuiteError
from personalize.tasks import (
    InteractionPool,
    TaskSplits,
    TaskSuite,
    TextTaskPool,
    available_suites,
    load_suite,
    melu_episodes,
    split_tasks,
)
from personalize.tasks.suite_spec import spec_from_dict

# --- splits -------------------------------------------------------------------------------------


@pytest.mark.parametrize("n_tasks", [3, 10, 97, 582])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_split_tasks_partitions_the_tasks_without_sharing(n_tasks: int, seed: int) -> None:
    splits = split_tasks([f"user-{i}" for i in range(n_tasks)], (0.8, 0.1, 0.1), seed=seed)
    parts = [set(splits.train), set(splits.val), set(splits.test)]
    assert parts[0].isdisjoint(parts[1]) and parts[0].isdisjoint(parts[2]) and parts[1].isdisjoint(parts[2])
    assert set().union(*parts) == {f"user-{i}" for i in range(n_tasks)}
    assert len(splits.val) == round(n_tasks * 0.1)


def test_split_tasks_is_reproducible_and_ignores_input_order() -> None:
    keys = list(range(50))
    assert split_tasks(keys, seed=3) == split_tasks(reversed(keys), seed=3)
    assert split_tasks(keys, seed=3) != split_tasks(keys, seed=4)


def test_split_tasks_rejects_bad_fractions() -> None:
    with pytest.raises(ConfigError, match="sum to 1"):
        split_tasks(range(10), (0.5, 0.1, 0.1))
    with pytest.raises(ConfigError, match="3 entries"):
        split_tasks(range(10), (0.5, 0.5))


def test_task_splits_refuse_a_task_in_two_splits() -> None:
    with pytest.raises(ConfigError, match="more than one split"):
        TaskSplits(train=(1, 2), val=(), test=(2,))
    with pytest.raises(ConfigError, match="unknown split"):
        TaskSplits(train=(1,), val=(), test=())["holdout"]


# --- classification episodes ---------------------------------------------------------------------


def labelled_frame() -> pl.DataFrame:
    """Three domains; 'rare' has only 3 negatives."""
    rows = []
    for task, n_neg, n_pos, n_mid in [("a", 20, 30, 5), ("b", 12, 12, 0), ("rare", 3, 40, 0)]:
        rows += [(task, f"{task} bad {i}", "neg") for i in range(n_neg)]
        rows += [(task, f"{task} good {i}", "pos") for i in range(n_pos)]
        rows += [(task, f"{task} meh {i}", "mid") for i in range(n_mid)]
    return pl.DataFrame(rows, schema=["task", "text", "label"], orient="row")


@pytest.mark.parametrize("shots,queries", [(1, 1), (4, 8), (8, 4)])
def test_episode_has_exactly_k_support_per_class_and_no_overlap(shots: int, queries: int) -> None:
    pool = TextTaskPool(labelled_frame(), classes=["neg", "pos", "mid"])
    for seed in range(20):
        episode = pool.sample("b", ways=2, shots=shots, query_per_class=queries, rng=seed)
        assert np.bincount(episode.support_labels).tolist() == [shots, shots]
        assert np.bincount(episode.query_labels).tolist() == [queries, queries]
        assert not set(episode.support_rows) & set(episode.query_rows)
        # Every text carries its true class name.
        for text, label in zip(episode.support_texts + episode.query_texts,
                               np.concatenate([episode.support_labels, episode.query_labels])):
            assert {"neg": "bad", "pos": "good"}[episode.classes[label]] in text


def test_episode_classes_keep_pool_order_unless_shuffled() -> None:
    pool = TextTaskPool(labelled_frame(), classes=["neg", "pos", "mid"])
    orders = {pool.sample("a", ways=2, shots=1, query_per_class=1, rng=s).classes for s in range(30)}
    assert orders <= {("neg", "pos"), ("neg", "mid"), ("pos", "mid")}
    shuffled = {pool.sample("a", ways=2, shots=1, query_per_class=1, rng=s, shuffle_classes=True).classes
                for s in range(30)}
    assert ("pos", "neg") in shuffled


def test_episode_sampling_is_seeded() -> None:
    pool = TextTaskPool(labelled_frame())
    first = pool.sample("a", ways=2, shots=3, query_per_class=3, rng=7)
    again = pool.sample("a", ways=2, shots=3, query_per_class=3, rng=7)
    other = pool.sample("a", ways=2, shots=3, query_per_class=3, rng=8)
    assert np.array_equal(first.support_rows, again.support_rows)
    assert np.array_equal(first.query_rows, again.query_rows)
    assert not np.array_equal(first.support_rows, other.support_rows)


def test_task_without_enough_examples_raises_episode_error() -> None:
    pool = TextTaskPool(labelled_frame())
    with pytest.raises(EpisodeError, match="only 1 classes have >= 5 examples"):
        pool.sample("rare", ways=2, shots=2, query_per_class=3, rng=0)
    with pytest.raises(EpisodeError, match="unknown task"):
        pool.sample("zzz", ways=2, shots=1, query_per_class=1, rng=0)


def test_pool_refuses_labels_outside_classes_and_non_text() -> None:
    with pytest.raises(SchemaError, match="not among the classes"):
        TextTaskPool(labelled_frame(), classes=["neg", "pos"])
    with pytest.raises(SchemaError, match="lacks column"):
        TextTaskPool(labelled_frame().drop("text"))
    with pytest.raises(SchemaError, match="must hold strings"):
        TextTaskPool(pl.DataFrame({"task": [1], "text": [3], "label": ["x"]}))


def test_restrict_keeps_only_the_named_tasks() -> None:
    pool = TextTaskPool(labelled_frame())
    view = pool.restrict(["b"])
    assert view.tasks == ("b",) and len(view) == 24
    with pytest.raises(SchemaError, match="not in this pool"):
        pool.restrict(["nope"])


# --- interaction episodes -----------------------------------------------------------------------


def ratings_frame() -> pl.DataFrame:
    """Users whose rating counts sit on both sides of the MeLU bounds 13 and 100."""
    counts = {"u12": 12, "u13": 13, "u50": 50, "u100": 100, "u101": 101}
    rng = np.random.default_rng(0)
    rows = [(user, item, int(rng.integers(1, 6))) for user, n in counts.items() for item in range(n)]
    return pl.DataFrame(rows, schema=["user_id", "item_id", "rating"], orient="row")


def test_melu_protocol_selects_users_with_13_to_100_ratings() -> None:
    episodes = melu_episodes(InteractionPool(ratings_frame()), seed=0)
    assert sorted(e.user for e in episodes) == ["u100", "u13", "u50"]
    pool = InteractionPool(ratings_frame())
    for episode in episodes:
        assert len(episode.query_rows) == 10
        assert len(episode.support_rows) == len(pool.rows_of(episode.user)) - 10
        assert not set(episode.support_rows) & set(episode.query_rows)
        assert set(episode.support_rows) | set(episode.query_rows) == set(pool.rows_of(episode.user))


def test_k_shot_episodes_share_the_query_and_nest_the_support() -> None:
    pool = InteractionPool(ratings_frame())
    by_k = {k: {e.user: e for e in melu_episodes(pool, seed=1, shots=k)} for k in (1, 3, 5)}
    full = {e.user: e for e in melu_episodes(pool, seed=1)}
    assert set(by_k[5]) == {"u50", "u100"}  # u13 keeps only 3 ratings once its 10 queries are out
    for user, episode in by_k[3].items():
        assert np.array_equal(episode.query_rows, full[user].query_rows)
        assert set(by_k[1][user].support_rows) <= set(episode.support_rows) <= set(full[user].support_rows)
        assert len(episode.support_rows) == 3


def test_k_shot_skips_users_with_too_few_ratings() -> None:
    pool = InteractionPool(ratings_frame())
    # u13 has 13 ratings: 10 go to the query, so only 3 remain for the support.
    assert "u13" not in {e.user for e in melu_episodes(pool, seed=0, shots=4)}
    assert "u13" in {e.user for e in melu_episodes(pool, seed=0, shots=3)}


def test_interaction_pool_refuses_bad_ratings() -> None:
    frame = ratings_frame()
    with pytest.raises(SchemaError, match="NaN or inf"):
        InteractionPool(frame.with_columns(pl.col("rating").cast(pl.Float64).fill_null(0)
                                           .replace(3.0, float("nan"))))
    with pytest.raises(SchemaError, match="nulls"):
        InteractionPool(pl.DataFrame({"user_id": [1, None], "item_id": [1, 2], "rating": [3, 4]}))
    with pytest.raises(SchemaError, match="must be numeric"):
        InteractionPool(frame.with_columns(pl.col("rating").cast(pl.String)))


def test_interaction_pool_accepts_pandas_and_string_ids() -> None:
    frame = ratings_frame().to_pandas()
    pool = InteractionPool(frame)
    assert pool.tasks == ("u100", "u101", "u12", "u13", "u50")
    episode = pool.sample("u50", shots=5, query_size=10, rng=0)
    assert episode.support_items.shape == (5,) and episode.query_ratings.dtype == np.float32


# --- suites -------------------------------------------------------------------------------------


def toy_spec(**overrides: object) -> dict:
    raw = {
        "name": "toy", "kind": "classification", "dataset": "-", "table": "-",
        "task_column": "task", "label_column": "stars", "shots": [1, 2], "query_per_class": 2,
        "classes": [{"name": "negative", "max": 2}, {"name": "positive", "min": 4}],
        "splits": {"train": ["a"], "val": ["b"], "test": ["c"]},
    }
    raw.update(overrides)
    return raw


def toy_frame() -> pl.DataFrame:
    rows = [(task, f"{task} text {i}", stars) for task in "abc" for i, stars in enumerate([1, 2, 3, 4, 5] * 4)]
    return pl.DataFrame(rows, schema=["task", "text", "stars"], orient="row")


def test_suite_applies_class_rules_and_drops_unlabelled_rows() -> None:
    suite = TaskSuite(spec_from_dict(toy_spec()), frame=toy_frame())
    assert suite.pool.classes == ("negative", "positive")
    assert suite.pool.class_counts("a") == {"negative": 8, "positive": 8}  # the 3-star rows are gone
    episodes = suite.episodes("test", shots=2, n=10, seed=0)
    assert {e.task for e in episodes} == {"c"}
    assert episodes[0].support_rows.tolist() == suite.episodes("test", shots=2, n=10, seed=0)[0].support_rows.tolist()


def test_suite_refuses_overlapping_rules_unknown_tasks_and_fields() -> None:
    overlapping = toy_spec(classes=[{"name": "negative", "max": 3}, {"name": "positive", "min": 3}])
    with pytest.raises(SuiteError, match="more than one class rule"):
        TaskSuite(spec_from_dict(overlapping), frame=toy_frame()).pool
    with pytest.raises(SuiteError, match="absent from its data"):
        TaskSuite(spec_from_dict(toy_spec(splits={"test": ["zzz"]})), frame=toy_frame()).splits()
    with pytest.raises(SuiteError, match="unknown field"):
        spec_from_dict(toy_spec(shot=[1]))
    with pytest.raises(SuiteError, match="either min/max or values"):
        spec_from_dict(toy_spec(classes=[{"name": "negative"}, {"name": "positive", "min": 4}]))
    with pytest.raises(SuiteError, match="missing"):
        spec_from_dict({k: v for k, v in toy_spec().items() if k != "label_column"})


def test_interaction_suite_splits_users_8_1_1_without_sharing() -> None:
    spec = spec_from_dict({"name": "users", "kind": "interactions", "dataset": "-", "table": "-",
                           "shots": [1], "splits": {"fractions": [0.8, 0.1, 0.1], "seed": 0}})
    rows = [(user, item, 4) for user in range(40) for item in range(15 + user)]
    suite = TaskSuite(spec, frame=pl.DataFrame(rows, schema=["user_id", "item_id", "rating"], orient="row"))
    for seed in (0, 1):
        splits = suite.splits(seed)
        assert (len(splits.train), len(splits.val), len(splits.test)) == (32, 4, 4)
        assert {e.user for e in suite.episodes("test", shots=None, split_seed=seed)} == set(splits.test)
    assert suite.splits(0) != suite.splits(1)


def test_shipped_suites_parse() -> None:
    assert available_suites() == ["clothing-sentiment", "clothing-sentiment-3way", "movielens-users",
                                  "movies-sentiment", "multi-domain-sentiment"]
    specs = {name: load_suite(name).spec for name in available_suites()}
    assert specs["clothing-sentiment"].splits.test == ("Jackets", "Sweaters", "Skirts")
    three = specs["clothing-sentiment-3way"]
    assert [rule.name for rule in three.classes] == ["negative", "neutral", "positive"] and three.ways == 3
    assert three.splits == specs["clothing-sentiment"].splits
    assert specs["movielens-users"].min_ratings == 13 and specs["movielens-users"].max_ratings == 100
    with pytest.raises(SuiteError, match="shipped suites"):
        load_suite("no-such-suite")


def test_training_episodes_can_use_a_smaller_query() -> None:
    suite = TaskSuite(spec_from_dict(toy_spec()), frame=toy_frame())
    episode = suite.sample("train", shots=1, rng=0, query_per_class=1)
    assert len(episode.query_rows) == 2 and len(episode.support_rows) == 2
    assert len(suite.sample("train", shots=1, rng=0).query_rows) == 4  # the suite's own 2 per class
