"""scripts/bench_multiclass.py: the shipped model's 3-way episodes go through its named classes."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import numpy as np
import pytest

from personalize.encoder import tiny_encoder
from personalize.learners import create_learner
from personalize.sentiment import SentimentClassifier

SCRIPTS = Path(__file__).resolve().parent.parent / "scripts"


@pytest.fixture(scope="module")
def bench():
    sys.path.insert(0, str(SCRIPTS))
    try:
        yield importlib.import_module("bench_multiclass")
    finally:
        sys.path.remove(str(SCRIPTS))
        sys.modules.pop("bench_multiclass", None)


def test_a_third_class_is_adapted_by_name_and_predicted_as_an_id(bench) -> None:
    protonet = create_learner("protonet", tiny_encoder(seed=0))
    two_class = SentimentClassifier.build(protonet, ["good", "bad"], [1, 0])   # zero-shot names: negative, positive
    names = ("negative", "neutral", "positive")
    texts = ["awful thing", "so so thing", "lovely thing"]
    with_prior = bench.shipped(two_class, names, prior_strength=1e9)(texts, [0, 1, 2])
    support_only = bench.shipped(two_class, names, prior_strength=0.0)(texts, [0, 1, 2])
    assert support_only(texts).tolist() == [0, 1, 2]  # each class's prototype is its one text
    # An overwhelming prior replaces the prototypes of the classes it names; neutral keeps its own text's.
    predicted = with_prior(texts)
    assert predicted[1] == 1 and isinstance(predicted, np.ndarray) and set(predicted.tolist()) <= {0, 1, 2}
