"""scripts/meta_train.py: what it refuses before any work."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "meta_train.py"


@pytest.fixture(scope="module")
def script():
    spec = importlib.util.spec_from_file_location("meta_train", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("learners", ["protonet", "bayes", "fomaml,meta-sgd"])
def test_inner_loop_options_are_refused_where_they_have_no_single_meaning(script, learners, tmp_path) -> None:
    with pytest.raises(SystemExit, match="one optimization learner") as stop:
        script.main(["--out", str(tmp_path / "out"), "--learner", learners, "--inner-steps", "1"])
    assert "maml, fomaml, meta-sgd" in str(stop.value) and not (tmp_path / "out").exists()


def test_inner_loop_options_reach_an_optimization_learners_config(script, monkeypatch, tmp_path) -> None:
    built = {}

    def stop_after_building(name, encoder, **fields):
        built.update(fields, name=name)
        raise KeyboardInterrupt  # stop before meta-training

    monkeypatch.setattr(script, "create_learner", stop_after_building)
    monkeypatch.setattr(script, "load_encoder", lambda **_: None)
    monkeypatch.setattr(script, "load_suite", lambda name: type("Suite", (), {"spec": type("Spec", (), {"ways": 2})}))
    with pytest.raises(KeyboardInterrupt):
        script.main(["--out", str(tmp_path), "--learner", "meta-sgd", "--inner-steps", "1", "--inner-lr", "0.05"])
    assert (built["name"], built["inner_steps"], built["inner_lr"]) == ("meta-sgd", 1, 0.05)


@pytest.fixture(scope="module")
def saved_classifiers(tmp_path_factory):
    """A protonet and a Meta-SGD classifier on the tiny encoder, saved (untrained: only their layout matters)."""
    from personalize.encoder import tiny_encoder
    from personalize.learners import create_learner
    from personalize.sentiment import SentimentClassifier

    folder = tmp_path_factory.mktemp("classifiers")
    protonet = create_learner("protonet", tiny_encoder(seed=0))
    SentimentClassifier.build(protonet, ["good", "bad"], [1, 0]).save(folder / "protonet")
    SentimentClassifier.build(create_learner("meta-sgd", tiny_encoder(seed=0)), [], []).save(folder / "meta-sgd")
    return folder


@pytest.mark.parametrize(("extra", "companion", "message"), [
    (["--learner", "protonet"], "protonet", "already take\\(s\\) any number of classes"),
    (["--learner", "meta-sgd", "--retune-prior"], "protonet", "does nothing with --retune-prior"),
    (["--learner", "meta-sgd"], "meta-sgd", "fixed number of classes"),
    (["--learner", "meta-sgd"], "missing", "--multiclass: .*missing"),
])
def test_a_multiclass_companion_that_cannot_serve_is_refused_before_any_work(script, saved_classifiers, tmp_path,
                                                                             extra, companion, message) -> None:
    with pytest.raises(SystemExit, match=message):
        script.main(["--out", str(tmp_path / "out"), *extra, "--multiclass", str(saved_classifiers / companion)])
    assert not (tmp_path / "out").exists()


def test_the_multiclass_companion_is_saved_with_the_trained_classifier(script, saved_classifiers, monkeypatch,
                                                                       tmp_path) -> None:
    import personalize as pz
    from personalize.encoder import tiny_encoder
    from personalize.tasks.synthetic import synthetic_suite

    encoder = tiny_encoder(seed=0)

    def no_training(learner, suite, config):
        learner.record = {"best_val_loss": 0.5, "best_step": 0}
        return learner

    monkeypatch.setattr(script, "load_encoder", lambda **_: encoder)
    monkeypatch.setattr(script, "load_suite", lambda name: synthetic_suite(num_tasks=12, examples_per_class=8, seed=0))
    monkeypatch.setattr(script, "meta_fit", no_training)
    script.main(["--out", str(tmp_path / "out"), "--learner", "meta-sgd", "--inner-steps", "1", "--rank", "4",
                 "--layers", "0,1", "--reference-per-class", "4", "--multiclass", str(saved_classifiers / "protonet")])
    loaded = pz.load(tmp_path / "out", encoder=tiny_encoder(seed=0))
    assert (loaded.learner.name, loaded.multiclass.learner.name) == ("meta-sgd", "protonet")
    three = loaded.adapt(["good", "bad", "fine"], ["pos", "neg", "meh"])
    assert three.learner is loaded.multiclass.learner
