"""The few-shot text classification API (``pz.load`` -> ``adapt`` -> ``TaskModel``) on a tiny encoder.

A prototypical learner meta-trained for a few seconds on the synthetic polarity suite stands in for
the shipped sentiment model: its held-out tasks are decided by cue words, so adapted models must
classify them well above chance, in the caller's own label space.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import personalize as pz
from personalize.encoder import tiny_encoder
from personalize.engine.config import AdapterConfig
from personalize.errors import CheckpointError, ConfigError
from personalize.learners import create_learner
from personalize.meta_fit import MetaFitConfig, meta_fit
from personalize.sentiment import SentimentClassifier, reference_examples
from personalize.tasks.synthetic import NEGATIVE_CUES, POSITIVE_CUES, synthetic_suite

ADAPTER = AdapterConfig(rank=4, target_modules=("query", "value", "output"))


@pytest.fixture(scope="module")
def suite():
    return synthetic_suite(num_tasks=40, examples_per_class=20, seed=0)


@pytest.fixture(scope="module")
def classifier(suite) -> SentimentClassifier:
    learner = meta_fit(create_learner("protonet", tiny_encoder(seed=0), adapter=ADAPTER), suite,
                       MetaFitConfig(steps=80, shots=(4,), outer_lr=1e-2, warmup_steps=5, val_every=40,
                                     val_episodes=8, progress=False))
    texts, labels = reference_examples(suite, per_class=16, seed=0)
    return SentimentClassifier.build(learner, texts, labels, labels=("a", "b"), record={"seed": 0})


@pytest.fixture(scope="module")
def episodes(suite):
    return suite.episodes("test", shots=4, n=12, seed=3)


def named(labels, names=("negative", "positive")) -> list[str]:
    return [names[int(label)] for label in labels]


def accuracy(predicted, expected) -> float:
    return float(np.mean([p == e for p, e in zip(predicted, expected)]))


def test_adapt_predicts_in_the_callers_label_space_well_above_chance(classifier, episodes) -> None:
    scores = []
    for episode in episodes:
        model = classifier.adapt(episode.support_texts, named(episode.support_labels))
        assert model.classes == ("negative", "positive")
        predicted = model.predict(episode.query_texts)
        assert set(predicted) <= {"negative", "positive"}
        scores.append(accuracy(predicted, named(episode.query_labels)))
    assert np.mean(scores) > 0.8, scores


def test_predict_proba_is_a_distribution_in_class_order(classifier, episodes) -> None:
    episode = episodes[0]
    model = classifier.adapt(episode.support_texts, [int(label) * 10 for label in episode.support_labels])
    probabilities = model.predict_proba(episode.query_texts)
    assert isinstance(probabilities, np.ndarray)
    assert probabilities.shape == (len(episode.query_texts), 2)
    np.testing.assert_allclose(probabilities.sum(1), 1.0, atol=1e-6)
    assert model.classes == (0, 10)
    assert model.predict(episode.query_texts) == [model.classes[i] for i in probabilities.argmax(1)]


def test_one_example_per_class_is_enough(classifier) -> None:
    model = classifier.adapt(["topic1 good item", "topic1 awful item"], ["pos", "neg"])
    assert model.predict(["topic1 good item", "topic1 awful item"]) == ["pos", "neg"]


def test_unbalanced_support_and_more_classes_than_training(classifier) -> None:
    texts = [f"topic5 {cue} one" for cue in POSITIVE_CUES[:6]] + ["topic5 bad one"]
    model = classifier.adapt(texts, ["up"] * 6 + ["down"])
    assert model.predict([f"topic5 {cue} it" for cue in NEGATIVE_CUES[1:4]]).count("down") >= 2

    # Each class repeats one text, so its prototype is that text's embedding: the text must come back to it.
    three = ["topic1 good item", "topic1 bad item", "topic1 item size"]
    model = classifier.adapt([text for text in three for _ in range(2)], ["pos"] * 2 + ["neg"] * 2 + ["neutral"] * 2)
    assert model.classes == ("neg", "neutral", "pos")
    assert model.predict_proba(["nice"]).shape == (1, 3)
    assert model.predict(three) == ["pos", "neg", "neutral"]


def test_adapt_many_equals_adapting_one_by_one(classifier, episodes) -> None:
    tasks = [(episode.support_texts, named(episode.support_labels)) for episode in episodes[:5]]
    together = classifier.adapt_many(tasks)
    for episode, (texts, labels), model in zip(episodes, tasks, together):
        alone = classifier.adapt(texts, labels)
        np.testing.assert_allclose(model.predict_proba(episode.query_texts),
                                   alone.predict_proba(episode.query_texts), atol=1e-5)


def test_saved_task_reloads_through_pz_load_with_identical_predictions(classifier, episodes, tmp_path) -> None:
    episode = episodes[1]
    model = classifier.adapt(episode.support_texts, named(episode.support_labels))
    model.save(tmp_path / "task")
    reloaded = pz.load(tmp_path / "task", encoder=tiny_encoder(seed=0))
    assert reloaded.predict(episode.query_texts) == model.predict(episode.query_texts)
    assert (reloaded.predict_proba(episode.query_texts) == model.predict_proba(episode.query_texts)).all()
    folder = model.to_peft(tmp_path / "peft")
    assert json.loads((folder / "adapter_config.json").read_text())["r"] == ADAPTER.rank


def test_classifier_save_load_keeps_zero_shot_and_adaptation(classifier, episodes, tmp_path) -> None:
    classifier.save(tmp_path / "clf")
    reloaded = pz.load(str(tmp_path / "clf"), encoder=tiny_encoder(seed=0))
    assert isinstance(reloaded, SentimentClassifier)
    assert reloaded.labels == ("a", "b") and reloaded.record == {"seed": 0}
    texts = episodes[2].query_texts
    assert (reloaded.zero_shot().predict_proba(texts) == classifier.zero_shot().predict_proba(texts)).all()
    episode = episodes[2]
    assert (reloaded.adapt(episode.support_texts, list(episode.support_labels)).predict_proba(texts)
            == classifier.adapt(episode.support_texts, list(episode.support_labels)).predict_proba(texts)).all()


def test_zero_shot_of_an_optimization_learner_is_its_meta_learned_head() -> None:
    learner = create_learner("fomaml", tiny_encoder(seed=0), adapter=ADAPTER)
    classifier = SentimentClassifier.build(learner, [], [])
    model = classifier.zero_shot()
    assert model.classes == ("negative", "positive")
    assert all(value.shape[0] == 1 for value in model.state.values())
    for name, value in learner.init_params().items():  # the meta-learned init itself, not a copy of something else
        assert torch.equal(model.state[name][0], value.detach()), name
    # Its head decides: a large bias on one row makes that row's label the prediction, for either row.
    for row, label in enumerate(("negative", "positive")):
        bias = torch.zeros(1, 2)
        bias[0, row] = 1e4
        model.state = {**model.state, "head_bias": bias}
        assert model.predict(["good", "bad"]) == [label, label]


@pytest.mark.parametrize(("texts", "labels", "message"), [
    ([], [], "no texts given"),
    (["good", 3], ["a", "b"], "text 1 is int, not str"),
    (["good", "   "], ["a", "b"], "text 1 is empty"),
    (["good", "bad"], ["a"], "2 texts but 1 labels"),
    (["good", "bad"], ["a", "a"], "only one class"),
    (["good", "bad"], ["a", 1.5], "labels must be str or int"),
    (["good", "bad"], "ab", "labels must be a list"),
])
def test_bad_input_is_refused_with_a_clear_message(classifier, texts, labels, message) -> None:
    with pytest.raises(ConfigError, match=message):
        classifier.adapt(texts, labels)


def test_adapt_many_refuses_a_single_task_passed_bare(classifier) -> None:
    with pytest.raises(ConfigError, match="list of \\(texts, labels\\) pairs"):
        classifier.adapt_many((["good", "bad"], ["yes", "no"]))


def test_a_class_without_examples_is_refused(classifier) -> None:
    with pytest.raises(ConfigError, match=r"class\(es\) \['maybe'\] have no example"):
        classifier.adapt(["good", "bad"], ["yes", "no"], classes=["yes", "no", "maybe"])


def test_predicting_bad_texts_is_refused(classifier) -> None:
    model = classifier.adapt(["good", "bad"], ["yes", "no"])
    with pytest.raises(ConfigError, match="text 0 is NoneType"):
        model.predict([None])


def test_load_sets_the_precision_of_the_encoder_it_runs_on(classifier, episodes, tmp_path) -> None:
    classifier.save(tmp_path / "clf")
    episode = episodes[2]
    model = classifier.adapt(episode.support_texts, list(episode.support_labels))
    model.save(tmp_path / "task")
    for folder in ("clf", "task"):
        loaded = pz.load(tmp_path / folder, encoder=tiny_encoder(seed=0), precision="int8")
        assert loaded.learner.encoder.precision == "int8"
    fast = loaded.predict_proba(episode.query_texts)
    assert not np.array_equal(fast, model.predict_proba(episode.query_texts))  # int8 really ran
    agree = np.mean(np.array(loaded.predict(episode.query_texts)) == np.array(model.predict(episode.query_texts)))
    assert agree >= 0.9, agree  # int8 kernels differ by CPU: close, not bit-equal
    with pytest.raises(ConfigError, match="precision must be None or one of"):
        pz.load(tmp_path / "clf", encoder=tiny_encoder(seed=0), precision="fp16")


def test_load_names_what_it_cannot_open(tmp_path) -> None:
    with pytest.raises(CheckpointError, match="neither a shipped model"):
        pz.load("no-such-model")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="not saved by personalize"):
        pz.load(tmp_path / "empty")
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "classifier.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        pz.load(tmp_path / "broken")


def test_prior_strength_moves_prototypes_toward_the_zero_shot_ones_only_for_its_labels(classifier, episodes) -> None:
    episode = episodes[4]
    named_like_prior = [("a", "b")[int(label)] for label in episode.support_labels]
    plain = classifier.adapt_many([(episode.support_texts, named_like_prior)], prior_strength=0)[0]
    huge = classifier.adapt_many([(episode.support_texts, named_like_prior)], prior_strength=1e9)[0]
    some = classifier.adapt_many([(episode.support_texts, named_like_prior)], prior_strength=4)[0]
    prior = classifier.zero_shot_state["prototypes"]
    np.testing.assert_allclose(huge.state["prototypes"].numpy(), prior.numpy(), atol=1e-5)
    counts = plain.state["class_counts"][0, :, None]
    expected = (counts * plain.state["prototypes"][0] + 4 * prior[0]) / (counts + 4)
    np.testing.assert_allclose(some.state["prototypes"][0].numpy(), expected.numpy(), atol=1e-6)
    other_names = classifier.adapt_many([(episode.support_texts, named(episode.support_labels))], prior_strength=1e9)
    np.testing.assert_allclose(other_names[0].state["prototypes"].numpy(), plain.state["prototypes"].numpy())


def test_prior_strength_is_saved_and_tuned_on_validation_episodes(classifier, suite, tmp_path) -> None:
    from personalize.sentiment import tune_prior_strength

    scores = tune_prior_strength(classifier, suite, shots=(2,), episodes=4, grid=(0, 4, 1e6))
    assert set(scores) == {"0", "4", "1000000.0"}
    assert all(0 <= score["mean"] <= 1 and score["se"] >= 0 for score in scores.values())
    # Recomputed by hand on the same seeded validation episodes: strength 0 is plain adaptation, a huge
    # strength is the zero-shot classifier.
    plain, zero_shot = [], []
    for episode in suite.episodes("val", shots=2, n=4, seed=20_000):
        names = [classifier.labels[int(label)] for label in episode.support_labels]
        truth = [classifier.labels[int(label)] for label in episode.query_labels]
        adapted = classifier.adapt_many([(episode.support_texts, names)], [classifier.labels], prior_strength=0)[0]
        plain.append(np.mean(np.array(adapted.predict(episode.query_texts)) == np.array(truth)))
        zero_shot.append(np.mean(np.array(classifier.zero_shot().predict(episode.query_texts)) == np.array(truth)))
    assert scores["0"]["mean"] == pytest.approx(np.mean(plain))
    assert scores["1000000.0"]["mean"] == pytest.approx(np.mean(zero_shot))
    assert np.mean(plain) != np.mean(zero_shot)  # the two ends of the grid differ here, so the check bites
    tuned = SentimentClassifier(classifier.learner, classifier.zero_shot_state, classifier.labels, prior_strength=4)
    reloaded = pz.load(tuned.save(tmp_path / "clf"), encoder=tiny_encoder(seed=0))
    assert reloaded.prior_strength == 4.0
    with pytest.raises(ConfigError, match="prior_strength must be >= 0"):
        SentimentClassifier(classifier.learner, classifier.zero_shot_state, prior_strength=-1)


# --- a two-class gradient learner with a prototype companion for more classes (the shipped layout) ---------


@pytest.fixture(scope="module")
def two_class_with_companion(classifier) -> SentimentClassifier:
    learner = create_learner("meta-sgd", classifier.encoder, adapter=ADAPTER, inner_steps=1)
    return SentimentClassifier.build(learner, [], [], multiclass=classifier)


THREE_CLASSES = (["topic1 good item", "topic1 bad item", "topic1 item size"], ["pos", "neg", "neutral"])
TWO_CLASSES = (["topic2 good thing", "topic2 awful thing"], ["yes", "no"])


def test_tasks_with_more_classes_than_the_head_go_to_the_multiclass_companion(two_class_with_companion,
                                                                            classifier) -> None:
    gradient_only = SentimentClassifier(two_class_with_companion.learner, two_class_with_companion.zero_shot_state)
    two, three, two_again = two_class_with_companion.adapt_many([TWO_CLASSES, THREE_CLASSES, TWO_CLASSES])
    assert two.learner is two_again.learner is two_class_with_companion.learner
    assert three.learner is classifier.learner and three.classes == ("neg", "neutral", "pos")
    probe = ["topic1 good", "topic2 awful"]
    assert (three.predict_proba(probe) == classifier.adapt(*THREE_CLASSES).predict_proba(probe)).all()
    assert (two.predict_proba(probe) == gradient_only.adapt(*TWO_CLASSES).predict_proba(probe)).all()
    with pytest.raises(ConfigError, match="3 classes but the learner's head has 2"):
        gradient_only.adapt(*THREE_CLASSES)


def test_errors_name_the_task_by_its_place_in_the_callers_list(two_class_with_companion) -> None:
    with pytest.raises(ConfigError, match="task 2: text 0 is empty"):
        two_class_with_companion.adapt_many([TWO_CLASSES, THREE_CLASSES, (["", "bad", "meh"], ["a", "b", "c"])])
    with pytest.raises(ConfigError, match="task 1: only one class"):
        two_class_with_companion.adapt_many([THREE_CLASSES, (["good", "bad"], ["a", "a"])])


def test_the_companion_must_take_any_number_of_classes_on_the_same_encoder(two_class_with_companion,
                                                                          classifier) -> None:
    learner = two_class_with_companion.learner
    with pytest.raises(ConfigError, match="must take any number of classes"):
        SentimentClassifier.build(learner, [], [], multiclass=SentimentClassifier.build(learner, [], []))
    with pytest.raises(ConfigError, match="needs no multiclass classifier"):
        SentimentClassifier(classifier.learner, classifier.zero_shot_state, multiclass=classifier)
    other = SentimentClassifier(create_learner("protonet", tiny_encoder(seed=0), adapter=ADAPTER),
                                classifier.zero_shot_state)
    with pytest.raises(ConfigError, match="same encoder object"):
        SentimentClassifier.build(learner, [], [], multiclass=other)


def test_save_load_keeps_the_companion_on_one_encoder(two_class_with_companion, tmp_path) -> None:
    two_class_with_companion.save(tmp_path / "clf")
    assert json.loads((tmp_path / "clf" / "classifier.json").read_text())["multiclass"] == "multiclass"
    reloaded = pz.load(tmp_path / "clf", encoder=tiny_encoder(seed=0))
    assert reloaded.multiclass is not None and reloaded.multiclass.encoder is reloaded.encoder
    assert reloaded.multiclass.prior_strength == two_class_with_companion.multiclass.prior_strength
    probe = ["topic1 good", "topic2 awful"]
    for task in (TWO_CLASSES, THREE_CLASSES):
        assert (reloaded.adapt(*task).predict_proba(probe)
                == two_class_with_companion.adapt(*task).predict_proba(probe)).all()
    for path in (tmp_path / "clf" / "multiclass").rglob("*"):
        if path.is_file():
            path.unlink()
    with pytest.raises(CheckpointError, match="its multiclass classifier 'multiclass' is missing"):
        pz.load(tmp_path / "clf", encoder=tiny_encoder(seed=0))


def test_a_meta_learned_head_gives_rows_by_fit_not_by_alphabet() -> None:
    """Class names that sort in the other order must not start on the other head rows."""
    import torch

    learner = create_learner("meta-sgd", tiny_encoder(seed=0), adapter=ADAPTER, inner_steps=1)
    with torch.no_grad():  # rows that differ, as a meta-learned head's do (a fresh head starts at zero)
        head = learner.init["head_weight"]
        head.copy_(torch.randn(head.shape, generator=torch.Generator().manual_seed(0)))
    gradient = SentimentClassifier.build(learner, [], [])
    texts = ["topic2 good thing", "topic2 fine thing", "topic2 awful thing", "topic2 bad thing"]
    roles = [1, 1, 0, 0]
    probe = ["topic2 good", "topic2 awful", "topic3 item"]
    forward = gradient.adapt(texts, [("b", "a")[role] for role in roles])        # classes ('a', 'b')
    backward = gradient.adapt(texts, [("y", "z")[role] for role in roles])       # classes ('y', 'z')
    # role 1 is 'a' in one and 'z' in the other: the same probabilities, columns swapped
    np.testing.assert_allclose(forward.predict_proba(probe), backward.predict_proba(probe)[:, ::-1], atol=1e-6)
    # classes named like the zero-shot labels take their rows by name, and keep the caller's order
    labels = [("negative", "positive")[role] for role in roles]
    as_rows = gradient.adapt(texts, labels)
    reordered = gradient.adapt(texts, labels, classes=["positive", "negative"])
    assert (as_rows.classes, reordered.classes) == (("negative", "positive"), ("positive", "negative"))
    np.testing.assert_allclose(reordered.predict_proba(probe), as_rows.predict_proba(probe)[:, ::-1], atol=1e-6)
