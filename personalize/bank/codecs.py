"""How each kind of model's per-user state goes into a bank and comes back out as a working model.

A codec knows one model type: its *model id* (a fingerprint of everything the users share, so a bank
is never read with another model) and how to turn adapted users into :class:`StateGroup` rows and
back. Only what differs per user is stored, never a copy of the shared model:

- a :class:`~personalize.recommend.Recommender` user: the posterior mean and, for feature rows of
  at most :data:`COVARIANCE_MAX_FEATURES` numbers, the packed upper triangle of its covariance, plus
  the items the user rated and the ratings (``recommend`` excludes them and reads them for the pick
  score). Wider rows (a recommender on an engine learner: the adapted text features and the item
  vector) would cost D²/2 numbers per user; their covariance is solved again from the stored
  ratings when the user is read, which gives the same posterior;
- a :class:`~personalize.sentiment.SentimentClassifier` task: the adapted task state (weights,
  prototypes...) and, as JSON meta, the task's classes and which of the classifier's learners
  adapted it.

>>> sorted(CODECS)
['recommender', 'text-classifier']
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Hashable, Sequence
from typing import Any, ClassVar

import numpy as np
import torch

from personalize.bank.store import StateGroup
from personalize.errors import BankError, require

COVARIANCE_MAX_FEATURES = 64
"""Recommender users whose feature rows are wider keep no covariance in the bank (see above)."""
Encoded = list[tuple[StateGroup, list[int]]]
"""Groups of rows, each with the positions (in the caller's list) of the users it holds."""


def _fingerprint(document: Any, tensors: dict[str, torch.Tensor]) -> str:
    digest = hashlib.blake2b(digest_size=16)
    digest.update(json.dumps(document, sort_keys=True, default=str).encode())
    for name in sorted(tensors):
        digest.update(name.encode())
        digest.update(tensors[name].detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


class RecommenderStates:
    """Bank codec of :class:`~personalize.recommend.Recommender` users."""

    kind: ClassVar[str] = "recommender"

    def __init__(self, recommender: Any) -> None:
        self.model = recommender
        size = recommender.tables.features.shape[1]
        self.stores_covariance = size <= COVARIANCE_MAX_FEATURES
        """Whether each user's covariance is stored (else solved again from their ratings when read)."""
        self._upper = torch.triu_indices(size, size) if self.stores_covariance else None

    def model_id(self) -> str:
        rec = self.model
        document = {"config": rec.config.to_dict(), "items": list(map(str, rec.catalogue.ids)),
                    "rating_range": list(rec.rating_range), "rating_weight": rec.rating_weight,
                    "attributes": rec.attributes.to_dict() if rec.attributes is not None else None}
        return _fingerprint(document, rec.tables.to_dict())

    def encode(self, mean: torch.Tensor, covariance: torch.Tensor | None, items: Sequence[np.ndarray],
               ratings: Sequence[np.ndarray]) -> Encoded:
        """Users' posteriors (mean [U, D], covariance [U, D, D], needed only when
        :attr:`stores_covariance`) and histories as one group."""
        fixed = {"mean": mean.float()}
        if self._upper is not None:
            require(covariance is not None, "this recommender's bank stores covariances: pass them", BankError)
            assert covariance is not None
            fixed["covariance"] = covariance[:, self._upper[0], self._upper[1]].float()
        group = StateGroup(fixed=fixed,
                           ragged={"seen": [torch.as_tensor(np.asarray(row, dtype=np.int32)) for row in items],
                                   "ratings": [torch.as_tensor(np.asarray(row, dtype=np.float32)) for row in ratings]})
        return [(group, list(range(len(items))))]

    def decode(self, fixed: dict[str, torch.Tensor], ragged: dict[str, torch.Tensor], meta: Any,
               user: Hashable) -> Any:
        from personalize.engine.gaussian import WeightPosterior
        from personalize.recommend.user_model import UserModel

        seen, ratings = ragged["seen"].numpy().astype(np.int64), ragged["ratings"].numpy().astype(np.float64)
        if self._upper is None:  # wide rows: the covariance again from the stored ratings
            require("covariance" not in fixed, "the bank holds covariances this recommender does not store", BankError)
            covariance = self.model._adapt_padded([seen], [ratings.astype(np.float32)], [user])[0].posterior.covariance
        else:
            require("covariance" in fixed, "the bank holds no covariance for this recommender", BankError)
            size = len(fixed["mean"])
            covariance = torch.zeros(size, size)
            covariance[self._upper[0], self._upper[1]] = fixed["covariance"]
            covariance = (covariance + covariance.triu(1).T)[None]
        posterior = WeightPosterior(mean=fixed["mean"][None].clone(), covariance=covariance)
        return UserModel(self.model, posterior, seen, user, ratings)


class ClassifierStates:
    """Bank codec of tasks adapted by a :class:`~personalize.sentiment.SentimentClassifier`."""

    kind: ClassVar[str] = "text-classifier"

    def __init__(self, classifier: Any) -> None:
        self.model = classifier
        self.learners = {"main": classifier.learner}
        if classifier.multiclass is not None:
            self.learners["multiclass"] = classifier.multiclass.learner

    def model_id(self) -> str:
        from personalize.checkpoint import encoder_fingerprint

        tensors = {}
        for route, learner in self.learners.items():
            tensors.update({f"{route}.{name}": value for name, value in learner.state_dict().items()})
        names = {route: learner.name for route, learner in self.learners.items()}
        document = {"labels": list(self.model.labels), "learners": names,
                    "encoder": encoder_fingerprint(self.model.encoder)}
        return _fingerprint(document, tensors)

    def route_of(self, task_model: Any) -> str:
        for route, learner in self.learners.items():
            if task_model.learner is learner:
                return route
        raise BankError("this task was adapted by a learner that is not part of the bank's classifier")

    def encode(self, models: Sequence[Any]) -> tuple[Encoded, list[str]]:
        """Adapted TaskModels grouped by layout (learner and tensor shapes); also each one's JSON meta."""
        layouts: dict[tuple, list[int]] = {}
        meta = []
        for position, model in enumerate(models):
            route = self.route_of(model)
            key = (route, tuple((name, tuple(value.shape)) for name, value in sorted(model.state.items())))
            layouts.setdefault(key, []).append(position)
            meta.append(json.dumps({"learner": route, "classes": list(model.classes) if model.classes else None}))
        encoded = []
        for (_, layout), positions in layouts.items():
            fixed = {name: torch.cat([models[p].state[name].detach().cpu() for p in positions]) for name, _ in layout}
            encoded.append((StateGroup(fixed=fixed), positions))
        return encoded, meta

    def decode(self, fixed: dict[str, torch.Tensor], ragged: dict[str, torch.Tensor], meta: Any,
               user: Hashable) -> Any:
        from personalize.task_model import TaskModel

        require(isinstance(meta, dict) and meta.get("learner") in self.learners,
                f"task {user!r}: its bank entry names no learner of this classifier", BankError)
        learner = self.learners[meta["learner"]]
        device = learner.encoder.device
        state = {name: value[None].to(device) for name, value in fixed.items()}
        classes = tuple(meta["classes"]) if meta.get("classes") is not None else None
        return TaskModel(learner, state, classes)


CODECS: dict[str, type] = {codec.kind: codec for codec in (RecommenderStates, ClassifierStates)}


def codec_for(model: Any) -> RecommenderStates | ClassifierStates:
    """The codec of a loaded model (a Recommender or a SentimentClassifier)."""
    from personalize.recommend import Recommender
    from personalize.sentiment import SentimentClassifier

    if isinstance(model, Recommender):
        return RecommenderStates(model)
    if isinstance(model, SentimentClassifier):
        return ClassifierStates(model)
    raise BankError("a bank stores users of a Recommender or tasks of a SentimentClassifier, "
                    f"not {type(model).__name__}")


__all__ = ["CODECS", "ClassifierStates", "RecommenderStates", "codec_for"]
