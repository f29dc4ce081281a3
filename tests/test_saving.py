"""Nothing a user owns is lost on save, and a changed or damaged saved model is refused on load.

Every save (task model, text classifier, recommender, learner checkpoint, PEFT export) is tried
against what may already be at its path: another folder of the user's, a regular file, a saved
model of the same kind or of another kind; and with a write that fails halfway. Every load is tried
against flipped bytes, NaN written into a tensor, JSON edited to disagree with the tensors, a
truncated file and a pickle renamed ``.safetensors``. Tiny encoder, untrained learners: fast.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import shutil
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import torch
from safetensors.torch import load_file, save_file

import personalize as pz
from personalize import files
from personalize.checkpoint import load_learner, save_learner
from personalize.encoder import tiny_encoder
from personalize.errors import CheckpointError, SaveError
from personalize.learners import create_learner
from personalize.recommend import Recommender, RecommenderConfig
from personalize.sentiment import SentimentClassifier
from personalize.task_model import TaskModel, adapt_tasks

TEXTS = ["love it", "hate it", "adore it", "awful thing", "great fit", "fell apart"]
LABELS = ["yes", "no", "yes", "no", "yes", "no"]


@pytest.fixture(scope="module")
def encoder():
    return tiny_encoder(seed=0)


@pytest.fixture(scope="module")
def models(encoder) -> dict:
    protonet = create_learner("protonet", encoder)
    classifier = SentimentClassifier.build(protonet, TEXTS, [1, 0, 1, 0, 1, 0])
    torch.manual_seed(0)
    fomaml = create_learner("fomaml", encoder, inner_steps=1)
    rng = np.random.default_rng(0)
    items = pl.DataFrame({"item_id": range(30), "text": [f"film number {i}" for i in range(30)]})
    ratings = pl.DataFrame({"user_id": np.repeat(np.arange(40), 12), "item_id": np.tile(np.arange(12), 40),
                            "rating": rng.integers(1, 6, 480)})
    recommender = Recommender.meta_fit(ratings, items, config=RecommenderConfig(factors=4, steps=4, val_every=2),
                                       encoder=encoder)
    return {"task": classifier.adapt(TEXTS, LABELS), "head_task": adapt_tasks(fomaml, [(TEXTS, LABELS)])[0],
            "classifier": classifier, "learner": protonet, "recommender": recommender}


def save(models: dict, kind: str, path: Path, **options) -> Path:
    """Save the model of ``kind`` to ``path`` the way a user would."""
    if kind == "learner":
        return save_learner(models["learner"], path, **options)
    if kind == "peft":
        return models["task"].to_peft(path, **options)
    return models[kind].save(path, **options)


def load(kind: str, path: Path, encoder):
    return load_learner(path, encoder=encoder) if kind == "learner" else pz.load(path, encoder=encoder)


KINDS = ["task", "head_task", "classifier", "recommender", "learner", "peft"]
LOADABLE = [kind for kind in KINDS if kind != "peft"]
TENSOR_FILE = {"task": "task_state.safetensors", "head_task": "task_state.safetensors",
               "classifier": "zero_shot_state.safetensors", "recommender": "tables.safetensors",
               "learner": "meta_parameters.safetensors"}
CONFIG_FILE = {"task": "task.json", "head_task": "task.json", "classifier": "classifier.json",
               "recommender": "recommender.json", "learner": "learner.json"}


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` (relative path -> bytes), to prove nothing changed."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


# --- nothing lost on save ----------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_save_refuses_a_folder_holding_other_files_and_leaves_them(models, kind, tmp_path) -> None:
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "notes.txt").write_text("my notes")
    for overwrite in (False, True):  # overwrite replaces a saved model of the same kind, never this
        with pytest.raises(SaveError, match=r"mine already exists and is not a .*holds notes\.txt"
                                            r".*nothing was written"):
            save(models, kind, folder, overwrite=overwrite)
    assert snapshot(folder) == {"notes.txt": b"my notes"}
    assert sorted(os.listdir(tmp_path)) == ["mine"]  # no staging folder left behind


@pytest.mark.parametrize("kind", KINDS)
def test_save_refuses_a_path_that_is_a_file(models, kind, tmp_path) -> None:
    target = tmp_path / "model"
    target.write_text("a file of mine")
    with pytest.raises(SaveError, match=r"model is a file, not a folder: nothing was written"):
        save(models, kind, target, overwrite=True)
    assert target.read_text() == "a file of mine"
    assert sorted(os.listdir(tmp_path)) == ["model"]


@pytest.mark.parametrize("kind", KINDS)
def test_saving_over_a_saved_model_needs_overwrite(models, kind, encoder, tmp_path) -> None:
    folder = save(models, kind, tmp_path / "model")
    before = snapshot(folder)
    with pytest.raises(SaveError, match="already holds a .*pass overwrite=True"):
        save(models, kind, folder)
    assert snapshot(folder) == before
    save(models, kind, folder, overwrite=True)
    assert set(snapshot(folder)) == set(before)
    assert sorted(os.listdir(tmp_path)) == ["model"]
    if kind in LOADABLE:
        load(kind, folder, encoder)


def test_an_empty_folder_is_written_and_another_kind_is_never_replaced(models, encoder, tmp_path) -> None:
    (tmp_path / "empty").mkdir()
    save(models, "task", tmp_path / "empty")
    assert isinstance(pz.load(tmp_path / "empty", encoder=encoder), TaskModel)
    with pytest.raises(SaveError, match="is not a saved recommender"):
        save(models, "recommender", tmp_path / "empty", overwrite=True)
    assert isinstance(pz.load(tmp_path / "empty", encoder=encoder), TaskModel)


@pytest.mark.parametrize("kind", KINDS)
def test_a_save_failing_halfway_leaves_the_old_folder_and_no_partial_one(models, kind, tmp_path, monkeypatch) -> None:
    folder = save(models, kind, tmp_path / "model")
    before = snapshot(folder)

    def disk_full(path):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(files, "sha256_file", disk_full)  # after the first tensor file is written
    with pytest.raises(SaveError, match=r"saving .*model failed: .*No space left on device; nothing was written"):
        save(models, kind, folder, overwrite=True)
    with pytest.raises(SaveError, match="No space left"):
        save(models, kind, tmp_path / "new" / "deeper" / "model")
    assert snapshot(folder) == before
    assert sorted(os.listdir(tmp_path)) == ["model"]  # neither a .partial folder nor the parents it made


def test_a_failed_rename_puts_the_old_folder_back(tmp_path, monkeypatch) -> None:
    kind = files.SavedKind("thing", "thing.json", frozenset({"thing.json"}))
    with files.staged_folder(tmp_path / "thing", kind) as staging:
        (staging / "thing.json").write_text("old")
    real_replace, calls = os.replace, []

    def second_rename_fails(source, destination):
        calls.append(source)
        if len(calls) == 2:  # the first moves the old folder aside, the second would put the new one in
            raise OSError(5, "Input/output error")
        real_replace(source, destination)

    monkeypatch.setattr(os, "replace", second_rename_fails)
    with pytest.raises(SaveError, match="Input/output error"):
        with files.staged_folder(tmp_path / "thing", kind, overwrite=True) as staging:
            (staging / "thing.json").write_text("new")
    assert (tmp_path / "thing" / "thing.json").read_text() == "old"
    assert sorted(os.listdir(tmp_path)) == ["thing"]


def test_to_peft_asks_no_network(models, tmp_path, monkeypatch) -> None:
    """peft checks the Hub for the base model's config unless told the embeddings are not adapted: with
    the Hub allowed (no HF_HUB_OFFLINE) and every socket blocked, the export connects nowhere and warns
    of no name it could not resolve."""
    import socket
    import warnings

    from peft.utils import save_and_load

    attempts: list[str] = []

    def no_network(*args, **kwargs):
        attempts.append(repr(args[:2]))
        raise OSError("this test blocks the network")

    for variable in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket, "getaddrinfo", no_network)
    monkeypatch.setattr(save_and_load, "check_file_exists_on_hf_hub", no_network)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        folder = models["task"].to_peft(tmp_path / "adapter")
    assert attempts == []
    assert not [str(w.message) for w in caught if issubclass(w.category, UserWarning)]  # "Could not find a config"
    assert sorted(p.name for p in folder.iterdir()) == ["README.md", "adapter_config.json",
                                                        "adapter_model.safetensors",
                                                        "personalize_task_state.safetensors"]
    config = json.loads((folder / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == models["task"].learner.encoder.name


def test_a_folder_that_cannot_be_made_is_a_save_error_naming_it(models, tmp_path) -> None:
    (tmp_path / "a-file").write_text("x")
    with pytest.raises(SaveError, match=r"cannot write .*a-file/model: .*a-file is a file, not a folder; "
                                        r"save to a folder path"):
        models["recommender"].save(tmp_path / "a-file" / "model")
    assert sorted(os.listdir(tmp_path)) == ["a-file"]


def test_the_cli_refuses_an_occupied_out_folder_before_training(tmp_path, capsys) -> None:
    from personalize.cli import main

    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "notes.txt").write_text("mine")
    assert main(["meta-fit", "clothing-sentiment", "--out", str(tmp_path / "out")]) == 1
    assert "is not a saved text classifier" in capsys.readouterr().err  # only the suite's .toml was read
    assert snapshot(tmp_path / "out") == {"notes.txt": b"mine"}


# --- tampered or damaged models refused ----------------------------------------------------------------------


@pytest.fixture
def saved_copy(models, tmp_path):
    def make(kind: str) -> Path:
        return save(models, kind, tmp_path / kind)
    return make


def rewrite_json(path: Path, **changes) -> dict:
    """Edit a saved model's JSON as a user (or a bit flip) might; a value of None deletes the key."""
    document = json.loads(path.read_text())
    for key, value in changes.items():
        if value is None:
            document.pop(key, None)
        else:
            document[key] = value
    path.write_text(json.dumps(document))
    return document


