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
