"""Saving and loading meta-learners: safetensors for tensors, JSON for everything else.

A learner checkpoint is a folder:

- ``learner.json``: format version, learner name, its config, the encoder's identity (name, weights
  sha256 or fingerprint, shape) and a free-form ``record`` (training history, model selection...);
- ``meta_parameters.safetensors``: every meta-parameter (adapter and head initialization, learned
  step sizes, temperature, prior).

Since format version 2 ``learner.json`` records the sha256 of the tensor file (``checksums``), and
loading refuses a file that does not match; a version 1 checkpoint (no checksums) still loads.
Saving never replaces a folder that is not a learner checkpoint; ``overwrite=True`` replaces one.

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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

from personalize.encoder import Encoder, load_encoder
from personalize.encoder_packages import package_named
from personalize.errors import CheckpointError, EncoderError
from personalize.files import SavedKind, load_checked_tensors, read_json_document, save_checked_tensors, staged_folder
from personalize.learners import LEARNERS, MetaLearner, learner_class

FORMAT = "personalize-learner"
FORMAT_VERSION = 2
READS_VERSIONS = (1, 2)  # version 1: the same files, without checksums
CONFIG_FILE = "learner.json"
TENSORS_FILE = "meta_parameters.safetensors"
KIND = SavedKind("learner checkpoint", CONFIG_FILE, frozenset({CONFIG_FILE, TENSORS_FILE}), FORMAT)


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


def save_learner(learner: MetaLearner, path: str | Path, record: dict[str, Any] | None = None, *,
                 overwrite: bool = False) -> Path:
    """Write ``learner`` to folder ``path`` atomically (a crash leaves the previous folder intact).

    ``path`` must be new or an empty folder; ``overwrite=True`` also replaces a learner checkpoint
    (and nothing else: see :func:`~personalize.files.staged_folder`).
    """
    path = Path(path)
    document = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "learner": learner.name,
        "config": learner.config.to_dict(),
        "encoder": encoder_record(learner.encoder),
        "record": record if record is not None else getattr(learner, "record", {}),
    }
    return _write_learner(document, learner.state_dict(), path, overwrite)


def save_saved_learner(saved: SavedLearner, path: str | Path, *, overwrite: bool = False) -> Path:
    """Write a checkpoint read by :func:`read_learner` to ``path`` again, unchanged (as :func:`save_learner`)."""
    document = {name: value for name, value in saved.document.items() if name != "checksums"}
    return _write_learner(document, saved.tensors, Path(path), overwrite)


def _write_learner(document: dict[str, Any], tensors: dict[str, torch.Tensor], path: Path, overwrite: bool) -> Path:
    with staged_folder(path, KIND, overwrite=overwrite) as staging:
        document["checksums"] = {TENSORS_FILE: save_checked_tensors(staging, TENSORS_FILE, tensors)}
        (staging / CONFIG_FILE).write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    return path


def read_learner_document(path: str | Path) -> dict[str, Any]:
    """The parsed ``learner.json`` of a checkpoint folder, checked for format and version."""
    return read_json_document(path, CONFIG_FILE, FORMAT, READS_VERSIONS, "learner checkpoint")


def load_learner(path: str | Path, encoder: Encoder | None = None, device: str = "auto") -> MetaLearner:
    """Rebuild a saved learner on ``encoder`` (default: the encoder it used, if bundled or fetched)."""
    return build_learner(read_learner(path), encoder, device)


@dataclass
class SavedLearner:
    """A learner checkpoint read into memory (its JSON and checked tensors), not yet on an encoder."""

    path: Path
    document: dict[str, Any]
    tensors: dict[str, torch.Tensor]


def read_learner(path: str | Path) -> SavedLearner:
    """Read and check (format, known learner, sha256, finite values) a folder written by :func:`save_learner`."""
    path = Path(path)
    document = read_learner_document(path)
    name = document.get("learner")
    if not (isinstance(name, str) and name in LEARNERS):
        raise CheckpointError(f"{path / CONFIG_FILE} names learner {name!r}, which is not a learner this version of "
                              f"personalize knows ({', '.join(sorted(LEARNERS))}); restore the file or save the "
                              "learner again")
    tensors = load_checked_tensors(path, TENSORS_FILE, document, what="checkpoint", config_name=CONFIG_FILE)
    return SavedLearner(path, document, tensors)


def build_learner(saved: SavedLearner, encoder: Encoder | None = None, device: str = "auto") -> MetaLearner:
    """The learner of a :class:`SavedLearner` on ``encoder`` (checked against the one it was trained on)."""
    document = saved.document
    if encoder is None:  # the encoder it was trained on, if bundled or fetched; texts truncated as in training
        recorded = document["encoder"].get("name")
        source = recorded if isinstance(recorded, str) and package_named(recorded) is not None else None
        encoder = load_encoder(source, device=device, max_length=int(document["encoder"].get("max_length", 128)))
    check_encoder(encoder, document["encoder"], str(saved.path))
    cls = learner_class(document["learner"])
    learner = cls(encoder, cls.config_class.from_dict(document["config"]))
    expected = learner.state_dict()
    tensors = saved.tensors
    if set(tensors) != set(expected) or any(tensors[k].shape != expected[k].shape for k in expected):
        raise CheckpointError(f"checkpoint {saved.path}: its tensors do not match a {cls.__name__} with its config")
    learner.load_state_dict(tensors)
    learner.record = document.get("record", {})
    return learner.to(encoder.device)


def save_tensors(path: Path, tensors: dict[str, torch.Tensor]) -> None:
    """Save a flat dict of tensors as safetensors (CPU, contiguous)."""
    save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, str(path))