@pytest.mark.parametrize("kind", LOADABLE)
def test_flipped_bytes_in_a_tensor_file_are_refused_naming_it(kind, saved_copy, encoder) -> None:
    folder = saved_copy(kind)
    tensors = folder / TENSOR_FILE[kind]
    data = bytearray(tensors.read_bytes())
    middle = len(data) // 2
    data[middle:middle + 32] = bytes(b ^ 0xFF for b in data[middle:middle + 32])
    tensors.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match=rf"{TENSOR_FILE[kind]} was changed or corrupted since it was saved "
                                              rf".*{CONFIG_FILE[kind]} records"):
        load(kind, folder, encoder)


@pytest.mark.parametrize("kind", LOADABLE)
def test_nan_in_a_tensor_is_refused_even_with_a_matching_checksum(kind, saved_copy, encoder) -> None:
    folder = saved_copy(kind)
    path = folder / TENSOR_FILE[kind]
    tensors = load_file(str(path))
    name = next(name for name, value in tensors.items() if value.is_floating_point() and value.numel() > 1)
    tensors[name] = tensors[name].clone()
    tensors[name].view(-1)[0] = float("nan")
    save_file(tensors, str(path))
    checksum = hashlib.sha256(path.read_bytes()).hexdigest()
    rewrite_json(folder / CONFIG_FILE[kind], checksums={TENSOR_FILE[kind]: checksum})
    with pytest.raises(CheckpointError, match=rf"{TENSOR_FILE[kind]}: tensor '{name}' holds NaN or infinite values"):
        load(kind, folder, encoder)


