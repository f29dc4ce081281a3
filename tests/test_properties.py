"""Property tests (hypothesis): what must hold for *any* seed, pool, score vector or input, not one example.

What each group protects:

- **Classification episodes** (:class:`TextTaskPool.sample`): support and query never share a row;
  every class gets exactly the asked shots and queries; every row really is of the episode's task and
  of the class its label names (the index and the text column agree, also after null rows are
  dropped); an infeasible request is refused with EpisodeError; the same seed gives the same episode.
- **Interaction episodes** (:func:`melu_episodes`, :meth:`InteractionPool.sample`): support and query
  disjoint and all of one user's rows; the admitted users are exactly those the protocol names; a
  user's query set is the same at every K, the support at a smaller K is inside the support at a
  larger K (the README and the docstring say so), and a user's episode does not depend on which other
  users are in the pool.
- **Splits** (:func:`split_tasks`): disjoint by task, union = every task, sizes as the fractions say,
  independent of key order, for any seed and any valid fractions (this found the 0/0.5/0.5 bug).
- **Suites**: seeded evaluation episodes are the same on every call and never leave their split.
- **Metrics** (:mod:`personalize.recommend.metrics`): NDCG against scikit-learn's ``ndcg_score`` with
  the same gain (``2^r - 1`` within a query, binary over the catalogue) and the same tie-breaking
  (item order); precision, recall, MAE, RMSE and the confidence interval against direct formulas.
- **Save/load**: a TaskModel of every learner in ``LEARNERS`` (and regression heads), a
  SentimentClassifier (prototypes with a prior; a head with a multiclass companion) and a Recommender
  predict bit-identically (``np.array_equal``) after save and load, on generated texts and histories.
- **State bank**: any groups of fixed and ragged tensors read back byte for byte and verify clean;
  flipping any single byte of a shard's tensor data makes ``verify()`` name that part (and only it).

Examples are derandomized and no example database is kept, so CI sees the same examples every run.
"""

from __future__ import annotations

import json
import math
import random
import statistics
import struct
import tempfile
from collections.abc import Hashable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
import torch
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from personalize.bank.store import StateBank, StateGroup, part_file
from personalize.encoder import Encoder, tiny_encoder
from personalize.engine.config import HeadConfig
from personalize.errors import EpisodeError
from personalize.learners import LEARNERS, create_learner
from personalize.recommend import Recommender, RecommenderConfig, metrics
from personalize.sentiment import SentimentClassifier
from personalize.task_model import TaskModel, adapt_tasks
from personalize.tasks import InteractionPool, TextTaskPool, melu_episodes, split_tasks
from personalize.tasks.synthetic import synthetic_suite

