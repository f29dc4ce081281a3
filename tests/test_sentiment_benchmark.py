"""personalize.sentiment_benchmark: the benchmarks' shared methods and seeded episode loop."""

from __future__ import annotations

import math

import numpy as np
import pytest

from personalize import sentiment_benchmark as bench
from personalize.encoder import tiny_encoder
from personalize.learners import create_learner
from personalize.sentiment import SentimentClassifier
from personalize.tasks.synthetic import synthetic_suite


@pytest.fixture(scope="module")
def encoder():
    return tiny_encoder(seed=0)


def test_frozen_embeddings_embed_each_distinct_text_once_and_keep_the_order(encoder, monkeypatch) -> None:
    embed = bench.FrozenEmbeddings(encoder)
    asked: list[list[str]] = []
    real = encoder.embed
    monkeypatch.setattr(encoder, "embed", lambda texts, **kwargs: asked.append(list(texts)) or real(texts, **kwargs))
    first = embed(["good", "bad", "good"])
    second = embed(["bad", "meh"])
    assert asked == [["good", "bad"], ["meh"]]
    assert np.allclose(np.linalg.norm(first, axis=1), 1.0, atol=1e-5)
    assert np.array_equal(first[0], first[2]) and np.array_equal(first[1], second[0])


def test_cell_summary_is_the_mean_with_a_normal_half_width() -> None:
    cell = bench.Cell(accuracies=[0.5, 0.7, 0.9], fit_seconds=[0.3, 0.1, 0.2])
    summary = cell.summary()
    assert summary["mean"] == pytest.approx(0.7) and summary["n"] == 3 and summary["median_fit_seconds"] == 0.2
    assert summary["ci95"] == pytest.approx(1.96 * 0.2 / math.sqrt(3))
    assert math.isnan(bench.Cell([0.5], [0.1]).summary()["ci95"])  # one episode: no interval


def test_adapted_and_zero_shot_predict_class_ids_in_the_classifiers_label_order(encoder) -> None:
    classifier = SentimentClassifier.build(create_learner("protonet", encoder), ["awful", "lovely"], [0, 1])
    assert classifier.labels == ("negative", "positive")
    texts = ["awful thing", "lovely thing"]
    predict = bench.adapted(classifier)(texts, [1, 0])  # ids: 1 = positive given to "awful thing"
    assert predict(texts).tolist() == [1, 0]
    zero = bench.zero_shot(classifier)(texts, [1, 0])  # ignores the support set
    assert zero(["awful", "lovely", "awful"]).tolist() == [0, 1, 0]


def test_run_scores_each_method_on_its_cells_only(monkeypatch) -> None:
    suite = synthetic_suite(num_tasks=20)
    monkeypatch.setattr(bench, "load_suite", lambda name: suite)
    test_tasks = suite.splits().test
    episodes = [episode for task in test_tasks for k in (2, 4)
                for episode in suite.episodes("test", shots=k, n=3, seed=0, task=task)]
    truth = {tuple(episode.query_texts): episode.query_labels for episode in episodes}
    calls: list[int] = []

    def oracle(texts, labels):
        calls.append(len(texts))
        return lambda queries: np.asarray(truth[tuple(queries)])

    never = bench.Method("never", lambda texts, labels: lambda queries: np.full(len(queries), -1), episodes=3)
    methods = [bench.Method("oracle", oracle, episodes=2, shots=(4,)),
               bench.Method("only one domain", lambda texts, labels: lambda queries: np.zeros(len(queries)),
                            episodes=3, tasks=(test_tasks[0],), adapts=False),
               never]
    results = bench.run(methods, shots=(2, 4), episodes=3, seed=0, domains=[("synthetic", t) for t in test_tasks])
    assert set(results) == set(test_tasks)
    for task in test_tasks:
        assert list(results[task]["oracle"]) == ["4"]  # only its K
        assert results[task]["oracle"]["4"]["mean"] == 1.0 and results[task]["oracle"]["4"]["n"] == 2
        assert results[task]["never"]["2"]["mean"] == 0.0 and results[task]["never"]["2"]["n"] == 3
    assert "only one domain" in results[test_tasks[0]] and "only one domain" not in results[test_tasks[1]]
    assert results[test_tasks[0]]["only one domain"]["2"]["median_fit_seconds"] == 0.0  # zero-shot: no fit time
    assert calls == [8, 8] * len(test_tasks)  # 2 episodes of 2 classes x 4 shots per domain


def test_result_tables_show_a_dash_for_a_k_not_measured() -> None:
    cell = {"mean": 0.75, "ci95": 0.02, "n": 10, "median_fit_seconds": 0.012}
    lines = bench.result_tables({"movies": {"a": {"2": cell}, "b": {"8": cell}}}, shots=(2, 8))
    assert lines[:3] == ["### movies", "", "| method | K=2 | K=8 | adapt time, K=8 |"]
    assert "| a | 0.750 ± 0.020 (10) | — | — |" in lines
    assert "| b | — | 0.750 ± 0.020 (10) | 12 ms |" in lines