@pytest.mark.parametrize("kind", ["task", "head_task"])
@pytest.mark.parametrize(("classes", "message"), [
    (["no", "yes", "maybe"], "names 3 classes but the saved state has 2 class rows"),
    (["yes"], "classes must be at least two distinct names"),
    (["yes", "yes"], "classes must be at least two distinct names"),
    ("yes,no", "classes must be a list of str or int"),
])
def test_classes_edited_to_disagree_with_the_state_are_refused(kind, classes, message, saved_copy, encoder) -> None:
    folder = saved_copy(kind)
    rewrite_json(folder / "task.json", classes=classes)
    with pytest.raises(CheckpointError, match=rf"task\.json.*{message}"):
        pz.load(folder, encoder=encoder)


def test_classifier_labels_edited_to_disagree_with_the_state_are_refused(saved_copy, encoder) -> None:
    folder = saved_copy("classifier")
    rewrite_json(folder / "classifier.json", labels=["negative", "positive", "neutral"])
    with pytest.raises(CheckpointError,
                       match=r"classifier\.json: labels .* do not fit the zero-shot state \(2 class rows"):
        pz.load(folder, encoder=encoder)


def test_recommender_tables_must_fit_its_catalogue(saved_copy) -> None:
    folder = saved_copy("recommender")
    document = json.loads((folder / "recommender.json").read_text())
    items = {name: values[:-1] if isinstance(values, list) else values for name, values in document["items"].items()}
    rewrite_json(folder / "recommender.json", items=items)
    with pytest.raises(CheckpointError, match=r"tables\.safetensors has .*30.* rows but the catalogue in "
                                              r"recommender\.json has 29 items"):
        pz.load(folder)


@pytest.mark.parametrize("kind", LOADABLE)
def test_a_version_1_folder_without_checksums_still_loads_but_version_2_needs_them(kind, saved_copy, encoder) -> None:
    folder = saved_copy(kind)
    rewrite_json(folder / CONFIG_FILE[kind], checksums=None)
    with pytest.raises(CheckpointError, match=rf"{CONFIG_FILE[kind]} records no checksum for {TENSOR_FILE[kind]}"):
        load(kind, folder, encoder)
    rewrite_json(folder / CONFIG_FILE[kind], format_version=1)
    assert load(kind, folder, encoder) is not None


