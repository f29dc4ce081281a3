"""save_pretrained / from_pretrained / push_to_hub with model cards, for every model type.

The Hub is replaced by a folder per repository (``FakeHub``); a guard makes any socket connection
fail, so these tests prove nothing reaches the network.
"""

from __future__ import annotations

import json
import shutil
import socket
from pathlib import Path

import huggingface_hub
import numpy as np
import polars as pl
import pytest
from huggingface_hub import errors as hub_errors

from personalize import hub
from personalize.encoder import tiny_encoder
from personalize.errors import CheckpointError, SaveError
from personalize.learners import create_learner
from personalize.sentiment import SentimentClassifier
from personalize.task_model import TaskModel

TEXTS = ["love it", "hate it", "adore it", "awful", "great", "bad"]
LABELS = ["yes", "no", "yes", "no", "yes", "no"]


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("a test tried to reach the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)


class FakeHub:
    """Repositories as folders: what upload_folder wrote, snapshot_download returns."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.created: list[tuple[str, bool | None]] = []

    def api(self, token=None):
        fake = self

        class Api:
            def create_repo(self, repo_id, private=None, exist_ok=False):
                fake.created.append((repo_id, private))

            def upload_folder(self, repo_id, folder_path, revision=None, commit_message=None):
                target = fake.root / repo_id
                shutil.rmtree(target, ignore_errors=True)
                shutil.copytree(folder_path, target)
                return type("Commit", (), {"commit_url": f"https://hub.example/{repo_id}/commit/1"})()

        return Api()

    def snapshot_download(self, repo_id, revision=None, token=None, local_files_only=False, allow_patterns=None,
                          library_name=None):
        assert allow_patterns == hub.DOWNLOADED_FILES
        folder = self.root / repo_id
        if not folder.is_dir():
            if local_files_only:
                raise hub_errors.LocalEntryNotFoundError("not in cache")
            raise OSError("404 Client Error: Repository Not Found")
        return str(folder)


@pytest.fixture
def fake_hub(tmp_path, monkeypatch):
    fake = FakeHub(tmp_path / "hub")
    monkeypatch.setattr(huggingface_hub, "HfApi", fake.api)
    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake.snapshot_download)
    monkeypatch.setattr(hub, "hub_offline", lambda: False)
    return fake


@pytest.fixture(scope="module")
def classifier():
    return SentimentClassifier.build(create_learner("protonet", tiny_encoder(seed=0)), ["bad", "good"], [0, 1])


def card_metadata(folder: Path) -> dict[str, object]:
    lines = (folder / "README.md").read_text(encoding="utf-8").splitlines()
    assert lines[0] == "---"
    end = lines.index("---", 1)
    metadata: dict[str, object] = {}
    key = None
    for line in lines[1:end]:
        if line.startswith("- "):
            metadata.setdefault(key, []).append(line[2:])  # type: ignore[union-attr]
        else:
            key, _, value = line.partition(": ")
            key = key.rstrip(":")
            if value:
                metadata[key] = value
    return metadata


def test_classifier_round_trips_through_the_hub_with_its_card(classifier, fake_hub, tmp_path):
    url = classifier.push_to_hub("someone/sentiment-demo", private=True)
    assert url == "https://hub.example/someone/sentiment-demo/commit/1"
    assert fake_hub.created == [("someone/sentiment-demo", True)]
    metadata = card_metadata(fake_hub.root / "someone/sentiment-demo")
    assert metadata["library_name"] == "personalize"
    assert metadata["base_model"] == tiny_encoder(seed=0).identity()["name"]
    assert "protonet" in metadata["tags"] and "few-shot" in metadata["tags"]
    loaded = SentimentClassifier.from_pretrained("someone/sentiment-demo", encoder=tiny_encoder(seed=0))
    before = classifier.adapt(TEXTS, LABELS).predict_proba(TEXTS)
    after = loaded.adapt(TEXTS, LABELS).predict_proba(TEXTS)
    assert np.array_equal(before, after)


def test_adapted_task_model_round_trips_with_save_pretrained(classifier, tmp_path):
    model = classifier.adapt(TEXTS, LABELS)
    folder = model.save_pretrained(tmp_path / "task")
    assert "adapted" in card_metadata(folder)["tags"]
    loaded = TaskModel.from_pretrained(folder, encoder=tiny_encoder(seed=0))
    assert loaded.classes == ("no", "yes")
    assert np.array_equal(loaded.predict_proba(TEXTS), model.predict_proba(TEXTS))
    # A second save_pretrained over its own folder is allowed with overwrite (the card is its own file).
    model.save_pretrained(folder, overwrite=True)
    with pytest.raises(SaveError):
        model.save_pretrained(folder)


def test_shipped_recommender_round_trips_with_its_card(tmp_path):
    from personalize.recommend import Recommender

    recommender = Recommender.from_pretrained("movielens")
    folder = recommender.save_pretrained(tmp_path / "rec")
    metadata = card_metadata(folder)
    assert metadata["base_model"] == "sentence-transformers/all-MiniLM-L6-v2"
    assert "recommendation" in metadata["tags"]
    assert "| meta-training steps |" in (folder / "README.md").read_text(encoding="utf-8")
    loaded = Recommender.from_pretrained(folder)
    history = pl.DataFrame({"item_id": recommender.catalogue.ids[:2], "rating": [5.0, 1.0]})
    assert recommender.adapt(history).recommend(5).equals(loaded.adapt(history).recommend(5))


def test_a_folder_of_another_kind_is_refused_naming_what_it_holds(classifier, tmp_path):
    folder = classifier.save_pretrained(tmp_path / "classifier")
    with pytest.raises(CheckpointError, match="holds no task.json, so it is not a TaskModel .it holds classifier.json"):
        TaskModel.from_pretrained(folder, encoder=tiny_encoder(seed=0))


def test_a_hub_id_offline_and_not_cached_is_refused_clearly(fake_hub, monkeypatch):
    monkeypatch.setattr(hub, "hub_offline", lambda: True)
    with pytest.raises(CheckpointError, match="not in the local cache while the Hub is unreachable or HF_HUB_OFFLINE"):
        SentimentClassifier.from_pretrained("someone/missing")


def test_an_unknown_hub_repository_is_refused_naming_it(fake_hub):
    with pytest.raises(CheckpointError, match="could not fetch someone/missing from the Hugging Face Hub"):
        SentimentClassifier.from_pretrained("someone/missing")


def test_neither_name_folder_nor_hub_id_is_refused(tmp_path):
    with pytest.raises(CheckpointError, match="neither a shipped model .* nor a Hugging Face Hub id"):
        SentimentClassifier.from_pretrained(str(tmp_path / "nothing" / "here"))


def test_push_is_refused_offline_and_for_a_bad_repo_id_before_anything_is_written(classifier, fake_hub, monkeypatch):
    with pytest.raises(SaveError, match="owner/name"):
        classifier.push_to_hub("no-owner")
    monkeypatch.setattr(hub, "hub_offline", lambda: True)
    with pytest.raises(SaveError, match="HF_HUB_OFFLINE is set"):
        classifier.push_to_hub("someone/x")
    assert fake_hub.created == [] and not fake_hub.root.exists()


def test_hub_offline_reads_the_environment_switch(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert hub.hub_offline()


@pytest.mark.parametrize("name", ["sentiment", "sentiment-protonet", "sentiment-pooled", "movielens"])
def test_every_shipped_model_carries_a_card_with_its_benchmark_figures(name):
    from personalize.loading import SHIPPED

    folder = SHIPPED[name]
    metadata = card_metadata(folder)
    recorded = json.loads(next(folder / f for f in ("learner/learner.json", "recommender.json")
                               if (folder / f).is_file()).read_text(encoding="utf-8"))["encoder"]["name"]
    assert metadata["library_name"] == "personalize" and metadata["base_model"] == recorded
    text = (folder / "README.md").read_text(encoding="utf-8")
    assert "## Results" in text and ("movies, 8-shot accuracy" in text or "MAE (MeLU protocol)" in text)