PROPERTY = settings(derandomize=True, database=None, deadline=None, max_examples=60,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
"""Shared settings: reproducible examples (derandomize, no database), no per-example deadline."""

SEEDS = st.integers(0, 2**32 - 1)


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> Iterator[None]:
    """Run this module's torch work on one thread (restored after): on 2 shared cores, 2 threads
    spinning against other processes made these tests 10-20x slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# --- classification episodes ---------------------------------------------------------------------


@st.composite
def text_pools(draw: st.DrawFn) -> tuple[pl.DataFrame, dict[str, tuple[str, str]]]:
    """A shuffled (task, text, label) frame of 1-3 tasks x 2-4 classes with 0-10 rows each, some labels null;
    and, for every text (all distinct), the (task, label) it was written with."""
    n_tasks, n_classes = draw(st.integers(1, 3)), draw(st.integers(2, 4))
    cells = [(f"task{t}", f"class{c}") for t in range(n_tasks) for c in range(n_classes)]
    rows = [cell for cell in cells for _ in range(draw(st.integers(0, 10)))]
    rows = draw(st.permutations(rows))
    nulls = draw(st.sets(st.integers(0, max(len(rows) - 1, 0)), max_size=3)) if rows else set()
    texts = [f"text {i}" for i in range(len(rows))]
    frame = pl.DataFrame({"task": [task for task, _ in rows], "text": texts,
                          "label": [None if i in nulls else label for i, (_, label) in enumerate(rows)]},
                         schema={"task": pl.String, "text": pl.String, "label": pl.String})
    truth = {text: row for i, (text, row) in enumerate(zip(texts, rows)) if i not in nulls}
    return frame, truth


@PROPERTY
@given(pool_and_truth=text_pools(), data=st.data())
def test_classification_episodes_are_balanced_disjoint_labelled_right_and_seeded(
        pool_and_truth: tuple[pl.DataFrame, dict[str, tuple[str, str]]], data: st.DataObject) -> None:
    frame, truth = pool_and_truth
    assume(len(truth) > 0)
    pool = TextTaskPool(frame)
    task = data.draw(st.sampled_from(pool.tasks), label="task")
    ways = data.draw(st.integers(1, len(pool.classes)), label="ways")
    shots, queries = data.draw(st.integers(1, 4), label="shots"), data.draw(st.integers(0, 4), label="queries")
    seed, shuffle = data.draw(SEEDS, label="seed"), data.draw(st.booleans(), label="shuffle_classes")
    counts = pool.class_counts(task)
    eligible = [label for label in pool.classes if counts[label] >= shots + queries]

    def draw_episode(rng: Any) -> Any:
        return pool.sample(task, ways=ways, shots=shots, query_per_class=queries, rng=rng, shuffle_classes=shuffle)

    if len(eligible) < ways:
        with pytest.raises(EpisodeError, match="cannot supply"):
            draw_episode(seed)
        return
    episode = draw_episode(seed)
    support, query = episode.support_rows.tolist(), episode.query_rows.tolist()
    assert len(set(support)) == len(support) == ways * shots
    assert len(set(query)) == len(query) == ways * queries
    assert not set(support) & set(query)
    assert np.bincount(episode.support_labels, minlength=ways).tolist() == [shots] * ways
    assert np.bincount(episode.query_labels, minlength=ways).tolist() == [queries] * ways
    assert len(set(episode.classes)) == ways and set(episode.classes) <= set(eligible)
    if not shuffle:
        assert list(episode.classes) == [label for label in pool.classes if label in episode.classes]
    for texts, labels in ((episode.support_texts, episode.support_labels), (episode.query_texts, episode.query_labels)):
        assert [truth[text] for text in texts] == [(task, episode.classes[label]) for label in labels]
    again = draw_episode(np.random.default_rng(seed))
    assert again.classes == episode.classes
    assert np.array_equal(again.support_rows, episode.support_rows)
    assert np.array_equal(again.query_rows, episode.query_rows)


# --- interaction episodes ------------------------------------------------------------------------


@st.composite
def interaction_frames(draw: st.DrawFn) -> pl.DataFrame:
    """1-6 users (any int ids, some negative) with 0-25 ratings each, rows shuffled; item ids say whose row it is."""
    users = draw(st.lists(st.integers(-1000, 10**6), min_size=1, max_size=6, unique=True))
    rows = [(user, f"{user}:{j}", float(draw(st.integers(1, 5)))) for user in users
            for j in range(draw(st.integers(0, 25)))]
    assume(rows)
    rows = draw(st.permutations(rows))
    return pl.DataFrame(rows, schema=["user_id", "item_id", "rating"], orient="row")


def owner(item: str) -> int:
    return int(item.rsplit(":", 1)[0])


@PROPERTY
@given(frame=interaction_frames(), data=st.data())
def test_melu_query_is_fixed_and_support_nests_across_k(frame: pl.DataFrame, data: st.DataObject) -> None:
    pool = InteractionPool(frame)
    min_ratings = data.draw(st.integers(3, 10), label="min_ratings")
    query_size = data.draw(st.integers(1, min_ratings - 1), label="query_size")
    max_ratings = data.draw(st.integers(min_ratings, 30), label="max_ratings")
    small = data.draw(st.integers(1, 8), label="small K")
    large = data.draw(st.integers(small, 12), label="large K")
    seed = data.draw(SEEDS, label="seed")
    protocol = {"seed": seed, "min_ratings": min_ratings, "max_ratings": max_ratings, "query_size": query_size}
    count = dict(zip(pool.tasks, pool.counts().tolist()))
    by_k = {shots: {e.user: e for e in melu_episodes(pool, shots=shots, **protocol)} for shots in (small, large, None)}

    admitted = {user for user, n in count.items() if min_ratings <= n <= max_ratings}
    assert set(by_k[None]) == admitted
    for shots in (small, large):
        assert set(by_k[shots]) == {user for user in admitted if count[user] - query_size >= shots}
    for shots, episodes in by_k.items():
        for user, episode in episodes.items():
            support, query = set(episode.support_rows.tolist()), set(episode.query_rows.tolist())
            assert len(query) == query_size and len(support) == (count[user] - query_size if shots is None else shots)
            assert not support & query
            assert {owner(item) for item in [*episode.support_items, *episode.query_items]} == {user}
            if shots is None:
                assert support | query == set(pool.rows_of(user).tolist())
    for user, episode in by_k[small].items():
        wider = [by_k[large].get(user), by_k[None][user]]
        for other in [e for e in wider if e is not None]:
            assert np.array_equal(episode.query_rows, other.query_rows)
            assert set(episode.support_rows.tolist()) <= set(other.support_rows.tolist())
    # A user's episode depends on (seed, user) only: not on the other users in the pool, nor on the call.
    for user, episode in by_k[small].items():
        alone = melu_episodes(pool.restrict([user]), shots=small, **protocol)
        assert len(alone) == 1 and np.array_equal(alone[0].support_rows, episode.support_rows)
        assert np.array_equal(alone[0].query_rows, episode.query_rows)
    repeat = {e.user: e for e in melu_episodes(pool, shots=small, **protocol)}
    assert all(np.array_equal(repeat[u].support_rows, e.support_rows) for u, e in by_k[small].items())


@PROPERTY
@given(frame=interaction_frames(), data=st.data())
def test_interaction_sample_splits_one_users_rows(frame: pl.DataFrame, data: st.DataObject) -> None:
    pool = InteractionPool(frame)
    user = data.draw(st.sampled_from(pool.tasks), label="user")
    rows = set(pool.rows_of(user).tolist())
    query_size = data.draw(st.integers(0, 6), label="query_size")
    shots = data.draw(st.none() | st.integers(1, 8), label="shots")
    seed = data.draw(SEEDS, label="seed")
    wanted = len(rows) - query_size if shots is None else shots
    if len(rows) - query_size < max(1, wanted):
        with pytest.raises(EpisodeError, match="too few"):
            pool.sample(user, shots=shots, query_size=query_size, rng=seed)
        return
    episode = pool.sample(user, shots=shots, query_size=query_size, rng=seed)
    support, query = set(episode.support_rows.tolist()), set(episode.query_rows.tolist())
    assert len(support) == wanted and len(query) == query_size
    assert not support & query and support | query <= rows
    assert np.array_equal(episode.support_ratings, pool.ratings[episode.support_rows])
    again = pool.sample(user, shots=shots, query_size=query_size, rng=np.random.default_rng(seed))
    assert np.array_equal(again.support_rows, episode.support_rows)
    assert np.array_equal(again.query_rows, episode.query_rows)


# --- splits --------------------------------------------------------------------------------------


KEYS = st.sets(st.integers(-50, 50) | st.text(alphabet="abcxyz-", max_size=4), max_size=40)


@st.composite
def fractions(draw: st.DrawFn) -> tuple[float, float, float]:
    """Valid (train, val, test) fractions, on a grid of twentieths (0 and exact halves included) or any floats."""
    if draw(st.booleans()):
        val = draw(st.integers(0, 20))
        test = draw(st.integers(0, 20 - val))
        return (20 - val - test) / 20, val / 20, test / 20
    val = draw(st.floats(0, 1))
    test = draw(st.floats(0, 1 - val))
    return 1 - val - test, val, test


@settings(PROPERTY, max_examples=300)
@given(keys=KEYS, split=fractions(), seed=SEEDS, order=st.randoms(use_true_random=False))
@example(keys={0, 1, 2}, split=(0.0, 0.5, 0.5), seed=0, order=random.Random(0))  # both roundings go up
@example(keys=set(range(5)), split=(0.0, 0.3, 0.7), seed=1, order=random.Random(0))
@example(keys=set(), split=(0.8, 0.1, 0.1), seed=0, order=random.Random(0))
def test_splits_partition_the_tasks_for_any_seed_and_fractions(keys: set[Hashable], split: tuple[float, float, float],
                                                                seed: int, order: random.Random) -> None:
    splits = split_tasks(keys, split, seed=seed)
    parts = [set(splits.train), set(splits.val), set(splits.test)]
    assert sum(map(len, parts)) == len(keys) and set().union(*parts) == keys
    assert len(splits.val) == round(len(keys) * split[1])
    assert len(splits.test) == min(round(len(keys) * split[2]), len(keys) - len(splits.val))
    assert abs(len(splits.test) - len(keys) * split[2]) <= 1  # the cap only ever takes back a rounding-up
    shuffled = sorted(keys, key=repr)
    order.shuffle(shuffled)
    assert split_tasks(shuffled, split, seed=seed) == splits


# --- suites --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def synthetic() -> Any:
    return synthetic_suite(num_tasks=20, examples_per_class=12, seed=0)


@settings(PROPERTY, max_examples=20)
@given(split=st.sampled_from(["train", "val", "test"]), shots=st.integers(1, 4), seed=SEEDS)
def test_suite_episodes_are_seeded_and_stay_in_their_split(synthetic: Any, split: str, shots: int, seed: int) -> None:
    episodes = synthetic.episodes(split, shots=shots, n=6, seed=seed)
    again = synthetic.episodes(split, shots=shots, n=6, seed=seed)
    tasks = set(synthetic.splits()[split])
    for first, second in zip(episodes, again, strict=True):
        assert first.task == second.task and first.task in tasks
        assert np.array_equal(first.support_rows, second.support_rows)
        assert np.array_equal(first.query_rows, second.query_rows)
        assert not set(first.support_rows.tolist()) & set(first.query_rows.tolist())


@pytest.mark.xfail(strict=True, reason="classification episodes do not nest across K (the README says so): their "
                   "rows come from one rng.choice of shots + queries per class; MeLU user episodes do nest")
def test_classification_suite_support_nests_across_k(synthetic: Any) -> None:
    nested = [set(small.support_rows.tolist()) <= set(large.support_rows.tolist())
              for seed in range(3)
              for small, large in zip(synthetic.episodes("train", shots=2, n=10, seed=seed),
                                      synthetic.episodes("train", shots=8, n=10, seed=seed))]
    assert all(nested)


# --- metrics -------------------------------------------------------------------------------------


def item_order_scores(scores: np.ndarray) -> np.ndarray:
    """Distinct scores that rank like ``scores`` with ties broken by item order (the metrics' convention)."""
    order = np.lexsort((np.arange(scores.size), -scores))
    ranked = np.empty(scores.size)
    ranked[order] = np.arange(scores.size, 0, -1)
    return ranked


TIED_SCORES = st.integers(0, 3).map(float)            # few values: many ties
DISTINCT_SCORES = st.floats(-10, 10, allow_nan=False)  # made distinct below
RATINGS = st.sampled_from([0.0, 1.0, 2.0, 3.0, 3.5, 4.0, 5.0])


@st.composite
def scored_queries(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray, int]:
    n = draw(st.integers(2, 12))
    scores = np.array(draw(st.lists(TIED_SCORES | DISTINCT_SCORES, min_size=n, max_size=n)))
    ratings = np.array(draw(st.lists(RATINGS, min_size=n, max_size=n)))
    return scores, ratings, draw(st.integers(1, 15))


@settings(PROPERTY, max_examples=150)
@given(query=scored_queries())
def test_ndcg_matches_scikit_learn_with_exponential_gain(query: tuple[np.ndarray, np.ndarray, int]) -> None:
    sklearn_metrics = pytest.importorskip("sklearn.metrics")
    scores, ratings, k = query
    gain = [2.0 ** ratings - 1.0]
    ours = metrics.ndcg_at_k(scores, ratings, k=k)
    assert ours == pytest.approx(sklearn_metrics.ndcg_score(gain, [item_order_scores(scores)], k=k), abs=1e-12)
    if np.unique(scores).size == scores.size:  # no ties: the raw scores mean the same to both
        assert ours == pytest.approx(sklearn_metrics.ndcg_score(gain, [scores], k=k), abs=1e-12)
    assert 0.0 <= ours <= 1.0 + 1e-12


@settings(PROPERTY, max_examples=150)
@given(query=scored_queries(), relevant=st.sampled_from([1.0, 3.5, 4.0]))
def test_precision_at_k_is_the_fraction_of_relevant_in_the_stable_top_k(
        query: tuple[np.ndarray, np.ndarray, int], relevant: float) -> None:
    scores, ratings, k = query
    top = sorted(range(scores.size), key=lambda i: (-scores[i], i))[:k]
    expected = sum(ratings[i] >= relevant for i in top) / len(top)
    assert metrics.precision_at_k(scores, ratings, k=k, relevant=relevant) == pytest.approx(expected, abs=1e-12)


@st.composite
def catalogue_rankings(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    n = draw(st.integers(3, 20))
    scores = np.array(draw(st.lists(TIED_SCORES | DISTINCT_SCORES, min_size=n, max_size=n)))
    state = np.array(draw(st.lists(st.sampled_from(["seen", "relevant", "other"]), min_size=n, max_size=n)))
    return scores, state == "seen", state == "relevant", draw(st.integers(1, 12))


@settings(PROPERTY, max_examples=150)
@given(ranking=catalogue_rankings())
def test_full_catalogue_topk_matches_scikit_learn_and_the_recall_formula(
        ranking: tuple[np.ndarray, np.ndarray, np.ndarray, int]) -> None:
    sklearn_metrics = pytest.importorskip("sklearn.metrics")
    scores, seen, relevant, k = ranking
    recall, ndcg = metrics.full_catalogue_topk(scores, seen_mask=seen, relevant_mask=relevant, k=k)
    if not relevant.any():
        assert math.isnan(recall) and math.isnan(ndcg)
        return
    candidates = np.flatnonzero(~seen)
    top = sorted(candidates, key=lambda i: (-scores[i], i))[:k]
    assert recall == pytest.approx(sum(relevant[top]) / min(k, int(relevant.sum())), abs=1e-12)
    if candidates.size >= 2:  # scikit-learn needs two documents
        expected = sklearn_metrics.ndcg_score([relevant[candidates].astype(float)],
                                              [item_order_scores(scores[candidates])], k=k)
        assert ndcg == pytest.approx(expected, abs=1e-12)
    else:
        assert ndcg == 1.0  # the one candidate is the one relevant item


@settings(PROPERTY, max_examples=100)
@given(pairs=st.lists(st.tuples(st.floats(-1e3, 1e3), st.floats(-1e3, 1e3)), min_size=1, max_size=30))
def test_mae_and_rmse_match_scikit_learn(pairs: list[tuple[float, float]]) -> None:
    sklearn_metrics = pytest.importorskip("sklearn.metrics")
    pred, true = np.array(pairs).T
    close = {"rel": 1e-12, "abs": 1e-9}
    assert metrics.mae(pred, true) == pytest.approx(sklearn_metrics.mean_absolute_error(true, pred), **close)
    assert metrics.rmse(pred, true) == pytest.approx(sklearn_metrics.root_mean_squared_error(true, pred), **close)


@settings(PROPERTY, max_examples=100)
@given(values=st.lists(st.floats(-1e3, 1e3) | st.just(math.nan), max_size=20))
def test_mean_ci_is_the_normal_interval_of_the_non_nan_values(values: list[float]) -> None:
    mean, half = metrics.mean_ci(values)
    kept = [v for v in values if not math.isnan(v)]
    if not kept:
        assert math.isnan(mean) and math.isnan(half)
        return
    assert mean == pytest.approx(statistics.fmean(kept), rel=1e-9, abs=1e-9)
    expected = 0.0 if len(kept) == 1 else 1.96 * statistics.stdev(kept) / math.sqrt(len(kept))
    assert half == pytest.approx(expected, rel=1e-9, abs=1e-9)


# --- save / load round trips ---------------------------------------------------------------------

VOCABULARY = ["love", "hate", "great", "awful", "fit", "zip", "soft", "broke", "the", "it", "so", "très", "!", "42"]
TEXTS = st.lists(st.sampled_from(VOCABULARY), min_size=1, max_size=8).map(" ".join)
QUERIES = st.lists(TEXTS, min_size=1, max_size=6)
SUPPORT_TEXTS = ["love it", "hate it", "adore it", "awful thing", "great fit", "fell apart"]
SUPPORT_LABELS = ["yes", "no", "yes", "no", "yes", "no"]
SUPPORT_SCORES = [5.0, 1.0, 4.5, 1.5, 4.0, 2.0]
ROUND_TRIP = settings(PROPERTY, max_examples=8)


@pytest.fixture(scope="module")
def encoder() -> Encoder:
    return tiny_encoder(seed=0)


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("round-trips")


TASK_MODELS = [(name, "classification") for name in sorted(LEARNERS)] + [("bayes", "regression"),
                                                                         ("maml", "regression")]


@pytest.fixture(scope="module")
def task_models(encoder: Encoder, folder: Path) -> dict[tuple[str, str], tuple[TaskModel, TaskModel]]:
    """(adapted, saved-and-reloaded) TaskModel for every learner, adapted once."""
    pairs = {}
    for name, kind in TASK_MODELS:
        learner = create_learner(name, encoder, head=HeadConfig(kind=kind), seed=1)
        targets = SUPPORT_LABELS if kind == "classification" else SUPPORT_SCORES
        model = adapt_tasks(learner, [(SUPPORT_TEXTS, targets)])[0]
        pairs[name, kind] = model, TaskModel.load(model.save(folder / f"task-{name}-{kind}"), encoder=encoder)
    return pairs


@ROUND_TRIP
@given(texts=QUERIES)
@pytest.mark.parametrize(("name", "kind"), TASK_MODELS)
def test_task_model_predicts_bit_identically_after_save_and_load(
        task_models: dict[tuple[str, str], tuple[TaskModel, TaskModel]], name: str, kind: str,
        texts: list[str]) -> None:
    model, loaded = task_models[name, kind]
    outputs, variance = model.predict_with_uncertainty(texts)
    loaded_outputs, loaded_variance = loaded.predict_with_uncertainty(texts)
    assert np.array_equal(outputs, loaded_outputs)
    assert (variance is None) == (loaded_variance is None) == (name != "bayes")
    assert variance is None or np.array_equal(variance, loaded_variance)
    if kind == "classification":  # predict() is the argmax of these, in these classes
        assert np.array_equal(model.predict_proba(texts), loaded.predict_proba(texts))
        assert loaded.classes == model.classes == ("no", "yes")
    else:  # predict() is these outputs
        assert loaded.classes is None and outputs.shape == (len(texts),)


@pytest.fixture(scope="module")
def classifiers(encoder: Encoder, folder: Path) -> dict[str, tuple[SentimentClassifier, SentimentClassifier]]:
    """Two classifiers, saved and reloaded: prototypes with a zero-shot prior; a head with a multiclass companion."""
    reference = [1, 0, 1, 0, 1, 0]
    protonet = create_learner("protonet", encoder, seed=2)
    built = SentimentClassifier.build(protonet, SUPPORT_TEXTS, reference)
    with_prior = SentimentClassifier(protonet, built.zero_shot_state, built.labels, prior_strength=1.5)
    companion = SentimentClassifier.build(create_learner("protonet", encoder, seed=3), SUPPORT_TEXTS, reference)
    head = SentimentClassifier.build(create_learner("fomaml", encoder, seed=4, inner_steps=2), SUPPORT_TEXTS,
                                     reference, multiclass=companion)
    saved = {name: classifier.save(folder / f"classifier-{name}") for name, classifier in
             (("prototypes", with_prior), ("head", head))}
    return {"prototypes": (with_prior, SentimentClassifier.load(saved["prototypes"], encoder=encoder)),
            "head": (head, SentimentClassifier.load(saved["head"], encoder=encoder))}


LABELS = st.sampled_from(["negative", "positive", "neutral"])


@ROUND_TRIP
@given(support=st.lists(st.tuples(TEXTS, LABELS), min_size=2, max_size=8), texts=QUERIES)
@pytest.mark.parametrize("name", ["prototypes", "head"])
def test_sentiment_classifier_predicts_bit_identically_after_save_and_load(
        classifiers: dict[str, tuple[SentimentClassifier, SentimentClassifier]], name: str,
        support: list[tuple[str, str]], texts: list[str]) -> None:
    assume(len({label for _, label in support}) >= 2)
    classifier, loaded = classifiers[name]
    assert loaded.prior_strength == classifier.prior_strength and loaded.labels == classifier.labels
    assert np.array_equal(classifier.zero_shot().predict_proba(texts), loaded.zero_shot().predict_proba(texts))
    support_texts, support_labels = [text for text, _ in support], [label for _, label in support]
    adapted, reloaded = classifier.adapt(support_texts, support_labels), loaded.adapt(support_texts, support_labels)
    assert adapted.classes == reloaded.classes == tuple(sorted(set(support_labels)))
    assert np.array_equal(adapted.predict_proba(texts), reloaded.predict_proba(texts))


ITEMS = 30


@pytest.fixture(scope="module")
def recommenders(encoder: Encoder, folder: Path) -> tuple[Recommender, Recommender]:
    """A tiny recommender meta-fitted as in its docstring (no repeated (user, item) pair), saved and reloaded."""
    rng = np.random.default_rng(0)
    items = pl.DataFrame({"item_id": range(ITEMS), "text": [f"film number {i}" for i in range(ITEMS)]})
    ratings = pl.DataFrame({"user_id": np.repeat(np.arange(60), 15),
                            "item_id": np.concatenate([rng.permutation(ITEMS)[:15] for _ in range(60)]),
                            "rating": rng.integers(1, 6, 900)})
    recommender = Recommender.meta_fit(ratings, items, config=RecommenderConfig(factors=4, steps=10, val_every=5),
                                       encoder=encoder)
    return recommender, Recommender.load(recommender.save(folder / "recommender"), encoder=encoder)


@ROUND_TRIP
@given(history=st.dictionaries(st.integers(0, ITEMS - 1), st.sampled_from([1, 2, 3, 4, 5, 2.5]),
                               min_size=1, max_size=8),
       queried=st.lists(st.integers(0, ITEMS - 1), min_size=1, max_size=10, unique=True))
def test_recommender_predicts_and_ranks_bit_identically_after_save_and_load(
        recommenders: tuple[Recommender, Recommender], history: dict[int, float], queried: list[int]) -> None:
    recommender, loaded = recommenders
    frame = pl.DataFrame({"item_id": list(history), "rating": [float(r) for r in history.values()]})
    user, reloaded = recommender.adapt(frame), loaded.adapt(frame)
    mean, std = user.predict(queried, return_std=True)
    loaded_mean, loaded_std = reloaded.predict(queried, return_std=True)
    assert np.array_equal(mean, loaded_mean) and np.array_equal(std, loaded_std)
    assert user.recommend(n=5).equals(reloaded.recommend(n=5))
    assert recommender.suggest_to_rate(frame, n=3).equals(loaded.suggest_to_rate(frame, n=3))


# --- the state bank ------------------------------------------------------------------------------

DTYPES = [torch.float32, torch.float64, torch.float16, torch.int64, torch.int32, torch.uint8, torch.bool]


def random_tensor(draw: st.DrawFn, shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
    """A tensor of ``shape`` whose bytes are arbitrary (NaN, -0.0, any bit pattern; bools 0/1)."""
    count = int(np.prod(shape, dtype=np.int64))
    if dtype == torch.bool:
        flags = draw(st.lists(st.booleans(), min_size=count, max_size=count))
        return torch.tensor(flags, dtype=torch.bool).reshape(shape)
    if count == 0:
        return torch.zeros(shape, dtype=dtype)
    size = torch.empty(0, dtype=dtype).element_size()
    raw = draw(st.binary(min_size=count * size, max_size=count * size))
    return torch.frombuffer(bytearray(raw), dtype=dtype).clone().reshape(shape)


@st.composite
def state_groups(draw: st.DrawFn) -> list[StateGroup]:
    """1-3 groups of 1-4 rows; each with 0-2 fixed tensors [rows, ...] and 0-2 ragged ones (0-4 values a row)."""
    groups = []
    for _ in range(draw(st.integers(1, 3))):
        rows = draw(st.integers(1, 4))
        n_fixed = draw(st.integers(0, 2))
        n_ragged = draw(st.integers(0 if n_fixed else 1, 2))
        fixed = {f"f{i}": random_tensor(draw, (rows, *draw(st.lists(st.integers(0, 3), max_size=2))),
                                        draw(st.sampled_from(DTYPES))) for i in range(n_fixed)}
        ragged = {}
        for i in range(n_ragged):
            dtype = draw(st.sampled_from(DTYPES))
            ragged[f"r{i}"] = [random_tensor(draw, (draw(st.integers(0, 4)),), dtype) for _ in range(rows)]
        groups.append(StateGroup(fixed=fixed, ragged=ragged))
    return groups


def same_bytes(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.dtype == b.dtype and a.shape == b.shape and a.numpy().tobytes() == b.numpy().tobytes()


def write_bank(root: Path, parts: list[list[StateGroup]]) -> list[list[int]]:
    """Write each entry of ``parts`` as one part; returns the ids of each part."""
    bank = StateBank.open_for_writing(root, kind="demo", model_id="m", model_source="demo", id_dtype="Int64")
    ids, start = [], 0
    for groups in parts:
        rows = sum(group.rows for group in groups)
        part_ids = list(range(start, start + rows))
        start += rows
        bank.write_part(part_ids, groups, input_hashes=part_ids, counts=[1] * rows)
        ids.append(part_ids)
    return ids


@settings(PROPERTY, max_examples=40)
@given(parts=st.lists(state_groups(), min_size=1, max_size=2))
def test_bank_reads_back_every_state_exactly(parts: list[list[StateGroup]]) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        ids = write_bank(Path(scratch) / "bank", parts)
        bank = StateBank(Path(scratch) / "bank")
        for part_ids, groups in zip(ids, parts):
            users = iter(part_ids)
            for group in groups:
                for row in range(group.rows):
                    fixed, ragged, meta = bank.read(next(users))
                    assert sorted(fixed) == sorted(group.fixed) and sorted(ragged) == sorted(group.ragged)
                    assert all(same_bytes(fixed[name], value[row]) for name, value in group.fixed.items())
                    assert all(same_bytes(ragged[name], value[row]) for name, value in group.ragged.items())
                    assert meta is None
        report = bank.verify()
        assert report.ok, report.problems
        assert (report.parts, report.users) == (len(parts), sum(map(len, ids)))


def tensor_data(shard: Path) -> tuple[int, int]:
    """Where a safetensors file's tensor bytes start and end (after the 8-byte length and the JSON header)."""
    raw = shard.read_bytes()
    header = struct.unpack("<Q", raw[:8])[0]
    ends = [entry["data_offsets"][1] for name, entry in json.loads(raw[8:8 + header]).items() if name != "__metadata__"]
    return 8 + header, 8 + header + max(ends, default=0)


@settings(PROPERTY, max_examples=60)
@given(parts=st.lists(state_groups(), min_size=2, max_size=2), data=st.data())
@pytest.mark.filterwarnings("ignore:Truncating the start/stop/step of slice:UserWarning")  # torch, on damaged offsets
def test_bank_verify_names_the_part_whose_shard_lost_a_byte(parts: list[list[StateGroup]], data: st.DataObject) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch) / "bank"
        write_bank(root, parts)
        part = data.draw(st.sampled_from([1, 2]), label="part")
        shard = part_file(root, "shards", part)
        start, end = tensor_data(shard)
        assume(end > start)
        position = data.draw(st.integers(start, end - 1), label="byte")
        mask = data.draw(st.integers(1, 255), label="xor mask")
        original = shard.read_bytes()
        damaged = bytearray(original)
        damaged[position] ^= mask
        shard.write_bytes(bytes(damaged))
        problems = StateBank(root).verify().problems
        assert problems and all(problem.startswith(f"part {part}:") for problem in problems), problems
        shard.write_bytes(original)
        assert StateBank(root).verify().ok