def test_a_pickle_renamed_safetensors_is_refused_without_unpickling(saved_copy, encoder, tmp_path) -> None:
    folder = saved_copy("task")
    rewrite_json(folder / "task.json", checksums=None, format_version=1)  # no checksum to catch it first
    marker = tmp_path / "unpickled"

    class Payload:
        def __reduce__(self):
            return (Path.touch, (marker,))

    (folder / "task_state.safetensors").write_bytes(pickle.dumps(Payload()))
    with pytest.raises(CheckpointError, match=r"task_state\.safetensors is not a readable safetensors file"):
        pz.load(folder, encoder=encoder)
    assert not marker.exists()


def test_a_truncated_tensor_file_is_refused_naming_it(saved_copy, encoder) -> None:
    folder = saved_copy("learner")
    rewrite_json(folder / "learner.json", checksums=None, format_version=1)
    path = folder / "meta_parameters.safetensors"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(CheckpointError, match=r"meta_parameters\.safetensors is not a readable safetensors file"):
        load_learner(folder, encoder=encoder)


def test_every_shipped_model_carries_checksums_that_match() -> None:
    """The shipped JSON was given checksums by ``scripts/add_checksums.py``; the tensors must match them."""
    from personalize.loading import PRETRAINED_DIR

    documents = sorted(PRETRAINED_DIR.rglob("*.json"))
    assert len(documents) >= 7
    for config_file in documents:
        document = json.loads(config_file.read_text())
        assert document["format_version"] >= 2, config_file  # checksums since format 2
        for name in document["checksums"]:
            files.load_checked_tensors(config_file.parent, name, document, what="shipped model",
                                       config_name=config_file.name)
        assert set(document["checksums"]) == {p.name for p in config_file.parent.glob("*.safetensors")}


def test_meta_fit_checkpoints_refuse_a_tampered_trainer_state(encoder, tmp_path) -> None:
    from personalize.meta_fit import MetaFitConfig, meta_fit
    from personalize.tasks.synthetic import synthetic_suite

    suite = synthetic_suite(num_tasks=12)
    config = MetaFitConfig(steps=4, val_every=2, val_episodes=4, meta_batch_size=2, progress=False,
                           checkpoint_dir=str(tmp_path / "run"))
    meta_fit(create_learner("protonet", encoder), suite, dataclass_replace(config, steps=2))
    trainer = tmp_path / "run" / "last" / "trainer.safetensors"
    data = trainer.read_bytes()
    trainer.write_bytes(data[:-8] + bytes(b ^ 0xFF for b in data[-8:]))
    with pytest.raises(CheckpointError, match=r"trainer\.safetensors was changed or corrupted"):
        meta_fit(create_learner("protonet", encoder), suite, config)


def dataclass_replace(config, **changes):
    import dataclasses

    return dataclasses.replace(config, **changes)


def test_shutil_copies_of_saved_models_still_load(saved_copy, encoder, tmp_path) -> None:
    """Checksums cover file contents only: moving or copying a saved folder keeps it loadable."""
    folder = saved_copy("classifier")
    copied = shutil.copytree(folder, tmp_path / "elsewhere" / "copied")
    assert isinstance(pz.load(copied, encoder=encoder), SentimentClassifier)


def test_add_checksums_upgrades_a_version_1_folder_in_place_once(saved_copy, encoder, capsys) -> None:
    import runpy

    folder = saved_copy("task")
    for config_file in (folder / "task.json", folder / "learner" / "learner.json"):
        rewrite_json(config_file, checksums=None, format_version=1)
    before = (folder / "task.json").read_text()
    script = Path(__file__).resolve().parents[1] / "scripts" / "add_checksums.py"
    main = runpy.run_path(str(script))["main"]
    assert main([str(folder)]) == 0
    document = json.loads((folder / "task.json").read_text())
    assert document["format_version"] == 2
    assert document["checksums"] == {"task_state.safetensors": files.sha256_file(folder / "task_state.safetensors")}
    assert {k: v for k, v in document.items() if k not in ("format_version", "checksums")} == \
        {k: v for k, v in json.loads(before).items() if k != "format_version"}
    assert isinstance(pz.load(folder, encoder=encoder), TaskModel)
    upgraded = snapshot(folder)
    assert main([str(folder)]) == 0 and snapshot(folder) == upgraded  # a second run changes nothing
    assert "kept" in capsys.readouterr().out
    damaged = saved_copy("learner")
    rewrite_json(damaged / "learner.json", checksums=None, format_version=1)
    tensors = damaged / "meta_parameters.safetensors"
    tensors.write_bytes(tensors.read_bytes()[:100])  # damaged: never blessed with a checksum
    assert main([str(damaged)]) == 1
    assert json.loads((damaged / "learner.json").read_text())["format_version"] == 1
