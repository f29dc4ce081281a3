"""``personalize.load``: open a shipped model by name, or anything the project saved, by path.

Shipped models live in the package's ``pretrained/`` folder (meta-learned by the scripts in
``scripts/``; small enough to ship). A path is recognised by the file that describes it:

- ``classifier.json``: a :class:`~personalize.sentiment.SentimentClassifier`;
- ``recommender.json``: a :class:`~personalize.recommend.Recommender`;
- ``task.json``: one adapted :class:`~personalize.task_model.TaskModel`;
- ``learner.json``: a bare meta-learner checkpoint.

>>> sorted(SHIPPED)
['movielens', 'sentiment', 'sentiment-pooled', 'sentiment-protonet']
>>> load("no-such-model")  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
personalize.errors.CheckpointError: no-such-model is neither a shipped model (movielens, sentiment, ...
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from personalize.encoder import PRECISIONS, Encoder, Precision
from personalize.errors import CheckpointError, require

PRETRAINED_DIR = Path(__file__).parent / "pretrained"

# Shipped model name -> its folder inside the package. "sentiment", the default, adapts a two-class
# task by one gradient step with meta-learned per-entry step sizes (Meta-SGD) and a task with more
# classes by prototypes: its multiclass companion, which also ships alone as "sentiment-protonet" (one
# forward pass, about twice as fast, behind on movie reviews). "sentiment-pooled" is the benchmark's
# pooled-transfer baseline (no episodes).
SHIPPED: dict[str, Path] = {
    "movielens": PRETRAINED_DIR / "movielens",
    "sentiment": PRETRAINED_DIR / "sentiment",
    "sentiment-pooled": PRETRAINED_DIR / "sentiment-pooled",
    "sentiment-protonet": PRETRAINED_DIR / "sentiment" / "multiclass",
}


def shipped_path(name: str) -> Path:
    """The folder of shipped model ``name``; CheckpointError if this install lacks it."""
    path = SHIPPED[name]
    if not path.is_dir():
        raise CheckpointError(f"the shipped model {name!r} is missing from this install ({path}); "
                              "reinstall personalize, or train one with `personalize meta-fit` and load its folder")
    return path


def load(name_or_path: str | Path, encoder: Encoder | None = None, device: str = "auto",
         precision: Precision | None = None) -> Any:
    """Load a shipped model by name, or a saved classifier, task model or learner by folder.

    ``encoder`` must be the encoder the model was trained on (default: the bundled MiniLM).
    ``precision`` (``"auto"``, ``"float32"``, ``"bfloat16"`` or ``"int8"``), when given, is set on
    the encoder the model runs on; see :meth:`~personalize.encoder.Encoder.compute_dtype`.
    """
    require(precision is None or precision in PRECISIONS,
            f"precision must be None or one of {', '.join(map(repr, PRECISIONS))}, got {precision!r}")
    model = _load(name_or_path, encoder, device)
    if precision is not None:
        (model.learner.encoder if hasattr(model, "learner") else model.encoder).precision = precision
    return model


def _load(name_or_path: str | Path, encoder: Encoder | None, device: str) -> Any:
    if isinstance(name_or_path, str) and name_or_path in SHIPPED:
        path = shipped_path(name_or_path)
    else:
        path = Path(name_or_path)
        if not path.is_dir():
            raise CheckpointError(f"{name_or_path} is neither a shipped model ({', '.join(sorted(SHIPPED))}) "
                                  "nor a folder saved by personalize")
    if (path / "recommender.json").is_file():
        from personalize.recommend import Recommender

        return Recommender.load(path, encoder=encoder)
    if (path / "classifier.json").is_file():
        from personalize.sentiment import SentimentClassifier

        return SentimentClassifier.load(path, encoder=encoder, device=device)
    if (path / "task.json").is_file():
        from personalize.task_model import TaskModel

        return TaskModel.load(path, encoder=encoder, device=device)
    if (path / "learner.json").is_file():
        from personalize.checkpoint import load_learner

        return load_learner(path, encoder=encoder, device=device)
    raise CheckpointError(f"{path} holds no recommender.json, classifier.json, task.json or learner.json: "
                          "not saved by personalize")


__all__ = ["SHIPPED", "load", "shipped_path"]
