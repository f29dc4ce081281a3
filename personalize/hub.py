"""Hugging Face conventions for every saved model: ``save_pretrained``, ``from_pretrained``, ``push_to_hub``.

:class:`HubMixin` gives a model class the three methods Hugging Face users reach for, on top of the
class's own ``save``/``load`` (atomic, checksummed). ``save_pretrained`` also writes a model card,
``README.md`` with YAML metadata (library, base model, tags, training data, the figures the model's
training recorded), so a folder says what it is. ``from_pretrained`` takes a shipped name, a local
folder or a Hub id ``owner/name``; a Hub id is fetched with ``huggingface_hub`` (JSON, safetensors and
the card only, never a pickle) and refused with a clear message when offline and not cached.

>>> import tempfile
>>> from personalize.encoder import tiny_encoder
>>> from personalize.learners import create_learner
>>> from personalize.sentiment import SentimentClassifier
>>> classifier = SentimentClassifier.build(create_learner("protonet", tiny_encoder()), ["bad", "good"], [0, 1])
>>> folder = classifier.save_pretrained(tempfile.mkdtemp() + "/model")
>>> print((folder / "README.md").read_text().splitlines()[1])
library_name: personalize
>>> SentimentClassifier.from_pretrained(folder, encoder=tiny_encoder()).labels
('negative', 'positive')
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from personalize.errors import CheckpointError, SaveError, require

CARD_FILE = "README.md"
HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")
# What from_pretrained downloads from a Hub repository: never a pickle or code.
DOWNLOADED_FILES = ["*.json", "*.safetensors", CARD_FILE]


@dataclass(frozen=True)
class CardFacts:
    """What a model card says about one model (each model class gathers its own)."""

    title: str
    """The card's heading, e.g. "Few-shot text classifier"."""
    base_model: str
    """The Hugging Face id of the frozen encoder."""
    pipeline_tag: str
    tags: tuple[str, ...]
    summary: list[str]
    """Lines saying what the model is and how to use it."""
    record: dict[str, Any] = field(default_factory=dict)
    """The training record (command, suite, seed, best validation figures...)."""


# Training-record keys a card shows, with the words it shows them under.
RECORD_FIELDS = {
    "command": "command", "suite": "training suite (meta-training tasks)", "seed": "seed",
    "steps_done": "meta-training steps", "best_step": "best step", "best_val_loss": "best meta-validation loss",
    "device": "device", "machine": "machine", "train_seconds": "training seconds",
}


def model_card(facts: CardFacts, results: dict[str, Any] | None = None) -> str:
    """The README.md text for a model: YAML metadata, then what it is, how it was trained, its figures.

    ``results``: measured figures to show ({measure: value}, e.g. from the model's benchmark report).

    >>> card = model_card(CardFacts("Demo", "org/encoder", "text-classification", ("few-shot",),
    ...                             ["A demo."], {"seed": 0, "suite": "demo-suite"}))
    >>> card.splitlines()[:4]
    ['---', 'library_name: personalize', 'base_model: org/encoder', 'pipeline_tag: text-classification']
    >>> "| seed | 0 |" in card
    True
    """
    tags = ["personalize", "meta-learning", *facts.tags]
    lines = ["---", "library_name: personalize", f"base_model: {facts.base_model}",
             f"pipeline_tag: {facts.pipeline_tag}", "tags:", *[f"- {tag}" for tag in tags]]
    if isinstance(facts.record.get("suite"), str):
        lines += ["datasets:", f"- {facts.record['suite']}"]
    lines += ["---", "", f"# {facts.title}", "", *facts.summary, "",
              f"Base model (frozen): `{facts.base_model}`.", "",
              "```python", "import personalize as pz", "", "model = pz.load(\"PATH_OR_HUB_ID\")", "```", ""]
    shown = {words: facts.record[key] for key, words in RECORD_FIELDS.items() if key in facts.record}
    figures = dict(results or {})
    if shown:
        lines += ["## Training", "", "| | |", "|---|---|", *[f"| {k} | {_cell(v)} |" for k, v in shown.items()], ""]
    if figures:
        lines += ["## Results", "", "| measure | value |", "|---|---|",
                  *[f"| {k} | {_cell(v)} |" for k, v in figures.items()], ""]
    return "\n".join(lines)


def _cell(value: Any) -> str:
    text = f"{value:.4g}" if isinstance(value, float) else str(value)
    return text.replace("|", "\\|").replace("\n", " ")


def write_model_card(folder: Path, facts: CardFacts, results: dict[str, Any] | None = None) -> Path:
    """Write ``folder/README.md`` atomically (a temporary file, then one rename); SaveError on failure."""
    card = Path(folder) / CARD_FILE
    staging = card.with_name(f".{CARD_FILE}.partial")
    try:
        staging.write_text(model_card(facts, results) + "\n", encoding="utf-8")
        os.replace(staging, card)
    except OSError as error:
        staging.unlink(missing_ok=True)
        raise SaveError(f"{folder}: the model card could not be written ({error}); "
                        "the model itself is unchanged") from error
    return card


def hub_offline() -> bool:
    """Whether Hugging Face's offline switch (``HF_HUB_OFFLINE=1``) is on."""
    import huggingface_hub

    switch = os.environ.get("HF_HUB_OFFLINE", "").upper()
    return bool(huggingface_hub.constants.HF_HUB_OFFLINE) or switch in {"1", "ON", "YES", "TRUE"}


