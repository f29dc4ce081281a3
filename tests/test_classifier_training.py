"""One meta-training front end: ``personalize meta-fit``, ``scripts/meta_train.py`` and
:mod:`personalize.classifier_training` are one code path with one set of defaults, and it gives the
shippable classifier. Tiny encoder and the synthetic suite: seconds."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest

import personalize as pz
from personalize import classifier_training as training
from personalize.classifier_training import TrainingConfig
from personalize.encoder import tiny_encoder
from personalize.errors import ConfigError
from personalize.sentiment import SentimentClassifier
from personalize.tasks import synthetic
from personalize.tasks.suite_spec import spec_from_dict

ROOT = Path(__file__).resolve().parent.parent
QUICK = ["--steps", "2", "--val-every", "1", "--val-episodes", "2", "--meta-batch-size", "2",
         "--reference-per-class", "4", "--prior-episodes", "2", "--budget", "60"]


@pytest.fixture
def offline_parts(monkeypatch):
    """The command line's suite and encoder replaced by the synthetic suite and the tiny encoder."""
    monkeypatch.setattr("personalize.tasks.load_suite", lambda name: synthetic.synthetic_suite(num_tasks=12))
    monkeypatch.setattr("personalize.encoder.load_encoder", lambda *args, **kwargs: tiny_encoder(seed=0))


def quick(**changes) -> TrainingConfig:
    return dataclasses.replace(TrainingConfig(steps=2, val_every=1, val_episodes=2, meta_batch_size=2,
                                              reference_per_class=4, prior_episodes=2, budget_s=60.0), **changes)


@pytest.mark.parametrize("learners", ["protonet", "bayes", "fomaml,meta-sgd"])
def test_inner_loop_options_are_refused_where_they_have_no_single_meaning(learners, tmp_path, capsys) -> None:
    from personalize.cli import main

    assert main(["meta-fit", "--out", str(tmp_path / "out"), "--learner", learners, "--inner-steps", "1"]) == 1
    message = capsys.readouterr().err
    assert "one optimization learner (maml, fomaml, meta-sgd, reptile)" in message and learners in message
    assert not (tmp_path / "out").exists()


def test_one_set_of_defaults_the_command_shows_the_configs(capsys) -> None:
    from personalize.cli import build_parser

    parsed = build_parser().parse_args(["meta-fit", "--out", "x"])
    defaults = TrainingConfig()
    assert (parsed.suite, parsed.learner, parsed.steps, parsed.budget, parsed.meta_batch_size, parsed.val_episodes,
            parsed.max_length) == (defaults.suite, ",".join(defaults.learners), defaults.steps, defaults.budget_s,
                                   defaults.meta_batch_size, defaults.val_episodes, defaults.max_length)
    # the shipped recipe, so that its recorded command reproduces it
    assert (defaults.suite, defaults.learners, defaults.steps, defaults.meta_batch_size, defaults.query_per_class,
            defaults.max_length, defaults.reference_per_class) == ("clothing-sentiment", ("protonet",), 600, 4, 8,
                                                                   64, 256)
    assert training.default_adapter_layers(6) == (2, 3, 4, 5)


def test_the_script_is_the_command() -> None:
    shown = subprocess.run([sys.executable, str(ROOT / "scripts" / "meta_train.py"), "--help"], capture_output=True,
                           text=True, check=True).stdout
    assert "--retune-prior" in shown and "--multiclass" in shown and "clothing-sentiment" in shown


def test_bad_layers_are_refused_by_the_parser(capsys) -> None:
    from personalize.cli import main

    for bad in ("4,x", "", "-1"):
        with pytest.raises(SystemExit) as stop:
            main(["meta-fit", "--out", "unused", "--layers", bad])
        assert stop.value.code == 2
        assert "--layers" in capsys.readouterr().err


def test_the_command_writes_a_classifier_that_loads_and_records_how_it_was_made(offline_parts, tmp_path) -> None:
    from personalize.cli import main

    out = tmp_path / "clf"
    assert main(["meta-fit", "synthetic", "--out", str(out), *QUICK, "--seed", "3"]) == 0
    classifier = pz.load(out, encoder=tiny_encoder(seed=0))
    assert isinstance(classifier, SentimentClassifier)
    assert classifier.labels == ("a", "b")  # the suite's class names, in class-id order
    record = json.loads((out / "classifier.json").read_text())["record"]
    assert record["command"].startswith("personalize meta-fit synthetic --out ") and str(tmp_path) not in \
        record["command"]
    assert (record["seed"], record["training"]["steps"], record["training"]["learners"]) == (3, 2, ["protonet"])
    assert set(record["prior_strength_scores"]) == {str(strength) for strength in training.PRIOR_GRID}
    assert classifier.prior_strength in training.PRIOR_GRID
    model = classifier.adapt(["a good one", "a bad one"], ["a", "b"])
    assert set(model.predict(["good"])) <= {"a", "b"}
    # a second run onto the same folder is refused unless asked
    assert main(["meta-fit", "synthetic", "--out", str(out), *QUICK]) == 1
    assert main(["meta-fit", "synthetic", "--out", str(out), *QUICK, "--overwrite"]) == 0


def test_inner_loop_options_reach_the_optimization_learner() -> None:
    classifier = training.train_classifier(quick(learners=("meta-sgd",), inner_steps=1, inner_lr=0.05),
                                           suite=synthetic.synthetic_suite(num_tasks=12), encoder=tiny_encoder())
    assert (classifier.learner.name, classifier.learner.config.inner_steps,
            classifier.learner.config.inner_lr) == ("meta-sgd", 1, 0.05)
    assert "prior_strength_scores" not in classifier.record  # no prototypes, nothing to choose


def test_a_suite_without_fixed_classes_gives_no_classifier() -> None:
    three_of_four = spec_from_dict({
        "name": "three-of-four", "kind": "classification", "dataset": "synthetic", "table": "-",
        "task_column": "task", "label_column": "label", "ways": 3, "shots": [2],
        "classes": [{"name": name, "values": [name]} for name in "abcd"],
        "splits": {"fractions": [0.8, 0.1, 0.1], "seed": 0}})
    assert training.trains_classifier(synthetic.synthetic_suite(num_tasks=12))
    assert not training.trains_classifier(type("Suite", (), {"spec": three_of_four, "name": "three-of-four"}))
    with pytest.raises(ConfigError, match="gives no shippable classifier"):
        training.train_classifier(quick(), suite=type("Suite", (), {"spec": three_of_four, "name": "x"}),
                                  encoder=tiny_encoder())


def test_a_companion_is_checked_before_any_work(tmp_path) -> None:
    with pytest.raises(ConfigError, match="already take.s. any number of classes"):
        training.check_companion(tmp_path, ("protonet",))
    with pytest.raises(ConfigError, match="multiclass: .* not a text classifier"):
        training.check_companion(tmp_path, ("meta-sgd",))


def test_retune_prior_rechooses_on_the_training_suite(offline_parts, tmp_path) -> None:
    from personalize.cli import main

    out = tmp_path / "clf"
    assert main(["meta-fit", "synthetic", "--out", str(out), *QUICK]) == 0
    scores = json.loads((out / "classifier.json").read_text())["record"]["prior_strength_scores"]
    retuned = training.retune_prior(out, encoder=tiny_encoder(seed=0), seed=1, episodes=2, command="again")
    assert retuned.record["prior_command"] == "again"
    assert retuned.record["prior_strength_scores"] != scores  # other episodes (seed 1), same suite
    assert set(retuned.record["prior_strength_scores"]) == set(scores)
