"""Saving and loading meta-learners: safetensors for tensors, JSON for everything else.

A learner checkpoint is a folder:

- ``learner.json``: format version, learner name, its config, the encoder's identity (name, weights
  sha256 or fingerprint, shape) and a free-form ``record`` (training history, model selection...);
- ``meta_parameters.safetensors``: every meta-parameter (adapter and head initialization, learned
  step sizes, temperature, prior).

Loading refuses a checkpoint whose encoder differs from the one given (or the bundled one): its
meta-parameters would be meaningless on other weights. Nothing is unpickled.

>>> import tempfile
>>> from personalize.encoder import tiny_encoder
>>> from personalize.learners import create_learner
>>> learner = create_learner("fomaml", tiny_encoder(seed=0), inner_steps=2)
>>> folder = save_learner(learner, tempfile.mkdtemp() + "/ckpt")
>>> load_learner(folder, encoder=tiny_encoder(seed=0)).config.inner_steps
2
>>> load_learner(folder, encoder=tiny_encoder(seed=1))  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
personalize.errors.EncoderError: checkpoint ... tiny-bert(seed=0, ...) but was given tiny-bert(seed=1, ...
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from personalize.encoder import Encoder, load_encoder
from personalize.errors import CheckpointError, EncoderError
from personalize.files import read_json_document, staged_folder
from personalize.learners import MetaLearner, learner_class

FORMAT = "personalize-learner"
FORMAT_VERSION = 1
CONFIG_FILE = "learner.json"
TENSORS_FILE = "meta_parameters.safetensors"


def encoder_fingerprint(encoder: Encoder) -> str:
    """The sha256 of the encoder's weight file, or of its in-memory weights when it has no file."""
    if encoder.weights_sha256 is not None:
        return encoder.weights_sha256
    digest = hashlib.sha256()
    for name, tensor in sorted(encoder.model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def encoder_record(encoder: Encoder) -> dict[str, Any]:
    """What a checkpoint stores about its encoder."""
    return {**encoder.identity(), "fingerprint": encoder_fingerprint(encoder), "max_length": encoder.max_length}


def check_encoder(encoder: Encoder, recorded: dict[str, Any], where: str) -> None:
    """Raise EncoderError unless ``encoder`` is the encoder described by ``recorded``."""
    actual = encoder_record(encoder)
    shape_keys = ("hidden_size", "num_layers", "vocab_size")
    if actual["fingerprint"] != recorded["fingerprint"] or any(actual[k] != recorded[k] for k in shape_keys):
        raise EncoderError(
            f"checkpoint {where} was trained on encoder {recorded['name']} (weights {recorded['fingerprint'][:12]}, "
            f"hidden {recorded['hidden_size']}, {recorded['num_layers']} layers) but was given {actual['name']} "
            f"(weights {actual['fingerprint'][:12]}); load it with the encoder it was trained on"
        )


def save_learner(learner: MetaLearner, path: str | Path, record: dict[str, Any] | None = None) -> Path:
    """Write ``learner`` to folder ``path`` atomically (a crash leaves the previous folder intact)."""
    path = Path(path)
    document = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "learner": learner.name,
        "config": learner.config.to_dict(),
        "encoder": encoder_record(learner.encoder),
        "record": record if record is not None else getattr(learner, "record", {}),
    }
    tensors = {name: value.detach().cpu().contiguous() for name, value in learner.state_dict().items()}
    with staged_folder(path) as staging:
        save_file(tensors, str(staging / TENSORS_FILE))
        (staging / CONFIG_FILE).write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    return path


def read_learner_document(path: str | Path) -> dict[str, Any]:
    """The parsed ``learner.json`` of a checkpoint folder, checked for format and version."""
    return read_json_document(path, CONFIG_FILE, FORMAT, FORMAT_VERSION, "learner checkpoint")


def load_learner(path: str | Path, encoder: Encoder | None = None, device: str = "auto") -> MetaLearner:
    """Rebuild a saved learner on ``encoder`` (default: the bundled encoder, if that is what it used)."""
    path = Path(path)
    document = read_learner_document(path)
    if encoder is None:  # the bundled encoder, truncating texts as it did in training
        encoder = load_encoder(device=device, max_length=int(document["encoder"].get("max_length", 128)))
    check_encoder(encoder, document["encoder"], str(path))
    cls = learner_class(document["learner"])
    learner = cls(encoder, cls.config_class.from_dict(document["config"]))
    tensors_file = path / TENSORS_FILE
    if not tensors_file.is_file():
        raise CheckpointError(f"checkpoint {path} lacks {TENSORS_FILE}")
    tensors = load_file(str(tensors_file), device=str(encoder.device))
    expected = learner.state_dict()
    if set(tensors) != set(expected) or any(tensors[k].shape != expected[k].shape for k in expected):
        raise CheckpointError(f"checkpoint {path}: its tensors do not match a {cls.__name__} with its config")
    learner.load_state_dict(tensors)
    learner.record = document.get("record", {})
    return learner.to(encoder.device)


def save_tensors(path: Path, tensors: dict[str, torch.Tensor]) -> None:
    """Save a flat dict of tensors as safetensors (CPU, contiguous)."""
    save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, str(path))
