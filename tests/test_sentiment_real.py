"""The shipped sentiment initialization on the real MiniLM and real, never-seen data (Rotten Tomatoes)."""

from __future__ import annotations

import numpy as np
import pytest

import personalize as pz
from personalize.tasks import load_suite

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def classifier():
    return pz.load("sentiment", device="cpu")


def accuracies_on_movies(classifier, with_frozen_baseline: bool = False) -> dict[str, float]:
    """Mean query accuracy of each way to classify, on 24 fixed 8-shot Rotten Tomatoes episodes."""
    from sklearn.linear_model import LogisticRegression

    zero_shot = classifier.zero_shot()
    names = classifier.labels
    scores: dict[str, list[float]] = {"adapted": [], "zero-shot": [], "frozen + LR": []}
    for episode in load_suite("movies-sentiment").episodes("test", shots=8, n=24, seed=123):
        labels = [int(label) for label in episode.support_labels]
        truth = episode.query_labels
        model = classifier.adapt(episode.support_texts, [names[label] for label in labels])
        scores["adapted"].append(np.mean([names.index(p) for p in model.predict(episode.query_texts)] == truth))
        scores["zero-shot"].append(np.mean([names.index(p) for p in zero_shot.predict(episode.query_texts)] == truth))
        if with_frozen_baseline:
            support = classifier.encoder.embed(episode.support_texts, normalize=True).numpy()
            query = classifier.encoder.embed(episode.query_texts, normalize=True).numpy()
            scores["frozen + LR"].append(np.mean(LogisticRegression(max_iter=1000).fit(support, labels).predict(query)
                                                 == truth))
    return {name: float(np.mean(values)) for name, values in scores.items() if values}


@pytest.fixture(scope="module")
def movie_accuracies(classifier, real_data) -> dict[str, float]:
    return accuracies_on_movies(classifier, with_frozen_baseline=True)


def test_shipped_checkpoint_records_how_it_was_made(classifier) -> None:
    record = classifier.record
    assert record["suite"] == "clothing-sentiment"
    assert {"command", "seed", "wall_seconds", "device", "best_val_loss", "history"} <= set(record)
    validations = [entry["val_loss"] for entry in record["history"] if "val_loss" in entry]
    assert record["best_val_loss"] < validations[0]
    assert str(int(classifier.prior_strength)) in record["prior_strength_scores"]


def test_adapted_shipped_init_beats_the_frozen_encoder_on_rotten_tomatoes(movie_accuracies) -> None:
    assert movie_accuracies["adapted"] > movie_accuracies["frozen + LR"] + 0.03, movie_accuracies


@pytest.mark.xfail(strict=True, reason="known miss, see docs/sentiment.md: on Rotten Tomatoes the transferred "
                                       "(zero-shot) prototypes beat 8-shot adaptation")
def test_adapting_beats_not_adapting_on_rotten_tomatoes(movie_accuracies) -> None:
    assert movie_accuracies["adapted"] > movie_accuracies["zero-shot"], movie_accuracies


def test_the_shipped_meta_sgd_init_adapts_past_its_zero_shot_the_protonet_and_the_frozen_encoder(
        movie_accuracies) -> None:
    """``sentiment-meta-sgd``, one gradient step of learned step sizes: on these episodes 0.744 adapted,
    0.734 zero-shot, 0.712 for the protonet adapted, 0.579 for the frozen encoder (measured 2026-12-02).

    Its gain over its own zero-shot is one point, not the issue's five (see docs/sentiment.md).
    """
    scores = accuracies_on_movies(pz.load("sentiment-meta-sgd", device="cpu"))
    assert scores["adapted"] > scores["zero-shot"], scores
    assert scores["adapted"] > movie_accuracies["adapted"] + 0.01, (scores, movie_accuracies)
    assert scores["adapted"] > movie_accuracies["frozen + LR"] + 0.10, (scores, movie_accuracies)