def download_model(repo_id: str, revision: str | None = None, token: str | bool | None = None) -> Path:
    """The local folder of Hub repository ``repo_id`` (cached, or fetched: JSON, safetensors, card only).

    Offline and not cached, or not found: CheckpointError naming the id and the fix.
    """
    import huggingface_hub
    from huggingface_hub import errors

    offline = hub_offline()
    try:
        folder = huggingface_hub.snapshot_download(repo_id, revision=revision, token=token, local_files_only=offline,
                                                   allow_patterns=DOWNLOADED_FILES, library_name="personalize")
    except (errors.LocalEntryNotFoundError, errors.OfflineModeIsEnabled) as error:
        raise CheckpointError(f"{repo_id} is a Hugging Face Hub id, and it is not in the local cache while the Hub "
                              "is unreachable or HF_HUB_OFFLINE is set; go online once, or pass the path of a "
                              "saved folder") from error
    except (errors.RepositoryNotFoundError, errors.RevisionNotFoundError, errors.HfHubHTTPError, OSError) as error:
        raise CheckpointError(f"could not fetch {repo_id} from the Hugging Face Hub ({type(error).__name__}: "
                              f"{str(error).splitlines()[0] if str(error) else 'no detail'}); check the id, the "
                              "revision and your token") from error
    return Path(folder)


class HubMixin:
    """``save_pretrained``/``from_pretrained``/``push_to_hub`` over a class's ``save``, ``load`` and ``card_facts``."""

    def card_facts(self) -> CardFacts:  # pragma: no cover - each model class defines it
        raise NotImplementedError

    def save_pretrained(self, save_directory: str | Path, *, overwrite: bool = False,
                        results: dict[str, Any] | None = None) -> Path:
        """Save to ``save_directory`` as ``save`` does, plus a model card ``README.md`` (``results``: figures to show).

        The model is written atomically first; the card is then written beside it (a model folder
        with no card is still a valid model; a failed card write raises SaveError).
        """
        path = self.save(save_directory, overwrite=overwrite)  # type: ignore[attr-defined]
        write_model_card(path, self.card_facts(), results)
        return path

    @classmethod
    def from_pretrained(cls, name_or_path: str | Path, *, revision: str | None = None,
                        token: str | bool | None = None, **load_options: Any) -> Any:
        """Open a shipped model by name, a saved folder, or a Hugging Face Hub id ``owner/name``.

        ``load_options`` (``encoder``, ``device``, ...) go to the class's ``load``. A folder holding
        another kind of model is refused, naming the kind it holds.
        """
        from personalize.loading import SHIPPED, shipped_path

        if isinstance(name_or_path, str) and name_or_path in SHIPPED:
            folder = shipped_path(name_or_path)
        elif Path(name_or_path).is_dir():
            folder = Path(name_or_path)
        elif isinstance(name_or_path, str) and HUB_ID.match(name_or_path):
            folder = download_model(name_or_path, revision, token)
        else:
            raise CheckpointError(f"{name_or_path} is neither a shipped model ({', '.join(sorted(SHIPPED))}), a folder "
                                  "saved by personalize, nor a Hugging Face Hub id of the form owner/name")
        marker = cls.SAVED_KIND.marker
        if not (folder / marker).is_file():
            held = next((name for name in ("classifier.json", "recommender.json", "task.json", "learner.json")
                         if (folder / name).is_file()), None)
            raise CheckpointError(f"{name_or_path} holds no {marker}, so it is not a {cls.__name__}"
                                  + (f" (it holds {held}: open it with personalize.load)" if held else ""))
        return cls.load(folder, **load_options)  # type: ignore[attr-defined]

    def push_to_hub(self, repo_id: str, *, private: bool | None = None, token: str | bool | None = None,
                    commit_message: str | None = None, revision: str | None = None) -> str:
        """Upload the model with its card to Hub repository ``repo_id`` (created if missing); returns the commit URL.

        Refused before anything is written when HF_HUB_OFFLINE is set or ``repo_id`` is not ``owner/name``.
        """
        require(isinstance(repo_id, str) and HUB_ID.match(repo_id) is not None,
                f"repo_id must be a Hugging Face Hub id of the form owner/name, got {repo_id!r}", SaveError)
        require(not hub_offline(), f"cannot push {repo_id}: HF_HUB_OFFLINE is set; unset it to upload, or use "
                                   "save_pretrained(folder) to save locally", SaveError)
        from huggingface_hub import HfApi, errors

        api = HfApi(token=token)
        with tempfile.TemporaryDirectory(prefix="personalize-push-") as scratch:
            folder = self.save_pretrained(Path(scratch) / "model")
            try:
                api.create_repo(repo_id, private=private, exist_ok=True)
                commit = api.upload_folder(repo_id=repo_id, folder_path=folder, revision=revision,
                                           commit_message=commit_message or f"Upload {type(self).__name__}")
            except (errors.HfHubHTTPError, OSError) as error:
                raise SaveError(f"could not push to {repo_id} ({type(error).__name__}: {error}); check the id, your "
                                "token (huggingface-cli login) and your connection") from error
        return str(getattr(commit, "commit_url", commit))


def training_record(record: Any) -> dict[str, Any]:
    """``record`` if it is a JSON-able dict, else {} (cards never fail on an odd record)."""
    if not isinstance(record, dict):
        return {}
    try:
        json.dumps(record)
    except (TypeError, ValueError):
        return {}
    return record


__all__ = ["CARD_FILE", "CardFacts", "HubMixin", "download_model", "hub_offline", "model_card", "training_record",
           "write_model_card"]
